"""`roadedge package deeplens OUT_DIR`: the Lambda zip passes vermin -t=3.7- file by file, carries no compiled code and
nothing of converters/training/cloud; unpacked, its handler runs with the interpreter isolated (no site-packages) and
only the zip, the awscam/greengrasssdk stand-ins and numpy + cv2 on the path, against the model from model.tar.gz,
and gives the detections the checkout's lambda_function gives. Bad arguments are one-line errors that write nothing."""
import contextlib
import importlib
import io
import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import zipfile

import pytest

from edge.backends.openvino import BUNDLED_MODEL
from edge.sources.spec import SAMPLE_VIDEO
from packagers import deeplens
from roadedge.cli import main
from roadedge.core.errors import RoadedgeError
from tests.conftest import import_standin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDINS = os.path.join(ROOT, "tests", "standins")
FRAMES = 20
MODEL_FILES = ["road-damage-ssd.xml", "road-damage-ssd.bin", "road-damage-ssd.json"]
# What the awscam stand-in needs besides numpy and cv2: it runs the IR with OpenVINO, as awscam runs it with the
# inference engine inside /opt/awscam. The test checks that only the stand-in imports it.
STANDIN_NEEDS = ("openvino", "openvino_telemetry")
VENDORED_TYPING_NAMES = ("typing.Literal", "typing.TypedDict", "typing.Protocol", "typing.Required", "typing.NotRequired",
                         "typing.Final", "typing.Concatenate", "typing.Annotated", "types.get_original_bases",
                         "types.UnionType", "types.GenericAlias", "collections.abc.Buffer")
BACKPORTED = re.compile(r"^'(typing|types|collections\.abc)\.[A-Za-z_]+(\([a-z_]+\))?' (member )?requires !2, 3\.\d+$")

