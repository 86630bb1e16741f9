"""MXNet backend: a SageMaker model.tar.gz or an MXNet prefix (training or deploy symbol), run by MXNet itself.

Optional, for the Pi option of the design (MXNet has no aarch64 wheel on PyPI,
so on a Pi it means a self-built MXNet; the OpenVINO backend is the default
everywhere). A training graph is rewritten to the deploy graph in memory
(converters.ssd_deploy, what MXNet's deploy.py does); MultiBoxDetection's
[1, N, 6] rows are the raw output (format multibox_detection), decoded by the loop. Preprocessing comes
from the graph (raw RGB for SageMaker's bn_data graphs, example/ssd's mean
otherwise), as `roadedge convert` records it for IRs.
"""
import os

import numpy as np

from edge.backends.base import SyncBackend
from edge.plugins import Option, at_least, list_of
from roadedge.core.errors import RoadedgeError
from roadedge.core.model_metadata import ModelInfo, channel_scale, check_output_shape, hyperparams_input_size

TYPE = "mxnet"
OPTIONS = {
    "model": Option(str, "", "model.tar.gz, or an MXNet prefix (PREFIX-symbol.json + PREFIX-EPOCH.params)"),
    "epoch": Option(int, 0, "params epoch of a prefix"),
    "input_size": Option(list, [], "[width, height] of the network input (default: hyperparams image_shape)",
                         check=list_of(int, 2, low=1)),
    "labels": Option(list, [], "class names in class-id order (default: hyperparams class_names)", check=list_of(str)),
    "threads": Option(int, 0, "OMP threads for MXNet (0: its default)", check=at_least(0)),
}


class MXNetBackend(SyncBackend):
    """Synchronous: infer(image) -> MultiBoxDetection rows [1, N, 6], boxes normalised to the model input."""

    def __init__(self, module, labels, input_size, preprocessing, model_name, model_sha256):
        self.module, self.input_size, self.preprocessing = module, tuple(input_size), preprocessing
        self.model = ModelInfo(name=model_name, sha256=model_sha256, labels=labels, input_size=input_size,
                               output_format="multibox_detection", preprocessing=preprocessing)

    def tensor(self, image):
        width, height = self.input_size
        if image.shape[:2] != (height, width):
            import cv2

            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        resized = image.astype(np.float32)
        if self.preprocessing.get("color_order", "RGB") == "RGB":
            resized = resized[:, :, ::-1]
        resized = (resized - np.asarray(self.preprocessing.get("mean", (0, 0, 0)), np.float32)) \
            * np.asarray(channel_scale(self.preprocessing), np.float32)
        return np.ascontiguousarray(resized.transpose(2, 0, 1)[None])

    def infer(self, image):
        import mxnet as mx

        self.module.forward(mx.io.DataBatch([mx.nd.array(self.tensor(image))]), is_train=False)
        return self.module.get_outputs()[0].asnumpy()

    def close(self):
        self.module = None


def _input_size(options, hyperparams, path):
    if options["input_size"]:
        return int(options["input_size"][0]), int(options["input_size"][1])
    size = hyperparams_input_size(hyperparams)
    if size:
        return size
    raise RoadedgeError("backend.input_size: {} has no image_shape in hyperparams.json; set [width, height]".format(path))


def open(options, context=None):  # noqa: A001 - the plugin entry point's name
    if options.get("threads"):
        os.environ.setdefault("OMP_NUM_THREADS", str(int(options["threads"])))
    try:
        import mxnet as mx
    except ImportError:
        raise RoadedgeError("backend.type mxnet: MXNet is not installed (pip install mxnet==1.9.1 on x86; it has no "
                            "aarch64 wheel, so on a Pi use the openvino backend)") from None
    from edge.conversion import load_deploy

    path = os.path.expanduser(options["model"])
    if not path:
        raise RoadedgeError("backend.model: required for the mxnet backend (model.tar.gz or an MXNet prefix)")
    deploy = load_deploy(path, options["epoch"], options["labels"] or None)
    width, height = _input_size(options, deploy.hyperparams, path)
    symbol = mx.sym.load_json(deploy.graph.to_json())
    module = mx.mod.Module(symbol, data_names=("data",), label_names=None, context=mx.cpu())
    module.bind(data_shapes=[("data", (1, 3, height, width))], for_training=False)
    check_output_shape([int(d) for d in module.output_shapes[0][1]], "multibox_detection", path, TYPE)
    module.set_params({k: mx.nd.array(v) for k, v in deploy.args.items()},
                      {k: mx.nd.array(v) for k, v in deploy.aux.items()}, allow_missing=False, allow_extra=True)
    return MXNetBackend(module, deploy.labels, (width, height), deploy.preprocessing, deploy.name, deploy.sha256)
