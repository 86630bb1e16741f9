"""`roadedge eval MODEL DATA_DIR`: run a detector over a labelled data set and report COCO-style metrics.

MODEL is an OpenVINO IR (NAME.xml with NAME.bin and the NAME.json metadata
`roadedge convert optimize` writes) or an MXNet SSD (training or deploy
prefix, or SageMaker's model.tar.gz; it runs in the isolated MXNet
environment, all images in one process). DATA_DIR is a VOC-XML folder
(labelImg, RDD, `roadedge synth`), a SageMaker object-detection folder
(`roadedge dataset convert`: SPLIT/ + SPLIT_annotation/) or a rendered drive
(`roadedge synth --video`: drive.mp4 + drive.jsonl, each frame one image). Classes are matched
by name; VOC `difficult` objects are ignored the way COCO ignores crowds.
Metrics come from training.metrics (the numbers pycocotools gives).
"""
import json
import os
import sys
import time

from roadedge.core.errors import RoadedgeError, ValidationFailed

SCHEMA = "roadedge.eval/1"
SPLITS = ("train", "validation")


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="OpenVINO IR (.xml, with its .json metadata) or MXNet prefix / model.tar.gz")
    p.add_argument("data_dir", metavar="DATA_DIR", nargs="+", help="VOC-XML folder, SageMaker object-detection folder or "
                   "`roadedge synth --video` folder (drive.mp4 + drive.jsonl, or a VIDEO.mp4 with VIDEO.jsonl beside it); "
                   "several are evaluated as one set (detection); for a segmentation model one VOC 2012 segmentation tree "
                   "or SageMaker segmentation folder")
    p.add_argument("--split", choices=SPLITS + ("val", "trainval", "all"), default=None,
                   help="channel of a SageMaker folder (default: validation); for segmentation also the VOC tree's "
                   "ImageSets/Segmentation list (default: val, or all images when there is none)")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="machine-readable report (JSON): on stdout, or written to FILE (the table still printed)")
    p.add_argument("--score-threshold", type=float, default=0.5, help="score for the per-class precision and recall")
    p.add_argument("--min-score", type=float, default=0.01, help="lowest detection score kept for AP")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate the first N images (video frames) only")
    p.add_argument("--every", type=int, default=1, metavar="K", help="evaluate every K-th image or video frame (default 1: all)")
    p.add_argument("--min-size", type=float, default=0.0, metavar="PX",
                   help="ground truth narrower or lower than PX pixels once the image is resized to the model's input "
                   "counts as difficult: ignored, neither missed nor a false positive when found (default 0: only the "
                   "data's own difficult flags)")
    p.add_argument("--labels", default=None, help="the model's class names instead of its metadata's, comma-separated or a file")
    p.add_argument("--ignore-unknown", action="store_true", help="leave out objects of classes the model does not know")
    p.add_argument("--input-shape", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="MXNet models only: input size, when not hyperparams.json's image_shape (else 300)")
    p.add_argument("--epoch", type=int, default=0, help="MXNet models only: params epoch")


# ---------------------------------------------------------------------------
# Data: VOC XML or SageMaker JSON -> images with objects (name, [xmin, ymin, xmax, ymax], difficult)


class EvalImage:
    __slots__ = ("stem", "path", "objects", "reader", "size")

    def __init__(self, stem, path, objects, reader=None):
        self.stem = stem
        self.path = path
        self.objects = objects  # [(class name, or class_id when the data names none), box, difficult]
        self.reader = reader  # () -> BGR frame, for a video frame (path is VIDEO#INDEX)
        self.size = None  # (width, height), once read

    def read(self):
        frame = self.reader() if self.reader else _read_frame(self.path)
        self.size = (frame.shape[1], frame.shape[0])
        return frame


class DataSet:
    def __init__(self, root, kind, split, images):
        self.root = root
        self.kind = kind  # "voc", "sagemaker" or "video"
        self.split = split  # None for VOC
        self.images = images


