"""Plugins are found, not listed: a file with a TYPE is a plugin; options check themselves where they are declared."""
import sys
import textwrap

import pytest

from edge import config, plugins
from edge.plugins import Option, at_least, between, checked
from roadedge.core.errors import RoadedgeError


def test_every_plugin_file_is_found_under_its_type():
    expected = {"source": {"opencv", "images", "synthetic", "awscam", "picamera2"},
                "backend": {"openvino", "mxnet", "awscam", "sagemaker"},
                "sink": {"jsonl", "mjpeg", "fifo", "record", "mqtt", "greengrass", "s3", "kvs", "masks", "defects"}}
    for kind, types in expected.items():
        found = plugins.plugins(kind)
        assert set(found) == types, kind
        for type_name, module in found.items():
            assert module.__name__.rsplit(".", 1)[1] == type_name and callable(module.open)


def test_adding_a_file_adds_a_plugin(tmp_path, monkeypatch):
    package = tmp_path / "extra_sinks"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text("HELPER = 1\n")  # no TYPE: not a plugin
    (package / "_private.py").write_text("TYPE = 'hidden'\n")
    (package / "webhook.py").write_text(textwrap.dedent("""
        from edge.plugins import Option
        TYPE = "webhook"
        OPTIONS = {"url": Option(str, "", "where to POST")}
        def open(options, context):
            return options
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    found = plugins.discover("extra_sinks", "TYPE")
    assert list(found) == ["webhook"] and found["webhook"].open({"url": "x"}, {}) == {"url": "x"}
    sys.modules.pop("extra_sinks", None)


@pytest.mark.parametrize("value, message", [
    (0, "mqtt sink: port: 0; expected 1..65535"),
    (70000, "mqtt sink: port: 70000; expected 1..65535"),
    ("1883", "mqtt sink: port: expected an integer, got a string ('1883')"),
])
def test_an_option_checks_itself(value, message):
    spec = {"port": Option(int, 1883, "broker port", check=between(1, 65535)),
            "qos": Option(int, 1, "QoS", choices=(0, 1))}
    with pytest.raises(RoadedgeError) as err:
        checked(spec, {"port": value}, "mqtt sink")
    assert str(err.value) == message
    assert checked(spec, {}, "mqtt sink") == {"port": 1883, "qos": 1}
    with pytest.raises(RoadedgeError, match=r"mqtt sink: qos: 2; expected one of 0, 1"):
        checked(spec, {"qos": 2}, "mqtt sink")
    with pytest.raises(RoadedgeError, match=r"mqtt sink: retries: unknown option"):
        checked(spec, {"retries": 2}, "mqtt sink")


def test_profile_values_are_checked_by_the_options_declarations(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("backend: {type: openvino, precision: f64}\n")
    with pytest.raises(RoadedgeError) as err:
        config.load("x86-openvino-cpu", str(bad))
    assert str(err.value) == "{}: backend.precision: 'f64'; expected one of f32, f16, bf16, default".format(bad)
    bad.write_text("pipeline: {queue: 0}\n")
    with pytest.raises(RoadedgeError) as err:
        config.load("x86-openvino-cpu", str(bad))
    assert str(err.value) == "{}: pipeline.queue: 0; expected {}".format(bad, at_least(1).expected)
