"""OpenVINO backend: an IR (.xml + the metadata JSON `roadedge convert` writes beside it), an ONNX file,
or a SageMaker/MXNet model converted in memory by roadedge's own converter (no MXNet needed).

Frames go in as they come (BGR uint8, any size). By default they are resized to
the model's input on the host (OpenCV, bilinear: a third of a millisecond for
1280x720 on one core, where the same resize inside OpenVINO cost the CPU plugin
7 % of its throughput) and made the network's float input there too (colour
order, mean and scale, NCHW: cv2.dnn.blobFromImage, 0.3 ms for 448x256, where
OpenVINO's PrePostProcessor cost the CPU plugin 2.5-2.8 ms of core time a
frame, 8 % of the demo segmentation model's throughput). `preprocess: device`
compiles colour, mean, scale and layout into the model (PrePostProcessor) and
submits uint8 frames; `resize: device` resizes inside OpenVINO as well,
compiled for the frame size on the first frame (for devices that do it better).
`requests` infer requests run asynchronously in a ring, so decoding and
drawing frame k overlaps inference of the next frames.

A segmentation model with logits out is read as its class-index mask: the argmax over classes is taken here with
OpenCV's SIMD compare and max as each result is collected (0.6 ms for the demo model's 15 x 256 x 448 logits where
numpy took 5 ms), so the backend reports `segmentation_mask` to the decoder. An IR whose argmax `roadedge convert
--argmax` folded in (ReduceMax, Equal, Select, ReduceMin over the classes) is compiled up to its logits and the
same first-of-the-largest index taken here: OpenVINO's four passes over the logits cost the demo model 10 % of its
throughput in benchmark_app and more end to end, where they compete with video decoding for the caches.
"""
import os

import cv2
import numpy as np

from edge.backends.base import Backend, InferenceStalled
from edge.plugins import Option, at_least, list_of
from roadedge.core.errors import RoadedgeError, openvino_reason
from roadedge.core.fsutil import sha256_file
from roadedge.core.model_metadata import ModelInfo, channel_scale, check_ir_weights, check_output_shape, read_metadata
from roadedge.core.openvino_preprocessing import add_preprocessing
from roadedge.core.weight_pages import WeightPages, constant_address, trim_heap

TYPE = "openvino"
LOGITS, MASK = "segmentation_logits", "segmentation_mask"
BUNDLED_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models",
                             "road-damage-ssd.xml")
OPTIONS = {
    "model": Option(str, "bundled", "IR .xml, .onnx, MXNet prefix / model.tar.gz, 'bundled' (the demo model), or "
                   "s3://bucket/prefix/ or a folder of model versions (updated while running: model_updates)"),
    "metadata": Option(str, "", "model metadata JSON (default: beside the model, same name .json)"),
    "device": Option(str, "CPU", "OpenVINO device: CPU, GPU, NPU, AUTO, ..."),
    "performance_hint": Option(str, "LATENCY", "LATENCY or THROUGHPUT",
                               choices=("LATENCY", "THROUGHPUT", "latency", "throughput")),
    "precision": Option(str, "f32", "inference precision hint: f32, f16, bf16, or 'default' (the plugin's choice)",
                        choices=("f32", "f16", "bf16", "default")),
    "threads": Option(int, 0, "inference threads (0: the plugin's default)", check=at_least(0)),
    "requests": Option(int, 2, "asynchronous infer requests in flight (1: synchronous; 0: the device's optimal number, "
                       "times 4 under the THROUGHPUT hint)", check=at_least(0)),
    "resize": Option(str, "host", "where frames are resized to the model input: host (OpenCV, before submitting) or "
                     "device (inside OpenVINO's preprocessing)", choices=("host", "device")),
    "preprocess": Option(str, "host", "where colour order, mean, scale and layout are applied: host (OpenCV, with the "
                         "host resize) or device (compiled into the model, uint8 frames submitted)",
                         choices=("host", "device")),
    "cache_dir": Option(str, "", "OpenVINO model cache folder (compiled blobs; speeds up later starts)"),
    "release_weight_pages": Option(bool, True, "give back the mapped weights' pages OpenVINO reads while compiling "
                                   "(the plugin keeps its own copy; Linux)"),
    "input_size": Option(list, [], "[width, height] for ONNX or MXNet models without metadata",
                         check=list_of(int, 2, low=1)),
    "labels": Option(list, [], "class names in class-id order, for models without metadata", check=list_of(str)),
}


