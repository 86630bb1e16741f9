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
        return values.argmax(axis=0).astype(np.uint8)
    while values.ndim > 2:
        values = values[0]
    if values.ndim != 2:
        raise ValueError("segmentation mask of shape {}; expected [1, 1, H, W]".format(list(np.shape(raw))))
    return values.astype(np.uint8, copy=False)


class NearestResize(object):
    """Nearest-neighbour resizing of masks, with the index arrays kept per (source, target) size.

    Pixel centres map as OpenCV's INTER_NEAREST does: target pixel x takes source pixel floor(x * w / W).
    """

    def __init__(self):
        self._indices = {}

    def __call__(self, mask, size):
        width, height = int(size[0]), int(size[1])
        if mask.shape == (height, width):
            return mask
        key = (mask.shape, width, height)
        if key not in self._indices:
            rows = np.minimum((np.arange(height) * mask.shape[0]) // height, mask.shape[0] - 1)
            cols = np.minimum((np.arange(width) * mask.shape[1]) // width, mask.shape[1] - 1)
            self._indices = {key: (rows[:, None], cols[None, :])}  # one size at a time: frames rarely change size
        rows, cols = self._indices[key]
        return mask[rows, cols]


def class_shares(mask, num_classes):
    """Share of the mask's pixels per class index 0..num_classes-1 (float64 array summing to <= 1)."""
    counts = np.bincount(mask.ravel(), minlength=num_classes)[:num_classes]
    return counts / float(max(1, mask.size))


def free_rows(road, band=0.2, min_fill=0.5):
    """Rows of road from the bottom of a boolean road mask (H, W): the rows, counted upwards from the last one,
    in which at least `min_fill` of the centre band (`band` of the width, centred) is road; stops at the first
    row that is not."""
    height, width = road.shape
    half = max(1, int(round(width * band / 2.0)))
    centre = width // 2
    strip = road[:, max(0, centre - half):min(width, centre + half)]
    filled = strip.mean(axis=1) >= min_fill
    blocked = np.flatnonzero(~filled[::-1])
    return int(blocked[0]) if blocked.size else height


class SegmentationResult(object):
    """One frame's segmentation: the mask at the frame's size and the figures the message carries.

    mask        (H, W) uint8 class indices, the frame's size
    labels      the model's class names (index order); palette: [(r, g, b)] per class
    shares      per-class pixel shares (array, index order)
    drivable    share of road-class pixels, or None when the model has no road class
    free_rows   rows of free road ahead (None without road classes); free_share: the same over the height
    """

    __slots__ = ("mask", "labels", "palette", "shares", "drivable", "free_rows", "free_share")

    def __init__(self, mask, labels, palette, shares, drivable, free_rows_count):
        self.mask, self.labels, self.palette = mask, tuple(labels), palette
        self.shares, self.drivable, self.free_rows = shares, drivable, free_rows_count
        self.free_share = None if free_rows_count is None else free_rows_count / float(max(1, mask.shape[0]))

    def present(self):
        """[(class index, share)] of the classes in the mask, largest share first."""
        found = [(index, float(share)) for index, share in enumerate(self.shares) if share > 0]
        return sorted(found, key=lambda item: (-item[1], item[0]))

    def __len__(self):
        return 0  # no boxes: nothing for the damage tracker or the detections counters


class MaskAnalysis(object):
    """raw output + frame size -> SegmentationResult, for one model and the profile's segmentation settings."""

    def __init__(self, labels, palette, output_format, road_indices, band=0.2, min_fill=0.5):
        if output_format not in MASK_FORMATS:
            raise ValueError("output format {!r}; expected {}".format(output_format, " or ".join(MASK_FORMATS)))
        self.labels, self.palette, self.output_format = tuple(labels), palette, output_format
        self.road_lut = np.zeros(256, bool)
        self.road_lut[list(road_indices)] = True
        self.has_road = bool(len(road_indices))
        self.band, self.min_fill = band, min_fill
        self.resize = NearestResize()

    def __call__(self, raw, frame_size):
        mask = self.resize(class_mask(raw, self.output_format), frame_size)
        shares = class_shares(mask, len(self.labels))
        if not self.has_road:
            return SegmentationResult(mask, self.labels, self.palette, shares, None, None)
        road = self.road_lut[mask]
        drivable = float(road.mean())
        rows = free_rows(road, self.band, self.min_fill)
        return SegmentationResult(mask, self.labels, self.palette, shares, drivable, rows)
