"""The native engine: a SageMaker/GluonCV segmentation artefact -> an OpenVINO model, with neither MXNet nor GluonCV.

    model = build_model(load_artefact("model.tar.gz"), 240, 240, argmax=False)

Input `data`: float32 NCHW [1, 3, H, W], normalised as GluonCV does (RGB / 255,
minus mean, over std). Output `logits`: float32 [1, num_classes, H, W], the
head's output resized bilinearly (align_corners) to the input, as GluonCV's
forward; with argmax, output `mask`: int32 [1, 1, H, W], the class with the
largest logit (the first on ties, as numpy/MXNet argmax).
"""
import numpy as np
import openvino as ov
import openvino.opset13 as ops

from converters.gluoncv_seg.backbone import backbone, describe
from converters.gluoncv_seg.heads import HEADS, classifier
from converters.gluoncv_seg.layers import Layers
from converters.openvino_native.core import DATA_INPUT, const
from converters.openvino_native.fold_scale import fold_channel_scales
from converters.openvino_native.resize import bilinear_resize
from roadedge.core.errors import RoadedgeError, openvino_reason

LOGITS, MASK = "logits", "mask"
MAX_SIDE = 4096


def check_input_size(artefact, height, width, what=None):
    """GluonCV's psp and deeplab resize their pooled branches to (H // 8, W // 8): the input must be a multiple of 8.
    `what` names the value in errors (default: --input-shape H W)."""
    what = what or "--input-shape {} {}".format(height, width)
    if not (32 <= height <= MAX_SIDE and 32 <= width <= MAX_SIDE):
        raise RoadedgeError("{}: expected a height and width in 32..{}".format(what, MAX_SIDE))
    if artefact.algorithm in ("psp", "deeplab") and (height % 8 or width % 8):
        raise RoadedgeError("{}: {} needs a height and width that are multiples of 8 (its pooled branches are "
                            "resized to the input / 8, as GluonCV builds it)".format(what, artefact.algorithm))


def structure_text(structure):
    return "{} stem, {} blocks {}".format(structure["stem"], structure["block"], "-".join(map(str, structure["blocks"])))


def build_model(artefact, height, width, argmax=False, name=None):
    """openvino.Model of the artefact's network for an input of height x width; RoadedgeError (one line) on problems."""
    check_input_size(artefact, height, width)
    structure = describe(artefact.params, artefact.params_source)
    what = "a GluonCV {} on {} ({})".format(artefact.algorithm, artefact.backbone, structure_text(structure))
    layers = Layers(artefact.params, artefact.params_source, what)
    data = ops.parameter([1, 3, height, width], np.float32, name=DATA_INPUT)
    data.output(0).get_tensor().set_names({DATA_INPUT})
    try:
        _, c4 = backbone(layers, data.output(0), structure)
        features = HEADS[artefact.algorithm](layers, c4)
        logits = bilinear_resize(classifier(layers, features, artefact.num_classes), height, width)
    except RuntimeError as err:  # OpenVINO's own shape checks, e.g. a kernel larger than a tiny input
        raise RoadedgeError("{}: OpenVINO rejected the network for a {}x{} input: {}".format(
            artefact.params_source, height, width, openvino_reason(err))) from None
    layers.check_all_used()
    return finish_model(logits.output(0), argmax, [data], name or artefact.name)


def class_argmax(logits):
    """The int32 [1, 1, H, W] index of the largest of [1, C, H, W] `logits`, the first on a tie (numpy's and MXNet's
    argmax): ReduceMax, Equal, Select(class index, else C), ReduceMin. On the CPU plugin this costs a third of
    TopK k=1 (demo model in benchmark_app: 71.1 FPS with logits out, 63.5 with this, 57.0 with TopK)."""
    classes = logits.get_partial_shape()[1].get_length()
    axis = const([1], np.int64)
    largest = ops.reduce_max(logits, axis, True)
    index = const(np.arange(classes, dtype=np.int32).reshape(1, classes, 1, 1), np.int32)
    return ops.reduce_min(ops.select(ops.equal(logits, largest), index, const(classes, np.int32)), axis, True).output(0)


def finish_model(logits, argmax, parameters, name):
    """The model with one output: `logits`, or with argmax the int32 class-index `mask` (class_argmax)."""
    if argmax:
        output, output_name = class_argmax(logits), MASK
    else:
        output, output_name = logits, LOGITS
    result = ops.result(output)
    result.set_friendly_name(output_name)
    result.output(0).get_tensor().set_names({output_name})
    model = ov.Model([result], parameters, name)
    fold_channel_scales(model)  # BatchNorm's multiply into the convolution before it
    return model