THROUGHPUT_QUEUE = 4  # requests per optimal request under the THROUGHPUT hint, see auto_requests


def auto_requests(optimal, hint):
    """`requests: 0`: the device's optimal number of requests, times THROUGHPUT_QUEUE under the THROUGHPUT hint.

    The optimum keeps every stream busy when the application's own work per frame is free, as in benchmark_app. The
    loop's is not (decoding the video, the task's decoder, the sinks: 5-9 ms a frame in Python), and while it finishes
    one frame a stream with nothing queued idles. With 4 x the optimum the demo segmentation model went from 48.5 to
    60.1 FPS end to end on 2 cores (benchmark_app: 64.9); latency grows with the queue, which the LATENCY hint avoids.
    """
    optimal = max(1, int(optimal))
    return optimal * THROUGHPUT_QUEUE if str(hint).upper() == "THROUGHPUT" else optimal


def bundled_model():
    return BUNDLED_MODEL


def _default_metadata(model, options):
    """Metadata for a model that has none (ONNX): input size and labels from the options."""
    shape = model.inputs[0].get_partial_shape()
    size = options["input_size"] or ([shape[3].get_length(), shape[2].get_length()] if shape.rank.get_length() == 4
                                     and shape[2].is_static and shape[3].is_static else None)
    if not size or not options["labels"]:
        raise RoadedgeError("{}: no metadata JSON beside the model; set backend.input_size [width, height] and "
                            "backend.labels".format(options["model"]))
    return {"name": os.path.splitext(os.path.basename(options["model"]))[0], "labels": list(options["labels"]),
            "input": {"width": int(size[0]), "height": int(size[1]), "name": model.inputs[0].get_any_name()},
            "output": {"format": "detection_output", "label_offset": 0},
            "preprocessing": {"color_order": "RGB", "mean": [0.0, 0.0, 0.0], "scale": 1.0, "resize": "stretch",
                              "embedded": False}}


def _load_mxnet(core, path, options):
    """A SageMaker model.tar.gz or MXNet prefix, converted in memory (edge.conversion)."""
    from edge.conversion import is_segmentation, load_deploy, load_segmentation, to_openvino

    if is_segmentation(path):
        return load_segmentation(path, options["input_size"] or None, options["labels"] or None)
    if not options["input_size"]:
        raise RoadedgeError("{}: an MXNet model needs backend.input_size [width, height] (--input-size)".format(path))
    width, height = (int(v) for v in options["input_size"])
    deploy = load_deploy(path, 0, options["labels"] or None)
    model = to_openvino(deploy, (width, height))
    meta = {"name": os.path.basename(path), "labels": deploy.labels, "input": {"width": width, "height": height},
            "output": {"format": "detection_output", "label_offset": 0},
            "preprocessing": dict(deploy.preprocessing, embedded=False)}
    return model, meta


def _output_shape(model):
    """The first output's dimensions (None where dynamic), or None when its rank is dynamic or there is no output."""
    if not model.outputs:
        return None
    shape = model.outputs[0].get_partial_shape()
    if shape.rank.is_dynamic:
        return None
    return [dim.get_length() if dim.is_static else None for dim in shape]


