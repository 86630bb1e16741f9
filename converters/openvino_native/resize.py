"""Bilinear resize and adaptive average pooling: the ops GluonCV's segmentation networks export.

MXNet's `_contrib_BilinearResize2D` samples the input at
src = dst * (in - 1) / (out - 1) with align_corners (its default, and what
GluonCV uses), else at (dst + 0.5) * in / out - 0.5; OpenVINO's Interpolate
(linear_onnx, align_corners / half_pixel) computes the same points, with no
antialiasing when it shrinks. `_contrib_AdaptiveAvgPooling2D` averages the
bins [floor(i * in / out), ceil((i + 1) * in / out)), as OpenVINO's
AdaptiveAvgPool does. The functions are shared with the GluonCV builder
(converters.gluoncv_seg), which makes the same ops without a symbol.
"""
import openvino.opset8 as opset8
import openvino.opset13 as ops

from converters.openvino_native.core import converts, ints, shape_text


def bilinear_resize(data, height, width, align_corners=True):
    """NCHW `data` resized to height x width as MXNet's BilinearResize2D does."""
    mode = "align_corners" if align_corners else "half_pixel"
    return ops.interpolate(data, ints([height, width]), "linear_onnx", "sizes", coordinate_transformation_mode=mode,
                           axes=ints([2, 3]))


def adaptive_avg_pool(data, height, width=None):
    """NCHW `data` averaged into height x width bins (a global average for 1 x 1)."""
    width = height if width is None else width
    if (height, width) == (1, 1):
        return ops.reduce_mean(data, ints([2, 3]), True)
    return opset8.adaptive_avg_pool(data, ints([height, width]))


@converts("_contrib_BilinearResize2D")
def bilinear_resize_2d(ctx, node):
    data = ctx.data(node, 0)
    shape = ctx.shape(data)
    if len(shape) != 4:
        raise ctx.fail(node, "expected a 4-d NCHW input, got {}".format(shape_text(shape)))
    mode = ctx.attr(node, "mode", "size")
    if mode != "size":
        raise ctx.fail(node, "mode {!r} is not supported (size)".format(mode))
    height, width = ctx.attr(node, "height", 1, "int"), ctx.attr(node, "width", 1, "int")
    scale_h, scale_w = ctx.attr(node, "scale_height", None, "float"), ctx.attr(node, "scale_width", None, "float")
    if scale_h is not None or scale_w is not None:  # MXNet: the scales win over height/width when given
        height = int(shape[2] * scale_h) if scale_h is not None else height
        width = int(shape[3] * scale_w) if scale_w is not None else width
    if height < 1 or width < 1:
        raise ctx.fail(node, "output size {}x{}: expected positive sizes".format(height, width))
    return [bilinear_resize(data, height, width, ctx.attr(node, "align_corners", True, "bool"))]


@converts("_contrib_AdaptiveAvgPooling2D")
def adaptive_avg_pooling_2d(ctx, node):
    data = ctx.data(node, 0)
    shape = ctx.shape(data)
    if len(shape) != 4:
        raise ctx.fail(node, "expected a 4-d NCHW input, got {}".format(shape_text(shape)))
    size = ctx.attr(node, "output_size", None, "ints") or (1,)
    if len(size) not in (1, 2) or min(size) < 1:
        raise ctx.fail(node, "output_size {}: expected one or two positive sizes".format(shape_text(size)))
    return [adaptive_avg_pool(data, size[0], size[-1])]
