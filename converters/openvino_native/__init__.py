"""The `native` engine: an MXNet SSD deploy graph -> an OpenVINO model, with neither MXNet nor Model Optimizer.

    model = convert_graph(graph, arg_params, aux_params, (1, 3, 512, 512), name="ssd")
    openvino.save_model(model, "ssd.xml", compress_to_fp16=False)

The model's one input is MXNet's `data` (float32 NCHW, nothing folded in);
each graph head becomes an output named after its node, a MultiBoxDetection
head as DetectionOutput rows [image_id, label, conf, x1, y1, x2, y2]
(normalised corners, label = MXNet's 0-based class_id) ended by image_id -1.
Weights stay float32; whether to store them as FP16 is the caller's choice.
"""
from converters.openvino_native import conv, norm, pooling, resize, shape_ops, ssd  # noqa: F401  (register the converters)
from converters.openvino_native.core import Context, supported_ops
from converters.openvino_native.ssd import multibox_prior

__all__ = ["convert_graph", "multibox_prior", "supported_ops"]


def convert_graph(graph, arg_params, aux_params, input_shape, name="model", params_source=None):
    """`graph`: roadedge.core.mxnet_symbol.Graph; params: name -> numpy array (no arg:/aux: prefix);
    `input_shape`: (N, C, H, W) of `data`; `params_source`: the params file, named in errors about weights (the
    graph's source is named in the others). Returns an openvino.Model; raises RoadedgeError (one line) on problems."""
    return Context(graph, arg_params, aux_params, input_shape, params_source).convert(name)