class OpenVinoBackend(Backend):
    """Asynchronous OpenVINO inference in submission order: submit(image) -> request, collect(request) -> raw."""

    def __init__(self, core, network, metadata, options, model_path):
        self.core, self.network, self.options, self.model_path = core, network, options, model_path
        self.ir_weights = os.path.splitext(model_path)[0] + ".bin" if model_path.lower().endswith(".xml") else ""
        weights = self.ir_weights or model_path
        self.model = ModelInfo.from_metadata(metadata, name=os.path.basename(model_path), where=model_path,
                                             sha256=sha256_file(weights) if os.path.isfile(weights) else "0" * 64)
        check_output_shape(_output_shape(network), self.model.output_format, model_path, TYPE)
        self.host_argmax = self.model.output_format == LOGITS
        self.network_is_file = bool(self.ir_weights)  # the graph compiled is the IR file's, unchanged
        if self.model.output_format == MASK:
            logits = folded_argmax_input(network)
            if logits is not None:
                self.network, self.host_argmax = _model_with_output(network, logits), True
                self.network_is_file = False
        if self.host_argmax:  # the decoder gets the class-index mask read_output makes of the logits
            self.model = ModelInfo.from_metadata(metadata, name=self.model.name, where=model_path, sha256=self.model.sha256,
                                                 output_format=MASK)
        self.embedded = bool(self.model.preprocessing.get("embedded"))
        self.requests = max(1, int(options["requests"]))
        self.host_resize = options.get("resize", "host") == "host" and not self.embedded
        self.host_preprocess = self.host_resize and options.get("preprocess", "host") == "host"
        self.normalise = HostPreprocessing(self.model.preprocessing) if self.host_preprocess else None
        self.preprocessing_in_model = not self.embedded and not self.host_preprocess  # add_preprocessing compiled in
        self.compiled, self.frame_size, self.ring, self.next_slot = None, None, [], 0
        self.compiled_size, self.inputs = None, []

    def _config(self):
        config = {"PERFORMANCE_HINT": self.options["performance_hint"].upper()}
        precision = self.options["precision"].lower()
        if precision != "default" and self.options["device"].upper().startswith("CPU"):
            config["INFERENCE_PRECISION_HINT"] = precision
        if self.options["threads"]:
            config["INFERENCE_NUM_THREADS"] = int(self.options["threads"])
        if self.options["cache_dir"]:
            config["CACHE_DIR"] = self.options["cache_dir"]
        return config

    def network_for(self, frame_size):
        """(the model with the runtime's preprocessing folded in, the image size it takes): the model input's when
        frames are resized on the host, else `frame_size` (None: any size, resized inside OpenVINO)."""
        size = self._compiled_size(frame_size)
        if self.network is None:
            raise RoadedgeError("{}: the model was released after compiling (host resize compiles once)".format(
                self.model_path))
        model = self.network.clone()
        if self.preprocessing_in_model:
            model = add_preprocessing(model, self.model.preprocessing, size)
        return model, size

    def _compiled_size(self, frame_size):
        return tuple(self.model.input_size) if self.host_resize else (tuple(frame_size) if frame_size else None)

    def host_input(self, image, size):
        """The batch a model from network_for(...) of image size `size` takes for this BGR u8 frame: the network's
        float NCHW input (host preprocessing), else the BGR u8 NHWC frame."""
        if self.host_resize and (image.shape[1], image.shape[0]) != size:
            image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        if self.normalise is not None:
            return self.normalise(image)
        return np.ascontiguousarray(image)[None]

    def compile(self, frame_size):
        """Compile for frames of `frame_size` (width, height); done on the first frame and on a size change (with the
        host resize, only once: the compiled model takes the model's input size whatever the frames' size)."""
        if self.compiled is not None and self.host_resize:
            self.frame_size = tuple(frame_size)
            return
        model, compiled_size = self._compile_source(frame_size)
        try:
            with self._weight_pages(model):
                self.compiled = self.core.compile_model(model, self.options["device"], self._config())
        except RuntimeError as err:
            raise RoadedgeError("backend.device {}: OpenVINO cannot compile {} there ({})".format(
                self.options["device"], self.model_path, openvino_reason(err))) from None
        if not int(self.options["requests"]):
            self.requests = auto_requests(int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")),
                                          self.options["performance_hint"])
        self.ring = [self.compiled.create_infer_request() for _ in range(self.requests)]
        self.inputs = [None] * len(self.ring)
        self.frame_size, self.compiled_size, self.next_slot = tuple(frame_size), compiled_size, 0
        if self.host_resize:  # compiled once for good: the read model's weights need not stay resident beside the
            del model          # compiled copy (the .bin's mapped pages go with the last reference)
            self.network = None
        trim_heap()

    def _weight_pages(self, model):
        """While compiling, the pages of the weights file and the cache's blobs OpenVINO maps are given back as it reads
        them (roadedge.core.weight_pages): the CPU plugin keeps its own copy of the weights."""
        if not self.options.get("release_weight_pages", True):
            return WeightPages()
        address = None if isinstance(model, str) else constant_address(model)  # a path: OpenVINO maps it itself
        return WeightPages(files=[self.ir_weights], folders=[self.options["cache_dir"]], pinned=[address] if address else [])

    def _compile_source(self, frame_size):
        """(what to compile, the image size it takes): the IR's path where the model compiled is the file as read and
        a model cache is used, so a cache hit never reads the weights (given the ov.Model, OpenVINO hashes every weight
        for the cache key, which made the .bin resident beside the cached blob: ResNet-50 SSD 300 104 MB more at peak);
        else network_for's model."""
        if self.options["cache_dir"] and self.network_is_file and not self.preprocessing_in_model:
            return self.model_path, self._compiled_size(frame_size)
        return self.network_for(frame_size)

    def prepare(self, frame_size):
        """Compile for frames of this size unless already done."""
        if self.compiled is None or tuple(frame_size) != self.frame_size:
            self.compile(frame_size)

    def submit(self, image):
        """Start inference on a BGR frame of the prepared size; blocks only when every request is busy."""
        slot = self.next_slot
        request = self.ring[slot]
        self.next_slot = (slot + 1) % len(self.ring)
        batch = self.host_input(image, self.compiled_size)
        _settled(request)  # the caller collects in order, so this is normally already done
        self.inputs[slot] = batch  # BGR u8 NHWC; kept until the slot comes round
        request.start_async({0: batch}, share_inputs=True)  # no copy: the request reads the array itself
        return request

    def collect(self, request, timeout_s=None):
        """(raw output array, the inference's own milliseconds); InferenceStalled after timeout_s."""
        if timeout_s and not request.wait_for(int(timeout_s * 1000)):
            raise InferenceStalled("inference did not return within {:g} s".format(timeout_s))
        request.wait()
        return self.read_output(request.get_output_tensor(0).data), float(request.latency)

    def read_output(self, data):
        """The raw output the decoder for self.model.output_format reads, from the first output tensor's data (a
        view into the request's memory: copied or reduced here, before the request runs again)."""
        return class_index(data) if self.host_argmax else data.copy()

    def infer(self, image):
        """One frame, start to end: the raw output (tools and tests; the loop uses submit and collect)."""
        self.prepare((image.shape[1], image.shape[0]))
        return self.collect(self.submit(image))[0]

    def close(self):
        for request in self.ring:
            _settled(request)
        self.ring, self.compiled, self.inputs = [], None, []


