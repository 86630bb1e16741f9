"""Inference on an AWS DeepLens through its `awscam` module (the device's GPU, clDNN under the hood).

    model = awscam.Model(xml_path, {"GPU": 1})           # {"GPU": 0}: CPU
    raw = model.doInference(frame_resized_bgr)            # {output name: ndarray}
    model.parseResult("ssd", raw)                         # {"ssd": [{label, prob, xmin, ymin, xmax, ymax}]}

The frame is stretched to the model input (as AWS's DeepLens samples do);
parseResult's dict is the raw output (format awscam_ssd: boxes in model-input
pixels, labels the IR's DetectionOutput labels), decoded by the loop with the
metadata JSON that `roadedge convert` writes beside the .xml (input size,
labels, label_offset).
`awscam` exists only on the device: it is imported inside open(). Tests use
tests/standins/awscam.py, which runs the IR with OpenVINO on the CPU.
"""
import io
import json
import os
from xml.etree import ElementTree

import cv2

from edge.backends.base import SyncBackend
from edge.plugins import Option
from roadedge.core.errors import RoadedgeError
from roadedge.core.fsutil import sha256_file
from roadedge.core.model_metadata import ModelInfo, check_ir_weights, ir_label_offset

TYPE = "awscam"

OPTIONS = {
    "model": Option(str, None, "path of the OpenVINO IR .xml (DeepLens-optimized); its metadata .json must be beside it"),
    "metadata": Option(str, "", "model metadata JSON (default: beside the model, same name .json)"),
    "device": Option(str, "GPU", "GPU (the DeepLens's Intel GPU) or CPU", choices=("GPU", "CPU", "gpu", "cpu")),
}
DEVICES = {"GPU": 1, "CPU": 0}


def metadata_path(xml_path):
    return (xml_path[:-4] if xml_path.lower().endswith(".xml") else xml_path) + ".json"


def read_metadata(xml_path, path=""):
    """The model metadata dict (beside the IR unless `path`); a one-line RoadedgeError when missing, unreadable or
    not an SSD."""
    path = path or metadata_path(xml_path)
    try:
        with io.open(path, encoding="utf-8") as handle:  # io.open: this module defines open()
            metadata = json.load(handle)
    except FileNotFoundError:
        raise RoadedgeError("model: metadata {} not found{} (`roadedge convert optimize` writes it)".format(
            path, "" if path != metadata_path(xml_path) else " beside the IR")) from None
    except (OSError, ValueError) as err:
        raise RoadedgeError("model: cannot read metadata {}: {}".format(path, " ".join(str(err).split()))) from None
    try:
        width, height = int(metadata["input"]["width"]), int(metadata["input"]["height"])
        labels = list(metadata["labels"])
    except (KeyError, TypeError, ValueError):
        raise RoadedgeError("model: metadata {} lacks input.width/input.height or labels".format(path)) from None
    if metadata.get("task", "detection") != "detection":
        raise RoadedgeError("model: {} is a {} model; the awscam backend runs SSD detection models".format(
            path, metadata.get("task")))
    if not (0 < width <= 1024 and 0 < height <= 1024):
        raise RoadedgeError("model: input {}x{} in {}: DeepLens models take at most 1024 x 1024".format(width, height, path))
    if not labels:
        raise RoadedgeError("model: metadata {} has no labels".format(path))
    return metadata


def _check_ssd_output(xml):
    """parseResult('ssd', ...) reads a DetectionOutput layer: an IR without one (a classifier) is refused at load."""
    try:
        offset = ir_label_offset(xml)
    except (ElementTree.ParseError, OSError, ValueError):  # awscam.Model says what is wrong with such an .xml
        return
    if offset is None:
        raise RoadedgeError("model: {}: the IR has no DetectionOutput layer; the awscam backend runs SSD detection models "
                            "(output.format awscam_ssd, from parseResult('ssd'))".format(xml))


def weights_sha256(xml_path):
    """sha256 of the IR's .bin (what identifies the model in messages); zeros when there is none."""
    weights = os.path.splitext(xml_path)[0] + ".bin"
    return sha256_file(weights) if os.path.isfile(weights) else "0" * 64


class AwscamBackend(SyncBackend):
    """infer(image_bgr) -> parseResult's dict for the frame stretched to the model input."""

    def __init__(self, model, metadata, model_path=""):
        """`model`: a loaded awscam.Model; `metadata`: the IR's metadata dict."""
        self.network = model
        self.model = ModelInfo.from_metadata(metadata, name=os.path.splitext(os.path.basename(model_path))[0],
                                             sha256=weights_sha256(model_path), output_format="awscam_ssd",
                                             where=metadata_path(model_path))

    def infer(self, image_bgr):
        if self.network is None:
            raise RoadedgeError("awscam backend: infer() after close()")
        resized = cv2.resize(image_bgr, self.model.input_size, interpolation=cv2.INTER_LINEAR)
        return self.network.parseResult("ssd", self.network.doInference(resized))

    def close(self):
        self.network = None  # awscam has no unload; dropping the reference frees it


def open(options, context):
    xml = options.get("model")
    if not xml:
        raise RoadedgeError("backend awscam: model is required (path of the IR .xml)")
    xml = os.path.expanduser(str(xml))
    if not os.path.isfile(xml):
        raise RoadedgeError("model: {}: no such file (expected the OpenVINO IR .xml)".format(xml))
    if not os.path.isfile(xml[:-4] + ".bin" if xml.lower().endswith(".xml") else xml + ".bin"):
        raise RoadedgeError("model: {}: the weights .bin beside it are missing".format(xml))
    metadata = read_metadata(xml, os.path.expanduser(str(options.get("metadata") or "")))
    check_ir_weights(xml)
    _check_ssd_output(xml)
    device = str(options.get("device") or "GPU").upper()
    if device not in DEVICES:
        raise RoadedgeError("device: {!r} is not GPU or CPU".format(options.get("device")))
    try:
        import awscam
    except ImportError:
        raise RoadedgeError("backend awscam: the awscam module is not installed; it exists only on an AWS DeepLens "
                            "(use the openvino backend elsewhere)") from None
    log = (context or {}).get("log")
    if log is not None:
        log.info("awscam: loading %s on the %s (the first load on a DeepLens can take minutes)", xml, device)
    try:
        model = awscam.Model(xml, {"GPU": DEVICES[device]})
    except Exception as err:  # awscam's own errors: keep them to one line
        reason = " ".join(str(err).split()) or type(err).__name__
        raise RoadedgeError("model: awscam cannot load {}: {}".format(xml, reason)) from None
    return AwscamBackend(model, metadata, xml)
