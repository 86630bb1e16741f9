"""SageMaker segmentation models (GluonCV FCN, PSPNet, DeepLabV3 on ResNet-50) -> OpenVINO, checked against GluonCV.

The artefacts have seeded random weights and random BatchNorm statistics
(tests/seg_artefacts.py, no MXNet); GluonCV builds the same networks in the
MXNet environment (pretrained_base off), loads model_algo-1 and is the
oracle. Small inputs keep it quick; the IRs run at f32.
"""
import json
import os

import numpy as np
import openvino as ov
import pytest

from converters.gluoncv_seg.artefact import load_artefact
from converters.gluoncv_seg.gluon_net import run_job
from converters.gluoncv_seg.optimize import gluoncv_preprocessing
from converters.verify import input_frame, mxnet_input
from roadedge.cli import main
from tests.mxnet_oracle import require_mxnet
from tests.seg_artefacts import hyperparams, param_shapes, write_artefact

F32 = {"INFERENCE_PRECISION_HINT": "f32"}
NUM_CLASSES = 6
# algorithm -> (crop_size, --input-shape or None, weight seed); fcn runs at a non-square size other than its crop size.
# The seeds give masks of 3 or more classes on the two synthetic frames (random networks often paint one class).
CASES = {"psp": (64, None, 6), "fcn": (72, (64, 96), 3), "deeplab": (72, None, 5)}
MIN_AGREEMENT = 0.999
LOGIT_TOLERANCE = 1e-4  # largest |IR - MXNet| relative to the range of MXNet's logits (measured: about 2e-6)


def agreement(reference, logits_or_mask, mask=False):
    expected = reference.argmax(axis=1)
    actual = logits_or_mask.reshape(expected.shape) if mask else logits_or_mask.argmax(axis=1)
    return float((actual == expected).mean())


def relative_diff(reference, logits):
    return float(np.abs(logits - reference).max() / (reference.max() - reference.min()))


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """algorithm -> dict(folder, height, width, frames (BGR), tensors, reference logits), built on first use."""
    require_mxnet()
    built = {}

    def get(algorithm):
        if algorithm not in built:
            crop, shape, seed = CASES[algorithm]
            folder = write_artefact(str(tmp_path_factory.mktemp(algorithm) / "model"), algorithm, "resnet-50",
                                    NUM_CLASSES, crop, seed=seed, folder=True)
            height, width = shape or (crop, crop)
            frames = [input_frame(None, height, width, seed) for seed in (0, 1)]
            tensors = np.concatenate([mxnet_input(frame, gluoncv_preprocessing()) for frame in frames])
            reference = run_job(load_artefact(folder), height, width, inputs=tensors)
            built[algorithm] = dict(folder=folder, height=height, width=width, frames=frames, tensors=tensors,
                                    reference=reference, shape=shape)
        return built[algorithm]

    return get


def convert(case, out, *extra):
    args = ["convert", "optimize", case["folder"], "--output", str(out)] + list(extra)
    if case["shape"]:
        args += ["--input-shape"] + [str(v) for v in case["shape"]]
    assert main(args) == 0
    (xml,) = [os.path.join(str(out), name) for name in os.listdir(str(out)) if name.endswith(".xml")]
    with open(xml[:-4] + ".json", encoding="utf-8") as handle:
        return xml, json.load(handle)


def run_ir(xml, inputs):
    compiled = ov.Core().compile_model(xml, "CPU", F32)
    return np.concatenate([compiled(item[None])[compiled.outputs[0]] for item in inputs])


@pytest.mark.parametrize("algorithm", sorted(CASES))
def test_native_engine_matches_gluoncv(cases, tmp_path, algorithm):
    case = cases(algorithm)
    reference = case["reference"]
    assert reference.shape == (2, NUM_CLASSES, case["height"], case["width"])
    shares = np.bincount(reference.argmax(axis=1).ravel()) / reference[:, 0].size
    assert (shares >= 0.02).sum() >= 3  # a mask of one class would agree with anything
    xml, meta = convert(case, tmp_path)
    assert meta["input"]["shape"] == [1, 3, case["height"], case["width"]] and meta["engine"] == "native"
    logits = run_ir(xml, case["tensors"])
    assert logits.shape == reference.shape
    assert agreement(reference, logits) >= MIN_AGREEMENT
    assert relative_diff(reference, logits) < LOGIT_TOLERANCE


@pytest.mark.parametrize("algorithm", ["fcn", "psp"])  # deeplab's mxnet-engine IR is test_verify_command_agrees...'s
def test_mxnet_engine_matches_gluoncv(cases, tmp_path, algorithm):
    case = cases(algorithm)
    xml, meta = convert(case, tmp_path, "--engine", "mxnet")
    assert meta["engine"] == "mxnet"
    logits = run_ir(xml, case["tensors"])
    assert agreement(case["reference"], logits) >= MIN_AGREEMENT
    assert relative_diff(case["reference"], logits) < LOGIT_TOLERANCE


def test_argmax_ir_gives_gluoncvs_mask(cases, tmp_path):
    case = cases("fcn")
    xml, meta = convert(case, tmp_path, "--argmax")
    assert meta["output"] == {"name": "mask", "format": "segmentation_mask", "label_offset": 0}
    mask = run_ir(xml, case["tensors"])
    assert mask.shape == (2, 1, case["height"], case["width"]) and mask.dtype == np.int32
    assert agreement(case["reference"], mask, mask=True) >= MIN_AGREEMENT


