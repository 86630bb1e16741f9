"""COCO-style box detection metrics, numerically the same as pycocotools' COCOeval (iouType 'bbox').

Pure numpy, no I/O. Inputs are per image, in pixels, boxes [xmin, ymin, xmax, ymax]
(no +1: a box from 10 to 20 is 10 wide, as pycocotools' [x, y, w, h]):

    ground_truth[i] = [(class_id, box, difficult), ...]
    detections[i]   = [(class_id, score, box), ...]

What COCOeval does, and so what this does: per image and class, detections
sorted by score (stable) and cut to the best 100; at each IoU threshold
(.50:.05:.95) each detection in turn takes the unmatched ground-truth box
it overlaps most (IoU >= threshold, ties to the later box), preferring
regular boxes over ignored ones. VOC `difficult` objects play COCO's
`iscrowd=1`: they are ignored (a detection matched to one counts neither
as a true nor as a false positive), may absorb any number of detections,
and their overlap is intersection over the detection's own area. Per class,
all images' detections are ranked by score, precision is made monotone and
read at 101 recall points; AP is the mean of those. A class without
(non-difficult) ground truth has no AP and is left out of the means.
"""
import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETECTIONS = 100
AREA_RANGE = (0.0, 1e5 ** 2)  # COCO's area range "all": only degenerate boxes fall outside


def _xywh(boxes):
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])


def box_iou(detections, ground_truth, crowd=None):
    """[D, G] overlaps of xyxy boxes; for a crowd (difficult) box, intersection over the detection's area."""
    d, g = _xywh(detections), _xywh(ground_truth)
    crowd = np.zeros(len(g), dtype=bool) if crowd is None else np.asarray(crowd, dtype=bool)
    width = np.minimum(d[:, None, 2] + d[:, None, 0], g[None, :, 2] + g[None, :, 0]) - np.maximum(d[:, None, 0], g[None, :, 0])
    height = np.minimum(d[:, None, 3] + d[:, None, 1], g[None, :, 3] + g[None, :, 1]) - np.maximum(d[:, None, 1], g[None, :, 1])
    inter = np.where((width > 0) & (height > 0), width * height, 0.0)
    det_area = (d[:, 2] * d[:, 3])[:, None]
    union = np.where(crowd[None, :], det_area, det_area + (g[:, 2] * g[:, 3])[None, :] - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / union, 0.0)


def match_image(ious, ignore, crowd=None, thresholds=IOU_THRESHOLDS):
    """Greedy matching of score-sorted detections (rows) to ground truth (columns) at each threshold.

    `ignore`: per ground-truth box, ignored (difficult, or an area outside AREA_RANGE); `crowd`: may absorb
    several detections (difficult; default: the same as `ignore`). Returns (matched [T, D] bool, det_ignored [T, D] bool).
    """
    ignore = np.asarray(ignore, dtype=bool)
    crowd = ignore if crowd is None else np.asarray(crowd, dtype=bool)
    num_dets = ious.shape[0]
    matched = np.zeros((len(thresholds), num_dets), dtype=bool)
    det_ignored = np.zeros((len(thresholds), num_dets), dtype=bool)
    if num_dets == 0 or ious.shape[1] == 0:
        return matched, det_ignored
    best = ious.max(axis=1)
    for t, threshold in enumerate(thresholds):
        threshold = min(threshold, 1 - 1e-10)
        taken = np.zeros(ious.shape[1], dtype=bool)
        for d in np.flatnonzero(best >= threshold):
            candidates = (ious[d] >= threshold) & (~taken | crowd)
            regular = candidates & ~ignore
            pool = np.flatnonzero(regular if regular.any() else candidates)
            if not len(pool):
                continue
            values = ious[d, pool]
            g = pool[len(pool) - 1 - int(np.argmax(values[::-1]))]  # the last of equal best overlaps
            taken[g] = True
            matched[t, d] = True
            det_ignored[t, d] = ignore[g]
    return matched, det_ignored


def _outside_area(boxes):
    areas = boxes[:, 2] * boxes[:, 3]
    return (areas < AREA_RANGE[0]) | (areas > AREA_RANGE[1])


def _split(ground_truth, detections, class_id):
    gt = [(box, bool(difficult)) for cls, box, difficult in ground_truth if int(cls) == class_id]
    dets = [(float(score), box) for cls, score, box in detections if int(cls) == class_id]
    return gt, dets


def _normalise_gt(items):
    return [(obj[0], obj[1], obj[2] if len(obj) > 2 else False) for obj in items]