def folded_argmax_input(model):
    """The logits whose argmax the model's single output is, when that output is the converter's argmax fold
    (ReduceMin over the classes of Select(Equal(logits, ReduceMax(logits)), class index, C)); None otherwise."""
    if len(model.outputs) != 1:
        return None
    node = model.get_results()[0].input_value(0).get_node()
    chain = []
    for expected in ("ReduceMin", "Select", "Equal"):
        if node.get_type_name() != expected:
            return None
        chain.append(node)
        node = node.input_value(0).get_node()
    equal = chain[-1]
    logits, largest = equal.input_value(0), equal.input_value(1).get_node()
    if largest.get_type_name() != "ReduceMax" or largest.input_value(0) != logits:
        return None
    shape = logits.get_partial_shape()
    if shape.rank.is_dynamic or shape.rank.get_length() != 4 or not shape[1].is_static:
        return None
    classes = shape[1].get_length()
    index = chain[1].input_value(1).get_node()
    if index.get_type_name() != "Constant" or not np.array_equal(
            np.asarray(index.get_data()).reshape(-1), np.arange(classes)):
        return None
    return logits


def _model_with_output(model, output):
    """The model cut at `output` (its parameters, one result)."""
    import openvino as ov
    import openvino.opset13 as ops

    return ov.Model([ops.result(output)], model.get_parameters(), model.get_friendly_name())