def load_data(data_dir, split="validation", limit=None, every=1):
    from training.eval_video import drive_paths, load_drive

    if limit is not None and limit <= 0:
        raise RoadedgeError("--limit {}: expected a positive number of images".format(limit))
    if every <= 0:
        raise RoadedgeError("--every {}: expected a positive step (1: every image)".format(every))
    drive = drive_paths(data_dir)
    if drive:
        return DataSet(data_dir, "video", None, load_drive(drive, limit, every, EvalImage))
    if not os.path.isdir(data_dir):
        raise RoadedgeError("{}: not a folder; expected a VOC-XML folder, a SageMaker object-detection folder or a "
                            "`roadedge synth --video` folder".format(data_dir))
    channels = [name for name in SPLITS if os.path.isdir(os.path.join(data_dir, name + "_annotation"))]
    if channels:
        if split not in channels:
            raise RoadedgeError("{}: no {}_annotation/ folder (this SageMaker folder has {}); see --split".format(
                data_dir, split, ", ".join(channels)))
        images = _load_sagemaker(data_dir, split, limit, every)
        data = DataSet(data_dir, "sagemaker", split, images)
    else:
        data = DataSet(data_dir, "voc", None, _load_voc(data_dir, limit, every))
    if not data.images:
        raise RoadedgeError("{}: no images to evaluate".format(data_dir))
    return data


def _load_voc(voc_dir, limit, every=1):
    from converters.voc_dataset import find_annotation_files, find_image
    from roadedge.core.voc import read_voc_xml

    problems, images = [], []
    for xml_path in find_annotation_files(voc_dir)[::every][:limit]:
        record, found = read_voc_xml(xml_path)
        problems.extend(found)
        if record is None:
            continue
        image_path, folders = find_image(xml_path, record.filename)
        if image_path is None:
            problems.append("{}: filename: image {!r} not found (looked in {})".format(
                xml_path, record.filename or record.stem + ".*", ", ".join(folders) or os.path.dirname(xml_path)))
            continue
        images.append(EvalImage(record.stem, image_path, [(o.name, list(o.bbox), bool(o.difficult)) for o in record.objects]))
    if problems:
        raise ValidationFailed(problems, voc_dir)
    return images


def _load_sagemaker(root, split, limit, every=1):
    folder = os.path.join(root, split + "_annotation")
    names = sorted(name for name in os.listdir(folder) if name.endswith(".json"))[::every][:limit]
    problems, images = [], []
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(path, encoding="utf-8") as handle:
                record = json.load(handle)
            categories = {int(c["class_id"]): str(c["name"]) for c in record.get("categories") or []}
            objects = []
            for index, ann in enumerate(record.get("annotations") or []):
                class_id = int(ann["class_id"])
                left, top = float(ann["left"]), float(ann["top"])
                box = [left, top, left + float(ann["width"]), top + float(ann["height"])]
                if categories and class_id not in categories:
                    problems.append("{}: annotations[{}]: class_id {} is not in categories".format(path, index, class_id))
                objects.append((categories.get(class_id, class_id), box, False))
            image_path = os.path.join(root, split, os.path.basename(str(record["file"])))
        except (ValueError, KeyError, TypeError) as err:
            problems.append("{}: not a SageMaker annotation (file, annotations[class_id, left, top, width, height]): {}".format(
                path, err))
            continue
        if not os.path.isfile(image_path):
            problems.append("{}: file: image {} not found".format(path, image_path))
            continue
        images.append(EvalImage(os.path.splitext(name)[0], image_path, objects))
    if problems:
        raise ValidationFailed(problems, folder)
    return images


