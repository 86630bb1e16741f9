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

import numpy as np

from roadedge.core.errors import RoadedgeError, ValidationFailed

SCHEMA = "roadedge.eval/1"
SPLITS = ("train", "validation")


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="OpenVINO IR (.xml, with its .json metadata) or MXNet prefix / model.tar.gz")
    p.add_argument("data_dir", metavar="DATA_DIR", help="VOC-XML folder, SageMaker object-detection folder or "
                   "`roadedge synth --video` folder (drive.mp4 + drive.jsonl, or a VIDEO.mp4 with VIDEO.jsonl beside it); for a "
                   "segmentation model a VOC 2012 segmentation tree or SageMaker segmentation folder")
    p.add_argument("--split", choices=SPLITS + ("val", "trainval", "all"), default=None,
                   help="channel of a SageMaker folder (default: validation); for segmentation also the VOC tree's "
                   "ImageSets/Segmentation list (default: val, or all images when there is none)")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="machine-readable report (JSON): on stdout, or written to FILE (the table still printed)")
    p.add_argument("--score-threshold", type=float, default=0.5, help="score for the per-class precision and recall")
    p.add_argument("--min-score", type=float, default=0.01, help="lowest detection score kept for AP")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate the first N images (video frames) only")
    p.add_argument("--every", type=int, default=1, metavar="K", help="evaluate every K-th image or video frame (default 1: all)")
    p.add_argument("--labels", default=None, help="the model's class names instead of its metadata's, comma-separated or a file")
    p.add_argument("--ignore-unknown", action="store_true", help="leave out objects of classes the model does not know")
    p.add_argument("--input-shape", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="MXNet models only: input size, when not hyperparams.json's image_shape (else 300)")
    p.add_argument("--epoch", type=int, default=0, help="MXNet models only: params epoch")


# ---------------------------------------------------------------------------
# Data: VOC XML or SageMaker JSON -> images with objects (name, [xmin, ymin, xmax, ymax], difficult)


class EvalImage:
    __slots__ = ("stem", "path", "objects", "reader")

    def __init__(self, stem, path, objects, reader=None):
        self.stem = stem
        self.path = path
        self.objects = objects  # [(class name, or class_id when the data names none), box, difficult]
        self.reader = reader  # () -> BGR frame, for a video frame (path is VIDEO#INDEX)

    def read(self):
        return self.reader() if self.reader else _read_frame(self.path)


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


def to_pixels(rows, width, height):
    """Normalised rows -> boxes in image pixels, clipped to the image."""
    rows = np.array(rows, dtype=np.float64).reshape(-1, 6)
    rows[:, [2, 4]] = np.clip(rows[:, [2, 4]] * width, 0, width)
    rows[:, [3, 5]] = np.clip(rows[:, [3, 5]] * height, 0, height)
    return rows


