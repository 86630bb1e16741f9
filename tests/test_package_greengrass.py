"""`roadedge package greengrass`: the recipe against the fields of the Greengrass v2 component recipe reference (as a
JSON Schema below), its artefacts, and its lifecycle run here: the install script makes the virtual environment and
installs the wheel (offline: PIP_NO_INDEX, the requirements come from this machine's site-packages), the run script
runs the installed `roadedge run` with the placeholders filled in as the nucleus would, publishing through the awsiot
stand-in; every topic it publishes on is one the access-control policy allows."""
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile

import jsonschema
import pytest
import yaml

from edge.sources.spec import SAMPLE_VIDEO
from roadedge.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDINS = os.path.join(ROOT, "tests", "standins")
NAME, VERSION, THING = "com.example.roadedge", "1.0.0", "rc-car-1"
STEP = {"oneOf": [{"type": "string"}, {"type": "object", "required": ["Script"], "additionalProperties": False,
                                       "properties": {"Script": {"type": "string"}, "RequiresPrivilege": {"type": "boolean"},
                                                      "Skipif": {"type": "string"}, "Timeout": {"type": "integer"},
                                                      "Setenv": {"type": "object"}}}]}
PERMISSION = {"enum": ["NONE", "OWNER", "ALL"]}
# The fields of docs.aws.amazon.com/greengrass/v2/developerguide/component-recipe-reference.html this recipe uses,
# with what the reference allows for them; anything else is refused (additionalProperties).
RECIPE_SCHEMA = {
    "type": "object",
    "required": ["RecipeFormatVersion", "ComponentName", "ComponentVersion", "ComponentDescription", "ComponentPublisher",
                 "ComponentConfiguration", "Manifests"],
    "additionalProperties": False,
    "properties": {
        "RecipeFormatVersion": {"const": "2020-01-25"},
        "ComponentName": {"type": "string", "pattern": r"^[A-Za-z0-9._-]+$"},
        "ComponentVersion": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
        "ComponentDescription": {"type": "string"},
        "ComponentPublisher": {"type": "string"},
        "ComponentType": {"enum": ["aws.greengrass.generic", "aws.greengrass.lambda", "aws.greengrass.plugin",
                                   "aws.greengrass.nucleus"]},
        "ComponentDependencies": {"type": "object"},
        "ComponentConfiguration": {
            "type": "object", "required": ["DefaultConfiguration"], "additionalProperties": False,
            "properties": {"DefaultConfiguration": {"type": "object", "properties": {"accessControl": {
                "type": "object", "additionalProperties": {"type": "object", "additionalProperties": {
                    "type": "object", "required": ["operations", "resources"], "additionalProperties": False,
                    "properties": {"policyDescription": {"type": "string"},
                                   "operations": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                                   "resources": {"type": "array", "minItems": 1, "items": {"type": "string"}}}}}}}}}},
        "Manifests": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "Name": {"type": "string"},
                "Platform": {"type": "object", "properties": {"os": {"enum": ["linux", "darwin", "windows", "all", "*"]},
                                                              "architecture": {"type": "string"}}},
                "Lifecycle": {"type": "object", "additionalProperties": False, "properties": {
                    "Setenv": {"type": "object", "additionalProperties": {"type": "string"}},
                    "install": STEP, "run": STEP, "startup": STEP, "shutdown": STEP, "recover": STEP,
                    "bootstrap": STEP}},
                "Selections": {"type": "array", "items": {"type": "string"}},
                "Artifacts": {"type": "array", "items": {
                    "type": "object", "required": ["URI"], "additionalProperties": False,
                    "properties": {"URI": {"type": "string", "pattern": r"^(s3://[a-z0-9.-]+/.+|docker:.+|greengrass:.+)$"},
                                   "Unarchive": {"enum": ["ZIP", "NONE"]},
                                   "Permission": {"type": "object", "additionalProperties": False,
                                                  "properties": {"Read": PERMISSION, "Execute": PERMISSION}},
                                   "Digest": {"type": "string"}, "Algorithm": {"type": "string"}}}}}}},
    },
}
TOPICS = ["roadedge/{iot:thingName}/" + kind for kind in ("detections", "segmentation", "events", "stats", "status")]

