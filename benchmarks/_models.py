"""Inputs of the runtime benchmark, built once and cached: the 1280x720 drive video and the ResNet-50 SSD IRs.

The ResNet-50 SSD is SageMaker's real training symbol (tests/fixtures) with seeded random weights, packed as
SageMaker packs a job's output (model.tar.gz: symbol, params, hyperparams.json with string values) and converted by
`roadedge convert optimize --engine native`. Parameter shapes come from MXNet (the venv of `roadedge convert setup-mo`).
"""
import json
import os
import subprocess
import sys
import tarfile
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

BUNDLED_XML = os.path.join(REPO, "edge", "models", "road-damage-ssd.xml")
SAMPLE_VIDEO = os.path.join(REPO, "edge", "data", "sample-drive.mp4")
SAGEMAKER_SYMBOL = os.path.join(REPO, "tests", "fixtures", "sagemaker-ssd-resnet50-training-symbol.json")
VIDEO_ARGS = ["--video", "--size", "1280x720", "--duration", "10", "--seed", "2123"]
WEIGHT_SEED = 5
HEAD_SCALE = 1e-3  # ResNet-50's random features are large; small heads keep the scores from saturating at 1


def roadedge(*args):
    """Run the roadedge CLI of this checkout (as `roadedge ...` would), failing loudly."""
    cmd = [sys.executable, "-m", "roadedge"] + [str(a) for a in args]
    result = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit("failed: roadedge {}\n{}".format(" ".join(map(str, args)), result.stdout.decode(errors="replace")))
    return result.stdout.decode(errors="replace")


def drive_video(work):
    """work/drive-1280x720/drive.mp4, rendered by `roadedge synth` the first time."""
    folder = os.path.join(work, "drive-1280x720")
    path = os.path.join(folder, "drive.mp4")
    if not os.path.isfile(path):
        print("bench: rendering the 1280x720 drive video (roadedge synth {} {})".format(folder, " ".join(VIDEO_ARGS)),
              flush=True)
        roadedge("synth", folder, "--overwrite", *VIDEO_ARGS)
    return path


def sagemaker_tarball(work):
    """work/resnet50-ssd/model.tar.gz: the real SageMaker training symbol with seeded random weights."""
    folder = os.path.join(work, "resnet50-ssd")
    tarball = os.path.join(folder, "model.tar.gz")
    if os.path.isfile(tarball):
        return tarball
    from converters.mxnet_forward import mxnet_param_shapes
    from converters.ssd_deploy import to_deploy
    from roadedge.core.mxnet_params import dumps_params
    from roadedge.core.mxnet_symbol import load_symbol
    from tests.ssd_models import random_params

    print("bench: building the SageMaker ResNet-50 SSD with random weights (seed {})".format(WEIGHT_SEED), flush=True)
    os.makedirs(folder, exist_ok=True)
    training = load_symbol(SAGEMAKER_SYMBOL)
    with tempfile.TemporaryDirectory(prefix="roadedge-bench-") as tmp:
        deploy_path = os.path.join(tmp, "shapes-symbol.json")
        with open(deploy_path, "w", encoding="utf-8") as handle:
            handle.write(to_deploy(training).to_json())
        shapes = mxnet_param_shapes(deploy_path, (1, 3, 300, 300))  # weight shapes do not depend on the image size
        params = random_params(shapes, WEIGHT_SEED, head_scale=HEAD_SCALE)
        files = {"model_algo_1-symbol.json": training.to_json().encode("utf-8"),
                 "model_algo_1-0000.params": dumps_params(params),
                 "hyperparams.json": json.dumps({"num_classes": "1", "image_shape": "300", "base_network": "resnet-50",
                                                 "class_names": '["D40"]'}).encode("utf-8")}
        for name, data in files.items():
            with open(os.path.join(tmp, name), "wb") as handle:
                handle.write(data)
        partial = tarball + ".part"
        with tarfile.open(partial, "w:gz") as archive:
            for name in files:
                archive.add(os.path.join(tmp, name), arcname=name)
        os.replace(partial, tarball)
    return tarball


def _text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def converter_stamp():
    """A digest of the native converter's sources: an IR converted by another version of them is converted again."""
    import hashlib

    digest = hashlib.sha256()
    folder = os.path.join(REPO, "converters", "openvino_native")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), "rb") as handle:
                digest.update(name.encode() + b"\0" + handle.read())
    return digest.hexdigest()


def resnet50_ir(work, size, embed=False):
    """work/resnet50-ssd/ir-SIZE[-embedded]/model_algo_1.xml, converted by `roadedge convert optimize` (again when the
    converter's sources changed since)."""
    tarball = sagemaker_tarball(work)
    folder = os.path.join(os.path.dirname(tarball), "ir-{}{}".format(size, "-embedded" if embed else ""))
    xml = os.path.join(folder, "model_algo_1.xml")
    stamp_path, stamp = os.path.join(folder, "converter.sha256"), converter_stamp()
    if _text(stamp_path) != stamp:
        if os.path.isdir(folder):  # this cache's own conversion, by other converter sources
            import shutil

            shutil.rmtree(folder)
        args = ["convert", "optimize", tarball, "--input-shape", size, size, "--engine", "native", "--output", folder]
        print("bench: roadedge " + " ".join(map(str, args + (["--embed-preprocessing"] if embed else []))), flush=True)
        roadedge(*(args + (["--embed-preprocessing"] if embed else [])))
        with open(stamp_path, "w") as handle:
            handle.write(stamp)
    return xml


def metadata(xml):
    with open(os.path.splitext(xml)[0] + ".json", encoding="utf-8") as handle:
        return json.load(handle)
