"""The model metadata (roadedge.model/1): what the runtime needs and must never guess, as the converters write it
beside every IR and as every backend hands it to the loop (ModelInfo).

Labels, input size and layout, preprocessing (colour order, mean, scale,
whether it is folded into the IR), the output format with its label offset,
the NMS settings the deploy graph was made with, and sha256 of the sources.
The `task` picks the loop's decoder and annotator (edge/tasks), the output
format the decoder's reader, the label offset the class index of a raw label.
"""
import io
import json
import math
import os
import xml.etree.ElementTree as ET

from roadedge import __version__
from roadedge.core.errors import RoadedgeError, os_reason

SCHEMA = "roadedge.model/1"
EXAMPLE_SSD_MEAN = (123.68, 116.779, 103.939)  # MXNet example/ssd's RGB means
MAX_INPUT_SIDE = 8192  # pixels: far beyond any edge model, small enough that nothing absurd gets allocated


def has_bn_data_input(graph):
    """SageMaker's SSD normalises its input itself: data -> (_copy ->) BatchNorm 'bn_data'."""
    data = graph.find("data")
    frontier = {data}
    for index, node in enumerate(graph.nodes):
        if any(entry[0] in frontier for entry in node.inputs):
            if node.op in ("_copy", "identity"):
                frontier.add(index)
            elif node.op == "BatchNorm":
                return True
    return False


def default_preprocessing(graph):
    """Raw RGB 0-255 for graphs with bn_data (AWS's SageMaker SSD samples feed that), else example/ssd's mean."""
    mean = (0.0, 0.0, 0.0) if has_bn_data_input(graph) else EXAMPLE_SSD_MEAN
    return {"color_order": "RGB", "mean": list(mean), "scale": 1.0, "resize": "stretch"}


def channel_scale(preprocessing):
    """The preprocessing's `scale` (a multiplier, one number or one per channel) as 3 floats in channel order."""
    scale = preprocessing.get("scale", 1.0)
    values = [float(v) for v in scale] if isinstance(scale, (list, tuple)) else [float(scale)]
    return tuple(values * 3 if len(values) == 1 else values)


def hyperparams_input_size(hyperparams):
    """(width, height) from hyperparams.json: SageMaker's square `image_shape`, and roadedge's own `image_width` for a
    non-square input (image_shape is then the height); None without a numeric image_shape."""
    shape = str((hyperparams or {}).get("image_shape") or "").strip()
    if not shape.isdigit():
        return None
    width = str(hyperparams.get("image_width") or shape).strip()
    return (int(width) if width.isdigit() else int(shape)), int(shape)


def labels_for(num_classes, labels=None, hyperparams=None):
    """Class names: --labels, else hyperparams.json's class_names/labels, else class0..classN-1."""
    if labels is None and hyperparams:
        names = hyperparams.get("class_names") or hyperparams.get("labels")
        if isinstance(names, str):
            names = [n.strip() for n in names.strip("[]").replace('"', "").split(",") if n.strip()]
        if names and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            raise RoadedgeError("hyperparams.json: class_names {}: expected a list of class names".format(_short(names)))
        labels = names or None
    if labels is None:
        labels = ["class%d" % i for i in range(num_classes)]
    return list(labels)


def model_metadata(name, labels, input_shape, preprocessing, output_name, label_offset, nms, engine, precision, sources):
    n, c, h, w = input_shape
    embedded = preprocessing.get("embedded", False)
    return {
        "schema": SCHEMA,
        "name": name,
        "task": "detection",
        "labels": labels,
        "num_classes": len(labels),
        "input": {
            "name": "data",
            "height": h,
            "width": w,
            "shape": [n, -1, -1, c] if embedded else [n, c, h, w],
            "layout": "NHWC" if embedded else "NCHW",
            "dtype": "uint8" if embedded else "float32",
            "color_order": "BGR" if embedded else preprocessing["color_order"],
        },
        "preprocessing": preprocessing,
        "output": {
            "name": output_name,
            "format": "detection_output",
            "row": ["image_id", "label", "confidence", "xmin", "ymin", "xmax", "ymax"],
            "label_offset": label_offset,
        },
        "nms": nms,
        "engine": engine,
        "precision": precision,
        "converter": "roadedge " + __version__,
        "sources": sources,
    }


def ir_label_offset(xml_path):
    """DetectionOutput label minus MXNet class_id for an IR: 0 with decrease_label_id (MXNet mode), else 1.

    None when the IR has no DetectionOutput.
    """
    root = ET.parse(xml_path).getroot()
    for layer in root.iter("layer"):
        if layer.get("type") == "DetectionOutput":
            data = layer.find("data")
            flag = (data.get("decrease_label_id") if data is not None else None) or "false"
            background = int(data.get("background_label_id", "0")) if data is not None else 0
            if flag.lower() in ("true", "1"):
                return 0
            return 1 if background == 0 else 0
    return None