def evaluate_class(ground_truth, detections, class_id, thresholds=IOU_THRESHOLDS, max_detections=MAX_DETECTIONS):
    """Per-class accumulation over images. Returns dict with scores, matched, ignored (ranked) and counts."""
    scores, matched, ignored = [], [], []
    num_gt = num_difficult = 0
    for image_gt, image_dets in zip(ground_truth, detections):
        gt, dets = _split(image_gt, image_dets, class_id)
        if not gt and not dets:
            continue
        difficult = np.array([flag for _, flag in gt], dtype=bool)
        boxes = _xywh([box for box, _ in gt])
        ignore = difficult | _outside_area(boxes)
        order_gt = np.argsort(ignore, kind="mergesort")  # regular first, ignored last (stable)
        ignore, difficult = ignore[order_gt], difficult[order_gt]
        det_scores = np.array([score for score, _ in dets], dtype=np.float64)
        order_dt = np.argsort(-det_scores, kind="mergesort")[:max_detections]
        gt_boxes = np.array([gt[i][0] for i in order_gt], dtype=np.float64).reshape(-1, 4)
        dt_boxes = np.array([dets[i][1] for i in order_dt], dtype=np.float64).reshape(-1, 4)
        ious = box_iou(dt_boxes, gt_boxes, difficult)
        image_matched, image_ignored = match_image(ious, ignore, difficult, thresholds)
        image_ignored |= ~image_matched & _outside_area(_xywh(dt_boxes))[None, :]
        scores.append(det_scores[order_dt])
        matched.append(image_matched)
        ignored.append(image_ignored)
        num_gt += int((~ignore).sum())
        num_difficult += int(difficult.sum())
    t = len(thresholds)
    scores = np.concatenate(scores) if scores else np.zeros(0)
    matched = np.concatenate(matched, axis=1) if matched else np.zeros((t, 0), dtype=bool)
    ignored = np.concatenate(ignored, axis=1) if ignored else np.zeros((t, 0), dtype=bool)
    rank = np.argsort(-scores, kind="mergesort")
    return {"scores": scores[rank], "matched": matched[:, rank], "ignored": ignored[:, rank],
            "num_gt": num_gt, "num_difficult": num_difficult}


def precision_curve(matched, ignored, num_gt, recall_points=RECALL_POINTS):
    """[T, R] interpolated precision (COCOeval's accumulate) for one class; None when num_gt is 0."""
    if num_gt == 0:
        return None
    true_pos = np.cumsum(matched & ~ignored, axis=1).astype(float)
    false_pos = np.cumsum(~matched & ~ignored, axis=1).astype(float)
    curve = np.zeros((matched.shape[0], len(recall_points)))
    for t in range(matched.shape[0]):
        tp, fp = true_pos[t], false_pos[t]
        if not len(tp):
            continue
        recall = tp / num_gt
        precision = tp / (fp + tp + np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        index = np.searchsorted(recall, recall_points, side="left")
        inside = index < len(tp)
        curve[t, inside] = precision[index[inside]]
    return curve


def evaluate(ground_truth, detections, num_classes, score_threshold=0.5, class_names=None):
    """COCO metrics for `num_classes` classes. See the module docstring for the inputs.

    Returns {"classes": [per class], "map50", "map", "score_threshold", "images"}; per class: class_id,
    (name), gt (non-difficult), difficult, detections, ap50, ap (AP@[.5:.95]), and at IoU 0.5 among
    detections with score >= score_threshold: tp, fp, precision, recall. Values are None where undefined
    (AP without ground truth, precision without detections); the means skip classes without ground truth.
    """
    if len(ground_truth) != len(detections):
        raise ValueError("ground_truth has {} images, detections {}".format(len(ground_truth), len(detections)))
    ground_truth = [_normalise_gt(image) for image in ground_truth]
    curves = -np.ones((len(IOU_THRESHOLDS), len(RECALL_POINTS), num_classes))
    classes = []
    for class_id in range(num_classes):
        result = evaluate_class(ground_truth, detections, class_id)
        curve = precision_curve(result["matched"], result["ignored"], result["num_gt"])
        if curve is not None:
            curves[:, :, class_id] = curve
        counted = ~result["ignored"][0]
        kept = counted & (result["scores"] >= score_threshold)
        tp = int((result["matched"][0] & kept).sum())
        fp = int((~result["matched"][0] & kept).sum())
        entry = {
            "class_id": class_id,
            "gt": result["num_gt"],
            "difficult": result["num_difficult"],
            "detections": int(len(result["scores"])),
            "ap50": None if curve is None else float(np.mean(curve[0])),
            "ap": None if curve is None else float(np.mean(curve)),
            "tp": tp,
            "fp": fp,
            "precision": tp / float(tp + fp) if tp + fp else None,
            "recall": tp / float(result["num_gt"]) if result["num_gt"] else None,
        }
        if class_names is not None:
            entry["name"] = class_names[class_id]
        classes.append(entry)
    return {
        "classes": classes,
        "map50": _mean(curves[:1]),
        "map": _mean(curves),
        "score_threshold": score_threshold,
        "images": len(ground_truth),
    }


def _mean(values):
    """COCOeval's summarize: the mean over entries that are defined (> -1), None when there are none."""
    defined = values[values > -1]
    return float(np.mean(defined)) if defined.size else None