def map_classes(labels, data, ignore_unknown=False):
    """Ground truth per image as (model class id, box, difficult) and {unknown class: objects left out}."""
    index = {name: i for i, name in enumerate(labels)}
    unknown = {}
    for image in data.images:
        for name, _, _ in image.objects:
            known = (0 <= name < len(labels)) if isinstance(name, int) else name in index
            if not known:
                unknown[name] = unknown.get(name, 0) + 1
    if unknown and not ignore_unknown:
        raise RoadedgeError("{}: class{} {} not among the model's labels {} (pass --ignore-unknown to leave {} out, "
                            "or --labels to name the model's classes)".format(
                                data.root, "es" if len(unknown) > 1 else "", ", ".join(str(n) for n in sorted(unknown, key=str)),
                                ",".join(labels), "them" if len(unknown) > 1 else "it"))
    ground_truth = [[(name if isinstance(name, int) else index[name], box, difficult)
                     for name, box, difficult in image.objects if name not in unknown] for image in data.images]
    return ground_truth, {str(name): count for name, count in sorted(unknown.items(), key=lambda item: str(item[0]))}


# ---------------------------------------------------------------------------
# Models: each gives, per image, rows [class_id, score, xmin, ymin, xmax, ymax] in image pixels


def _read_frame(path):
    import cv2

    frame = cv2.imread(path, cv2.IMREAD_COLOR)
    if frame is None:
        raise RoadedgeError("{}: cannot read image (expected a JPEG or PNG)".format(path))
    return frame


# ---------------------------------------------------------------------------
# The command


def too_small(ground_truth, images, input_size, min_size):
    """Ground truth with the boxes smaller than `min_size` pixels at the model's input (width, height) made difficult."""
    if not min_size:
        return ground_truth
    out = []
    for objects, image in zip(ground_truth, images):
        sx, sy = float(input_size[0]) / image.size[0], float(input_size[1]) / image.size[1]
        out.append([(class_id, box, difficult or (box[2] - box[0]) * sx < min_size or (box[3] - box[1]) * sy < min_size)
                    for class_id, box, difficult in objects])
    return out


def collect(model_path, data_dir, split="validation", min_score=0.01, limit=None, labels=None, ignore_unknown=False,
            input_shape=None, epoch=0, progress=None, every=1, min_size=0.0, detector=None):
    """Everything the metrics need: (detector labels, data, ground truth, detections, unknown-class counts).

    Ground truth per image: [(class_id, box, difficult)]; detections: [(class_id, score, box)], boxes in pixels.
    `min_size`: see too_small; `detector`: one already opened for model_path (several folders, one model).
    """
    from training.detectors import open_detector

    detector = detector or open_detector(model_path, labels, input_shape, epoch)
    data = load_data(data_dir, split, limit, every)
    ground_truth, unknown = map_classes(detector.labels, data, ignore_unknown)
    rows = detector.detect_all(data.images, min_score, progress)
    ground_truth = too_small(ground_truth, data.images, (detector.width, detector.height), min_size)
    detections = [[(int(r[0]), float(r[1]), [float(v) for v in r[2:]]) for r in image_rows] for image_rows in rows]
    return detector.labels, data, ground_truth, detections, unknown


def evaluate_model(model_path, data_dir, score_threshold=0.5, min_score=0.01, progress=None, **options):
    """The report of MODEL on DATA_DIR, or on the images of several folders pooled (a list: one set, one AP per
    class over all of them, e.g. several rendered drives)."""
    from training.detectors import open_detector
    from training.metrics import IOU_THRESHOLDS, evaluate

    started = time.time()
    folders = list(data_dir) if isinstance(data_dir, (list, tuple)) else [data_dir]
    detector = open_detector(model_path, options.get("labels"), options.get("input_shape"), options.get("epoch", 0))
    ground_truth, detections, unknown, kinds, splits = [], [], {}, [], []
    for folder in folders:
        labels, data, found_gt, found, left_out = collect(model_path, folder, min_score=min_score, progress=progress,
                                                          detector=detector, **options)
        ground_truth += found_gt
        detections += found
        kinds.append(data.kind)
        splits.append(data.split)
        for name, count in left_out.items():
            unknown[name] = unknown.get(name, 0) + count
    metrics = evaluate(ground_truth, detections, len(labels), score_threshold, class_names=labels)
    report = {"schema": SCHEMA, "model": model_path, "data": folders[0] if len(folders) == 1 else folders,
              "format": kinds[0] if len(set(kinds)) == 1 else "mixed", "split": splits[0] if len(set(splits)) == 1 else None,
              "every": options.get("every", 1), "min_size": options.get("min_size", 0.0)}
    report.update(metrics)
    report.update({"min_score": min_score, "iou_thresholds": [round(float(t), 2) for t in IOU_THRESHOLDS],
                   "unknown_objects_left_out": unknown, "seconds": round(time.time() - started, 3)})
    return report


