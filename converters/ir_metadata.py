"""The metadata JSON written next to every IR: what the runtime needs and must never guess.

Labels, input size and layout, preprocessing (colour order, mean, scale,
whether it is folded into the IR), the output format with its label offset,
the NMS settings the deploy graph was made with, and sha256 of the sources.
"""
import xml.etree.ElementTree as ET

from edge import __version__

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
