"""MXNet backend: a SageMaker model.tar.gz or an MXNet prefix (training or deploy symbol), run by MXNet itself.

Optional, for the Pi option of the design (MXNet has no aarch64 wheel on PyPI,
so on a Pi it means a self-built MXNet; the OpenVINO backend is the default
everywhere). A training graph is rewritten to the deploy graph in memory
(converters.ssd_deploy, what MXNet's deploy.py does); MultiBoxDetection's
[1, N, 6] rows are decoded with edge.processing.decoders. Preprocessing comes
from the graph (raw RGB for SageMaker's bn_data graphs, example/ssd's mean
otherwise), as `roadedge convert` records it for IRs.
"""
import os

import numpy as np

from edge.errors import RoadedgeError
from edge.plugins import Option

TYPE = "mxnet"
OPTIONS = {
    "model": Option(str, "", "model.tar.gz, or an MXNet prefix (PREFIX-symbol.json + PREFIX-EPOCH.params)"),
    "epoch": Option(int, 0, "params epoch of a prefix"),
    "input_size": Option(list, [], "[width, height] of the network input (default: hyperparams image_shape)"),
    "labels": Option(list, [], "class names in class-id order (default: hyperparams class_names)"),
    "min_score": Option(float, 0.01, "rows below this score are dropped before the pipeline's thresholds"),
    "threads": Option(int, 0, "OMP threads for MXNet (0: its default)"),
}


class MXNetBackend(object):
    """Synchronous: infer(image) -> detections normalised to the model input."""

    resize_mode = "stretch"
    requests = 1

    def __init__(self, module, labels, input_size, preprocessing, min_score, model_name, model_sha256):
        self.module, self.labels, self.input_size = module, list(labels), tuple(input_size)
        self.preprocessing, self.min_score = preprocessing, float(min_score)
        self.model_name, self.model_sha256 = model_name, model_sha256
        self.metadata = {"labels": self.labels, "input": {"width": input_size[0], "height": input_size[1]},
                         "preprocessing": preprocessing, "output": {"format": "multibox_detection", "label_offset": 0}}

    def tensor(self, image):
        width, height = self.input_size
        if image.shape[:2] != (height, width):
            import cv2

            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        resized = image.astype(np.float32)
        if self.preprocessing.get("color_order", "RGB") == "RGB":
            resized = resized[:, :, ::-1]
        resized = (resized - np.asarray(self.preprocessing.get("mean", (0, 0, 0)), np.float32)) \
            * float(self.preprocessing.get("scale", 1.0))
        return np.ascontiguousarray(resized.transpose(2, 0, 1)[None])

    def infer(self, image):
        import mxnet as mx

        from edge.processing.decoders import DetectionFilter, decode_multibox_detection

        self.module.forward(mx.io.DataBatch([mx.nd.array(self.tensor(image))]), is_train=False)
        rows = self.module.get_outputs()[0].asnumpy()
        return decode_multibox_detection(rows, DetectionFilter(self.labels, self.min_score))

    def close(self):
        self.module = None


def _input_size(options, hyperparams, path):
    if options["input_size"]:
        return int(options["input_size"][0]), int(options["input_size"][1])
    shape = (hyperparams or {}).get("image_shape")
    if shape and str(shape).isdigit():
        return int(shape), int(shape)
    raise RoadedgeError("backend.input_size: {} has no image_shape in hyperparams.json; set [width, height]".format(path))


def open(options, context=None):  # noqa: A001 - the plugin entry point's name
    if options.get("threads"):
        os.environ.setdefault("OMP_NUM_THREADS", str(int(options["threads"])))
    try:
        import mxnet as mx
    except ImportError:
        raise RoadedgeError("backend.type mxnet: MXNet is not installed (pip install mxnet==1.9.1 on x86; it has no "
                            "aarch64 wheel, so on a Pi use the openvino backend)") from None
    from converters.ir_metadata import default_preprocessing, labels_for
    from converters.mxnet_params import split_arg_aux
    from converters.sagemaker_model import load_model
    from converters.ssd_deploy import num_classes, to_deploy

    path = os.path.expanduser(options["model"])
    if not path:
        raise RoadedgeError("backend.model: required for the mxnet backend (model.tar.gz or an MXNet prefix)")
    loaded = load_model(path, options["epoch"])
    deploy = to_deploy(loaded.graph)
    head = deploy.nodes[deploy.heads[0][0]]
    labels = labels_for(num_classes(deploy, head.inputs[0]) or 0, options["labels"] or None, loaded.hyperparams)
    width, height = _input_size(options, loaded.hyperparams, path)
    symbol = mx.sym.load_json(deploy.to_json())
    args, aux = split_arg_aux(loaded.params)
    module = mx.mod.Module(symbol, data_names=("data",), label_names=None, context=mx.cpu())
    module.bind(data_shapes=[("data", (1, 3, height, width))], for_training=False)
    module.set_params({k: mx.nd.array(v) for k, v in args.items()}, {k: mx.nd.array(v) for k, v in aux.items()},
                      allow_missing=False, allow_extra=True)
    digest = next((sha for name, sha in sorted(loaded.sources.items()) if name.endswith(".params")), "0" * 64)
    return MXNetBackend(module, labels, (width, height), default_preprocessing(deploy), options["min_score"],
                        loaded.name, digest)