class HostPreprocessing(object):
    """BGR u8 HxWx3 frame of the model's input size -> the network's float32 NCHW batch: (pixel - mean) x scale per
    channel, in the metadata's colour order (what add_preprocessing compiles into a model, done by OpenCV)."""

    def __init__(self, preprocessing):
        self.swap = preprocessing.get("color_order", "RGB") == "RGB"
        self.mean = tuple(float(v) for v in preprocessing.get("mean", (0.0, 0.0, 0.0)))  # the network's channel order
        scale = channel_scale(preprocessing)
        self.scale = None if all(value == 1.0 for value in scale) else np.array(scale, np.float32).reshape(1, 3, 1, 1)

    def __call__(self, image):
        # blobFromImage swaps B and R first and subtracts `mean` given in the swapped (the network's) order
        batch = cv2.dnn.blobFromImage(image, 1.0, None, self.mean, swapRB=self.swap, crop=False)
        if self.scale is not None:
            batch *= self.scale
        return batch


def class_index(logits):
    """The uint8 [H, W] index of the largest of [1, C, H, W] (or [C, H, W]) float logits, the first on a tie (numpy's
    argmax); C <= 256. One compare, one masked copy and one max per class plane, all OpenCV SIMD."""
    planes = logits[0] if logits.ndim == 4 else logits
    best = np.array(planes[0], np.float32)
    index = np.zeros(best.shape, np.uint8)
    klass = np.empty(best.shape, np.uint8)
    for k in range(1, planes.shape[0]):
        plane = np.ascontiguousarray(planes[k], np.float32)
        larger = cv2.compare(plane, best, cv2.CMP_GT)
        klass.fill(k)
        cv2.copyTo(klass, larger, index)
        cv2.max(best, plane, dst=best)
    return index


def _settled(request):
    """Wait for a request's inference to end. One that failed raised its error when collected (a model update's
    version on probation, edge.models_update.swap); OpenVINO raises it again on every wait until the request is
    started anew, which must not fail the next frame's submit or close()."""
    try:
        request.wait()
    except RuntimeError:
        pass


def open(options, context=None):  # noqa: A001 - the plugin entry point's name
    from roadedge.core.openvino_core import shared_core

    # OpenVINO's streams keep every core busy; OpenCV's worker threads would only wait for them (the host resize of a
    # 1280x720 frame took 2.1 ms with OpenCV's two threads during inference, 0.33 ms on one thread alone)
    cv2.setNumThreads(1)
    path = bundled_model() if options["model"] in ("", "bundled") else os.path.expanduser(options["model"])
    core = shared_core()
    is_mxnet = path.endswith(".tar.gz") or os.path.isfile(path + "-symbol.json") or os.path.isfile(
        os.path.join(path, "model_algo-1"))
    if not is_mxnet and not os.path.isfile(path):
        raise RoadedgeError("backend.model {}: no such file; expected an IR .xml, an .onnx file, an MXNet prefix or "
                            "model.tar.gz".format(path))
    if is_mxnet:
        model, metadata = _load_mxnet(core, path, options)
    else:
        if path.lower().endswith(".xml"):
            check_ir_weights(path)  # a .bin cut short: OpenVINO would say only 'Incorrect weights in bin file!'
        try:
            model = core.read_model(path)
        except RuntimeError as err:
            raise RoadedgeError("backend.model {}: OpenVINO cannot read it ({})".format(path, openvino_reason(err))) from None
        metadata = read_metadata(path, options["metadata"]) or _default_metadata(model, options)
        if options["labels"]:
            metadata["labels"] = list(options["labels"])
    return OpenVinoBackend(core, model, metadata, options, path)
