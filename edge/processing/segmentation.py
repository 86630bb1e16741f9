"""Segmentation masks: the network's raw output -> a class-index mask at the frame's size, and what it says.

Pure numpy (no cv2: edge/processing imports no camera, file or network library). The figures:

  shares          per class, the share of the frame's pixels of that class
  drivable share  the share of pixels whose class is one of the road classes
  free distance   how far the road reaches up from the bottom in the lower centre of the frame: the
                  rows, counted from the bottom, whose centre band is mostly road (the RC car's
                  "free space ahead"), in pixels and as a share of the frame's height
"""
from __future__ import division

import numpy as np

MASK_FORMATS = ("segmentation_logits", "segmentation_mask")


def argmax_classes(logits):
    """(C, H, W) scores -> (H, W) uint8 index of the largest (the first on a tie, as numpy's argmax): one pass per
    class over contiguous planes, about twice as fast as argmax over the strided class axis."""
    best = np.array(logits[0], dtype=logits.dtype, copy=True)
    index = np.zeros(best.shape, np.uint8)
    for klass in range(1, logits.shape[0]):
        plane = logits[klass]
        np.putmask(index, np.greater(plane, best), klass)
        np.maximum(best, plane, out=best)
    return index


def class_mask(raw, output_format):
    """The class-index mask (H, W) uint8 of one image's raw output.

    segmentation_logits: [1, C, H, W] (or [C, H, W]) scores -> the argmax over classes;
    segmentation_mask:   [1, 1, H, W], [1, H, W] or [H, W] class indices (the argmax folded into the model).
    """
    values = np.asarray(raw)
    if output_format == "segmentation_logits":
        if values.ndim == 4:
            values = values[0]
        if values.ndim != 3:
            raise ValueError("segmentation logits of shape {}; expected [1, C, H, W]".format(list(np.shape(raw))))
        return argmax_classes(values)
    while values.ndim > 2:
        values = values[0]
    if values.ndim != 2:
        raise ValueError("segmentation mask of shape {}; expected [1, 1, H, W]".format(list(np.shape(raw))))
    return values.astype(np.uint8, copy=False)


def _nearest_sources(size, out_size):
    """The source index of each of `out_size` target indices, computed the way OpenCV does (double arithmetic)."""
    inverse = 1.0 / (float(out_size) / float(size))
    return np.minimum(np.floor(np.arange(out_size, dtype=np.float64) * inverse).astype(np.int64), size - 1)


class NearestResize(object):
    """Nearest-neighbour resizing of masks, with the index arrays kept for the last (source, target) size.

    Pixels map as OpenCV's INTER_NEAREST maps them: target x takes source floor(x * (1 / (W / w))), in doubles.
    `weights(shape, size)`: how many target rows and columns each source row and column becomes, so figures of the
    resized mask can be computed exactly on the small one.
    """

    def __init__(self):
        self._key, self._rows, self._cols = None, None, None

    def _indices(self, shape, size):
        key = (shape, int(size[0]), int(size[1]))
        if key != self._key:  # one size at a time: frames rarely change size
            (height, width), (out_w, out_h) = shape, key[1:]
            self._rows = _nearest_sources(height, out_h)
            self._cols = _nearest_sources(width, out_w)
            self._key = key
        return self._rows, self._cols

    def __call__(self, mask, size):
        if mask.shape == (int(size[1]), int(size[0])):
            return mask
        rows, cols = self._indices(mask.shape, size)
        return mask[rows[:, None], cols[None, :]]

    def index_arrays(self, shape, size):
        """(rows, cols): the source row of every target row, the source column of every target column."""
        return self._indices(shape, size)


def class_counts(mask, num_classes, weights=None):
    """(pixels per class index 0..num_classes-1, all pixels); `weights` (the mask's shape): how many pixels each mask
    pixel stands for."""
    if weights is None:
        return np.bincount(mask.ravel(), minlength=num_classes)[:num_classes], float(max(1, mask.size))
    counts = np.bincount(mask.ravel(), weights=weights.ravel(), minlength=num_classes)[:num_classes]
    return counts, float(max(1.0, weights.sum()))


def class_shares(mask, num_classes, weights=None):
    """Share of the pixels per class index 0..num_classes-1 (float64 array summing to <= 1); `weights` as in
    class_counts."""
    counts, total = class_counts(mask, num_classes, weights)
    return counts / total


