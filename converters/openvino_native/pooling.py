"""Pooling with MXNet's output sizes and divisors.

MXNet sizes the output with floor ('valid', the default) or ceil ('full'):
out = 1 + round((in + 2 * pad - kernel) / stride), and then clips each
window to the input. OpenVINO's ceil mode drops a last window that would start
in the padding, so the 'full' case is expressed as floor rounding over an
explicitly larger end padding. Averages divide by the window clipped to the
padded input (count_include_pad, the default) or to the input itself; when the
larger end padding would change that divisor the average is computed as a
window sum (a depthwise convolution of ones) over a constant divisor map.
"""
import math

import numpy as np
import openvino.opset13 as ops

from converters.openvino_native.core import const, converts, ints, shape_text


def output_size(size, kernel, stride, pad, convention):
    span = size + 2 * pad - kernel
    steps = math.ceil(span / stride) if convention == "full" else span // stride
    return 1 + steps


def divisor_map(size, kernel, stride, pad, out, include_pad):
    """Per output position along one axis: how many values MXNet's average divides by."""
    counts = []
    for o in range(out):
        start = o * stride - pad
        end = min(start + kernel, size + pad)
        if not include_pad:
            start, end = max(start, 0), min(end, size)
        counts.append(max(end - start, 0))
    return np.array(counts, dtype=np.float64)


@converts("Pooling")
def pooling(ctx, node):
    data = ctx.data(node, 0)
    shape = ctx.shape(data)
    kind = ctx.attr(node, "pool_type", "max")
    if kind not in ("max", "avg", "sum"):
        raise ctx.fail(node, "pool_type {!r} is not supported (max, avg, sum)".format(kind))
    layout = ctx.attr(node, "layout", None)
    if layout not in (None, "None", "NCW", "NCHW", "NCDHW"):
        raise ctx.fail(node, "layout {} is not supported (channels-first only)".format(layout))
    rank = len(shape) - 2
    if ctx.attr(node, "global_pool", False, "bool"):
        axes = ints(range(2, len(shape)))
        reduce = {"max": ops.reduce_max, "avg": ops.reduce_mean, "sum": ops.reduce_sum}[kind]
        return [reduce(data, axes, True)]
    kernel = list(ctx.attr(node, "kernel", None, "ints") or ())
    if len(kernel) != rank:
        raise ctx.fail(node, "kernel {} does not match the {}-d input {}".format(
            shape_text(kernel), len(shape), shape_text(shape)))
    stride = list(ctx.attr(node, "stride", None, "ints") or ()) or [1] * rank
    pad = list(ctx.attr(node, "pad", None, "ints") or ()) or [0] * rank
    if len(stride) != rank or len(pad) != rank:
        raise ctx.fail(node, "stride/pad do not match the {}-d kernel".format(rank))
    convention = ctx.attr(node, "pooling_convention", "valid")
    if convention not in ("valid", "full"):
        raise ctx.fail(node, "pooling_convention {!r} is not supported (valid, full)".format(convention))
    sizes = shape[2:]
    out = [output_size(s, k, st, p, convention) for s, k, st, p in zip(sizes, kernel, stride, pad)]
    if min(out) < 1:
        raise ctx.fail(node, "kernel {} is larger than the padded input {}".format(shape_text(kernel), shape_text(shape)))
    # end padding that makes floor rounding give MXNet's size (larger than `pad` for 'full')
    pad_end = [max((o - 1) * st + k - s - p, 0) for o, st, k, s, p in zip(out, stride, kernel, sizes, pad)]
    if kind == "max":
        return [ops.max_pool(data, stride, [1] * rank, pad, pad_end, kernel, "floor").output(0)]
    include_pad = ctx.attr(node, "count_include_pad", True, "bool")
    divisors = [divisor_map(s, k, st, p, o, include_pad) for s, k, st, p, o in zip(sizes, kernel, stride, pad, out)]
    full = float(np.prod(kernel))
    plain = all(d.min() > 0 for d in divisors) and (not include_pad or all(
        np.all(d == k) for d, k in zip(divisors, kernel)))
    if kind == "avg" and plain:
        return [ops.avg_pool(data, stride, pad, pad_end, kernel, not include_pad, "floor")]
    channels = shape[1]
    ones = np.ones((channels, 1, 1) + tuple(kernel), np.float32)
    total = ops.group_convolution(data, const(ones), stride, pad, pad_end, [1] * rank)
    if kind == "sum":
        return [total]
    grid = divisors[0]
    for d in divisors[1:]:
        grid = np.multiply.outer(grid, d)
    grid = np.where(grid > 0, grid, 1.0)  # MXNet writes 0 for a window that holds nothing
    if np.all(grid == full):
        return [ops.multiply(total, const(1.0 / full))]
    return [ops.divide(total, const(grid.reshape((1, 1) + grid.shape)))]
