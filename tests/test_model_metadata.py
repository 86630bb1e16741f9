"""Model metadata (roadedge.model/1) as the runtime reads it: wrong types (nested lists where labels belong, text where
numbers belong), huge numbers and NaN are one RoadedgeError naming the file and the field, never another exception
(property-based over random values in every field the runtime reads)."""
import copy
import json
import math
import os
import shutil
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.backends.openvino import BUNDLED_MODEL
from roadedge.cli import main
from roadedge.core.errors import RoadedgeError
from roadedge.core.model_metadata import MAX_INPUT_SIDE, ModelInfo, hyperparams_input_size, labels_for, read_metadata

with open(BUNDLED_MODEL[:-4] + ".json", encoding="utf-8") as _handle:
    GOOD = json.load(_handle)


def with_change(path, value):
    """The bundled metadata with the field at `path` ('input.width') set to `value` (or removed when value is ...)."""
    meta = copy.deepcopy(GOOD)
    *parents, key = path.split(".")
    target = meta
    for part in parents:
        target = target[part]
    if value is Ellipsis:
        del target[key]
    else:
        target[key] = value
    return meta


def read_text(text):
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "m.json"), "w", encoding="utf-8") as handle:
            handle.write(text)
        return read_metadata(os.path.join(folder, "m.xml"))


@pytest.mark.parametrize("path,value,message", [
    ("labels", [["D40"], ["D20"]], r"labels: \[\[\"D40\"\], \[\"D20\"\]\]; expected a list of class codes"),
    ("labels", "D40", r"labels: \"D40\"; expected a list of class codes"),
    ("labels", [None], r"labels: \[null\]; expected a list of class codes"),
    ("input.width", "300", r"input.width: \"300\"; expected a whole number of pixels in 1..8192"),
    ("input.width", 1e400, r"input.width: Infinity; expected a whole number of pixels"),
    ("input.height", float("nan"), r"input.height: NaN; expected a whole number of pixels"),
    ("input.height", 10 ** 12, r"input.height: 1000000000000; expected a whole number of pixels in 1..8192"),
    ("input", [256, 256], r"input: \[256, 256\]; expected an object with width and height"),
    ("output", ["detection_output"], r"output: \[\"detection_output\"\]; expected an object"),
    ("output.format", ["detection_output"], r"output.format: \[\"detection_output\"\]; expected a format name"),
    ("output.label_offset", 10 ** 30, r"output.label_offset: 1000000000000000000000000000000; expected a whole number"),
    ("output.label_offset", "1", r"output.label_offset: \"1\"; expected a whole number"),
    ("preprocessing", "RGB", r"preprocessing: \"RGB\"; expected an object"),
    ("preprocessing.mean", [0, float("nan"), 0], r"preprocessing.mean: \[0, NaN, 0\]; expected a list of 3 finite numbers"),
    ("preprocessing.scale", 0, r"preprocessing.scale: 0; expected a finite number > 0"),
    ("preprocessing.scale", [1.0, 0.0, 1.0], r"preprocessing.scale: \[1.0, 0.0, 1.0\]; expected a finite number > 0 or a"),
    ("preprocessing.scale", [1.0, 1.0], r"preprocessing.scale: \[1.0, 1.0\]; expected a finite number > 0 or a list of 3"),
    ("preprocessing.color_order", ["RGB"], r"preprocessing.color_order: \[\"RGB\"\]; expected RGB or BGR"),
    ("preprocessing.embedded", "false", r"preprocessing.embedded: \"false\"; expected true or false"),
    ("task", {"detection": 1}, r"task: \{\"detection\": 1\}; expected text"),
], ids=lambda v: v if isinstance(v, str) and "\\" not in v else None)
def test_wrong_types_and_impossible_values_name_the_file_and_the_field(tmp_path, path, value, message):
    (tmp_path / "m.json").write_text(json.dumps(with_change(path, value)))
    with pytest.raises(RoadedgeError, match="^{}: {}".format(tmp_path / "m.json", message)):
        read_metadata(str(tmp_path / "m.xml"))


def test_nesting_too_deep_and_not_utf8():
    with pytest.raises(RoadedgeError, match=r"m.json: not valid JSON \(nested too deeply\)"):
        read_text("[" * 100000)
    with pytest.raises(RoadedgeError, match=r"hyperparams.json: class_names \{\"a\": 1\}: expected a list of class names"):
        labels_for(2, hyperparams={"class_names": {"a": 1}})


