"""SSD training targets in numpy, with MXNet's `_contrib_MultiBoxTarget` semantics, vectorised over the anchors.

MXNet's CPU operator builds eleven [batch, anchors, labels] temporaries with single-threaded expressions and then
walks the anchors one by one: a quarter of a training iteration of the demo SSD (0.5 of ~2 core-seconds, batch 32
at 256x256, 22k anchors). This computes the same three outputs, per image:

1. overlaps: IoU of every anchor with every valid label row (rows up to the first class -1), in float32 and in
   MXNet's order of operations;
2. bipartite matching: repeatedly the largest overlap (> 1e-6) among unmatched anchors and labels, ties to the
   first anchor, then the first label;
3. every other anchor takes its best label (the first on ties), a positive when its IoU > overlap_threshold;
4. hard negatives: num_positive x negative_mining_ratio (truncated) anchors, not positive and with IoU <
   negative_mining_thresh, those with the lowest softmax background probability (a stable order);
   with no mining every non-positive anchor is a negative;
5. positives get class + 1, a loc mask of ones and the box encoded against the anchor with `variances`; negatives
   class 0; everything else ignore_label. An image without labels is all ignore_label.

The probabilities and the box encoding use numpy's float32 exp and log, which may differ from the C library's by a
unit in the last place: a hard negative at the cut of the mining order can then differ in rare cases.
"""
import numpy as np


def overlaps(anchors, boxes):
    """[A, K] float32 IoU of anchors [A, 4] with boxes [K, 4] (xmin, ymin, xmax, ymax), as MXNet computes it."""
    a = anchors[:, None, :]
    g = boxes[None, :, :]
    zero = np.float32(0)
    inter = (np.maximum(zero, np.minimum(a[..., 2], g[..., 2]) - np.maximum(a[..., 0], g[..., 0]))
             * np.maximum(zero, np.minimum(a[..., 3], g[..., 3]) - np.maximum(a[..., 1], g[..., 1])))
    union = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1]) - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union != 0)
    return out


def background_probability(cls_preds):
    """[B, A] float32 softmax probability of class 0 from logits [B, C, A]."""
    peak = cls_preds.max(axis=1)
    total = np.zeros_like(peak)
    for k in range(cls_preds.shape[1]):  # summed in class order, as MXNet does
        total += np.exp(cls_preds[:, k] - peak)
    return np.exp(cls_preds[:, 0] - peak) / total


def encode(anchors, boxes, variances):
    """[N, 4] float32 box regression targets of boxes [N, 4] against anchors [N, 4]."""
    vx, vy, vw, vh = (np.float32(v) for v in variances)
    half = np.float32(0.5)
    aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    ax, ay = (anchors[:, 0] + anchors[:, 2]) * half, (anchors[:, 1] + anchors[:, 3]) * half
    gw, gh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    gx, gy = (boxes[:, 0] + boxes[:, 2]) * half, (boxes[:, 1] + boxes[:, 3]) * half
    return np.stack([(gx - ax) / aw / vx, (gy - ay) / ah / vy, np.log(gw / aw) / vw, np.log(gh / ah) / vh], axis=1)


def lowest(values, index, count):
    """The `count` entries of `index` with the lowest `values`, ties to the earlier entry (a stable sort's first
    `count`), without sorting them all."""
    if count <= 0:
        return index[:0]
    if count >= len(values):
        return index
    cut = np.partition(values, count - 1)[count - 1]
    below = np.flatnonzero(values < cut)
    at_cut = np.flatnonzero(values == cut)[:count - len(below)]
    return index[np.concatenate([below, at_cut])]


def _match(iou, overlap_threshold):
    """(flags [A] int8: 1 positive, -1 undecided; best IoU [A]; best label [A]) for one image's [A, K] overlaps.
    Every anchor the bipartite step leaves gets its best label (the mining's threshold reads its IoU); it is a
    positive only with overlap_threshold > 0."""
    num_anchors, num_gt = iou.shape
    flags = np.full(num_anchors, -1, np.int8)
    best_iou = np.full(num_anchors, -1.0, np.float32)
    best_gt = np.full(num_anchors, -1, np.int64)
    masked = iou.copy()
    for _ in range(num_gt):  # bipartite: each label its best free anchor, the largest overlap first
        flat = int(np.argmax(masked))
        anchor, gt = divmod(flat, num_gt)
        if not masked[anchor, gt] > np.float32(1e-6):
            break
        flags[anchor], best_iou[anchor], best_gt[anchor] = 1, masked[anchor, gt], gt
        masked[anchor, :] = -np.inf
        masked[:, gt] = -np.inf
    rest = np.flatnonzero(flags != 1)
    best_gt[rest] = np.argmax(iou[rest], axis=1)
    best_iou[rest] = iou[rest, best_gt[rest]]
    if overlap_threshold > 0:
        flags[rest[best_iou[rest] > np.float32(overlap_threshold)]] = 1
    return flags, best_iou, best_gt


def multibox_targets(anchors, labels, cls_preds, overlap_threshold=0.5, ignore_label=-1.0, negative_mining_ratio=-1.0,
                     negative_mining_thresh=0.5, variances=(0.1, 0.1, 0.2, 0.2)):
    """(loc_target [B, A*4], loc_mask [B, A*4], cls_target [B, A]) float32 from anchors [A, 4] (or [1, A, 4]), labels
    [B, L, >=5] (class, xmin, ymin, xmax, ymax; -1 rows pad) and class logits [B, C, A]."""
    anchors = np.asarray(anchors, np.float32).reshape(-1, 4)
    labels, cls_preds = np.asarray(labels, np.float32), np.asarray(cls_preds, np.float32)
    batch, num_anchors = labels.shape[0], anchors.shape[0]
    loc_target = np.zeros((batch, num_anchors, 4), np.float32)
    loc_mask = np.zeros((batch, num_anchors, 4), np.float32)
    cls_target = np.full((batch, num_anchors), ignore_label, np.float32)
    background = background_probability(cls_preds) if negative_mining_ratio > 0 else None
    for b in range(batch):
        padding = np.flatnonzero(labels[b, :, 0] == -1.0)
        valid = labels[b, :padding[0] if len(padding) else labels.shape[1]]
        if not len(valid):
            continue
        flags, best_iou, best_gt = _match(overlaps(anchors, valid[:, 1:5]), overlap_threshold)
        positive = flags == 1
        if negative_mining_ratio > 0:
            count = int(np.float32(positive.sum()) * np.float32(negative_mining_ratio))
            count = min(count, num_anchors - int(positive.sum()))
            candidates = np.flatnonzero(~positive & (best_iou < np.float32(negative_mining_thresh)))
            flags[lowest(background[b, candidates], candidates, count)] = 0
        else:
            flags[~positive] = 0
        index = np.flatnonzero(positive)
        matched = valid[best_gt[index]]
        cls_target[b, index] = matched[:, 0] + 1
        loc_mask[b, index] = 1
        loc_target[b, index] = encode(anchors[index], matched[:, 1:5], variances)
        cls_target[b, flags == 0] = 0
    return loc_target.reshape(batch, -1), loc_mask.reshape(batch, -1), cls_target