def check_ir_weights(xml_path):
    """An IR's .bin must hold the bytes its .xml reads (every Const's offset + size): a .bin cut short or missing is
    one RoadedgeError naming it (OpenVINO says only 'Incorrect weights in bin file!'). An .xml that does not parse
    is left to OpenVINO, which says where."""
    bin_path = os.path.splitext(xml_path)[0] + ".bin"
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError, ValueError):
        return
    needed = 0
    for data in root.iter("data"):
        try:
            offset, size = int(data.get("offset", "")), int(data.get("size", ""))
        except ValueError:
            continue
        needed = max(needed, offset + size)
    if not needed:
        return
    try:
        have = os.path.getsize(bin_path)
    except OSError as err:
        raise RoadedgeError("{}: cannot read the IR's weights ({}); {} needs {} bytes of weights beside it".format(
            bin_path, os_reason(err), os.path.basename(xml_path), needed)) from None
    if have < needed:
        raise RoadedgeError("{}: truncated IR weights: {} bytes, but {} reads up to byte {} (copy the .bin again)".format(
            bin_path, have, os.path.basename(xml_path), needed))


# the raw output each tensor format's reader takes: rank, the sizes it fixes {axis: size}, and what it is
OUTPUT_TENSORS = {
    "detection_output": (4, {0: 1, 1: 1, 3: 7}, "[1, 1, N, 7] DetectionOutput rows (image_id, label, conf, box)"),
    "multibox_detection": (3, {0: 1, 2: 6}, "[1, N, 6] MultiBoxDetection rows (class, score, box)"),
}


def check_output_shape(shape, output_format, where, backend):
    """The model's output must be the tensor its metadata's output.format says, or every frame's decoding fails.

    `shape`: the output's dimensions (None for a dynamic one), or None when even the rank is dynamic (then only
    what is known is checked). Formats that are no tensor (sagemaker_json, awscam_ssd) are refused; formats this
    module does not know are left to the task's decoder.
    """
    if output_format in ("sagemaker_json", "awscam_ssd"):
        raise RoadedgeError("{}: output.format {}: the {} backend's output is a tensor; expected {}".format(
            where, output_format, backend, " or ".join(sorted(OUTPUT_TENSORS))))
    if output_format not in OUTPUT_TENSORS or shape is None:
        return
    rank, fixed, text = OUTPUT_TENSORS[output_format]
    if len(shape) != rank or any(shape[axis] is not None and shape[axis] != size for axis, size in fixed.items()):
        shown = "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
        raise RoadedgeError("{}: the model's output has shape {}, but its metadata says output.format {}: {}; is the "
                            "metadata (or the model) another model's?".format(where, shown, output_format, text))


REQUIRED = ("labels", "input", "output", "preprocessing")


def metadata_path_for(model_path):
    """Where a model's metadata lives by default: beside it, same name, .json."""
    return os.path.splitext(model_path)[0] + ".json"


