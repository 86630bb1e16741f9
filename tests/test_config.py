"""Device profiles, --config files and command-line overrides: merged in order, each layer validated."""
import pytest

from edge import config
from roadedge.cli import main
from roadedge.core.errors import RoadedgeError


def write(tmp_path, text, name="settings.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_every_profile_loads_with_defaults_filled_in(monkeypatch):
    monkeypatch.setattr(config, "_check_files", lambda origin, cfg: None)  # device paths (awscam artifacts) are absent
    names = config.profile_names()
    assert names == ["deeplens", "rpi4", "rpi5", "x86-openvino-cpu"]
    for name in names:
        cfg = config.load(name)
        assert cfg["profile"] == name
        assert cfg["source"]["type"] and cfg["backend"]["type"] and cfg["outputs"]
        assert cfg["pipeline"]["frames"] == 0 and cfg["detection"]["resize"] == "stretch"
    x86 = config.load("x86-openvino-cpu")
    assert x86["source"] == dict(x86["source"], type="opencv", uri="sample", loop=False)
    assert x86["backend"]["model"] == "bundled" and x86["backend"]["precision"] == "f32"
    assert [o["type"] for o in x86["outputs"]] == ["jsonl", "mjpeg"]
    assert x86["outputs"][1]["host"] == "127.0.0.1" and x86["outputs"][1]["port"] == 8080
    deeplens = config.load("deeplens")
    assert deeplens["source"]["type"] == "awscam" and deeplens["outputs"][0]["path"] == "/tmp/results.mjpeg"


def test_layers_merge_in_order(tmp_path):
    path = write(tmp_path, "device_name: kerb-7\ndetection:\n  min_score: 0.3\n  class_thresholds: {D44: 0.7}\n"
                 "backend:\n  type: openvino\n  requests: 4\n")
    cfg = config.load("x86-openvino-cpu", path, {"detection": {"top_k": 5}, "pipeline": {"frames": 12}})
    assert cfg["device_name"] == "kerb-7"
    assert cfg["detection"] == {"min_score": 0.3, "class_thresholds": {"D44": 0.7}, "top_k": 5, "resize": "stretch"}
    assert cfg["backend"]["requests"] == 4 and cfg["backend"]["device"] == "CPU"  # the profile's other keys stay
    assert cfg["pipeline"]["frames"] == 12
    assert cfg["origin"] == "device_profiles/x86-openvino-cpu.yaml + {} + command line".format(path)


@pytest.mark.parametrize("text, message", [
    ("detection:\n  min_scor: 0.3\n", "settings.yaml: detection.min_scor: unknown key; expected one of "
                                      "class_thresholds, min_score, resize, top_k"),
    ("detection:\n  min_score: high\n", "settings.yaml: detection.min_score: expected a number, got a string ('high')"),
    ("pipeline:\n  frames: 2.5\n", "settings.yaml: pipeline.frames: expected an integer, got a number (2.5)"),
    ("pipeline:\n  publish_empty: 1\n", "settings.yaml: pipeline.publish_empty: expected a boolean, got an integer (1)"),
    ("source:\n  type: opencv\n  fps: 3\n", "settings.yaml: source.fps: unknown key"),
    ("source:\n  type: webcam\n", "settings.yaml: source.type: 'webcam'; expected one of awscam, images, opencv"),
    ("outputs:\n  - type: jsonl\n    file: x\n", "settings.yaml: outputs[0].file: unknown key; expected one of path, type"),
    ("outputs:\n  - path: x\n", "settings.yaml: outputs[0]: expected a mapping with a type"),
    ("colour: red\n", "settings.yaml: colour: unknown key; expected one of backend, camera, description, detection"),
    ("detection:\n  resize: crop\n", "settings.yaml: detection.resize: 'crop'; expected one of stretch, letterbox"),
    ("backend:\n  model: /nope/model.xml\n", "backend.model: /nope/model.xml: no such file"),
    ("detection: [1, 2\n", "settings.yaml: line 2 not valid YAML (expected ',' or ']'"),
    ("- a\n- b\n", "settings.yaml: expected a mapping of settings at the top, got a list"),
])
def test_bad_settings_are_one_line_naming_file_and_key(tmp_path, capsys, text, message):
    path = write(tmp_path, text)
    with pytest.raises(RoadedgeError) as caught:
        config.load("x86-openvino-cpu", path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert main(["run", "--config", path, "--no-preview", "--frames", "1"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unknown_profile_lists_the_known_ones(capsys):
    assert main(["run", "--profile", "jetson"]) == 2
    assert "--profile jetson: no such profile; expected one of deeplens, rpi4, rpi5, x86-openvino-cpu" in \
        capsys.readouterr().err


def test_profiles_command_lists_every_profile(capsys):
    assert main(["profiles"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == config.profile_names()
    assert any("(detected)" in line for line in lines)


def test_info_reports_openvino_and_its_cpu(capsys):
    import json

    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["openvino"] and "CPU" in info["devices"]
    assert info["profile"] == "x86-openvino-cpu"