def test_embedded_preprocessing_on_bgr_frames_matches_gluoncv(cases, tmp_path):
    case = cases("psp")
    xml, meta = convert(case, tmp_path, "--embed-preprocessing")
    assert meta["input"]["layout"] == "NHWC" and meta["input"]["dtype"] == "uint8" and meta["preprocessing"]["embedded"]
    logits = run_ir(xml, case["frames"])  # BGR uint8 frames, as the camera gives them
    assert agreement(case["reference"], logits) >= MIN_AGREEMENT
    assert relative_diff(case["reference"], logits) < 1e-3  # u8 -> f32 and the per-channel scale in OpenVINO's order


def test_verify_command_agrees_and_finds_a_mismatch(cases, tmp_path, capsys):
    case = cases("deeplab")
    xml, _ = convert(case, tmp_path / "ir", "--argmax", "--embed-preprocessing", "--engine", "mxnet")
    capsys.readouterr()
    assert main(["convert", "verify", case["folder"], xml]) == 0
    out = capsys.readouterr().out
    assert "argmax agreement 100.0000%" in out and "OK: the IR matches MXNet" in out
    other, _ = convert(cases("psp"), tmp_path / "other")
    assert main(["convert", "verify", case["folder"], other]) == 1  # the psp IR checked against the deeplab model
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "largest logit difference" in out


def test_own_backbone_with_basic_blocks_converts_with_the_same_code(tmp_path):
    """A demo-like backbone (plain stem, basic blocks, narrow widths, PSP branches of their own width): native and
    mxnet engines agree with Gluon's network assembled from GluonCV's parts, also when hyperparams.json calls the
    backbone resnet-50 (the parameters decide)."""
    require_mxnet()
    for algorithm, name in (("psp", "resnet-tiny"), ("deeplab", "resnet-50")):
        folder = write_artefact(str(tmp_path / algorithm), algorithm, "resnet-tiny", 5, 48, seed=11, folder=True,
                                hyper=hyperparams(algorithm, name, 5, 48))
        assert load_artefact(folder).gluoncv_backbone is None
        frames = [input_frame(None, 48, 48, seed) for seed in (2, 3)]
        tensors = np.concatenate([mxnet_input(frame, gluoncv_preprocessing()) for frame in frames])
        reference = run_job(load_artefact(folder), 48, 48, inputs=tensors)
        assert len(np.unique(reference.argmax(axis=1))) >= 2
        for engine in ("native", "mxnet"):
            out = tmp_path / (algorithm + engine)
            assert main(["convert", "optimize", folder, "--output", str(out), "--engine", engine]) == 0
            logits = run_ir(str(out / "{}_{}.xml".format(algorithm, name)), tensors)
            assert agreement(reference, logits) >= MIN_AGREEMENT, (algorithm, engine)
            assert relative_diff(reference, logits) < LOGIT_TOLERANCE, (algorithm, engine)


GLUONCV_NAMES = r"""
import json, sys
import mxnet as mx
from gluoncv.model_zoo.deeplabv3 import DeepLabV3
from gluoncv.model_zoo.fcn import FCN
from gluoncv.model_zoo.pspnet import PSPNet
found = {}
for key, cls, backbone in (("fcn", FCN, "resnet50"), ("psp", PSPNet, "resnet50"), ("deeplab", DeepLabV3, "resnet50"),
                           ("fcn-101", FCN, "resnet101")):
    net = cls(6, backbone=backbone, aux=True, pretrained_base=False, crop_size=32)
    net.initialize()
    net(mx.nd.zeros((1, 3, 32, 32)))
    found[key] = {name: list(p.shape) for name, p in net._collect_params_with_prefix().items()}
print(json.dumps(found))
"""


def test_artefact_writer_uses_gluoncvs_names_and_shapes(cases):
    """What tests/seg_artefacts.py writes is what GluonCV's save_parameters writes (structural names, with aux)."""
    require_mxnet()
    from converters.mxnet_env import run_in_venv

    result = run_in_venv(["-c", GLUONCV_NAMES])
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    found = json.loads(result.stdout.decode().strip().splitlines()[-1])
    for key, (algorithm, backbone) in {"fcn": ("fcn", "resnet-50"), "psp": ("psp", "resnet-50"),
                                       "deeplab": ("deeplab", "resnet-50"), "fcn-101": ("fcn", "resnet-101")}.items():
        ours = {name: list(shape) for name, shape in param_shapes(algorithm, backbone, 6).items()}
        assert ours == found[key], key
    assert len(found["fcn-101"]) > len(found["fcn"]) > 250 and any(n.startswith("auxlayer.") for n in found["psp"])
    for algorithm in ("fcn", "psp", "deeplab"):  # GluonCV's own widths and depths: its own classes build the reference
        assert load_artefact(cases(algorithm)["folder"]).gluoncv_backbone == "resnet50"


def test_mxnet_engine_names_a_missing_parameter_in_one_line(tmp_path, capsys):
    require_mxnet()
    from tests.seg_artefacts import random_params

    params = random_params(param_shapes("psp", "resnet-tiny", 5), seed=1)
    del params["layer2.0.bn2.running_var"]
    folder = write_artefact(str(tmp_path / "model"), "psp", "resnet-tiny", 5, 48, params=params, folder=True)
    assert main(["convert", "optimize", folder, "--output", str(tmp_path / "o"), "--engine", "mxnet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "model/model_algo-1: GluonCV could not build or run the psp network" in err
    assert "Parameter 'layer2.0.bn2.running_var' is missing in file '{}'".format(os.path.join(folder, "model_algo-1")) in err