def read_metadata(model_path, metadata_path=""):
    """The roadedge.model/1 metadata of a model (a dict), or None when there is none beside it.

    An explicit `metadata_path` must exist. A file that is not JSON or lacks a required field is a one-line
    RoadedgeError naming the file and the field.
    """
    path = metadata_path or metadata_path_for(model_path)
    if not os.path.isfile(path):
        if metadata_path:
            raise RoadedgeError("{}: no such model metadata file".format(metadata_path))
        return None
    try:
        with io.open(path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except RecursionError:
        raise RoadedgeError("{}: not valid JSON (nested too deeply)".format(path)) from None
    except ValueError as err:  # also text that is not UTF-8
        raise RoadedgeError("{}: not valid JSON ({})".format(path, err)) from None
    except OSError as err:
        raise RoadedgeError("{}: cannot read ({})".format(path, err.strerror or err)) from None
    if not isinstance(meta, dict):
        raise RoadedgeError("{}: expected a JSON object (roadedge.model/1 metadata)".format(path))
    for key in REQUIRED:
        if key not in meta:
            raise RoadedgeError("{}: field '{}' missing; expected roadedge.model/1 metadata from roadedge convert".format(
                path, key))
    ModelInfo.from_metadata(meta, where=path)  # the fields the runtime reads are checked here, once
    return meta


class ModelInfo(object):
    """What a backend tells the loop about its model (read-only by convention).

    name, sha256     identify the model in messages (sha256 of the weights; zeros when unknown)
    task             "detection" (later "segmentation"): picks the decoder and the annotator
    labels           class codes in class-index order (index 0 is the first class, never background)
    input_size       (width, height) of the network input
    output_format    how the raw output reads: detection_output, multibox_detection, awscam_ssd, sagemaker_json
    label_offset     raw label minus class index (1 when an IR's DetectionOutput keeps the background at 0)
    preprocessing    colour order, mean, scale, resize, embedded
    metadata         the whole roadedge.model/1 dict
    """

    __slots__ = ("name", "sha256", "task", "labels", "input_size", "output_format", "label_offset", "preprocessing",
                 "metadata")

    def __init__(self, *, name, labels, input_size, output_format, task="detection", label_offset=0, sha256="0" * 64,
                 preprocessing=None, metadata=None):
        self.name, self.sha256, self.task = name, sha256, task
        self.labels = tuple(labels)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.output_format, self.label_offset = output_format, int(label_offset)
        self.preprocessing = dict(preprocessing or {})
        self.metadata = dict(metadata or {})

    @classmethod
    def from_metadata(cls, metadata, *, name="", sha256="0" * 64, output_format=None, where="model metadata"):
        """From a roadedge.model/1 dict; `output_format` overrides the file's (awscam parses the output itself).

        Every field the runtime reads is checked here: a wrong type or an impossible value is one RoadedgeError
        naming `where`, the field and what was expected.
        """
        def fail(field, value, expected):
            return RoadedgeError("{}: {}: {}; expected {}".format(where, field, _short(value), expected))

        if not isinstance(metadata, dict):
            raise fail("metadata", metadata, "a JSON object (roadedge.model/1)")
        if "labels" not in metadata:
            raise RoadedgeError("{}: field 'labels' missing; expected the class codes in class-index order".format(where))
        labels = metadata["labels"]
        if not isinstance(labels, list) or not all(_is_text_or_int(label) for label in labels):
            raise fail("labels", labels, "a list of class codes (text) in class-index order")
        if not labels:
            raise RoadedgeError("{}: labels: empty; expected the class codes in class-index order".format(where))
        inputs = metadata.get("input")
        if not isinstance(inputs, dict):
            raise fail("input", inputs, "an object with width and height")
        size = []
        for key in ("width", "height"):
            value = inputs.get(key)
            if _integer(value) is None or not 0 < _integer(value) <= MAX_INPUT_SIDE:
                raise fail("input." + key, value, "a whole number of pixels in 1..{}".format(MAX_INPUT_SIDE))
            size.append(_integer(value))
        output = metadata.get("output") or {}
        if not isinstance(output, dict):
            raise fail("output", output, "an object with format and label_offset")
        offset = output.get("label_offset", 0) or 0
        if _integer(offset) is None or abs(_integer(offset)) > len(labels):
            raise fail("output.label_offset", offset, "a whole number (0 or 1 for SSDs) no larger than the label count")
        fmt = output_format or output.get("format") or "detection_output"
        if not isinstance(fmt, str):
            raise fail("output.format", fmt, "a format name such as detection_output")
        for key in ("name", "task"):
            if metadata.get(key) is not None and not isinstance(metadata[key], str):
                raise fail(key, metadata[key], "text")
        preprocessing = _checked_preprocessing(metadata.get("preprocessing"), fail)
        return cls(name=metadata.get("name") or name, sha256=sha256, task=metadata.get("task") or "detection",
                   labels=[str(label) for label in labels], input_size=size, output_format=fmt,
                   label_offset=_integer(offset), preprocessing=preprocessing, metadata=metadata)

    def __repr__(self):
        return "ModelInfo(name={!r}, task={!r}, labels={}, input_size={}, output_format={!r}, label_offset={})".format(
            self.name, self.task, list(self.labels), self.input_size, self.output_format, self.label_offset)


def _short(value, limit=60):
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_text_or_int(value):
    return isinstance(value, str) or isinstance(value, int) and not isinstance(value, bool)


def _integer(value):
    """A JSON whole number (300 or 300.0) as an int, else None: no text, booleans, NaN or infinities."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value)


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _checked_preprocessing(preprocessing, fail):
    """The preprocessing record's fields the runtime reads (all optional), checked; a dict."""
    if preprocessing is None:
        return {}
    if not isinstance(preprocessing, dict):
        raise fail("preprocessing", preprocessing, "an object (color_order, mean, scale, resize, embedded)")
    checks = {
        "color_order": (lambda v: v in ("RGB", "BGR"), "RGB or BGR"),
        "mean": (lambda v: isinstance(v, list) and len(v) in (1, 3) and all(_finite(x) for x in v),
                 "a list of 3 finite numbers (one per channel)"),
        "scale": (lambda v: _finite(v) and v > 0 or isinstance(v, list) and len(v) in (1, 3)
                  and all(_finite(x) and x > 0 for x in v), "a finite number > 0 or a list of 3 (one per channel)"),
        "resize": (lambda v: v in ("stretch", "letterbox"), "stretch or letterbox"),
        "embedded": (lambda v: isinstance(v, bool), "true or false"),
    }
    for key, (valid, expected) in checks.items():
        if key in preprocessing and not valid(preprocessing[key]):
            raise fail("preprocessing." + key, preprocessing[key], expected)
    return preprocessing
