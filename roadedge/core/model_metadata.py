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
import os
import xml.etree.ElementTree as ET

from roadedge import __version__
from roadedge.core.errors import RoadedgeError

SCHEMA = "roadedge.model/1"
EXAMPLE_SSD_MEAN = (123.68, 116.779, 103.939)  # MXNet example/ssd's RGB means


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


def labels_for(num_classes, labels=None, hyperparams=None):
    """Class names: --labels, else hyperparams.json's class_names/labels, else class0..classN-1."""
    if labels is None and hyperparams:
        names = hyperparams.get("class_names") or hyperparams.get("labels")
        if isinstance(names, str):
            names = [n.strip() for n in names.strip("[]").replace('"', "").split(",") if n.strip()]
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
    except ValueError as err:
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
        """From a roadedge.model/1 dict; `output_format` overrides the file's (awscam parses the output itself)."""
        try:
            labels = [str(label) for label in metadata["labels"]]
            size = (int(metadata["input"]["width"]), int(metadata["input"]["height"]))
            output = metadata.get("output") or {}
            offset = int(output.get("label_offset", 0) or 0)
        except (KeyError, TypeError, ValueError) as err:
            raise RoadedgeError("{}: field {} missing or not a number; expected labels, input.width, input.height and "
                                "output.label_offset".format(where, err)) from None
        if not labels:
            raise RoadedgeError("{}: labels: empty; expected the class codes in class-index order".format(where))
        if size[0] <= 0 or size[1] <= 0:
            raise RoadedgeError("{}: input: {}x{}; expected a positive width and height".format(where, *size))
        return cls(name=metadata.get("name") or name, sha256=sha256, task=str(metadata.get("task") or "detection"),
                   labels=labels, input_size=size, output_format=output_format or output.get("format") or
                   "detection_output", label_offset=offset, preprocessing=metadata.get("preprocessing"),
                   metadata=metadata)

    def __repr__(self):
        return "ModelInfo(name={!r}, task={!r}, labels={}, input_size={}, output_format={!r}, label_offset={})".format(
            self.name, self.task, list(self.labels), self.input_size, self.output_format, self.label_offset)
