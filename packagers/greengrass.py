"""`roadedge package greengrass OUT_DIR --name NAME --version X.Y.Z`: a Greengrass v2 component.

    OUT_DIR/recipes/NAME-VERSION.yaml                      the recipe (RecipeFormatVersion 2020-01-25)
    OUT_DIR/artifacts/NAME/VERSION/roadedge-*.whl          the runtime, built from this checkout by `pip wheel`
    OUT_DIR/artifacts/NAME/VERSION/requirements.txt        the wheel's dependencies (its Requires-Dist)
    OUT_DIR/artifacts/NAME/VERSION/model.zip               the IR (.xml, .bin, .json), unarchived by the nucleus
    OUT_DIR/artifacts/NAME/VERSION/roadedge-greengrass.yaml  settings on top of the profile: the greengrass sink (v2)

The layout is the one the Greengrass CLI takes for a local deployment (--recipeDir, --artifactDir); for a cloud
deployment the artefacts go to s3://BUCKET/NAME/VERSION/ (the recipe's URIs). The install step makes a virtual
environment with the system's site-packages visible (a Pi's picamera2 and libcamera come from apt, not pip), installs
the requirements and then the wheel alone; the run step execs `roadedge run` with the model, the settings file and
the core's thing name as the device name, so the runtime publishes on roadedge/<thing>/<kind>: exactly the topics
the access-control policy allows (aws.greengrass.ipc.mqttproxy, aws.greengrass#PublishToIoTCore). The policy names
the thing through {iot:thingName}, which the nucleus fills in when interpolateComponentConfiguration is on (nucleus
2.6.0 or later).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

from packagers import common
from roadedge.core import fsutil
from roadedge.core.errors import RoadedgeError, file_error

RECIPE_FORMAT = "2020-01-25"
TOPIC_PREFIX = "roadedge/{iot:thingName}"  # the greengrass sink's default roadedge/{device}, device = thing name
SETTINGS_NAME = "roadedge-greengrass.yaml"
MODEL_ARCHIVE = "model.zip"
REQUIREMENTS = "requirements.txt"
IPC_SDK = "awsiotsdk"  # the greengrass sink's v2 IPC client; no version specifier: in the shell script > redirects
INSTALL_TIMEOUT_S = 1800  # pip may download OpenVINO and OpenCV on a Pi
SOURCES = ("setup.py", "README.md", "roadedge", "edge", "converters", "training", "cloud", "packagers", "device_profiles")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


def check_arguments(name, version, bucket):
    if not NAME.match(name or ""):
        raise RoadedgeError("--name {!r}: expected a component name such as com.example.roadedge (letters, digits, "
                            ". _ -)".format(name))
    if not SEMVER.match(version or ""):
        raise RoadedgeError("--version {!r}: expected a semantic version MAJOR.MINOR.PATCH such as 1.0.0".format(version))
    if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", bucket or ""):
        raise RoadedgeError("--artifact-bucket {!r}: expected an S3 bucket name (3-63 lower-case letters, digits, "
                            ". and -)".format(bucket))


def topics():
    from edge.topics import KINDS, topic

    return [topic(TOPIC_PREFIX, kind) for kind in KINDS]


def recipe(name, version, bucket, publisher, wheel, model_xml):
    """The component recipe as a dict (written as YAML)."""
    artifacts = "{artifacts:path}"
    venv = "{work:path}/venv"
    model = "{{artifacts:decompressedPath}}/{}/{}".format(MODEL_ARCHIVE[:-len(".zip")], model_xml)
    install = " && ".join([
        "python3 -m venv --system-site-packages {}".format(venv),
        "{}/bin/python -m pip install --disable-pip-version-check --no-input -r {}/{} {{configuration:/PipExtra}}"
        .format(venv, artifacts, REQUIREMENTS),
        "{}/bin/python -m pip install --disable-pip-version-check --no-input --no-deps --force-reinstall {}/{}".format(
            venv, artifacts, wheel)])
    run = ("exec {}/bin/roadedge run --config {}/{} --model {} --device-name {{iot:thingName}} --no-preview "
           "{{configuration:/RunArguments}}".format(venv, artifacts, SETTINGS_NAME, model))
    uri = "s3://{}/{}/{}/".format(bucket, name, version)
    return {
        "RecipeFormatVersion": RECIPE_FORMAT,
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentDescription": "roadedge: road-damage detection on the camera, results to AWS IoT Core through the "
                                "nucleus (IPC PublishToIoTCore)",
        "ComponentPublisher": publisher,
        "ComponentConfiguration": {"DefaultConfiguration": {
            "RunArguments": "",  # more `roadedge run` flags, e.g. --profile rpi5 or --frames 100
            "PipExtra": IPC_SDK,  # installed with the requirements: the IPC client the greengrass sink uses
            "accessControl": {"aws.greengrass.ipc.mqttproxy": {"{}:mqttproxy:1".format(name): {
                "policyDescription": "roadedge publishes detections, segmentation, events, stats and status",
                "operations": ["aws.greengrass#PublishToIoTCore"],
                "resources": topics()}}}}},
        "Manifests": [{
            "Platform": {"os": "linux"},
            "Lifecycle": {
                "Setenv": {"HOME": "{work:path}"},  # the outbox goes to ~/.cache/roadedge: the component's own folder
                "install": {"Script": install, "Timeout": INSTALL_TIMEOUT_S},
                "run": {"Script": run},
            },
            "Artifacts": [
                {"URI": uri + wheel, "Unarchive": "NONE", "Permission": {"Read": "OWNER", "Execute": "NONE"}},
                {"URI": uri + REQUIREMENTS, "Unarchive": "NONE", "Permission": {"Read": "OWNER", "Execute": "NONE"}},
                {"URI": uri + SETTINGS_NAME, "Unarchive": "NONE", "Permission": {"Read": "OWNER", "Execute": "NONE"}},
                {"URI": uri + MODEL_ARCHIVE, "Unarchive": "ZIP", "Permission": {"Read": "OWNER", "Execute": "NONE"}},
            ],
        }],
    }


def settings():
    """roadedge-greengrass.yaml: the outputs replace the profile's (no stdout lines, no preview server)."""
    return {"outputs": [{"type": "greengrass", "version": "v2", "topic_prefix": "roadedge/{device}", "qos": 1}]}


