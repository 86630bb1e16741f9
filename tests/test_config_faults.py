"""Settings files and topic prefixes a hostile but fair user could write: every one is a valid configuration or one
line naming the file and the key (RoadedgeError), never another exception, never a memory blow-up."""
import os
import string

import pytest
import yaml
from hypothesis import given, note
from hypothesis import strategies as st

from edge import config
from edge.config_yaml import MAX_BYTES, parse_settings
from edge.topics import validate_topic_prefix
from roadedge.cli import main
from roadedge.core.errors import RoadedgeError

PROFILES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "device_profiles")
KEYS = sorted(config.TOP) + ["type", "model", "labels", "input_size", "path", "uri", "min_score", "class_thresholds",
                             "queue", "frames", "port", "host", "quality", "precision", "device", "requests"]
TRIED = {"settings": 0, "bytes": 0, "mutated profiles": 0, "topic prefixes": 0}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["bundled", "openvino", "jsonl", "-", "nan", "1_0", "0x1F",
                                                           "~", "\0", "D40", "/dev/null", "sample", ".inf"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=4)),
    max_leaves=20)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)


def load_file(tmp_path, data):
    path = tmp_path / "settings.yaml"
    path.write_bytes(data)
    try:
        return config.load("x86-openvino-cpu", str(path))
    except RoadedgeError as err:
        message = str(err)
        assert message and "\n" not in message.strip(), message
        return None


@given(documents)
def test_generated_settings_are_a_configuration_or_one_line(tmp_path_factory, document):
    TRIED["settings"] += 1
    text = yaml.safe_dump(document, allow_unicode=True)
    note(text)
    loaded = load_file(tmp_path_factory.mktemp("cfg"), text.encode("utf-8", "surrogatepass"))
    if loaded is not None:
        assert loaded["backend"]["type"] and isinstance(loaded["outputs"], list)


@given(st.binary(max_size=300))
def test_random_bytes_are_refused_in_one_line(tmp_path_factory, data):
    TRIED["bytes"] += 1
    load_file(tmp_path_factory.mktemp("cfg"), data)


@given(st.sampled_from(sorted(os.listdir(PROFILES))), st.data())
def test_mutated_profiles_are_a_configuration_or_one_line(tmp_path_factory, name, data):
    TRIED["mutated profiles"] += 1
    if not name.endswith(".yaml"):
        return
    with open(os.path.join(PROFILES, name), "rb") as handle:
        original = bytearray(handle.read())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(original) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            original[position] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del original[position:position + data.draw(st.integers(1, 40))]
        else:
            original[position:position] = data.draw(st.sampled_from(
                [b"&a ", b"*a ", b"[", b"{", b": ", b"\n- ", b"\t", b"1_0", b"!!python/object:os.system ", b"\xff"]))
        if not original:
            break
    load_file(tmp_path_factory.mktemp("cfg"), bytes(original))


@given(st.lists(st.characters(exclude_categories=()) | st.sampled_from(["\ud800", "+", "#", "\0", "/", "{", "}",
                                                                       "{device}", "$aws/things/x/"]),
                max_size=120).map("".join),
       st.text(string.ascii_letters + "-_.{}/", max_size=20))
def test_topic_prefixes_are_valid_or_refused_in_one_line(prefix, device):
    TRIED["topic prefixes"] += 1
    try:
        expanded = validate_topic_prefix(prefix, device)
    except RoadedgeError as err:
        assert "\n" not in str(err)
        return
    topic = expanded + "/detections"
    assert len(topic.encode("utf-8")) <= 256 and topic.count("/") <= 7
    assert not set("+#\0") & set(topic)


def test_every_property_test_tried_its_full_number_of_inputs(capsys):
    """Runs last in this file: each property test above that ran tried the profile's number of inputs (-s prints
    them), so none passes by generating nothing."""
    from hypothesis import settings

    ran = {name: count for name, count in TRIED.items() if count}
    if not ran:
        pytest.skip("the property tests of this file did not run in this session")
    with capsys.disabled():
        print("\ngenerated inputs: " + ", ".join("{} {}".format(k, v) for k, v in TRIED.items()))
    assert all(count >= settings().max_examples for count in ran.values()), ran


# ---- the cases found by hand, kept as named tests -------------------------------------------------------------

BOMB = "".join("{0}: &{0} [{1}]\n".format(chr(97 + i), ",".join(["*" + chr(96 + i)] * 9) if i else '"x"')
               for i in range(6)) + "outputs: [*f]\n"


@pytest.mark.parametrize("text, message", [
    ("outputs: {type: jsonl}\n", "outputs: expected a list, got a mapping"),
    (b'device_name: "\xff\xfe"\n', "not UTF-8 text (byte 0xff at offset 14)"),
    ("pipeline: {queue: 1_0}\n", "pipeline.queue: expected an integer, got a string ('1_0')"),
    ("pipeline: {queue: 0x1F}\n", "pipeline.queue: expected an integer, got a string ('0x1F')"),
    ("detection: {min_score: .nan}\n", "detection.min_score: expected a number, got a string ('.nan')"),
    ("backend: {type: openvino, labels: [[D00], D10]}\n", "backend.labels: [['D00'], 'D10']; expected a list of strings"),
    ("backend: {type: openvino, input_size: [300]}\n", "expected a list of 2 integers of at least 1"),
    ("detection: {class_thresholds: {D40: 2}}\n", "a mapping of class codes to numbers in 0..1"),
    (BOMB, "expands to more than 100000 values"),
    ("a: &a x\n" + "".join("k{}: *a\n".format(i) for i in range(101)), "more than 100 aliases"),
    ("outputs:" + " [" * 40 + "]" * 40 + "\n", "nested more than 32 levels deep"),
    ("!!python/object/apply:os.system [true]\n", "not valid YAML"),
])
def test_hostile_settings_are_one_line_naming_the_file(tmp_path, capsys, text, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    assert main(["run", "--config", str(path), "--frames", "1", "--no-preview"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("roadedge: error: {}:".format(path)) and message in err, err


def test_a_threshold_for_a_class_the_model_lacks_is_refused_at_load(tmp_path, capsys):
    path = tmp_path / "thresholds.yaml"
    path.write_text("detection: {class_thresholds: {D99: 0.3}}\n")
    assert main(["run", "--config", str(path), "--frames", "1", "--no-preview"]) == 2
    assert capsys.readouterr().err == ("roadedge: error: detection.class_thresholds: D99: not a class of model "
                                       "road-damage-ssd (its classes: D00, D10, D20, D40, D43, D44)\n")


def test_a_settings_file_larger_than_the_limit_is_refused_before_parsing():
    with pytest.raises(RoadedgeError, match="a settings file is at most"):
        parse_settings("big.yaml", b"#" * (MAX_BYTES + 1))