def band_columns(width, band):
    """[left, right) of the centre band `band` of the width wide."""
    half = max(1, int(round(width * band / 2.0)))
    return max(0, width // 2 - half), min(width, width // 2 + half)


def free_rows(road, band=0.2, min_fill=0.5):
    """Rows of road from the bottom of a boolean road mask (H, W): the rows, counted upwards from the last one,
    in which at least `min_fill` of the centre band (`band` of the width, centred) is road; stops at the first
    row that is not."""
    left, right = band_columns(road.shape[1], band)
    return _rows_from_bottom(road[:, left:right].mean(axis=1) >= min_fill)


def _rows_from_bottom(filled):
    blocked = np.flatnonzero(~filled[::-1])
    return int(blocked[0]) if blocked.size else int(filled.size)


class SegmentationResult(object):
    """One frame's segmentation: the mask and the figures the message carries.

    mask        (H, W) uint8 class indices at the frame's size (made from the model's mask when first asked for)
    labels      the model's class names (index order); palette: [(r, g, b)] per class
    shares      per-class pixel shares of the frame (array, index order)
    drivable    share of road-class pixels, or None when the model has no road class
    free_rows   rows of free road ahead (None without road classes); free_share: the same over the height
    """

    __slots__ = ("_mask", "_resize", "labels", "palette", "shares", "drivable", "free_rows", "free_share")

    def __init__(self, mask, labels, palette, shares, drivable, free_rows_count, resize=None, frame_height=None):
        self._mask, self._resize = mask, resize  # resize: () -> the mask at the frame's size, when `mask` is not
        self.labels, self.palette = tuple(labels), palette
        self.shares, self.drivable, self.free_rows = shares, drivable, free_rows_count
        height = frame_height or mask.shape[0]
        self.free_share = None if free_rows_count is None else free_rows_count / float(max(1, height))

    @property
    def mask(self):
        if self._resize is not None:
            self._mask, self._resize = self._resize(), None
        return self._mask

    def present(self):
        """[(class index, share)] of the classes in the frame, largest share first."""
        found = [(index, float(share)) for index, share in enumerate(self.shares) if share > 0]
        return sorted(found, key=lambda item: (-item[1], item[0]))


class MaskAnalysis(object):
    """raw output + frame size -> SegmentationResult, for one model and the profile's segmentation settings.

    The figures are those of the mask resized to the frame (nearest neighbour), computed exactly on the model's
    smaller mask: every model pixel weighs as many frame pixels as it becomes. The frame-sized mask itself is made
    only when a sink or the overlay asks for it.
    """

    def __init__(self, labels, palette, output_format, road_indices, band=0.2, min_fill=0.5):
        if output_format not in MASK_FORMATS:
            raise ValueError("output format {!r}; expected {}".format(output_format, " or ".join(MASK_FORMATS)))
        self.labels, self.palette, self.output_format = tuple(labels), palette, output_format
        self.road_lut = np.zeros(256, bool)
        self.road_lut[list(road_indices)] = True
        self.has_road = bool(len(road_indices))
        self.band, self.min_fill = band, min_fill
        self.resize = NearestResize()
        self._weights_key, self._weights = None, None

    def _frame_weights(self, shape, frame_size):
        """Per model pixel, the frame pixels it becomes; per model row, the frame rows; and, over the model columns
        [left, right) the frame's centre band reaches, how many band columns each becomes."""
        key = (shape, tuple(frame_size))
        if key != self._weights_key:
            rows, cols = self.resize.index_arrays(shape, frame_size)
            row_count = np.bincount(rows, minlength=shape[0]).astype(np.float64)
            col_count = np.bincount(cols, minlength=shape[1]).astype(np.float64)
            left, right = band_columns(int(frame_size[0]), self.band)
            band_cols = cols[left:right]
            band_count = np.bincount(band_cols, minlength=shape[1]).astype(np.float64)
            first, last = int(band_cols.min()), int(band_cols.max()) + 1
            self._weights = (np.outer(row_count, col_count), rows, (first, last, band_count[first:last]))
            self._weights_key = key
        return self._weights

    def __call__(self, raw, frame_size):
        small = class_mask(raw, self.output_format)
        if small.shape == (int(frame_size[1]), int(frame_size[0])):
            weights, rows, band = None, None, None
            resize = None
        else:
            weights, rows, band = self._frame_weights(small.shape, frame_size)
            resize = lambda: self.resize(small, frame_size)  # noqa: E731 - made only when asked for
        counts, total = class_counts(small, len(self.labels), weights)
        shares = counts / total
        if not self.has_road:
            return SegmentationResult(small, self.labels, self.palette, shares, None, None, resize, frame_size[1])
        drivable = float(counts[self.road_lut[:len(counts)]].sum() / total)
        if weights is None:
            count = free_rows(self.road_lut[small], self.band, self.min_fill)
        else:
            first, last, band_count = band
            road = self.road_lut[small[:, first:last]]  # only the columns the centre band reaches
            fill = road.dot(band_count) / max(1.0, band_count.sum())  # per model row
            count = _rows_from_bottom(fill[rows] >= self.min_fill)  # per frame row
        return SegmentationResult(small, self.labels, self.palette, shares, drivable, count, resize, frame_size[1])
