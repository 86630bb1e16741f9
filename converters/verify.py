"""`roadedge convert verify`: does the IR compute what MXNet computes?

MXNet (in its isolated environment) runs the deploy graph the IR was made
from (same NMS settings, read from the IR's metadata) and OpenVINO runs the
IR at f32, on the same input. Every MXNet detection with score >= min_score
must have an IR detection of the same class with box and score within the
tolerance, and the IR must have no extra ones.
"""
import os
import tempfile

import numpy as np

from converters.ssd_deploy import check_number
from roadedge.core.errors import RoadedgeError, openvino_reason
from roadedge.core.model_metadata import channel_scale


def mxnet_rows(output, min_score):
    """MultiBoxDetection [1, N, 6] -> array of [class_id, score, xmin, ymin, xmax, ymax] with class >= 0.

    Rows with NaN in them are kept (NaN is never below a threshold): the matcher counts them as mismatches."""
    rows = np.asarray(output).reshape(-1, 6)
    return rows[~(rows[:, 0] < 0) & ~(rows[:, 1] < min_score)]


def openvino_rows(output, min_score, label_offset=0):
    """DetectionOutput [1, 1, K, 7] -> the same layout as mxnet_rows (image_id -1 ends the list; NaN rows kept)."""
    rows = np.asarray(output).reshape(-1, 7)
    end = np.flatnonzero(rows[:, 0] < 0)
    rows = rows[: end[0]] if len(end) else rows
    rows = rows[~(rows[:, 2] < min_score)]
    return np.column_stack([rows[:, 1] - label_offset, rows[:, 2], rows[:, 3:7]]) if len(rows) else np.zeros((0, 6))


def match_detections(reference, candidate, tolerance=1e-3, min_score=0.05):
    """Greedy one-to-one matching of rows [class, score, box]; returns a report dict.

    Rows within `tolerance` of `min_score` on either side are allowed to be
    missing or extra: a score of 0.0501 in one and 0.0499 in the other is
    not a mismatch. NaN never passes: a NaN or infinite tolerance or
    min_score is refused, and a row holding NaN or an infinity (in either
    output) is always missing or extra.
    """
    check_number("--tolerance", tolerance, 0, 1, high_open=True, what="a largest allowed difference")
    check_number("--min-score", min_score, 0, 1, what="a score")
    reference = np.asarray(reference, dtype=np.float64).reshape(-1, 6)
    candidate = np.asarray(candidate, dtype=np.float64).reshape(-1, 6)
    finite = np.isfinite(candidate).all(axis=1)
    used = np.zeros(len(candidate), dtype=bool)
    matched, missing, box_diff, score_diff = 0, [], 0.0, 0.0
    for row in reference[np.argsort(-reference[:, 1], kind="stable")] if len(reference) else []:
        if not np.isfinite(row).all():
            missing.append(row.tolist())
            continue
        best, best_err = None, None
        for j, other in enumerate(candidate):
            if used[j] or not finite[j] or other[0] != row[0]:
                continue
            err = float(np.abs(other[1:] - row[1:]).max())
            if best_err is None or err < best_err:
                best, best_err = j, err
        if best is not None and best_err <= tolerance:
            used[best] = True
            matched += 1
            box_diff = max(box_diff, float(np.abs(candidate[best][2:] - row[2:]).max()))
            score_diff = max(score_diff, float(abs(candidate[best][1] - row[1])))
        elif row[1] >= min_score + tolerance:
            missing.append(row.tolist())
    extra = [row.tolist() for j, row in enumerate(candidate)
             if not used[j] and (not finite[j] or row[1] >= min_score + tolerance)]
    return {"reference": int(len(reference)), "candidate": int(len(candidate)), "matched": matched,
            "missing": missing, "extra": extra, "max_box_diff": box_diff, "max_score_diff": score_diff,
            "ok": not missing and not extra}


def input_frame(image_path, height, width, seed=0):
    """BGR uint8 frame at the model's size: the given image resized, or a seeded synthetic road frame."""
    import cv2

    if image_path is None:
        from edge.synth import render_image

        frame, _ = render_image(seed, 0, size=(width, height))
        return frame
    frame = cv2.imread(image_path, cv2.IMREAD_COLOR)
    if frame is None:
        raise RoadedgeError("{}: cannot read image (expected a JPEG or PNG)".format(image_path))
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)


def mxnet_input(frame, preprocessing):
    """What the MXNet graph takes: NCHW float32, colour order, (x - mean) * scale."""
    pixels = frame[:, :, ::-1] if preprocessing.get("color_order", "RGB") == "RGB" else frame
    pixels = (pixels.astype(np.float32) - np.asarray(preprocessing.get("mean", (0, 0, 0)), np.float32)) \
        * np.asarray(channel_scale(preprocessing), np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])


def openvino_detect(ir_path, tensor):
    from roadedge.core.model_metadata import check_ir_weights
    from roadedge.core.openvino_core import shared_core

    check_ir_weights(ir_path)  # a .bin cut short: OpenVINO would say only 'Incorrect weights in bin file!'
    core = shared_core()
    try:
        model = core.read_model(ir_path)
    except RuntimeError as err:
        raise RoadedgeError("{}: OpenVINO cannot read the IR ({})".format(ir_path, openvino_reason(err))) from None
    try:
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return compiled(tensor)[compiled.outputs[0]]
    except RuntimeError as err:
        raise RoadedgeError("{}: OpenVINO cannot run the IR on a {} {} input ({})".format(
            ir_path, "x".join(str(v) for v in tensor.shape), tensor.dtype, openvino_reason(err))) from None