class OpenVinoDetector:
    def __init__(self, xml_path, labels=None):
        from converters.verify import read_metadata

        if not xml_path.endswith(".xml") or not os.path.isfile(xml_path):
            raise RoadedgeError("{}: IR not found".format(xml_path))
        self.path = xml_path
        self.meta = read_metadata(xml_path)
        try:
            self.labels = list(self.meta["labels"])
            self.height, self.width = int(self.meta["input"]["height"]), int(self.meta["input"]["width"])
            self.preprocessing = dict(self.meta["preprocessing"])
            self.label_offset = int(self.meta.get("output", {}).get("label_offset", 0))
        except (KeyError, TypeError, ValueError) as err:
            raise RoadedgeError("{}: metadata field {} missing or invalid (rewrite it with `roadedge convert optimize`)".format(
                xml_path[:-4] + ".json", err)) from None
        if self.preprocessing.get("resize", "stretch") != "stretch":
            raise RoadedgeError("{}: preprocessing.resize {!r} is not supported (expected 'stretch')".format(
                xml_path[:-4] + ".json", self.preprocessing["resize"]))
        self.labels = _override_labels(self.labels, labels)
        self.compiled = None

    def network_input(self, frame):
        """The tensor the IR itself takes for a BGR frame (also what `convert quantize` calibrates with)."""
        import cv2

        from converters.verify import mxnet_input

        if self.preprocessing.get("embedded"):
            return frame[None]  # the IR resizes, reorders and normalises BGR uint8 frames itself
        resized = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        return mxnet_input(resized, self.preprocessing)

    def detect_all(self, images, min_score, progress=None):
        from converters.verify import openvino_rows
        from roadedge.core.openvino_core import shared_core

        core = shared_core()
        self.compiled = core.compile_model(core.read_model(self.path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        request = self.compiled.create_infer_request()
        output = self.compiled.outputs[0]
        results = []
        for image in progress(images) if progress else images:
            frame = image.read()
            height, width = frame.shape[:2]
            raw = request.infer({0: self.network_input(frame)})[output]
            results.append(to_pixels(openvino_rows(raw, min_score, self.label_offset), width, height))
        return results


class MXNetDetector:
    """An MXNet SSD run by real MXNet in the isolated environment: one process, the model bound once."""

    def __init__(self, path, labels=None, input_shape=None, epoch=0):
        from converters.ssd_deploy import num_classes, to_deploy
        from roadedge.core.model_metadata import default_preprocessing, labels_for
        from roadedge.core.sagemaker_model import load_model

        self.path = path
        self.model = load_model(path, epoch)
        hyper = self.model.hyperparams
        self.deploy = to_deploy(self.model.graph, nms=float(hyper.get("nms_threshold", 0.45)), topk=400)
        head = self.deploy.nodes[self.deploy.heads[0][0]]
        classes = num_classes(self.deploy, head.inputs[0]) if head.inputs else None
        self.labels = _override_labels(labels_for(classes or 0, None, hyper), labels)
        if input_shape is None:
            size = str(hyper.get("image_shape", "300")).strip()
            input_shape = (int(size), int(size)) if size.isdigit() else (300, 300)
        self.height, self.width = input_shape
        if not (0 < self.height <= 4096 and 0 < self.width <= 4096):
            raise RoadedgeError("--input-shape {} {}: expected a height and width in 1..4096".format(*input_shape))
        self.preprocessing = default_preprocessing(self.deploy)

    def detect_all(self, images, min_score, progress=None, batch=8):
        import tempfile

        import cv2

        from converters.mxnet_env import run_in_venv, venv_python
        from converters.ssd_deploy import write_deploy
        from converters.verify import mxnet_input

        venv_python()  # a clear error when the environment is missing
        with tempfile.TemporaryDirectory(prefix="roadedge-eval-") as tmp:
            symbol_path, params_path = write_deploy(self.deploy, self.model.params, tmp, self.model.name, 0)
            inputs_path, out_path = os.path.join(tmp, "inputs.npy"), os.path.join(tmp, "rows.npy")
            inputs = np.lib.format.open_memmap(inputs_path, mode="w+", dtype=np.float32,
                                               shape=(len(images), 3, self.height, self.width))
            sizes = []
            for index, image in enumerate(progress(images) if progress else images):
                frame = image.read()
                sizes.append(frame.shape[1::-1])
                resized = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
                inputs[index] = mxnet_input(resized, self.preprocessing)[0]
            inputs.flush()
            del inputs
            result = run_in_venv(["-m", "training.evaluate", "--mxnet-worker", symbol_path, params_path, inputs_path,
                                  out_path, repr(float(min_score)), str(batch)])
            if result.returncode != 0:
                lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
                raise RoadedgeError("MXNet run of {} failed: {}".format(self.path, lines[-1] if lines else "no message"))
            rows = np.load(out_path)
        return [to_pixels(rows[rows[:, 0] == index, 1:], width, height) for index, (width, height) in enumerate(sizes)]


def _mxnet_worker(symbol_path, params_path, inputs_path, out_path, min_score, batch):  # runs inside the MXNet venv
    import mxnet as mx

    inputs = np.load(inputs_path, mmap_mode="r")
    batch = max(1, min(int(batch), len(inputs)))
    saved = mx.nd.load(params_path)
    executor = mx.sym.load(symbol_path).simple_bind(mx.cpu(), grad_req="null", data=(batch,) + inputs.shape[1:])
    for name, array in executor.arg_dict.items():
        if name != "data":
            saved["arg:" + name].copyto(array)
    for name, array in executor.aux_dict.items():
        saved["aux:" + name].copyto(array)
    found = [np.zeros((0, 7), np.float32)]
    for start in range(0, len(inputs), batch):
        chunk = np.zeros((batch,) + inputs.shape[1:], np.float32)
        count = min(batch, len(inputs) - start)
        chunk[:count] = inputs[start:start + count]
        executor.arg_dict["data"][:] = chunk
        out = executor.forward(is_train=False)[0].asnumpy()
        for offset in range(count):
            rows = out[offset]
            rows = rows[(rows[:, 0] >= 0) & (rows[:, 1] >= float(min_score))]
            found.append(np.column_stack([np.full(len(rows), start + offset, np.float32), rows]))
    np.save(out_path, np.concatenate(found).astype(np.float32))


def _override_labels(labels, spec):
    if spec is None:
        return list(labels)
    from converters.classmap import read_name_list

    names = read_name_list(spec)
    if len(names) != len(labels):
        raise RoadedgeError("--labels: {} names given, the model predicts {} classes".format(len(names), len(labels)))
    return names


def open_detector(model_path, labels=None, input_shape=None, epoch=0):
    if model_path.endswith(".xml"):
        return OpenVinoDetector(model_path, labels)
    if input_shape is None and os.path.isfile(model_path + ".xml"):
        return OpenVinoDetector(model_path + ".xml", labels)
    return MXNetDetector(model_path, labels, input_shape, epoch)


# ---------------------------------------------------------------------------
# The command


def collect(model_path, data_dir, split="validation", min_score=0.01, limit=None, labels=None, ignore_unknown=False,
            input_shape=None, epoch=0, progress=None, every=1):
    """Everything the metrics need: (detector labels, data, ground truth, detections, unknown-class counts).

    Ground truth per image: [(class_id, box, difficult)]; detections: [(class_id, score, box)], boxes in pixels.
    """
    detector = open_detector(model_path, labels, input_shape, epoch)
    data = load_data(data_dir, split, limit, every)
    ground_truth, unknown = map_classes(detector.labels, data, ignore_unknown)
    rows = detector.detect_all(data.images, min_score, progress)
    detections = [[(int(r[0]), float(r[1]), [float(v) for v in r[2:]]) for r in image_rows] for image_rows in rows]
    return detector.labels, data, ground_truth, detections, unknown


def evaluate_model(model_path, data_dir, score_threshold=0.5, min_score=0.01, progress=None, **options):
    from training.metrics import IOU_THRESHOLDS, evaluate

    started = time.time()
    labels, data, ground_truth, detections, unknown = collect(model_path, data_dir, min_score=min_score, progress=progress,
                                                              **options)
    metrics = evaluate(ground_truth, detections, len(labels), score_threshold, class_names=labels)
    report = {"schema": SCHEMA, "model": model_path, "data": data_dir, "format": data.kind, "split": data.split,
              "every": options.get("every", 1)}
    report.update(metrics)
    report.update({"min_score": min_score, "iou_thresholds": [round(float(t), 2) for t in IOU_THRESHOLDS],
                   "unknown_objects_left_out": unknown, "seconds": round(time.time() - started, 3)})
    return report


def format_report(report):
    def number(value):
        return "-" if value is None else "{:.3f}".format(value)

    head = "{:<10}{:>6}{:>6}{:>9}{:>11}{:>8}".format("class", "GT", "diff", "AP@0.5", "precision", "recall")
    lines = ["{} on {} {} of {}{}{} ({:.1f} s)".format(
        report["model"], report["images"], "frames" if report["format"] == "video" else "images", report["data"],
        " [{}]".format(report["split"]) if report["split"] else "",
        ", every {}".format(report["every"]) if report.get("every", 1) != 1 else "", report["seconds"]), head]
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
        return eval_seg_command(args)
    if args.split not in (None,) + SPLITS:
        raise RoadedgeError("--split {}: a SageMaker object-detection folder has {}".format(args.split, ", ".join(SPLITS)))
    if not 0.0 <= args.min_score <= 1.0 or not 0.0 <= args.score_threshold <= 1.0:
        raise RoadedgeError("--min-score {:g} / --score-threshold {:g}: expected scores in [0, 1]".format(
            args.min_score, args.score_threshold))
    from tqdm import tqdm

    def progress(items):
        return tqdm(items, desc="evaluating", unit="image", disable=None, file=sys.stderr)

    report = evaluate_model(args.model, args.data_dir, args.score_threshold, args.min_score, progress=progress,
                            split=args.split or "validation", limit=args.limit, labels=args.labels,
                            ignore_unknown=args.ignore_unknown,
                            input_shape=tuple(args.input_shape) if args.input_shape else None, epoch=args.epoch,
                            every=args.every)
    if args.json:
        write_json_report(report, args.json)
    if args.json != "-":
        print(format_report(report))
    return 0


if __name__ == "__main__" and len(sys.argv) == 8 and sys.argv[1] == "--mxnet-worker":
    _mxnet_worker(*sys.argv[2:])
