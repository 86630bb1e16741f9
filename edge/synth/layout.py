"""The road itself: cross-section (lanes, lines, curbs, verges), markings and unlabelled surface features.

Everything is in world metres with the road centred on X = 0 and running
along +Z. Colours are linear-ish BGR floats in [0, 1] before lighting.
"""
import math

import numpy as np

from edge.synth import raster
from roadedge.core.seglabels import SYNTH_SEG_LABELS


class Line:
    """A painted line along Z at lateral position x; solid, or dashed with (on, off, phase) metres."""

    def __init__(self, x, width, colour, dash=None, role="edge"):
        self.x, self.width, self.colour, self.dash, self.role = float(x), float(width), colour, dash, role

    def pieces(self, z0, z1, gaps=()):
        """Painted Z spans within z0..z1, minus `gaps` (crosswalks, stretches a faded-line damage repaints)."""
        if self.dash is None:
            spans = [(z0, z1)]
        else:
            on, off, phase = self.dash
            period = on + off
            spans = []
            for k in range(math.floor((z0 - phase) / period), math.ceil((z1 - phase) / period) + 1):
                a = phase + k * period
                a, b = max(a, z0), min(a + on, z1)
                if b > a:
                    spans.append((a, b))
        for g0, g1 in gaps:
            cut = []
            for a, b in spans:
                if b <= g0 or a >= g1:
                    cut.append((a, b))
                    continue
                if a < g0:
                    cut.append((a, g0))
                if b > g1:
                    cut.append((g1, b))
            spans = cut
        return spans

    def quads(self, spans):
        h = self.width / 2
        return [np.array([[self.x - h, a], [self.x + h, a], [self.x + h, b], [self.x - h, b]]) for a, b in spans]


class Road:
    """Cross-section of a straight road and the lateral colour profile of everything on the ground."""

    def __init__(self, rng):
        self.lanes = 2 if rng.random() < 0.8 else 3
        self.lane_width = rng.uniform(2.9, 3.6) if self.lanes == 2 else rng.uniform(2.8, 3.3)
        self.half = self.lanes * self.lane_width / 2 + rng.uniform(0.2, 0.6)
        self.lane_centres = [(-self.lanes / 2 + 0.5 + k) * self.lane_width for k in range(self.lanes)]
        self.urban = rng.random() < 0.6
        tone = rng.uniform(0.24, 0.52)
        tint = rng.normal(0, 0.015, 3)
        self.asphalt = np.clip(tone + tint + np.array([0.01, 0.0, -0.01]), 0.05, 1)
        self.texture = rng.uniform(0.05, 0.12)
        self.lines = []
        line_w = rng.uniform(0.1, 0.18)
        if rng.random() < 0.85:
            inset = rng.uniform(0.15, 0.35)
            for side in (-1, 1):
                self.lines.append(Line(side * (self.half - inset), line_w, "white"))
        kind = rng.choice(["dashed", "dashed", "solid", "yellow", "none"], p=[0.35, 0.2, 0.15, 0.15, 0.15])
        dividers = [0.0] if self.lanes == 2 else [-self.lane_width / 2, self.lane_width / 2]
        for x in dividers:
            if kind in ("dashed",):
                on = rng.uniform(2.5, 5.0)
                self.lines.append(Line(x, line_w, "white", (on, on * rng.uniform(1.0, 2.0), rng.uniform(0, 10)), "centre"))
            elif kind in ("solid", "yellow"):
                self.lines.append(Line(x, line_w, "white" if kind == "solid" else "yellow", None, "centre"))
        self.wheel_paths = []
        wear = rng.uniform(-0.07, 0.06)
        for c in self.lane_centres:
            for s in (-1, 1):
                self.wheel_paths.append((c + s * rng.uniform(0.7, 0.95), rng.uniform(0.35, 0.7), wear))
            self.wheel_paths.append((c, rng.uniform(0.3, 0.6), rng.uniform(-0.08, 0.0)))  # oil drip strip
        self._bands(rng)

    def _bands(self, rng):
        """Lateral bands (x_from, x_to, colour, noise amplitude, segmentation label) out from the carriageway edges."""
        asphalt = (self.asphalt, self.texture, "road")
        bands = [(-self.half, self.half) + asphalt]
        self.frontage = {}  # where private land (building fronts, fields) starts, per side
        for side in (-1, 1):
            x = self.half
            if self.urban:
                curb_w = rng.uniform(0.12, 0.25)
                walk_w = rng.uniform(1.5, 4.0)
                curb = np.full(3, rng.uniform(0.5, 0.72))
                walk = np.clip(rng.uniform(0.42, 0.62) + rng.normal(0, 0.03, 3), 0, 1)
                lot = np.clip(rng.uniform(0.25, 0.45) + rng.normal(0, 0.03, 3), 0, 1)
                parts = [(curb_w, curb, 0.04, "sidewalk"), (walk_w, walk, 0.06, "sidewalk"), (80.0, lot, 0.1, "background")]
            else:
                gravel = np.array([0.36, 0.42, 0.46]) * rng.uniform(0.8, 1.2)
                grass = np.array([0.12, 0.34, 0.24]) * rng.uniform(0.7, 1.3) + rng.normal(0, 0.03, 3)
                parts = [(rng.uniform(0.3, 1.2), gravel, 0.12, "background"),
                         (80.0, np.clip(grass, 0.03, 1), 0.22, "vegetation")]
            for width, colour, amp, name in parts:
                self.frontage[side] = x
                lo, hi = (x, x + width)
                bands.append((lo, hi, colour, amp, name) if side > 0 else (-hi, -lo, colour, amp, name))
                x += width
        self.bands = sorted(bands, key=lambda b: b[0])
        self._band_starts = np.array([b[0] for b in self.bands[1:]], np.float32)
        self._band_labels = np.array([SYNTH_SEG_LABELS.index(b[4]) for b in self.bands], np.uint8)

    def surface_labels(self, xs):
        """Segmentation class (index into SYNTH_SEG_LABELS) of the ground at lateral positions xs (any shape).

        The bands are contiguous; beyond the outermost ones the ground continues as they do (as the colour LUT).
        """
        return self._band_labels[np.searchsorted(self._band_starts, xs, side="right")]

    def profile(self, xs):
        """Colour (N, 3) and texture amplitude (N,) of the ground at lateral positions xs."""
        colour = np.empty((len(xs), 3), np.float32)
        amp = np.empty(len(xs), np.float32)
        colour[:] = self.bands[0][2]
        amp[:] = self.bands[0][3]
        for lo, hi, c, a, _ in self.bands:
            sel = (xs >= lo) & (xs < hi)
            colour[sel] = c
            amp[sel] = a
        on_road = np.abs(xs) < self.half
        for x, width, wear in self.wheel_paths:
            g = np.exp(-0.5 * ((xs - x) / (0.5 * width)) ** 2) * on_road
            colour *= (1.0 + wear * g)[:, None]
        return colour, amp


