"""`roadedge eval MODEL DATA_DIR` for segmentation models: mIoU, per-class IoU and pixel accuracy.

MODEL is an OpenVINO IR whose roadedge.model/1 metadata says `task:
segmentation` (output.format segmentation_logits [1, C, H, W] or
segmentation_mask [1, 1, H, W]); training.evaluate hands such models here.
DATA_DIR is a Pascal VOC 2012 segmentation tree (ImageSets/Segmentation/
SPLIT.txt, JPEGImages/, SegmentationClass/; `roadedge synth --segmentation`)
or a SageMaker semantic-segmentation folder (SPLIT/ + SPLIT_annotation/;
`roadedge dataset convert-seg`). Masks hold class indices, 255 = ignore.

Each prediction is resized to its label's size (nearest neighbour) and added
to one confusion matrix (rows: ground truth, columns: prediction, ignored
pixels left out). From it: per-class IoU = TP / (TP + FP + FN), mIoU = the
mean over the classes present in the ground truth or the prediction (a class
in neither has no IoU), pixel accuracy = the diagonal over all counted pixels.
"""
import json
import os
import sys

import numpy as np

from roadedge.core.errors import RoadedgeError, ValidationFailed
from training.seg_data import class_lut, load_seg_data

SCHEMA = "roadedge.eval-seg/1"
IGNORE = 255


# ---------------------------------------------------------------------------
# metrics