RUN_LAMBDA = """
import json, os, sys
task, standins, links, video = sys.argv[1:5]
sys.path.extend([task, standins, links])
importers = []


class WhoImportsOpenVINO(object):
    def find_spec(self, name, path=None, target=None):
        if name == "openvino":
            frame = sys._getframe(1)
            while frame is not None and ("importlib" in frame.f_code.co_filename or "<frozen" in frame.f_code.co_filename):
                frame = frame.f_back
            importers.append(frame.f_code.co_filename if frame is not None else None)
        return None


sys.meta_path.insert(0, WhoImportsOpenVINO())
import awscam
awscam.set_video(video, loop=True)
import lambda_function
summary = lambda_function.infinite_infer_loop(restarts=0)
files = {name: getattr(module, "__file__", None) for name, module in list(sys.modules.items()) if module is not None}
print(json.dumps({"frames": summary["frames"], "messages": summary["messages"], "files": files, "importers": importers,
                  "handler": lambda_function.function_handler({}, None), "path": sys.path}))
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """One build for the module (pip fetches PyYAML, paho-mqtt and prometheus-client for Python 3.7)."""
    out = tmp_path_factory.mktemp("deeplens") / "package"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["package", "deeplens", str(out)]) == 0
    task = tmp_path_factory.mktemp("task")
    zipfile.ZipFile(str(out / deeplens.ZIP_NAME)).extractall(str(task))
    return {"out": out, "printed": printed.getvalue(), "task": task,
            "names": zipfile.ZipFile(str(out / deeplens.ZIP_NAME)).namelist()}


def test_the_zip_carries_the_runtime_and_pure_python_dependencies_only(package):
    names = set(package["names"])
    tops = {name.split("/")[0] for name in names}
    assert "lambda_function.py" in names and sorted(os.listdir(str(package["out"]))) == [deeplens.MODEL_NAME,
                                                                                          deeplens.ZIP_NAME]
    assert {"edge/app.py", "edge/sources/awscam.py", "edge/backends/awscam.py", "edge/sinks/fifo.py",
            "edge/sinks/greengrass.py", "edge/sinks/mqtt.py", "edge/tasks/detection.py", "roadedge/core/errors.py",
            "roadedge/core/data/road_damage_classes.json", "device_profiles/deeplens.yaml", "yaml/__init__.py",
            "paho/mqtt/client.py", "prometheus_client/__init__.py"} <= names
    assert not tops & {"converters", "training", "cloud", "packagers", "tests", "numpy", "cv2", "openvino", "boto3",
                       "_yaml"}
    assert "roadedge/cli.py" not in names
    assert not [name for name in names if name.endswith((".so", ".pyd", ".pyc"))]
    project = {name for name in names if name.split("/")[0] in ("edge", "roadedge", "device_profiles")}
    assert project == {name for _, name in deeplens.project_files()} - {"lambda_function.py"}
    printed = package["printed"]
    assert printed.startswith("wrote {}/\n".format(package["out"]))
    assert "handler lambda_function.function_handler, Python 3.7" in printed
    assert "PyYAML 6.0.1, paho_mqtt 2.1.0, prometheus_client 0.17.1, typing_extensions 4.7.1 for Python 3.7" in printed
    assert " {}  ".format(deeplens.MODEL_NAME) in printed and ", ".join(MODEL_FILES) in printed


def vermin(files, cwd, excludes=()):
    command = os.path.join(os.path.dirname(sys.executable), "vermin")
    done = subprocess.run([command if os.path.exists(command) else "vermin", "-t=3.7-", "--no-tips", "--violations"]
                          + [arg for name in excludes for arg in ("--exclude", name)] + files, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    return done.returncode, done.stdout.decode()


def test_a_model_under_another_name_is_pointed_out(package, tmp_path):
    """The profile loads /opt/awscam/artifacts/road-damage-ssd.xml: another IR name gets a note saying what to set."""
    written = {"project": ["lambda_function.py"], "vendored": {}, "vendored_files": 0, "model": ["pothole.xml"]}
    note = deeplens.describe(str(package["out"]), written).splitlines()[-1]
    assert note == ("note: the deeplens profile loads /opt/awscam/artifacts/road-damage-ssd.xml; this model unpacks as "
                    "pothole.xml: set `backend: {model: /opt/awscam/artifacts/pothole.xml}` in a YAML file the Lambda's "
                    "ROADEDGE_CONFIG environment variable names")
    assert "note:" not in deeplens.describe(str(package["out"]), dict(written, model=MODEL_FILES))
    assert "note:" not in package["printed"]


def test_everything_in_the_zip_is_python_37(package):
    """The project's files with no exceptions; the vendored ones with the newer typing names excused, each of which
    they take only under a version check, in `if TYPE_CHECKING`, or with typing_extensions (vendored) as the fallback."""
    sources = sorted(name for name in package["names"] if name.endswith(".py"))
    project = [name for name in sources if name.split("/")[0] in ("lambda_function.py", "edge", "roadedge",
                                                                    "device_profiles")]
    vendored = sorted(set(sources) - set(project))
    assert len(project) > 80 and {name.split("/")[0] for name in vendored} == {
        "yaml", "paho", "prometheus_client", "typing_extensions.py"}
    code, output = vermin(project, str(package["task"]))
    assert code == 0, output[-3000:]
    code, output = vermin([name for name in vendored if name != "typing_extensions.py"], str(package["task"]),
                          VENDORED_TYPING_NAMES)
    assert code == 0, output[-3000:]
    # typing_extensions is the backport of those names: each newer one it touches sits behind a version or hasattr
    # check. What vermin finds there must be such names only, never syntax or other library calls newer than 3.7.
    code, output = vermin(["typing_extensions.py"], str(package["task"]))
    violations = [line.strip() for line in output.splitlines() if line.startswith((" ", "\t")) and line.strip()]
    assert violations and [line for line in violations if not BACKPORTED.match(line)] == []


def test_the_model_archive_holds_the_ir(package):
    with tarfile.open(str(package["out"] / deeplens.MODEL_NAME)) as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == MODEL_FILES and all(m.isfile() for m in members)
        folder = os.path.dirname(BUNDLED_MODEL)
        for member in members:
            with open(os.path.join(folder, member.name), "rb") as original:
                assert archive.extractfile(member).read() == original.read()


def numpy_and_cv2_only(folder):
    """A folder of symlinks to numpy and cv2 (and their bundled libraries), and what the awscam stand-in needs."""
    import cv2
    import numpy

    folder.mkdir()
    site = os.path.dirname(os.path.dirname(numpy.__file__))
    assert os.path.dirname(os.path.dirname(cv2.__file__)) == site
    names = ["numpy", "cv2"] + [n for n in os.listdir(site) if n.endswith(".libs") and n.startswith(("numpy", "opencv"))]
    names += [n for n in STANDIN_NEEDS if os.path.exists(os.path.join(site, n))]
    for name in names:
        os.symlink(os.path.join(site, name), str(folder / name))
    return sorted(names)


def checkout_detections(monkeypatch, settings):
    """The checkout's lambda_function, in this process, on the same settings: the lines it writes."""
    awscam = import_standin(monkeypatch, "awscam")
    awscam.reset()
    awscam.set_video(SAMPLE_VIDEO, loop=True)
    monkeypatch.setenv("ROADEDGE_CONFIG", str(settings))
    monkeypatch.setenv("ROADEDGE_LAMBDA_AUTOSTART", "0")
    monkeypatch.setitem(sys.modules, "lambda_function", None)
    del sys.modules["lambda_function"]
    try:
        importlib.import_module("lambda_function").infinite_infer_loop(restarts=0)
    finally:
        awscam.reset()