RECORDER = '''
"""sitecustomize for the test: at exit, write what the awsiot stand-in was asked to publish."""
import atexit, json, os, sys


def _record():
    standin, edge = sys.modules.get("awsiot.greengrasscoreipc"), sys.modules.get("edge")
    messages = [{"topic": m["topic_name"], "qos": str(m["qos"]), "payload": m["payload"].decode("utf-8")}
                for m in (standin.messages if standin is not None else [])]
    with open(os.environ["ROADEDGE_TEST_RECORD"], "w") as handle:
        json.dump({"messages": messages, "edge": getattr(edge, "__file__", None)}, handle)


atexit.register(_record)
'''


@pytest.fixture(scope="module")
def component(tmp_path_factory):
    out = tmp_path_factory.mktemp("greengrass") / "component"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["package", "greengrass", str(out), "--name", NAME, "--version", VERSION, "--artifact-bucket",
                     "my-artefacts"]) == 0
    with open(str(out / "recipes" / "{}-{}.yaml".format(NAME, VERSION)), encoding="utf-8") as handle:
        recipe = yaml.safe_load(handle)
    return {"out": out, "recipe": recipe, "printed": printed.getvalue(),
            "artifacts": out / "artifacts" / NAME / VERSION}


def test_the_recipe_has_the_reference_fields(component):
    recipe = component["recipe"]
    jsonschema.Draft202012Validator.check_schema(RECIPE_SCHEMA)
    jsonschema.validate(recipe, RECIPE_SCHEMA)
    assert (recipe["ComponentName"], recipe["ComponentVersion"]) == (NAME, VERSION)
    policy = recipe["ComponentConfiguration"]["DefaultConfiguration"]["accessControl"]
    assert policy == {"aws.greengrass.ipc.mqttproxy": {NAME + ":mqttproxy:1": {
        "policyDescription": policy["aws.greengrass.ipc.mqttproxy"][NAME + ":mqttproxy:1"]["policyDescription"],
        "operations": ["aws.greengrass#PublishToIoTCore"], "resources": TOPICS}}}
    (manifest,) = recipe["Manifests"]
    assert set(manifest["Lifecycle"]) == {"Setenv", "install", "run"}
    uris = [artifact["URI"] for artifact in manifest["Artifacts"]]
    assert all(uri.startswith("s3://my-artefacts/{}/{}/".format(NAME, VERSION)) for uri in uris)
    assert sorted(uri.rsplit("/", 1)[1] for uri in uris) == sorted(os.listdir(str(component["artifacts"])))
    assert [a["Unarchive"] for a in manifest["Artifacts"] if a["URI"].endswith("model.zip")] == ["ZIP"]


def test_the_artefacts(component):
    artifacts = component["artifacts"]
    names = sorted(os.listdir(str(artifacts)))
    wheel = [name for name in names if name.endswith(".whl")]
    assert names == sorted(wheel + ["model.zip", "requirements.txt", "roadedge-greengrass.yaml"])
    assert re.match(r"^roadedge-0\.1\.0-py3-none-any\.whl$", wheel[0])
    inside = set(zipfile.ZipFile(str(artifacts / wheel[0])).namelist())
    assert {"edge/app.py", "edge/sinks/greengrass.py", "roadedge/cli.py", "device_profiles/rpi5.yaml",
            "packagers/greengrass.py", "edge/models/road-damage-ssd.bin"} <= inside
    assert not [name for name in inside if name.startswith("tests/")]
    assert sorted(zipfile.ZipFile(str(artifacts / "model.zip")).namelist()) == [
        "road-damage-ssd.bin", "road-damage-ssd.json", "road-damage-ssd.xml"]
    requirements = (artifacts / "requirements.txt").read_text().split()
    assert "PyYAML>=5.1" in requirements and not [r for r in requirements if "boto3" in r or "pytest" in r]
    printed = component["printed"]
    assert printed.startswith("wrote {}/ (component {} {}; artefacts for s3://my-artefacts/{}/{}):".format(
        component["out"], NAME, VERSION, NAME, VERSION))
    assert "  artifacts/{}/{}/model.zip  ".format(NAME, VERSION) in printed


