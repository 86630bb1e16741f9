"""lambda_function.py, the DeepLens project Lambda, against the awscam stand-in (whose Model runs the IR for real),
and the Python 3.7 rules for everything it imports on the device."""
import importlib
import json
import os
import subprocess
import sys
import threading

import pytest

from edge.backends.openvino import BUNDLED_MODEL
from edge.sources.spec import SAMPLE_VIDEO
from tests.conftest import import_standin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDINS = os.path.join(ROOT, "tests", "standins")
# what lambda_function.py imports on a DeepLens with the deeplens profile: these must be Python 3.7
DEVICE_MODULES = ["lambda_function.py", "roadedge/__init__.py", "roadedge/core", "edge/__init__.py", "edge/app.py",
                  "edge/config.py", "edge/pipeline.py", "edge/plugins.py", "edge/messages.py", "edge/processing",
                  "edge/sources", "edge/sinks", "edge/backends/awscam.py", "edge/backends/openvino.py",
                  "device_profiles/__init__.py", "edge/outbox.py", "edge/fault_spell.py", "edge/sqlite_queue.py",
                  "edge/topics.py", "edge/kvs", "edge/capture.py", "edge/watchdog.py", "edge/tasks", "edge/config_yaml.py",
                  "edge/sd_notify.py", "edge/models_update", "edge/gps", "edge/defects", "edge/console",
                  "edge/preview_server.py"]


@pytest.fixture
def awscam(monkeypatch):
    standin = import_standin(monkeypatch, "awscam")
    standin.reset()
    yield standin
    standin.reset()


def test_the_lambda_runs_the_deeplens_profile_on_awscam(awscam, tmp_path, monkeypatch):
    awscam.set_video(SAMPLE_VIDEO, loop=True)
    out, fifo = tmp_path / "detections.jsonl", tmp_path / "results.mjpeg"
    settings = tmp_path / "lambda.yaml"
    settings.write_text(json.dumps({  # JSON is YAML
        "device_name": "deeplens-7",
        "backend": {"model": BUNDLED_MODEL},
        "pipeline": {"frames": 40, "publish_empty": True, "drop_frames": "never"},  # every frame, to compare
        "outputs": [{"type": "fifo", "path": str(fifo)}, {"type": "jsonl", "path": str(out)}]}))
    monkeypatch.setenv("ROADEDGE_CONFIG", str(settings))
    monkeypatch.setenv("ROADEDGE_LAMBDA_AUTOSTART", "0")
    monkeypatch.setitem(sys.modules, "lambda_function", None)
    del sys.modules["lambda_function"]
    module = importlib.import_module("lambda_function")
    assert not [t for t in threading.enumerate() if t.name == "roadedge-infer"]  # no autostart in tests
    summary = module.infinite_infer_loop(restarts=0)
    assert summary["frames"] == 40 and summary["messages"] == 40
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [m["seq"] for m in lines] == list(range(40)) and lines[0]["device"] == "deeplens-7"
    assert [m["frame"]["index"] for m in lines] == list(range(40))
    assert awscam.models and awscam.models[0].loading_config == {"GPU": 1}
    assert awscam.frame_calls >= 40
    assert os.path.exists(str(fifo))  # the project stream FIFO, written only when someone watches
    assert module.function_handler({}, None) is None


def test_the_lambda_gives_up_after_the_allowed_restarts(awscam, tmp_path, monkeypatch):
    settings = tmp_path / "lambda.yaml"
    settings.write_text("backend:\n  model: %s\noutputs: []\n" % (tmp_path / "missing.xml"))
    monkeypatch.setenv("ROADEDGE_CONFIG", str(settings))
    monkeypatch.setenv("ROADEDGE_LAMBDA_AUTOSTART", "0")
    monkeypatch.setitem(sys.modules, "lambda_function", None)
    del sys.modules["lambda_function"]
    module = importlib.import_module("lambda_function")
    monkeypatch.setattr(module, "RESTART_DELAY_S", 0.01)
    with pytest.raises(Exception) as caught:
        module.infinite_infer_loop(restarts=1)
    assert "missing.xml: no such file" in str(caught.value)


def test_device_modules_are_python_37_compatible():
    vermin = os.path.join(os.path.dirname(sys.executable), "vermin")
    result = subprocess.run([vermin if os.path.exists(vermin) else "vermin", "-t=3.7-", "--no-tips", "--violations"]
                            + DEVICE_MODULES, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert result.returncode == 0, result.stdout.decode()


def test_device_modules_import_with_only_numpy_and_cv2():
    """On a DeepLens only numpy and cv2 (and the stdlib) are there at import time: block the rest and import."""
    script = (
        "import sys\n"
        "for name in ('openvino', 'yaml', 'tqdm', 'PIL', 'boto3', 'botocore', 'jsonschema', 'paho', 'mxnet',"
        " 'awscam', 'greengrasssdk', 'picamera2', 'converters', 'training', 'av'):\n"
        "    sys.modules[name] = None\n"
        "import edge.app, edge.config, edge.pipeline, edge.run_command\n"
        "import edge.sources.awscam, edge.sources.opencv, edge.backends.awscam, edge.backends.openvino\n"
        "import edge.sinks.fifo, edge.sinks.jsonl, edge.sinks.mjpeg, edge.preview_server, edge.processing.annotate\n"
        "import edge.sinks.mqtt, edge.sinks.greengrass, edge.sinks.s3, edge.outbox, edge.processing.tracker\n"
        "import edge.kvs.mkv, edge.kvs.encoder, edge.console\n"
        "import edge.sinks.defects, edge.defects.registry, edge.defects.report, edge.defects.command\n"
        "import os; os.environ['ROADEDGE_LAMBDA_AUTOSTART'] = '0'\n"
        "import lambda_function\n"
        "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert result.stdout.decode().strip().endswith("ok"), result.stdout.decode()