def read_metadata(ir_path):
    """The IR's metadata JSON, checked as the runtime checks it (roadedge.core.model_metadata), and its NMS settings."""
    from roadedge.core.model_metadata import read_metadata as read_checked

    path = ir_path[:-4] + ".json" if ir_path.endswith(".xml") else ir_path + ".json"
    if not os.path.isfile(path):
        raise RoadedgeError("{}: metadata JSON not found next to the IR (written by `roadedge convert optimize`)".format(
            path))
    meta = read_checked(ir_path, path)
    nms = meta.get("nms") or {}
    if not isinstance(nms, dict):
        raise RoadedgeError("{}: nms: expected an object (threshold, topk, force_suppress)".format(path))
    threshold, topk = nms.get("threshold", 0.45), nms.get("topk", 400)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise RoadedgeError("{}: nms.threshold {!r}: expected an IoU threshold in (0, 1]".format(path, threshold))
    if isinstance(topk, bool) or not isinstance(topk, int):
        raise RoadedgeError("{}: nms.topk {!r}: expected a whole number (-1: all)".format(path, topk))
    if not isinstance(nms.get("force_suppress", False), bool):
        raise RoadedgeError("{}: nms.force_suppress {!r}: expected true or false".format(path, nms["force_suppress"]))
    return meta


def verify(model_path, ir_path, epoch=0, image=None, min_score=0.05, tolerance=1e-3):
    from converters.mxnet_forward import mxnet_forward
    from converters.ssd_deploy import check_params, to_deploy, write_deploy
    from roadedge.core.model_metadata import check_ir_weights
    from roadedge.core.sagemaker_model import load_model

    check_number("--tolerance", tolerance, 0, 1, high_open=True, what="a largest allowed difference")
    check_number("--min-score", min_score, 0, 1, what="a score")
    if not os.path.isfile(ir_path):
        raise RoadedgeError("{}: IR not found".format(ir_path))
    check_ir_weights(ir_path)  # before MXNet runs: a damaged IR is found in a moment
    meta = read_metadata(ir_path)
    model = load_model(model_path, epoch)
    nms = meta.get("nms") or {}
    deploy = to_deploy(model.graph, nms=nms.get("threshold", 0.45), topk=nms.get("topk", 400),
                       force_suppress=nms.get("force_suppress", False))
    check_params(deploy, model.params, model.params_source, model.graph)
    height, width = meta["input"]["height"], meta["input"]["width"]
    frame = input_frame(image, height, width)
    tensor = mxnet_input(frame, meta["preprocessing"])
    with tempfile.TemporaryDirectory(prefix="roadedge-verify-") as tmp:
        symbol_path, params_path = write_deploy(deploy, model.params, tmp, model.name, 0)
        reference = mxnet_rows(mxnet_forward(symbol_path, params_path, {"data": tensor})[0], min_score - tolerance)
    ir_input = frame[None] if meta["preprocessing"].get("embedded") else tensor
    candidate = openvino_rows(openvino_detect(ir_path, ir_input), min_score - tolerance, meta["output"].get("label_offset", 0))
    return match_detections(reference, candidate, tolerance, min_score)


def verify_command(args):
    from converters.gluoncv_seg.artefact import is_segmentation_artefact

    if is_segmentation_artefact(args.model):
        from converters.gluoncv_seg.verify import verify_segmentation_command

        return verify_segmentation_command(args)
    images = args.image or [None]
    if len(images) > 1:
        raise RoadedgeError("--image: {} given; detection models are verified on one image".format(len(images)))
    args.image = images[0]
    check_number("--tolerance", args.tolerance, 0, 1, high_open=True, what="a largest allowed difference")
    check_number("--min-score", args.min_score, 0, 1, what="a score")
    check_number("--epoch", args.epoch, 0, 9999, what="an epoch number")
    report = verify(args.model, args.ir, args.epoch, args.image, args.min_score, args.tolerance)
    print("MXNet {} detections >= {}, OpenVINO {}: matched {}, missing {}, extra {}; max box diff {:.2e}, "
          "max score diff {:.2e} (tolerance {:g})".format(
              report["reference"], args.min_score, report["candidate"], report["matched"], len(report["missing"]),
              len(report["extra"]), report["max_box_diff"], report["max_score_diff"], args.tolerance))
    for row in report["missing"][:5]:
        print("  missing in the IR: class {:g} score {:.4f} box {}".format(row[0], row[1], [round(v, 4) for v in row[2:]]))
    for row in report["extra"][:5]:
        print("  extra in the IR: class {:g} score {:.4f} box {}".format(row[0], row[1], [round(v, 4) for v in row[2:]]))
    print("OK: the IR matches MXNet" if report["ok"] else "MISMATCH: the IR does not match MXNet")
    return 0 if report["ok"] else 1
