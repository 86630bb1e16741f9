"""Sub-pixel drawing into small masks, and the pixel box / truncated / difficult rules.

Pixel convention: integer coordinates are pixel centres (as in cv2 drawing
with `shift`), so pixel i covers [i - 0.5, i + 0.5). A box is written as the
first touched pixel and one past the last touched pixel:
0 <= xmin < xmax <= width.
"""
import math

import cv2
import numpy as np

from edge.synth.camera import clip_halfplane

SHIFT = 4
_SCALE = float(1 << SHIFT)

MIN_SIDE = 8  # px: a visible box thinner than this is "difficult"
MIN_AREA = 120  # px^2


def fixed(pts, origin=(0, 0)):
    """Pixel coordinates -> int32 fixed point (SHIFT fractional bits) relative to origin (x, y)."""
    pts = np.asarray(pts, dtype=np.float64) - np.asarray(origin, dtype=np.float64)
    # cv2 rejects coordinates beyond +-2^(31-shift); far vertices are clamped (they are off-frame anyway)
    pts = np.clip(pts, -1e6, 1e6)
    return np.round(pts * _SCALE).astype(np.int32)


class Roi:
    """An integer pixel rectangle [x0, x1) x [y0, y1) inside the frame."""

    __slots__ = ("x0", "y0", "x1", "y1")

    def __init__(self, x0, y0, x1, y1):
        self.x0, self.y0, self.x1, self.y1 = int(x0), int(y0), int(x1), int(y1)

    @classmethod
    def around(cls, box, pad, width, height):
        x0, y0, x1, y1 = box
        return cls(max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad))

    @property
    def origin(self):
        return (self.x0, self.y0)

    @property
    def shape(self):
        return (self.y1 - self.y0, self.x1 - self.x0)

    @property
    def empty(self):
        return self.x1 <= self.x0 or self.y1 <= self.y0

    def mask(self):
        return np.zeros(self.shape, np.uint8)

    def view(self, img):
        return img[self.y0:self.y1, self.x0:self.x1]


def fill(mask, polys, origin, value=255):
    """Antialiased fill of pixel polygons (list of (N, 2)) into a uint8 mask whose (0, 0) is `origin`."""
    polys = [fixed(p, origin) for p in polys if len(p) >= 3]
    if polys:
        cv2.fillPoly(mask, polys, int(value), cv2.LINE_AA, SHIFT)
    return mask


def segments(mask, a, b, thickness, values, origin):
    """Antialiased segments a[i]-b[i] (pixel coords) with per-segment integer thickness and mask value."""
    if len(a) == 0:
        return mask
    fa, fb = fixed(a, origin), fixed(b, origin)
    keys = np.asarray(thickness, np.int64) * 256 + np.asarray(values, np.int64)
    for key in np.unique(keys):
        sel = np.nonzero(keys == key)[0]
        lines = np.stack([fa[sel], fb[sel]], axis=1)
        cv2.polylines(mask, list(lines), False, int(key % 256), int(key // 256), cv2.LINE_AA, SHIFT)
    return mask


def soft(mask, sigma):
    """uint8 mask -> float32 alpha in [0, 1], optionally Gaussian-softened."""
    alpha = mask.astype(np.float32) * np.float32(1.0 / 255.0)
    if sigma > 0.3:
        alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
    return alpha


def pixel_box(pts, margin):
    """Unclipped integer box (xmin, ymin, xmax, ymax) of pixel points grown by margin pixels."""
    pts = np.asarray(pts, dtype=np.float64)
    lo = pts.min(axis=0) - margin
    hi = pts.max(axis=0) + margin
    return (math.floor(lo[0] + 0.5), math.floor(lo[1] + 0.5), math.floor(hi[0] + 0.5) + 1, math.floor(hi[1] + 0.5) + 1)


def _clip_polygon_to_rect(poly, x_lo, y_lo, x_hi, y_hi):
    for axis, bound, sign in ((0, x_lo, 1.0), (0, x_hi, -1.0), (1, y_lo, 1.0), (1, y_hi, -1.0)):
        if len(poly) == 0:
            break
        poly = clip_halfplane(poly, sign * (poly[:, axis] - bound))
    return poly


def _clip_segments_to_rect(a, b, x_lo, y_lo, x_hi, y_hi):
    """Liang-Barsky, vectorised: the parts of segments a[i]-b[i] inside the rectangle."""
    d = b - a
    t0, t1 = np.zeros(len(a)), np.ones(len(a))
    bad = np.zeros(len(a), bool)
    for axis, bound, sign in ((0, x_lo, 1.0), (0, x_hi, -1.0), (1, y_lo, 1.0), (1, y_hi, -1.0)):
        fa, fd = sign * (a[:, axis] - bound), sign * d[:, axis]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -fa / fd
        t0 = np.where(fd > 0, np.maximum(t0, t), t0)
        t1 = np.where(fd < 0, np.minimum(t1, t), t1)
        bad |= (fd == 0) & (fa < 0)
    ok = ~bad & (t0 <= t1)
    return a[ok] + t0[ok, None] * d[ok], a[ok] + t1[ok, None] * d[ok]


def label(name, geometry, margin, cam):
    """The annotation of projected geometry: dict, or None when none of it is in the frame.

    `geometry` is (pixel polygons, (segment starts, segment ends) or None). The
    box is that of the part inside the frame and below the horizon, grown by
    `margin` (line thickness) and clipped again; truncated = the frame cut
    it; difficult = tiny, or less than half of its full box is visible.
    """
    polys, segs = geometry
    top = max(0, math.floor(cam.horizon + 0.5))
    rect = (-0.5, top - 0.5, cam.width - 0.5, cam.height - 0.5)
    everything, visible = [], []
    for poly in polys:
        if len(poly) >= 3:
            everything.append(poly)
            clipped = _clip_polygon_to_rect(poly, *rect)
            if len(clipped):
                visible.append(clipped)
    if segs is not None and len(segs[0]):
        everything += list(segs)
        visible += [p for p in _clip_segments_to_rect(segs[0], segs[1], *rect) if len(p)]
    if not visible:
        return None
    full = pixel_box(np.vstack(everything), margin)
    grown = pixel_box(np.vstack(visible), margin)
    box = (max(grown[0], 0), max(grown[1], top), min(grown[2], cam.width), min(grown[3], cam.height))
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    w, h = box[2] - box[0], box[3] - box[1]
    area = w * h
    full_area = max(1, (full[2] - full[0]) * (full[3] - full[1]))
    truncated = int(box != full)
    difficult = int(min(w, h) < MIN_SIDE or area < MIN_AREA or area < 0.5 * full_area)
    return {"name": name, "bbox": [int(v) for v in box], "truncated": truncated, "difficult": difficult}


def box_overlap(a, b):
    """(IoU, intersection over the smaller box) of two [x0, y0, x1, y1] boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0, 0.0
    inter = iw * ih
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / float(area_a + area_b - inter), inter / float(min(area_a, area_b))