def crosswalk_polys(road, z, length, bar_w, gap):
    """Zebra bars running along Z, spread across the carriageway, at z..z+length."""
    usable = 2 * road.half - 0.6
    n = max(3, int((usable + gap) // (bar_w + gap)))
    start = -(n * bar_w + (n - 1) * gap) / 2
    return [np.array([[x, z], [x + bar_w, z], [x + bar_w, z + length], [x, z + length]])
            for x in start + np.arange(n) * (bar_w + gap)]


def stop_line(road, z, side, width):
    x0, x1 = (0.0, road.half - 0.3) if side > 0 else (-road.half + 0.3, 0.0)
    return np.array([[x0, z], [x1, z], [x1, z + width], [x0, z + width]])


class Feature:
    """Unlabelled tone change on the road: repair patch (crisp) or oil stain (soft)."""

    def __init__(self, poly, factor, blur_m):
        self.poly, self.factor, self.blur_m = poly, float(factor), float(blur_m)
        self.zmin, self.zmax = poly[:, 1].min(), poly[:, 1].max()

    def draw(self, img, cam):
        poly = cam.clip_polygon(self.poly)
        if len(poly) < 3:
            return
        px = cam.project(poly)
        depth = max(float(cam.depth(poly).mean()), 0.5)
        sigma = self.blur_m * cam.focal / depth
        pad = int(3 * sigma) + 2
        roi = raster.Roi.around(raster.pixel_box(px, 0), pad, cam.width, cam.height)
        if roi.empty:
            return
        alpha = raster.soft(raster.fill(roi.mask(), [px], roi.origin), sigma)
        roi.view(img)[...] *= (1.0 + (self.factor - 1.0) * alpha)[:, :, None]


def surface_features(rng, road, z0, z1):
    """Repair patches and oil stains for the road between z0 and z1."""
    out = []
    span = z1 - z0
    for _ in range(rng.poisson(span / 45.0)):
        w, length = rng.uniform(0.8, road.lane_width), rng.uniform(1.0, 6.0)
        x = rng.uniform(-road.half + w / 2, road.half - w / 2)
        z = rng.uniform(z0, z1)
        corners = np.array([[-w / 2, 0], [w / 2, 0], [w / 2, length], [-w / 2, length]]) + rng.normal(0, 0.05, (4, 2))
        factor = rng.uniform(0.78, 0.9) if rng.random() < 0.7 else rng.uniform(1.08, 1.18)
        out.append(Feature(corners + [x, z], factor, 0.0))
    for _ in range(rng.poisson(span / 20.0)):
        c = rng.choice(road.lane_centres) + rng.normal(0, 0.3)
        r = rng.uniform(0.2, 0.7)
        t = np.linspace(0, 2 * math.pi, 16, endpoint=False)
        rad = r * (1 + 0.25 * rng.standard_normal(16))
        poly = np.column_stack([c + rad * np.cos(t), rng.uniform(z0, z1) + 1.6 * rad * np.sin(t)])
        out.append(Feature(poly, rng.uniform(0.8, 0.93), r * 0.4))
    return out
