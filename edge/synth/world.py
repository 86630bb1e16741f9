"""Worlds: a road plus everything placed on and beside it, queried by Z window.

`StillWorld` holds one stretch of road around one camera; `DriveWorld` is an
endless road generated lazily in 40 m segments, each from its own seed, so
any frame of a drive can be rendered on its own and damages keep their ids.
"""
import math

import numpy as np

from edge.synth import damage as dmg
from edge.synth import layout
from edge.synth.noise import NoiseField
from edge.synth.roadside import roadside_items
from edge.synth.scene import OCTAVES, ground_lut

SEGMENT = 40.0


class Part:
    """The contents of one stretch of road."""

    def __init__(self):
        self.damages, self.features, self.roadside, self.paints = [], [], [], []
        self.gaps = {}  # line index -> [(z0, z1)] where the intact line is not painted
        # paints: (colour, ground polygon, segmentation label) of intact markings other than the lines

    def add_gap(self, line_index, span):
        self.gaps.setdefault(line_index, []).append(span)

    def taken(self, z0, z1, pad=1.0):
        spans = [(d.zmin, d.zmax) for d in self.damages] + [(p[:, 1].min(), p[:, 1].max()) for _, p, _ in self.paints]
        return any(a - pad < z1 and z0 < b + pad for a, b in spans)


class World:
    def __init__(self, road, noise_seed, skyline):
        self.road = road
        self.lut = ground_lut(road)
        self.noise = NoiseField(noise_seed, OCTAVES)
        self.skyline = skyline

    def parts(self, z0, z1):
        raise NotImplementedError

    def items(self, z0, z1):
        parts = self.parts(z0, z1)
        gaps = {}
        for part in parts:
            for k, spans in part.gaps.items():
                gaps.setdefault(k, []).extend(spans)
        paints = []
        for k, line in enumerate(self.road.lines):
            paints += [(line.colour, q, "lane_marking") for q in line.quads(line.pieces(z0, z1, gaps.get(k, ())))]

        def within(seq):
            return [it for part in parts for it in getattr(part, seq) if it.zmax >= z0 and it.zmin <= z1]

        paints += [paint for part in parts for paint in part.paints if paint[1][:, 1].max() >= z0 and paint[1][:, 1].min() <= z1]
        return {"damages": within("damages"), "features": within("features"), "roadside": within("roadside"),
                "paint": paints}


class StillWorld(World):
    def __init__(self, road, noise_seed, skyline):
        super().__init__(road, noise_seed, skyline)
        self.part = Part()

    def parts(self, z0, z1):
        return [self.part]


class DriveWorld(World):
    def __init__(self, seed, road, noise_seed, skyline, classes):
        super().__init__(road, noise_seed, skyline)
        self.seed, self.classes = int(seed), tuple(classes)
        self._segments = {}

    def parts(self, z0, z1):
        first, last = math.floor(z0 / SEGMENT), math.floor(z1 / SEGMENT)
        if len(self._segments) > 64:
            self._segments = {k: v for k, v in self._segments.items() if first - 2 <= k <= last}
        return [self._segment(k) for k in range(first, last + 1)]

    def _segment(self, k):
        part = self._segments.get(k)
        if part is None:
            part = self._segments[k] = self._generate(k)
        return part

    def _generate(self, k):
        rng = np.random.default_rng([self.seed, 0x5E6, k + (1 << 30)])
        part = Part()
        s0 = k * SEGMENT
        slots = 3
        size = SEGMENT / slots
        for j in range(slots):
            lo, hi = s0 + j * size + 0.5, s0 + (j + 1) * size - 0.5
            if self.classes and k >= 0 and rng.random() < 0.55:
                name = str(rng.choice(self.classes))
                if name == "D43" and any(d.name == "D43" for d in part.damages):
                    name = str(rng.choice(self.classes))  # rarely two crosswalks in one segment
                made = make_damage(name, rng, self.road, lo, hi)
                if made is not None:
                    damage, gaps = made
                    damage.track_id = int(k * 100 + j)
                    part.damages.append(damage)
                    for line_index, span in gaps:
                        part.add_gap(line_index, span)
                    continue
            if rng.random() < 0.12:
                add_crosswalk(rng, self.road, part, lo, hi)
        part.features = layout.surface_features(rng, self.road, s0, s0 + SEGMENT)
        part.roadside = roadside_items(rng, self.road, s0, s0 + SEGMENT)
        return part