def format_report(report):
    def number(value):
        return "-" if value is None else "{:.3f}".format(value)

    head = "{:<10}{:>6}{:>6}{:>9}{:>11}{:>8}".format("class", "GT", "diff", "AP@0.5", "precision", "recall")
    data = report["data"] if isinstance(report["data"], str) else ", ".join(report["data"])
    lines = ["{} on {} {} of {}{}{} ({:.1f} s)".format(
        report["model"], report["images"], "frames" if report["format"] == "video" else "images", data,
        " [{}]".format(report["split"]) if report["split"] else "",
        ", every {}".format(report["every"]) if report.get("every", 1) != 1 else "", report["seconds"])]
    if report.get("min_size"):
        lines.append("ground truth under {:g} px at the model's input counts as difficult".format(report["min_size"]))
    lines.append(head)
    for entry in report["classes"]:
        lines.append("{:<10}{:>6}{:>6}{:>9}{:>11}{:>8}".format(entry["name"], entry["gt"], entry["difficult"],
                                                              number(entry["ap50"]), number(entry["precision"]),
                                                              number(entry["recall"])))
    with_gt = sum(1 for entry in report["classes"] if entry["ap50"] is not None)
    lines.append("mAP@0.5       {}  (mean over {} class{} with ground truth)".format(
        number(report["map50"]), with_gt, "" if with_gt == 1 else "es"))
    lines.append("mAP@[.5:.95]  {}".format(number(report["map"])))
    lines.append("precision and recall at score >= {:g}, IoU 0.5; detections with score >= {:g} kept for AP; "
                 "difficult objects ignored".format(report["score_threshold"], report["min_score"]))
    if report["unknown_objects_left_out"]:
        lines.append("left out objects of classes the model does not know: " + ", ".join(
            "{} ({})".format(name, count) for name, count in report["unknown_objects_left_out"].items()))
    return "\n".join(lines)


def eval_command(args):
    from training.evaluate_seg import eval_seg_command, model_task, write_json_report

    if model_task(args.model) == "segmentation":  # the IR's metadata decides
        if len(args.data_dir) > 1:
            raise RoadedgeError("{}: a segmentation model is evaluated on one data folder at a time".format(
                ", ".join(args.data_dir[1:])))
        args.data_dir = args.data_dir[0]
        return eval_seg_command(args)
    if args.split not in (None,) + SPLITS:
        raise RoadedgeError("--split {}: a SageMaker object-detection folder has {}".format(args.split, ", ".join(SPLITS)))
    if args.min_size < 0:
        raise RoadedgeError("--min-size {:g}: expected pixels, 0 or more".format(args.min_size))
    if not 0.0 <= args.min_score <= 1.0 or not 0.0 <= args.score_threshold <= 1.0:
        raise RoadedgeError("--min-score {:g} / --score-threshold {:g}: expected scores in [0, 1]".format(
            args.min_score, args.score_threshold))
    from tqdm import tqdm

    def progress(items):
        return tqdm(items, desc="evaluating", unit="image", disable=None, file=sys.stderr)

    data = args.data_dir[0] if len(args.data_dir) == 1 else args.data_dir
    report = evaluate_model(args.model, data, args.score_threshold, args.min_score, progress=progress,
                            split=args.split or "validation", limit=args.limit, labels=args.labels,
                            ignore_unknown=args.ignore_unknown,
                            input_shape=tuple(args.input_shape) if args.input_shape else None, epoch=args.epoch,
                            every=args.every, min_size=args.min_size)
    if args.json:
        write_json_report(report, args.json)
    if args.json != "-":
        print(format_report(report))
    return 0
