"""SSD ops: MultiBoxPrior (anchors computed here, embedded as a constant) and MultiBoxDetection.

MXNet's MultiBoxDetection (CPU, 1.9.1), which the conversion reproduces:
 1. per anchor, the class is the arg-max over the non-background classes
    1..C-1 (the first on ties) and the score that class's probability;
    anchors scoring below `threshold` are dropped (class 0 is always the
    background: `background_id` is not read by MXNet's CPU kernel);
 2. boxes decode as centre/size offsets scaled by `variances` and are
    clipped to [0, 1] when `clip` (before NMS);
 3. the survivors are sorted by score (stable) and only the first `nms_topk`
    (all when <= 0) go on;
 4. greedy NMS: a box is suppressed by a higher-scored kept box of the same
    class (of any class under `force_suppress`) with IoU >= nms_threshold.
    With nms_threshold outside (0, 1] MXNet skips 3 and 4 entirely.
OpenVINO's DetectionOutput with decrease_label_id=True runs exactly this
("MXNet-style NMS": per-prior arg-max class at >= confidence_threshold, one
top_k over the image, per-class greedy NMS, labels minus one), so it is used
for the usual class-wise NMS. force_suppress has no DetectionOutput form; it
is built from TopK + NonMaxSuppression instead, giving the same [1, 1, K, 7]
rows. Residual differences: IoU exactly equal to the threshold suppresses in
MXNet (>=) and not in OpenVINO (>); equal scores in different classes may be
ordered differently before NMS.
"""
import numpy as np
import openvino.opset8 as opset8
import openvino.opset13 as ops

from converters.openvino_native.core import const, converts, ints, shape_text


def multibox_prior(height, width, sizes, ratios, steps=(-1.0, -1.0), offsets=(0.5, 0.5), clip=False):
    """MXNet's anchors for an height x width feature map: (1, height * width * (len(sizes) + len(ratios) - 1), 4),
    corners normalised to the input; per cell first every size at ratios[0], then sizes[0] at ratios[1:].
    Computed in float32 in MXNet's order of operations. steps <= 0 mean 1/height (y) and 1/width (x)."""
    f32 = np.float32
    step_y = f32(steps[0]) if steps[0] > 0 else f32(1.0) / f32(height)
    step_x = f32(steps[1]) if steps[1] > 0 else f32(1.0) / f32(width)
    center_y = (np.arange(height, dtype=f32) + f32(offsets[0])) * step_y
    center_x = (np.arange(width, dtype=f32) + f32(offsets[1])) * step_x
    shapes = [(f32(size), np.sqrt(f32(ratios[0]))) for size in sizes]
    shapes += [(f32(sizes[0]), np.sqrt(f32(ratio))) for ratio in ratios[1:]]
    half = np.array([[size * f32(height) / f32(width) * ratio / f32(2), size / ratio / f32(2)] for size, ratio in shapes],
                    dtype=f32)  # (K, 2): half width, half height
    cx = np.broadcast_to(center_x[None, :, None], (height, width, len(shapes)))
    cy = np.broadcast_to(center_y[:, None, None], (height, width, len(shapes)))
    boxes = np.stack([cx - half[:, 0], cy - half[:, 1], cx + half[:, 0], cy + half[:, 1]], axis=-1).astype(f32)
    if clip:
        boxes = np.clip(boxes, f32(0), f32(1))
    return boxes.reshape(1, -1, 4)


@converts("_contrib_MultiBoxPrior")
def prior(ctx, node):
    shape = ctx.shape(ctx.data(node, 0))
    if len(shape) != 4:
        raise ctx.fail(node, "expected a 4-d NCHW feature map, got {}".format(shape_text(shape)))
    sizes = ctx.attr(node, "sizes", (1.0,), "floats")
    ratios = ctx.attr(node, "ratios", (1.0,), "floats")
    steps = ctx.attr(node, "steps", (-1.0, -1.0), "floats")
    offsets = ctx.attr(node, "offsets", (0.5, 0.5), "floats")
    if not sizes or not ratios or len(steps) != 2 or len(offsets) != 2:
        raise ctx.fail(node, "needs sizes and ratios, and two steps and offsets")
    if (steps[0] > 0) != (steps[1] > 0):
        raise ctx.fail(node, "steps {} must give both step_y and step_x or neither".format(shape_text(steps)))
    if min(sizes) <= 0 or min(ratios) <= 0:
        raise ctx.fail(node, "sizes and ratios must be positive")
    anchors = multibox_prior(shape[2], shape[3], sizes, ratios, steps, offsets, ctx.attr(node, "clip", False, "bool"))
    return [const(anchors)]


