"""`roadedge package lambda OUT.zip`: the zip carries the handler, exactly the project modules it imports and numpy and
Pillow; installed into a clean virtual environment that has only boto3 (as the Lambda runtime), its handler decodes a
mask in moto's S3 server. Wrong arguments and a failing pip are one-line errors that leave nothing behind."""
import json
import os
import subprocess
import sys
import zipfile

import boto3
import numpy as np
import pytest

from packagers import lambda_zip
from roadedge.cli import main
from roadedge.core.errors import RoadedgeError
from roadedge.core.seglabels import DRIVABLE_LABELS, SYNTH_SEG_LABELS
from tests.lambda_s3 import moto_s3_server, put_frame, s3_event

PROJECT_FILES = {"cloud/__init__.py", "cloud/lambda_decode/__init__.py", "cloud/lambda_decode/components.py",
                 "cloud/lambda_decode/events.py", "cloud/lambda_decode/figures.py", "cloud/lambda_decode/handler.py",
                 "edge/__init__.py", "edge/processing/__init__.py", "edge/processing/segmentation.py",
                 "roadedge/__init__.py", "roadedge/core/__init__.py", "roadedge/core/catalog.py", "roadedge/core/errors.py",
                 "roadedge/core/seglabels.py", "roadedge/core/telemetry.py", "roadedge/core/data/road_damage_classes.json"}

RUN_HANDLER = """
import importlib, json, sys
sys.path.insert(0, sys.argv[2])  # the task root, as the Lambda runtime puts /var/task on the path
module, function = sys.argv[1].rsplit(".", 1)
summary = getattr(importlib.import_module(module), function)(json.load(sys.stdin), None)
print(json.dumps({"summary": summary, "files": {name: sys.modules[name].__file__ for name in ("cloud", "numpy", "PIL")},
                  "project": sorted(m for m in sys.modules if m.split(".")[0] in ("cloud", "edge", "roadedge"))}))
"""


def test_the_zip_carries_only_the_modules_the_handler_imports():
    assert {name for _, name in lambda_zip.project_files()} == PROJECT_FILES


def test_a_third_party_import_the_zip_lacks_is_refused(tmp_path):
    package = tmp_path / "cloud" / "lambda_decode"
    package.mkdir(parents=True)
    for folder in (tmp_path / "cloud", package):
        (folder / "__init__.py").write_text("")
    (package / "handler.py").write_text("import json\nimport numpy\n\n\ndef handler(event, context):\n    import requests\n")
    with pytest.raises(RoadedgeError, match=r"cloud.lambda_decode.handler imports requests, which the Lambda zip does not "
                       r"carry: add it to THIRD_PARTY"):
        lambda_zip.project_files(str(tmp_path))


@pytest.mark.parametrize("argv, message", [
    (["out.txt"], "out.txt: expected a name ending in .zip"),
    (["out.zip", "--python-version", "3"], "--python-version '3': expected MAJOR.MINOR such as 3.12"),
    (["out.zip", "--platform", "many linux"], "--platform 'many linux': expected a wheel platform tag"),
    (["exists.zip"], "exists.zip: already exists (pass --overwrite to replace it)"),
])
def test_bad_arguments_are_one_line_errors(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exists.zip").write_bytes(b"old")
    assert main(["package", "lambda"] + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("roadedge: error: " + message) and err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["exists.zip"] and (tmp_path / "exists.zip").read_bytes() == b"old"


def test_a_failing_pip_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "decode.zip"
    assert main(["package", "lambda", str(out), "--platform", "no_such_platform"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("roadedge: error: pip could not install Pillow, numpy for Python 3.12 on no_such_platform: ERROR:")
    assert err.count("\n") == 1 and os.listdir(tmp_path) == []


def test_the_zip_runs_in_a_clean_environment_with_only_boto3(tmp_path, aws_env, capsys):
    """Slow (a minute): pip installs numpy and Pillow for this interpreter into the zip and boto3 into a new venv."""
    out = tmp_path / "decode.zip"
    python = "{}.{}".format(*sys.version_info[:2])
    assert main(["package", "lambda", str(out), "--python-version", python]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("wrote {} (".format(out))
    assert printed.rstrip().endswith("for Python {} on manylinux2014_x86_64); handler cloud.lambda_decode.handler.handler".format(
        python))
    names = zipfile.ZipFile(out).namelist()
    assert PROJECT_FILES <= set(names) and {n for n in names if n.split("/")[0] in ("cloud", "edge", "roadedge")} == PROJECT_FILES
    assert "numpy/__init__.py" in names and "PIL/Image.py" in names and not [n for n in names if "/tests/" in n]
    assert not [n for n in names if n.startswith(("boto3/", "botocore/", "cv2/", "openvino/"))]
    task_root = tmp_path / "task"
    zipfile.ZipFile(out).extractall(task_root)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # python3 -m venv, of this very Python
    env = {"PATH": "{}:/usr/bin:/bin".format(venv / "bin"), "HOME": str(tmp_path)}
    env.update({name: os.environ[name] for name in os.environ if name.startswith(("AWS_", "PIP_"))})
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "boto3"], check=True, env=env)
    labels = list(SYNTH_SEG_LABELS)
    road = [name for name in labels if name in DRIVABLE_LABELS]
    mask = np.full((64, 96), labels.index("road"), np.uint8)
    mask[:20] = labels.index("sky")
    mask[40:52, 10:30] = labels.index("vegetation")
    with moto_s3_server() as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="zip")
        key = put_frame(s3, "zip", "masks/rc car/5/1795248900000", mask, labels, road)
        env["AWS_ENDPOINT_URL_S3"] = endpoint
        done = subprocess.run([str(venv / "bin" / "python"), "-I", "-c", RUN_HANDLER, lambda_zip.HANDLER,
                               str(task_root)], input=json.dumps(s3_event("zip", [key])), capture_output=True, text=True,
                              env=env, cwd=str(tmp_path))
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        result = json.loads(s3.get_object(Bucket="zip", Key="masks/rc car/5/1795248900000.decoded.json")["Body"].read())
    assert [entry["key"] for entry in report["summary"]["decoded"]] == [key] and report["summary"]["errors"] == []
    assert all(path.startswith(str(task_root) + os.sep) for path in report["files"].values())
    assert {name.replace(".", "/") for name in report["project"]} == {
        name[:-len("/__init__.py")] if name.endswith("/__init__.py") else name[:-3] for name in PROJECT_FILES
        if name.endswith(".py")}
    assert result["drivable_share"] == pytest.approx((64 * 96 - 20 * 96 - 240) / (64 * 96))
    assert [(o["class"], o["box"], o["pixels"]) for o in result["obstacles"]] == [("vegetation", [10, 40, 30, 52], 240)]


def test_help_names_the_handler(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["package", "lambda", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: roadedge package lambda") and "cloud.lambda_decode.handler.handler" in out
