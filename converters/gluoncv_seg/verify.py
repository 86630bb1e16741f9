"""`roadedge convert verify` for segmentation: GluonCV (in the MXNet environment) against the IR on the same frames.

Each frame (the --image files resized to the model's input, else a seeded
synthetic road frame) is normalised as the metadata says and run through
GluonCV's network built from the artefact and through the IR at f32 (a
BGR uint8 frame when the IR embeds its preprocessing). Reported: the share
of pixels whose class (argmax over the logits; the IR's own mask under
--argmax) agrees, and the largest logit difference relative to the range
of MXNet's logits. Agreement below --min-agreement (99.9 %) is a mismatch.
"""
import os

import numpy as np

from converters.gluoncv_seg.artefact import load_artefact
from converters.gluoncv_seg.gluon_net import run_job
from converters.verify import input_frame, mxnet_input, openvino_detect
from roadedge.core.errors import RoadedgeError
from roadedge.core.model_metadata import check_ir_weights, read_metadata

MIN_AGREEMENT = 0.999


def compare(reference_logits, ir_output, output_format):
    """(agreement, relative logit difference or None) of MXNet's [N, C, H, W] logits and the IR's output."""
    reference = np.asarray(reference_logits, np.float64)
    expected = reference.argmax(axis=1)
    ir_output = np.asarray(ir_output)
    if output_format == "segmentation_mask":
        actual, diff = ir_output.reshape(expected.shape).astype(np.int64), None
    else:
        if ir_output.shape != reference.shape:
            raise RoadedgeError("the IR's logits have shape {}, MXNet's {}; is the IR another model's?".format(
                list(ir_output.shape), list(reference.shape)))
        actual = ir_output.argmax(axis=1)
        span = float(reference.max() - reference.min()) or 1.0
        diff = float(np.abs(ir_output.astype(np.float64) - reference).max()) / span
    return float((actual == expected).mean()), diff


def verify(model_path, ir_path, images=None, min_agreement=MIN_AGREEMENT):
    if not os.path.isfile(ir_path):
        raise RoadedgeError("{}: IR not found".format(ir_path))
    check_ir_weights(ir_path)
    meta_path = os.path.splitext(ir_path)[0] + ".json"
    if not os.path.isfile(meta_path):
        raise RoadedgeError("{}: metadata JSON not found next to the IR (written by `roadedge convert optimize`)".format(
            meta_path))
    meta = read_metadata(ir_path, meta_path)
    if meta.get("task") != "segmentation":
        raise RoadedgeError("{}: task {!r}; {} is a segmentation model, the IR is not one".format(
            meta_path, meta.get("task"), model_path))
    artefact = load_artefact(model_path)
    height, width = meta["input"]["height"], meta["input"]["width"]
    frames = [input_frame(path, height, width) for path in (images or [None])]
    tensors = np.concatenate([mxnet_input(frame, meta["preprocessing"]) for frame in frames])
    reference = run_job(artefact, height, width, inputs=tensors)
    embedded = meta["preprocessing"].get("embedded")
    outputs = [openvino_detect(ir_path, frame[None] if embedded else tensor[None])
               for frame, tensor in zip(frames, tensors)]
    agreement, diff = compare(reference, np.concatenate(outputs), meta["output"]["format"])
    return {"frames": len(frames), "pixels": int(reference.shape[0] * height * width), "agreement": agreement,
            "max_logit_diff": diff, "logit_range": float(reference.max() - reference.min()),
            "ok": agreement >= min_agreement}


def verify_segmentation_command(args):
    images = args.image or None
    min_agreement = getattr(args, "min_agreement", MIN_AGREEMENT)
    if not 0 < min_agreement <= 1:
        raise RoadedgeError("--min-agreement {}: expected a share in (0, 1]".format(min_agreement))
    report = verify(args.model, args.ir, images, min_agreement)
    diff = "n/a (the IR outputs the argmax mask)" if report["max_logit_diff"] is None else "{:.2e} of the logits' range " \
        "({:.3g})".format(report["max_logit_diff"], report["logit_range"])
    print("MXNet/GluonCV vs OpenVINO on {} frame(s), {} pixels: argmax agreement {:.4%} (needed {:.4%}); largest logit "
          "difference {}".format(report["frames"], report["pixels"], report["agreement"], min_agreement, diff))
    print("OK: the IR matches MXNet" if report["ok"] else "MISMATCH: the IR does not match MXNet")
    return 0 if report["ok"] else 1