def make_damage(name, rng, road, z_lo, z_hi):
    """A damage of class `name` lying within z_lo..z_hi: (damage, [(line index, gap span)]) or None."""
    half = road.half
    room = z_hi - z_lo
    if name == "D00":
        length = min(rng.uniform(2.0, 8.0), room)
        if rng.random() < 0.7:
            x = rng.choice(road.lane_centres) + rng.choice([-1.0, 1.0]) * rng.uniform(0.7, 0.95)
        else:
            x = rng.uniform(-half + 0.4, half - 0.4)
        return dmg.longitudinal_crack(rng, x, _between(rng, z_lo, z_hi - length), length), []
    if name == "D10":
        length = min(rng.uniform(1.5, 4.0), 2 * half - 0.8)
        x = rng.uniform(-half + 0.4 + length / 2, half - 0.4 - length / 2)
        damage = dmg.lateral_crack(rng, x - length / 2, _between(rng, z_lo + 0.5, z_hi - 0.5), length)
        shift = x - 0.5 * (damage.seg_a[:, 0].mean() + damage.seg_b[:, 0].mean())
        damage.seg_a[:, 0] += shift
        damage.seg_b[:, 0] += shift
        return damage, []
    if name == "D20":
        sx, sz = min(rng.uniform(1.0, 2.5), 2 * half - 0.6), min(rng.uniform(1.5, 4.0), room)
        cx = rng.uniform(-half + sx / 2 + 0.2, half - sx / 2 - 0.2)
        return dmg.alligator(rng, cx, _between(rng, z_lo + sz / 2, z_hi - sz / 2), sx, sz), []
    if name == "D40":
        r = rng.uniform(0.18, 0.42)
        return dmg.Pothole(rng, rng.uniform(-half + 0.5, half - 0.5), _between(rng, z_lo + r, z_hi - r), r), []
    if name == "D43":
        length = rng.uniform(3.0, 4.5)
        if room < length + 0.5:
            return None
        z = _between(rng, z_lo, z_hi - length)
        bar = rng.uniform(0.4, 0.5)
        polys = layout.crosswalk_polys(road, z, length, bar, bar * rng.uniform(0.9, 1.15))
        damage = dmg.FadedPaint("D43", rng, polys, "white", cell=rng.uniform(0.1, 0.2))
        return damage, _centre_gaps(road, (z - 1.0, z + length + 1.0))
    if name == "D44":
        if not road.lines:
            return None
        k = int(rng.integers(len(road.lines)))
        line = road.lines[k]
        length = min(rng.uniform(3.0, 10.0), room)
        z = _between(rng, z_lo, z_hi - length)
        spans = line.pieces(z, z + length)
        if sum(b - a for a, b in spans) < 1.0:
            return None
        damage = dmg.FadedPaint("D44", rng, line.quads(spans), line.colour)
        return damage, [(k, (z, z + length))]
    raise ValueError("unknown damage class %r" % name)


def _between(rng, lo, hi):
    """Uniform in [lo, hi], or lo when the interval is empty (rounding)."""
    return lo + max(0.0, hi - lo) * rng.random()


def _centre_gaps(road, span):
    return [(k, span) for k, line in enumerate(road.lines) if line.role == "centre"]


def add_crosswalk(rng, road, part, z_lo, z_hi):
    """An intact (unlabelled) crosswalk, sometimes with a stop line before it."""
    length = rng.uniform(3.0, 4.5)
    if z_hi - z_lo < length + 3.5:
        return False
    z = rng.uniform(z_lo + 3.0, z_hi - length)
    bar = rng.uniform(0.4, 0.5)
    for poly in layout.crosswalk_polys(road, z, length, bar, bar * rng.uniform(0.9, 1.15)):
        part.paints.append(("white", poly, "crosswalk"))
    if rng.random() < 0.5:
        gap, side, width = rng.uniform(1.5, 3.0), rng.choice([-1, 1]), rng.uniform(0.3, 0.45)
        part.paints.append(("white", layout.stop_line(road, z - gap, side, width), "lane_marking"))
    for k, span in _centre_gaps(road, (z - 3.5, z + length + 1.0)):
        part.add_gap(k, span)
    return True