def test_the_runtime_refuses_such_metadata_in_one_line(tmp_path, capsys):
    for suffix in (".xml", ".bin"):
        shutil.copy(BUNDLED_MODEL[:-4] + suffix, str(tmp_path / ("road" + suffix)))
    (tmp_path / "road.json").write_text(json.dumps(with_change("labels", [["D00", "D10"], "D20"])))
    assert main(["run", "--model", str(tmp_path / "road.xml"), "--no-preview", "--frames", "1"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "internal error" not in err
    assert "{}: labels: [[\"D00\", \"D10\"], \"D20\"]; expected a list of class codes".format(tmp_path / "road.json") in err


# ---- property: every field the runtime reads, any JSON value -----------------------------------------------------

ODD = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from([2 ** 63, 10 ** 40, -1, 0, 1, 300, 300.0, 8193]),
                st.floats(), st.text(max_size=8), st.sampled_from(["300", "NaN", "RGB", "BGR", "stretch", "D40", ""]))
VALUES = st.recursive(ODD, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                       max_size=3), max_leaves=10)
FIELDS = ["labels", "input", "input.width", "input.height", "output", "output.format", "output.label_offset", "name",
          "task", "preprocessing", "preprocessing.mean", "preprocessing.scale", "preprocessing.color_order",
          "preprocessing.resize", "preprocessing.embedded"]


@st.composite
def metadata(draw):
    """The bundled metadata with one to four fields replaced by any JSON value (or removed)."""
    meta = copy.deepcopy(GOOD)
    for path in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique=True)):
        *parents, key = path.split(".")
        target = meta
        for part in parents:
            target = target.get(part) if isinstance(target, dict) else None
        if isinstance(target, dict):
            if draw(st.integers(0, 9)) == 0:
                target.pop(key, None)
            else:
                target[key] = draw(VALUES)
    return meta


def check_info(info):
    assert all(isinstance(label, str) for label in info.labels) and info.labels
    assert all(isinstance(v, int) and 0 < v <= MAX_INPUT_SIDE for v in info.input_size)
    assert isinstance(info.label_offset, int) and abs(info.label_offset) <= len(info.labels)
    assert isinstance(info.output_format, str) and isinstance(info.task, str) and isinstance(info.name, str)
    for key in ("mean", "scale"):
        values = info.preprocessing.get(key, [])
        assert all(math.isfinite(v) for v in (values if isinstance(values, list) else [values]))


@given(metadata())
def test_property_metadata_fields_give_a_model_info_or_one_line_naming_the_file(meta):
    try:
        loaded = read_text(json.dumps(meta))
    except RoadedgeError as err:
        assert str(err).startswith(tempfile.gettempdir()) and "m.json: " in str(err) and "\n" not in str(err), str(err)
        return
    check_info(ModelInfo.from_metadata(loaded, where="m.json"))


@given(VALUES)
def test_property_random_json_as_metadata(value):
    try:
        check_info(ModelInfo.from_metadata(value, where="m.json"))
    except RoadedgeError as err:
        assert str(err).startswith("m.json: ") and "\n" not in str(err), str(err)


def test_a_per_channel_scale_is_folded_into_openvino_per_channel():
    """GluonCV's models divide by a std per channel: the metadata's scale list multiplies channel by channel."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    from roadedge.core.openvino_preprocessing import add_preprocessing

    data = ops.parameter([1, 3, 4, 6], ov.Type.f32, name="data")
    model = ov.Model([ops.result(data)], [data], "identity")
    preprocessing = {"color_order": "RGB", "mean": [10.0, 20.0, 30.0], "scale": [0.5, 0.25, 0.125]}
    compiled = ov.Core().compile_model(add_preprocessing(model, preprocessing, (6, 4)), "CPU")
    frame = np.random.default_rng(3).integers(0, 256, (1, 4, 6, 3), dtype=np.uint8)  # BGR, the frame's size
    got = compiled(frame)[0][0]
    rgb = frame[0, :, :, ::-1].astype(np.float32)
    want = ((rgb - np.array([10.0, 20.0, 30.0])) * np.array([0.5, 0.25, 0.125])).transpose(2, 0, 1)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4)


def test_hyperparams_input_size_is_the_square_image_shape_or_roadedges_width_beside_it():
    assert hyperparams_input_size({"image_shape": "300"}) == (300, 300)
    assert hyperparams_input_size({"image_shape": "224", "image_width": "384"}) == (384, 224)
    assert hyperparams_input_size({"image_shape": "224", "image_width": "wide"}) == (224, 224)
    assert hyperparams_input_size({"image_shape": "3,300,300"}) is None and hyperparams_input_size(None) is None