def confusion_matrix(gt, pred, num_classes, ignore=IGNORE):
    """counts[i, j] = pixels of ground-truth class i predicted as j (int64), pixels where gt == ignore left out.

    Ground truth and prediction must be class indices below num_classes (ValueError otherwise).
    """
    gt = np.asarray(gt).ravel()
    pred = np.asarray(pred).ravel()
    if gt.shape != pred.shape:
        raise ValueError("ground truth has {} pixels, the prediction {}".format(gt.size, pred.size))
    keep = gt != ignore
    gt = gt[keep].astype(np.int64)
    pred = pred[keep].astype(np.int64)
    for what, values in (("ground truth", gt), ("prediction", pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError("{} holds class {} (expected 0..{} or {} to ignore)".format(
                what, int(values.max() if values.max() >= num_classes else values.min()), num_classes - 1, ignore))
    return np.bincount(gt * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores(counts, labels):
    """The figures of a confusion matrix: pixel accuracy, mIoU over the classes present, per-class entries."""
    counts = np.asarray(counts, np.int64)
    tp = np.diag(counts)
    gt_pixels, pred_pixels = counts.sum(axis=1), counts.sum(axis=0)
    union = gt_pixels + pred_pixels - tp
    total = int(counts.sum())
    classes = []
    for index, name in enumerate(labels):
        present = bool(union[index] > 0)
        classes.append({
            "index": index, "name": name, "gt_pixels": int(gt_pixels[index]), "pred_pixels": int(pred_pixels[index]),
            "tp": int(tp[index]), "iou": float(tp[index]) / float(union[index]) if present else None,
            "accuracy": float(tp[index]) / float(gt_pixels[index]) if gt_pixels[index] else None,  # recall
        })
    present = [c["iou"] for c in classes if c["iou"] is not None]
    in_gt = [c["iou"] for c in classes if c["gt_pixels"]]
    recalls = [c["accuracy"] for c in classes if c["accuracy"] is not None]
    return {
        "pixels": total,
        "pixel_accuracy": float(tp.sum()) / total if total else None,
        "mean_class_accuracy": float(np.mean(recalls)) if recalls else None,
        "miou": float(np.mean(present)) if present else None,
        "miou_classes": len(present),
        "miou_gt": float(np.mean(in_gt)) if in_gt else None,
        "miou_gt_classes": len(in_gt),
        "classes": classes,
    }


# ---------------------------------------------------------------------------
# the model


def model_task(model_path):
    """The task an IR's metadata names ("detection" when it names none, or for anything that is no IR)."""
    from roadedge.core.model_metadata import read_metadata

    xml = model_path if model_path.endswith(".xml") else model_path + ".xml"
    if not os.path.isfile(xml):
        return "detection"
    meta = read_metadata(xml)
    return (meta or {}).get("task") or "detection"


class OpenVinoSegmenter:
    """An OpenVINO IR with segmentation metadata: BGR frame -> class-index mask at the frame's size."""

    def __init__(self, xml_path, labels=None):
        from edge.processing.segmentation import MASK_FORMATS
        from roadedge.core.model_metadata import ModelInfo, check_ir_weights, metadata_path_for, read_metadata
        from training.detectors import _override_labels

        if not xml_path.endswith(".xml"):
            xml_path += ".xml"
        where = metadata_path_for(xml_path)
        meta = read_metadata(xml_path)
        if meta is None:
            raise RoadedgeError("{}: metadata JSON not found next to the IR (written by `roadedge convert optimize`)".format(
                where))
        info = ModelInfo.from_metadata(meta, where=where)
        if info.task != "segmentation":
            raise RoadedgeError("{}: task {!r}; expected segmentation".format(where, info.task))
        if info.output_format not in MASK_FORMATS:
            raise RoadedgeError("{}: output.format {!r}; expected {}".format(
                where, info.output_format, " or ".join(MASK_FORMATS)))
        if info.label_offset:
            raise RoadedgeError("{}: output.label_offset {}; expected 0 for a segmentation model".format(
                where, info.label_offset))
        if info.preprocessing.get("resize", "stretch") != "stretch":
            raise RoadedgeError("{}: preprocessing.resize {!r} is not supported (expected 'stretch')".format(
                where, info.preprocessing["resize"]))
        check_ir_weights(xml_path)
        self.path, self.info = xml_path, info
        self.labels = _override_labels(info.labels, labels)
        self.layout = str(meta["input"].get("layout") or "NCHW")
        self.request = self.output = None

    def _compile(self):
        from roadedge.core.openvino_core import shared_core

        core = shared_core()
        compiled = core.compile_model(core.read_model(self.path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        self.request, self.output = compiled.create_infer_request(), compiled.outputs[0]

    def predict(self, frame):
        """(H, W) uint8 class indices for a BGR uint8 frame, resized to the frame (nearest neighbour)."""
        import cv2

        from converters.verify import mxnet_input
        from edge.processing.segmentation import class_mask

        if self.request is None:
            self._compile()
        height, width = frame.shape[:2]
        pre = self.info.preprocessing
        if pre.get("embedded"):
            tensor = frame[None]  # the IR resizes, reorders and normalises BGR uint8 frames itself
        else:
            model_w, model_h = self.info.input_size
            tensor = mxnet_input(cv2.resize(frame, (model_w, model_h), interpolation=cv2.INTER_LINEAR), pre)
            if self.layout == "NHWC":
                tensor = np.ascontiguousarray(tensor.transpose(0, 2, 3, 1))
        raw = self.request.infer({0: tensor})[self.output]
        mask = class_mask(raw, self.info.output_format)
        if mask.shape != (height, width):
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        return mask


# ---------------------------------------------------------------------------
# the command


def evaluate_segmentation(model_path, data_dir, split=None, limit=None, labels=None, ignore_unknown=False, progress=None):
    """Run the model over the data set; the report dict (schema roadedge.eval-seg/1)."""
    import time

    import cv2

    from roadedge.core.seglabels import read_index_png

    started = time.time()
    model = OpenVinoSegmenter(model_path, labels)
    kind, split, items, data_labels = load_seg_data(data_dir, split, limit)
    lut, unknown = class_lut(data_labels, model.labels, data_dir, ignore_unknown)
    n = len(model.labels)
    known = len(data_labels) if data_labels is not None else n
    counts = np.zeros((n, n), np.int64)
    problems, ignored = [], 0
    for item in progress(items) if progress else items:
        frame = cv2.imread(item.image, cv2.IMREAD_COLOR)
        if frame is None:
            problems.append("{}: cannot read image (expected a JPEG or PNG)".format(item.image))
            continue
        gt = read_index_png(item.mask)
        if gt.shape != frame.shape[:2]:
            problems.append("{}: mask is {}x{} but its image is {}x{}".format(item.mask, gt.shape[1], gt.shape[0],
                                                                              frame.shape[1], frame.shape[0]))
            continue
        bad = np.unique(gt[(gt >= known) & (gt != IGNORE)])
        if bad.size:
            problems.append("{}: value{} {} not class indices (the data has {} classes; 255 = ignore)".format(
                item.mask, "s" if bad.size > 1 else "", ", ".join(str(v) for v in bad[:10]), known))
            continue
        gt = lut[gt]
        pred = model.predict(frame)
        if int(pred.max()) >= n:
            raise RoadedgeError("{}: the model predicts class {} for {} but has only {} labels".format(
                model.path, int(pred.max()), item.image, n))
        ignored += int((gt == IGNORE).sum())
        counts += confusion_matrix(gt, pred, n)
    if problems:
        raise ValidationFailed(problems, data_dir)
    report = {"schema": SCHEMA, "model": model_path, "data": data_dir, "format": kind, "split": split,
              "images": len(items), "labels": list(model.labels), "ignore_index": IGNORE, "ignored_pixels": ignored}
    report.update(scores(counts, model.labels))
    report.update({"confusion": counts.tolist(), "unknown_classes_left_out": unknown,
                   "seconds": round(time.time() - started, 3)})
    return report


def format_report(report):
    def number(value):
        return "-" if value is None else "{:.3f}".format(value)

    lines = ["{} on {} images of {} [{}] ({:.1f} s)".format(report["model"], report["images"], report["data"],
                                                           report["split"], report["seconds"]),
             "{:<14}{:>12}{:>12}{:>8}{:>10}".format("class", "GT pixels", "predicted", "IoU", "accuracy")]
    for entry in report["classes"]:
        lines.append("{:<14}{:>12}{:>12}{:>8}{:>10}".format(entry["name"], entry["gt_pixels"], entry["pred_pixels"],
                                                           number(entry["iou"]), number(entry["accuracy"])))
    lines.append("mIoU            {}  (mean over the {} classes present in the ground truth or the prediction)".format(
        number(report["miou"]), report["miou_classes"]))
    lines.append("mIoU (GT)       {}  (mean over the {} classes present in the ground truth)".format(
        number(report["miou_gt"]), report["miou_gt_classes"]))
    lines.append("pixel accuracy  {}  ({} pixels; {} pixels labelled 255 ignored)".format(
        number(report["pixel_accuracy"]), report["pixels"], report["ignored_pixels"]))
    if report["unknown_classes_left_out"]:
        lines.append("left out pixels of classes the model does not know: " + ", ".join(report["unknown_classes_left_out"]))
    return "\n".join(lines)


def write_json_report(report, target):
    """The report as JSON on stdout ('-') or atomically into a file."""
    text = json.dumps(report, indent=2, allow_nan=False)
    if target == "-":
        print(text)
        return
    from roadedge.core.fsutil import atomic_file

    with atomic_file(target, "w") as handle:
        handle.write(text + "\n")


DETECTION_ONLY = (("score_threshold", "--score-threshold", 0.5), ("min_score", "--min-score", 0.01),
                  ("input_shape", "--input-shape", None), ("epoch", "--epoch", 0),
                  ("every", "--every", 1))


def eval_seg_command(args):
    for attr, flag, default in DETECTION_ONLY:
        if getattr(args, attr, default) != default:
            raise RoadedgeError("{} applies to detection models; {} is a segmentation model".format(flag, args.model))
    from tqdm import tqdm

    def progress(items):
        return tqdm(items, desc="evaluating", unit="image", disable=None, file=sys.stderr)

    report = evaluate_segmentation(args.model, args.data_dir, args.split, args.limit, args.labels, args.ignore_unknown,
                                   progress)
    if args.json:
        write_json_report(report, args.json)
    if args.json != "-":
        print(format_report(report))
    return 0