@converts("_contrib_MultiBoxDetection")
def detection(ctx, node):
    cls_prob, loc, anchors = ctx.data(node, 0), ctx.data(node, 1), ctx.data(node, 2)
    shape, loc_shape, anchor_shape = ctx.shape(cls_prob), ctx.shape(loc), ctx.shape(anchors)
    if len(shape) != 3 or shape[1] < 2:
        raise ctx.fail(node, "class probabilities must be (batch, classes incl. background, anchors), got {}".format(
            shape_text(shape)))
    batch, classes, count = shape
    if int(np.prod(loc_shape)) != batch * count * 4 or loc_shape[0] != batch:
        raise ctx.fail(node, "box predictions {} do not match {} anchors of {} images".format(
            shape_text(loc_shape), count, batch))
    if int(np.prod(anchor_shape)) != count * 4:
        raise ctx.fail(node, "anchors {} do not match {} anchors in the class probabilities".format(
            shape_text(anchor_shape), count))
    variances = ctx.attr(node, "variances", (0.1, 0.1, 0.2, 0.2), "floats")
    if len(variances) != 4:
        raise ctx.fail(node, "variances needs 4 values, got {}".format(shape_text(variances)))
    settings = {
        "threshold": ctx.attr(node, "threshold", 0.01, "float"),
        "clip": ctx.attr(node, "clip", True, "bool"),
        "nms": ctx.attr(node, "nms_threshold", 0.5, "float"),
        "topk": ctx.attr(node, "nms_topk", -1, "int"),
        "variances": variances,
    }
    loc = ops.reshape(loc, ints([batch, count * 4]), False)
    anchors = ops.reshape(anchors, ints([1, count * 4]), False)
    if ctx.attr(node, "force_suppress", False, "bool"):
        return [_suppress_across_classes(cls_prob, loc, anchors, batch, classes, count, settings)]
    return [_detection_output(cls_prob, loc, anchors, batch, classes, count, settings)]


def _detection_output(cls_prob, loc, anchors, batch, classes, count, s):
    nms_runs = 0 < s["nms"] <= 1
    topk = s["topk"] if nms_runs and 0 < s["topk"] < count else -1
    attrs = {
        "background_label_id": 0,
        "top_k": topk,
        "keep_top_k": [(topk if topk > 0 else count) + 1],  # +1: room for the terminating image_id -1 row
        "code_type": "caffe.PriorBoxParameter.CENTER_SIZE",
        "share_location": True,
        "variance_encoded_in_target": False,
        "nms_threshold": s["nms"] if nms_runs else 2.0,  # IoU never exceeds 2: no suppression, as in MXNet
        "confidence_threshold": s["threshold"],
        "clip_before_nms": s["clip"],
        "clip_after_nms": False,
        "decrease_label_id": True,
        "normalized": True,
        "input_height": 1,
        "input_width": 1,
        "objectness_score": 0.0,
    }
    class_preds = ops.reshape(ops.transpose(cls_prob, ints([0, 2, 1])), ints([batch, count * classes]), False)
    variances = const(np.tile(np.asarray(s["variances"], np.float32), count).reshape(1, count * 4))
    proposals = ops.reshape(ops.concat([anchors, variances], 0), ints([1, 2, count * 4]), False)
    return opset8.detection_output(loc, class_preds, proposals, attrs)


def _decode(loc, anchors, batch, count, s):
    """MXNet's TransformLocations on every anchor: (batch, count, 4) corners."""
    loc = ops.reshape(loc, ints([batch, count, 4]), False)
    anchors = ops.reshape(anchors, ints([1, count, 4]), False)

    def part(tensor, start, stop):
        return ops.slice(tensor, ints([start]), ints([stop]), ints([1]), ints([2]))

    low, high = part(anchors, 0, 2), part(anchors, 2, 4)
    size = ops.subtract(high, low)
    center = ops.divide(ops.add(low, high), const(2.0))
    v = s["variances"]
    shift = ops.multiply(ops.multiply(part(loc, 0, 2), const(np.array(v[:2], np.float32))), size)
    new_center = ops.add(shift, center)
    half = ops.divide(ops.multiply(ops.exp(ops.multiply(part(loc, 2, 4), const(np.array(v[2:], np.float32)))), size),
                      const(2.0))
    boxes = ops.concat([ops.subtract(new_center, half), ops.add(new_center, half)], 2)
    if s["clip"]:
        boxes = ops.clamp(boxes, 0.0, 1.0)
    return boxes


