"""The model `roadedge serve` answers with: opened by the runtime's OpenVINO backend (IR, ONNX, SageMaker model.tar.gz),
compiled once for images of any size (the backend's preprocessing: the image resized to the model input as the backend
resizes frames, colour, layout and mean/scale folded into OpenVINO), and decoded
by the runtime's task decoders, so an answer says what `roadedge run` says about the same image.

Inference runs on a fixed pool of infer requests (`workers`); the request threads decode the image before and the
answer after, so OpenVINO's streams stay busy while Python works.
"""
import glob
import json
import os
import queue
import threading

import numpy as np

from edge.processing.geometry import Resize
from edge.tasks import task_for
from roadedge.core.errors import RoadedgeError, openvino_reason
from roadedge.core.seglabels import index_png_bytes

JSON = "application/json"
PNG = "image/png"
ANSWERS = {"detection": (JSON,), "segmentation": (PNG, JSON)}  # per task, the first is the default answer
SAGEMAKER_MODEL_DIR = "/opt/ml/model"  # where SageMaker unpacks the model's model.tar.gz in the container


def find_model(path):
    """The model file in `path`: 'bundled' / '' -> the bundled detector; a folder (SageMaker's /opt/ml/model) -> its one
    IR .xml, else its .onnx, else a model.tar.gz, else an MXNet PREFIX-symbol.json's prefix; a file -> itself."""
    if path in ("", "bundled"):
        return "bundled"
    path = os.path.expanduser(path)
    if os.path.isdir(path):
        for pattern in ("*.xml", "*.onnx", "*.tar.gz", "*-symbol.json"):
            found = sorted(glob.glob(os.path.join(path, pattern)))
            if len(found) > 1:
                raise RoadedgeError("model {}: {} {} files ({}); expected one model in the folder".format(
                    path, len(found), pattern[1:], ", ".join(os.path.basename(f) for f in found)))
            if found:
                return found[0][: -len("-symbol.json")] if pattern == "*-symbol.json" else found[0]
        raise RoadedgeError("model {}: no model in the folder; expected an IR .xml (with its .bin and .json), an .onnx, "
                            "a model.tar.gz or an MXNet PREFIX-symbol.json".format(path))
    if not os.path.isfile(path) and not os.path.isfile(path + "-symbol.json"):
        raise RoadedgeError("model {}: no such file or folder".format(path))
    return path


def detection_answer(found):
    """SageMaker object detection's JSON: [class index, score, xmin, ymin, xmax, ymax] per box, normalised to the image."""
    return {"prediction": [[float(d.class_index), float(d.score)] + [min(max(float(v), 0.0), 1.0) for v in d.box]
                           for d in found]}


def segmentation_answer(result, width, height):
    """The figures of a segmentation (roadedge.segmentation/1's, without the envelope): shares per class index, the
    classes present largest first, drivable share, free distance ahead."""
    free = None
    if result.free_rows is not None:
        free = {"rows": int(result.free_rows), "share": round(float(result.free_share), 6)}
    return {"width": int(width), "height": int(height), "labels": list(result.labels),
            "shares": [round(float(share), 6) for share in result.shares],
            "classes": [{"label": result.labels[index], "share": round(share, 6)} for index, share in result.present()],
            "drivable_share": None if result.drivable is None else round(float(result.drivable), 6),
            "free_distance": free}


class ServedModel(object):
    """predict(BGR image, answer type) -> (body bytes, content type); thread-safe, `workers` inferences at a time."""

    def __init__(self, backend, settings, hint="THROUGHPUT", workers=0):
        self.backend, self.model, self.settings = backend, backend.model, settings
        self.task = task_for(self.model)
        if self.model.task not in ANSWERS:
            raise RoadedgeError("model {}: task {}; serve answers {}".format(self.model.name, self.model.task,
                                                                            " and ".join(ANSWERS)))
        self.answers = ANSWERS[self.model.task]
        self.decoder(threading.local())  # a decoder now: a bad setting is an error before anything is served
        network, self.image_size = backend.network_for(None)  # BGR u8 NHWC: the model input's size, or any size
        config = {"PERFORMANCE_HINT": hint.upper()}
        if backend.options["device"].upper().startswith("CPU"):
            config["INFERENCE_PRECISION_HINT"] = backend.options["precision"]
        try:
            self.compiled = backend.core.compile_model(network, backend.options["device"], config)
        except RuntimeError as err:
            raise RoadedgeError("device {}: OpenVINO cannot compile {} there ({})".format(
                backend.options["device"], backend.model_path, openvino_reason(err))) from None
        self.workers = int(workers) or int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.idle = queue.Queue()
        for _ in range(self.workers):
            self.idle.put(self.compiled.create_infer_request())
        self.local = threading.local()

    @property
    def name(self):
        return self.model.name

    def decoder(self, local=None):
        """This thread's decoder: the segmentation one keeps per-size caches, so threads never share one."""
        local = local if local is not None else self.local
        if getattr(local, "decode", None) is None:
            local.decode = self.task.decoder(self.model, self.settings[self.task.SECTION])
        return local.decode

    def infer(self, image):
        """The raw output for one BGR uint8 image, on the next idle infer request (waits for one)."""
        request = self.idle.get()
        try:
            request.infer({0: self.backend.host_input(image, self.image_size)})
            return self.backend.read_output(request.get_output_tensor(0).data)
        finally:
            self.idle.put(request)

    def results(self, image):
        """What `roadedge run` decodes for the image: [Detection] or a SegmentationResult at the image's size."""
        height, width = image.shape[:2]
        resize = Resize((width, height), self.model.input_size, "stretch")
        return self.decoder()(self.infer(image), resize)

    def predict(self, image, answer):
        """(body, content type) of the answer of type `answer` (one of self.answers) for a BGR uint8 image."""
        found = self.results(image)
        if self.model.task == "detection":
            return json.dumps(detection_answer(found)).encode("utf-8"), JSON
        if answer == PNG:
            return index_png_bytes(np.ascontiguousarray(found.mask, np.uint8), found.palette, compress_level=1), PNG
        return json.dumps(segmentation_answer(found, image.shape[1], image.shape[0])).encode("utf-8"), JSON

    def close(self):
        for _ in range(self.workers):
            self.idle.get().wait()


def load_model(path="bundled", hint="THROUGHPUT", workers=0, device="CPU", min_score=None, input_size=None):
    """Open, check and compile the model at `path` (find_model); the profile's default detection and segmentation
    settings, `min_score` (detection) instead of its 0.5 when given."""
    from edge.backends import openvino
    from edge.config import DETECTION
    from edge.plugins import checked, with_defaults
    from edge.tasks.segmentation import OPTIONS as SEGMENTATION

    options = {"model": find_model(path), "device": device, "performance_hint": hint.upper(), "precision": "f32"}
    if input_size:
        options["input_size"] = [int(v) for v in input_size]
    backend = openvino.open(checked(openvino.OPTIONS, options, "serve"))
    detection = with_defaults(DETECTION, {} if min_score is None else {"min_score": float(min_score)})
    settings = {"detection": detection, "segmentation": with_defaults(SEGMENTATION, {})}
    return ServedModel(backend, settings, hint, workers)