def test_the_unzipped_handler_runs_isolated_with_only_numpy_and_cv2(package, tmp_path, monkeypatch):
    artifacts = tmp_path / "opt-awscam-artifacts"
    with tarfile.open(str(package["out"] / deeplens.MODEL_NAME)) as archive:
        archive.extractall(str(artifacts))
    links = tmp_path / "numpy-cv2"
    linked = numpy_and_cv2_only(links)
    out, settings = tmp_path / "detections.jsonl", tmp_path / "lambda.yaml"
    settings.write_text(json.dumps({
        "device_name": "deeplens-7", "backend": {"model": str(artifacts / MODEL_FILES[0])},
        "pipeline": {"frames": FRAMES, "publish_empty": True, "drop_frames": "never"},
        "detection": {"min_score": 0.2},  # a low threshold: boxes to compare in the sample's first frames
        "outputs": [{"type": "jsonl", "path": str(out)}]}))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ROADEDGE_CONFIG": str(settings),
           "ROADEDGE_LAMBDA_AUTOSTART": "0"}
    task = str(package["task"])
    done = subprocess.run([sys.executable, "-I", "-S", "-c", RUN_LAMBDA, task, STANDINS, str(links), SAMPLE_VIDEO],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env,
                          cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["frames"] == FRAMES and report["messages"] == FRAMES and report["handler"] is None
    stdlib = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
    assert [p for p in report["path"] if not p.startswith(stdlib) and not p.endswith(".zip")] == [task, STANDINS,
                                                                                                  str(links)]
    assert not [p for p in report["path"] if "site-packages" in p or "dist-packages" in p]

    def in_stdlib(path):
        return path.startswith(stdlib) and "site-packages" not in path

    where = {name: path for name, path in report["files"].items() if path and not in_stdlib(path)}
    for name, path in where.items():
        top = name.split(".")[0]
        expected = STANDINS if top in ("awscam", "greengrasssdk") else str(links) if top in linked else task
        assert path.startswith(expected + os.sep), (name, path)
    assert {"lambda_function", "edge.app", "edge.backends.awscam", "edge.sources.awscam", "yaml", "numpy", "cv2",
            "awscam"} <= set(where)
    assert report["importers"] and set(report["importers"]) == {os.path.join(STANDINS, "awscam.py")}
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [m["seq"] for m in lines] == list(range(FRAMES)) and {m["device"] for m in lines} == {"deeplens-7"}
    expected_out = tmp_path / "checkout.jsonl"
    settings.write_text(settings.read_text().replace(str(out), str(expected_out)))
    checkout_detections(monkeypatch, settings)
    expected = [json.loads(line) for line in expected_out.read_text().splitlines()]
    assert sum(len(m["detections"]) for m in lines) > 0
    assert [m["detections"] for m in lines] == [m["detections"] for m in expected]


def test_a_third_party_import_the_device_lacks_is_refused(tmp_path):
    for package in ("edge", "edge/sources", "edge/backends", "edge/sinks", "edge/tasks", "device_profiles"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "edge" / "sinks" / "web.py").write_text("TYPE = 'web'\n\n\ndef open(options, context):\n    import requests\n")
    (tmp_path / "lambda_function.py").write_text("import numpy\nimport yaml\nfrom edge import sinks\n")
    with pytest.raises(RoadedgeError, match=r"the DeepLens Lambda imports requests, which is in none of VENDORED, "
                       r"ON_THE_DEVICE or NOT_CARRIED"):
        deeplens.project_files(str(tmp_path))


@pytest.mark.parametrize("argv, message", [
    (["--model", "missing.xml"], "--model {tmp}/missing.xml: {tmp}/missing.xml: no such file; expected the IR's .xml "
     "and .bin side by side"),
    (["--model", "model.onnx"], "--model {tmp}/model.onnx: expected an OpenVINO IR .xml (with its .bin beside it)"),
    ([], "{tmp}/exists: output folder already exists (pass --overwrite to replace it)"),
])
def test_bad_arguments_are_one_line_errors(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exists").mkdir()
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    assert main(["package", "deeplens", "exists" if not argv else "out"] + argv) == 2
    err = capsys.readouterr().err
    assert err == "roadedge: error: " + message.format(tmp=tmp_path) + "\n"
    assert sorted(os.listdir(str(tmp_path))) == ["exists", "model.onnx"] and os.listdir(str(tmp_path / "exists")) == []