def _gather_rows(data, order, batch, count, k):
    """data[n, order[n, i]] for (batch, count[, 4]) data: a flat Gather (Gather with batch_dims=1 crashes
    OpenVINO 2026.4's CPU plugin in this graph)."""
    offsets = const((np.arange(batch) * count).reshape(batch, 1), np.int32)
    flat = ops.reshape(data, ints([batch * count, -1]), False)
    picked = ops.gather(flat, ops.add(order, offsets), 0)
    return ops.reshape(picked, ints([batch, k, -1]), False)


def _suppress_across_classes(cls_prob, loc, anchors, batch, classes, count, s):
    """force_suppress: class-agnostic greedy NMS over the top-k anchors, rows as DetectionOutput writes them."""
    foreground = ops.slice(cls_prob, ints([1]), ints([classes]), ints([1]), ints([1]))
    best = ops.topk(foreground, const(1, np.int64), 1, "max", "value", "i32", stable=True)
    score = ops.reshape(best.output(0), ints([batch, count]), False)
    label = ops.convert(ops.reshape(best.output(1), ints([batch, count]), False), np.float32)
    valid = ops.greater_equal(score, const(s["threshold"]))
    key = ops.select(valid, score, const(-1.0))
    boxes = _decode(loc, anchors, batch, count, s)
    nms_runs = 0 < s["nms"] <= 1
    k = s["topk"] if nms_runs and 0 < s["topk"] < count else count
    top = ops.topk(key, const(k, np.int64), 1, "max", "value", "i32", stable=True)
    order = top.output(1)
    cand_score, cand_label = top.output(0), _gather_rows(label, order, batch, count, k)
    cand_boxes = _gather_rows(boxes, order, batch, count, k)
    keep = ops.greater_equal(cand_score, const(s["threshold"]))
    if nms_runs:
        scores = ops.reshape(cand_score, ints([batch, 1, k]), False)
        chosen = ops.non_max_suppression(cand_boxes, scores, const(k, np.int64), const(s["nms"]), const(-0.5),
                                         box_encoding="corner", sort_result_descending=False, output_type="i64")
        image_of, candidate = (ops.gather(chosen.output(0), ints([column]), 1) for column in (0, 2))  # (selected, 1)
        flat = ops.add(ops.multiply(image_of, const(k, np.int64)), candidate)
        padding = ops.logical_or(ops.less(image_of, const(0, np.int64)), ops.less(candidate, const(0, np.int64)))
        flat = ops.select(padding, const(batch * k, np.int64), flat)  # rows of -1 (if any) land in a spare slot
        ones = ops.broadcast(const(1.0), ops.gather(ops.shape_of(flat), ints([0]), 0))
        marks = ops.scatter_nd_update(const(np.zeros(batch * k + 1, np.float32)), flat, ones)
        selected = ops.reshape(ops.slice(marks, ints([0]), ints([batch * k]), ints([1])), ints([batch, k]), False)
        selected = ops.greater(selected, const(0.5))
        keep = ops.logical_and(keep, selected)
    image = const(np.repeat(np.arange(batch, dtype=np.float32), k).reshape(batch, k))
    rows = ops.concat([ops.unsqueeze(image, ints([2])), cand_label, ops.unsqueeze(cand_score, ints([2])), cand_boxes], 2)
    empty = const(np.array([-1, 0, 0, 0, 0, 0, 0], np.float32))
    rows = ops.select(ops.unsqueeze(keep, ints([2])), rows, empty)
    # kept rows first, image by image, each by score (candidates are already in score order); then the rest
    rank = const((batch - np.repeat(np.arange(batch), k).reshape(batch, k)).astype(np.float32))
    rank = ops.select(keep, rank, const(0.0))
    order = ops.topk(ops.reshape(rank, ints([batch * k]), False), const(batch * k, np.int64), 0, "max", "value", "i32",
                     stable=True).output(1)
    rows = ops.gather(ops.reshape(rows, ints([batch * k, 7]), False), order, 0)
    rows = ops.concat([rows, ops.reshape(empty, ints([1, 7]), False)], 0)
    return ops.reshape(rows, ints([1, 1, batch * k + 1, 7]), False)