def build_wheel(folder, root=None):
    """`pip wheel` of a copy of the sources (the checkout gets no build/ or egg-info); the wheel's path."""
    root = root or common.project_root()
    with tempfile.TemporaryDirectory(prefix="roadedge-wheel-") as scratch:
        source = os.path.join(scratch, "src")
        os.makedirs(source)
        for name in SOURCES:
            path = os.path.join(root, name)
            if os.path.isdir(path):
                shutil.copytree(path, os.path.join(source, name), ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(path, source)
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
                               "--wheel-dir", folder, source], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True)
        if done.returncode != 0:
            raise RoadedgeError("pip could not build the roadedge wheel: {}".format(common.pip_reason(done)))
    wheels = [name for name in os.listdir(folder) if name.endswith(".whl")]
    if len(wheels) != 1:
        raise RoadedgeError("pip wheel wrote {} wheels in {}; expected one".format(len(wheels), folder))
    return os.path.join(folder, wheels[0])


def wheel_requirements(wheel):
    """The wheel's Requires-Dist without extras' (what `pip install` of the wheel would install)."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode("utf-8").splitlines()
    return [line.split(":", 1)[1].strip() for line in lines
            if line.startswith("Requires-Dist:") and "extra ==" not in line]


def write_yaml(path, data):
    import yaml

    with fsutil.atomic_file(path, "w") as handle:
        yaml.safe_dump(data, handle, sort_keys=False, default_flow_style=False, width=1000)


def build(out, name, version, bucket, model=None, publisher="roadedge", overwrite=False):
    """Write OUT_DIR (atomically). Returns what describe() prints."""
    from edge.backends.openvino import BUNDLED_MODEL
    from packagers.deeplens import model_files

    check_arguments(name, version, bucket)
    models = model_files(model or BUNDLED_MODEL)
    with fsutil.atomic_dir(out, overwrite=overwrite, inputs=[path for path, _ in models]) as folder:
        artifacts = os.path.join(folder, "artifacts", name, version)
        os.makedirs(artifacts)
        os.makedirs(os.path.join(folder, "recipes"))
        try:
            wheel = build_wheel(artifacts)
            with fsutil.atomic_file(os.path.join(artifacts, REQUIREMENTS), "w") as handle:
                handle.write("".join(line + "\n" for line in wheel_requirements(wheel)))
            with fsutil.atomic_file(os.path.join(artifacts, MODEL_ARCHIVE)) as handle:
                common.write_zip(handle, models)  # unarchived into {artifacts:decompressedPath}/model/
            write_yaml(os.path.join(artifacts, SETTINGS_NAME), settings())
            the_recipe = recipe(name, version, bucket, publisher, os.path.basename(wheel), models[0][1])
            write_yaml(os.path.join(folder, "recipes", "{}-{}.yaml".format(name, version)), the_recipe)
        except OSError as err:
            raise file_error(out, err, "write") from None
    return {"recipe": the_recipe, "model": [entry for _, entry in models]}


def describe(out, written):
    lines = ["wrote {}/ (component {} {}; artefacts for s3://{}):".format(
        out.rstrip("/"), written["recipe"]["ComponentName"], written["recipe"]["ComponentVersion"],
        written["recipe"]["Manifests"][0]["Artifacts"][0]["URI"].rsplit("/", 1)[0][len("s3://"):])]
    for entry, size in common.folder_listing(out):
        lines.append("  {}  {}".format(entry, common.size_text(size)))
    lines.append("  publishes on: {}".format(", ".join(topics())))
    return "\n".join(lines)