def fill(script, values):
    for key, value in values.items():
        script = script.replace("{" + key + "}", value)
    assert not re.search(r"\{[a-zA-Z]+:[^}]*\}", script), script  # every placeholder the recipe uses is known here
    return script


def test_install_and_run_as_the_nucleus_would(component, tmp_path):
    """Slow (half a minute): a venv, pip installs the wheel into it offline, and three frames through the sink."""
    recipe, artifacts = component["recipe"], component["artifacts"]
    (manifest,) = recipe["Manifests"]
    decompressed = tmp_path / "decompressed"
    zipfile.ZipFile(str(artifacts / "model.zip")).extractall(str(decompressed / "model"))
    work = tmp_path / "work"
    work.mkdir()
    recorder = tmp_path / "recorder"
    recorder.mkdir()
    (recorder / "sitecustomize.py").write_text(RECORDER)
    values = {"artifacts:path": str(artifacts), "artifacts:decompressedPath": str(decompressed),
              "work:path": str(work), "iot:thingName": THING, "configuration:/PipExtra": "",
              "configuration:/RunArguments": "--profile x86-openvino-cpu --source {} --no-realtime --frames 30 "
                                             "--min-score 0.2".format(SAMPLE_VIDEO)}
    defaults = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert defaults["RunArguments"] == "" and defaults["PipExtra"].startswith("awsiotsdk")
    env = {"PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"]), "PIP_NO_INDEX": "1",
           "SVCUID": "token", "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": str(tmp_path / "ipc.socket"),
           "PYTHONPATH": os.pathsep.join([str(recorder), STANDINS]), "ROADEDGE_TEST_RECORD": str(tmp_path / "record.json")}
    env.update({key: fill(value, values) for key, value in manifest["Lifecycle"]["Setenv"].items()})
    assert env["HOME"] == str(work)
    for step in ("install", "run"):
        done = subprocess.run(["sh", "-c", fill(manifest["Lifecycle"][step]["Script"], values)], env=env, cwd=str(work),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=600)
        assert done.returncode == 0, (step, done.stdout[-3000:])
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["edge"].startswith(str(work / "venv") + os.sep)  # the wheel's runtime, not this checkout's
    allowed = {topic.replace("{iot:thingName}", THING) for topic in TOPICS}
    published = [message["topic"] for message in record["messages"]]
    assert published and set(published) <= allowed
    detections = [json.loads(m["payload"]) for m in record["messages"] if m["topic"].endswith("/detections")]
    assert detections and all(m["device"] == THING and m["detections"] for m in detections)
    indexes = [m["frame"]["index"] for m in detections]
    assert indexes == sorted(set(indexes)) and all(0 <= index < 30 for index in indexes)
    assert {m["model"]["name"] for m in detections} == {"road-damage-ssd"}  # the model from model.zip
    assert published.count("roadedge/{}/stats".format(THING)) >= 1
    assert {m["qos"] for m in record["messages"]} == {"1"}
    assert (work / ".cache" / "roadedge").is_dir()  # the outbox lives in the component's work folder


@pytest.mark.parametrize("argv, message", [
    (["--name", "com example", "--version", "1.0.0", "--artifact-bucket", "b-1"], "--name 'com example': expected a "
     "component name"),
    (["--name", NAME, "--version", "1.0", "--artifact-bucket", "b-1"], "--version '1.0': expected a semantic version "
     "MAJOR.MINOR.PATCH"),
    (["--name", NAME, "--version", "1.0.0", "--artifact-bucket", "My_Bucket"], "--artifact-bucket 'My_Bucket': "
     "expected an S3 bucket name"),
])
def test_bad_arguments_are_one_line_errors(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["package", "greengrass", "out"] + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("roadedge: error: " + message) and err.count("\n") == 1 and os.listdir(str(tmp_path)) == []
