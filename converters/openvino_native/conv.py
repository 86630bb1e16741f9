"""Convolution and FullyConnected."""
import numpy as np
import openvino.opset13 as ops

from converters.openvino_native.core import const, converts, ints, shape_text


def _spatial(ctx, node, key, default, rank):
    value = ctx.attr(node, key, None, "ints")
    if value is None or len(value) == 0:
        return [default] * rank
    if len(value) != rank:
        raise ctx.fail(node, "{}={} does not match the {}-d kernel".format(key, shape_text(value), rank))
    return list(value)


@converts("Convolution")
def convolution(ctx, node):
    data = ctx.data(node, 0)
    shape = ctx.shape(data)
    kernel = ctx.attr(node, "kernel", None, "ints")
    if not kernel:
        raise ctx.fail(node, "attribute kernel is missing")
    rank = len(kernel)
    layout = ctx.attr(node, "layout", None)
    if layout not in (None, "None", "NCW", "NCHW", "NCDHW"):
        raise ctx.fail(node, "layout {} is not supported (channels-first only)".format(layout))
    if len(shape) != rank + 2:
        raise ctx.fail(node, "a {}-d kernel needs a {}-d input, got {}".format(rank, rank + 2, shape_text(shape)))
    stride = _spatial(ctx, node, "stride", 1, rank)
    dilate = _spatial(ctx, node, "dilate", 1, rank)
    pad = _spatial(ctx, node, "pad", 0, rank)
    num_filter = ctx.attr(node, "num_filter", None, "int")
    if not num_filter:
        raise ctx.fail(node, "attribute num_filter is missing")
    groups = ctx.attr(node, "num_group", 1, "int")
    channels = shape[1]
    if channels % groups or num_filter % groups:
        raise ctx.fail(node, "num_group {} does not divide {} input channels and {} filters".format(
            groups, channels, num_filter))
    sizes = [(n + 2 * p - d * (k - 1) - 1) // st + 1 for n, p, d, k, st in zip(shape[2:], pad, dilate, kernel, stride)]
    if min(sizes) < 1:
        raise ctx.fail(node, "the {} kernel (dilation {}) does not fit the padded input {}: the input image is too small".format(
            shape_text(kernel), shape_text(dilate), shape_text(shape)))
    weight = ctx.weight(node, 1, (num_filter, channels // groups) + tuple(kernel))
    if groups == 1:
        out = ops.convolution(data, const(weight), stride, pad, pad, dilate)
    else:
        grouped = weight.reshape((groups, num_filter // groups, channels // groups) + tuple(kernel))
        out = ops.group_convolution(data, const(grouped), stride, pad, pad, dilate)
    if not ctx.attr(node, "no_bias", False, "bool"):
        bias = ctx.weight(node, 2, (num_filter,))
        out = ops.add(out, const(bias.reshape((1, num_filter) + (1,) * rank)))
    return [out]


@converts("FullyConnected")
def fully_connected(ctx, node):
    data = ctx.data(node, 0)
    shape = ctx.shape(data)
    hidden = ctx.attr(node, "num_hidden", None, "int")
    if not hidden:
        raise ctx.fail(node, "attribute num_hidden is missing")
    if ctx.attr(node, "flatten", True, "bool"):
        data = ops.reshape(data, ints([shape[0], int(np.prod(shape[1:]))]), False)
        features = int(np.prod(shape[1:]))
    else:
        features = shape[-1]
    weight = ctx.weight(node, 1, (hidden, features))
    out = ops.matmul(data, const(weight), False, True)
    if not ctx.attr(node, "no_bias", False, "bool"):
        out = ops.add(out, const(ctx.weight(node, 2, (hidden,))))
    return [out]
