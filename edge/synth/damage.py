"""Road damages as world geometry (metres on the ground plane) that know how to draw and label themselves.

A damage is generated once (all its randomness is drawn at construction, so a
video frame at any camera position shows the same damage). Per frame,
`prepare(cam)` clips and projects it, giving the pixel points its box is made
of and a margin for line thickness; `draw` changes only pixels inside that box.
"""
import math

import cv2
import numpy as np

from edge.synth import raster
from edge.synth.noise import local_noise, octave_weights, warp_world


class Damage:
    name = None

    def __init__(self, zmin, zmax):
        self.zmin, self.zmax = float(zmin), float(zmax)
        self.track_id = None

    def prepare(self, cam):
        """((pixel polygons, pixel segments or None), margin px, state for draw), or None when behind the camera."""
        raise NotImplementedError

    def draw(self, img, cam, roi, state, ctx):
        """Draw inside `roi`; return the bool mask (roi-shaped) of the pixels the damage owns (its segmentation)."""
        raise NotImplementedError


def ground_points(damage):
    """The damage's outline on the road as world (X, Z) points (N, 2): its cracks, rim or paint."""
    parts = []
    for name in ("seg_a", "seg_b", "outline", "rim"):
        value = getattr(damage, name, None)
        if value is not None:
            parts.append(np.asarray(value, dtype=np.float64)[:, :2])
    parts.extend(np.asarray(poly, dtype=np.float64)[:, :2] for poly in getattr(damage, "polys", None) or [])
    return np.concatenate(parts) if parts else np.zeros((0, 2))


# -- cracks -------------------------------------------------------------------

def random_walk(rng, start, heading, length, wiggle=0.2, pull=0.3):
    """Crack path: a heading-correlated random walk; heading 0 is +Z (forward), pi/2 is +X."""
    n = max(3, int(length / 0.055))
    steps = rng.uniform(0.03, 0.08, n)
    steps *= length / steps.sum()
    angles = np.empty(n)
    a = heading
    for i, kick in enumerate(rng.normal(0.0, wiggle, n)):
        a += kick + pull * (heading - a)
        angles[i] = a
    d = np.column_stack([np.sin(angles), np.cos(angles)]) * steps[:, None]
    return np.vstack([start, start + np.cumsum(d, axis=0)])


class CrackNetwork(Damage):
    """Dark antialiased crack segments with a soft spalling halo; optionally a darkened patch (alligator)."""

    def __init__(self, name, seg_a, seg_b, widths, strength, halo, outline=None, patch_dark=0.0):
        zs = np.concatenate([seg_a[:, 1], seg_b[:, 1]] + ([outline[:, 1]] if outline is not None else []))
        super().__init__(zs.min(), zs.max())
        self.name = name
        self.seg_a, self.seg_b, self.widths = seg_a, seg_b, np.asarray(widths, float)
        self.strength, self.halo = float(strength), float(halo)
        self.outline, self.patch_dark = outline, float(patch_dark)

    def prepare(self, cam):
        a, b, keep = cam.clip_segments(self.seg_a, self.seg_b)
        if len(a) == 0:
            return None
        depth = np.maximum(cam.depth((a + b) / 2.0), 0.5)
        width_px = self.widths[keep] * cam.focal / depth
        thick = np.maximum(1, np.round(width_px)).astype(int)
        value = np.round(255 * np.clip(np.where(thick == 1, width_px, 1.0), 0.6, 1.0)).astype(int)
        halo = np.round(thick * 2.5 + 2).astype(int)
        pa, pb = cam.project(a), cam.project(b)
        outline_px = None
        if self.outline is not None:
            poly = cam.clip_polygon(self.outline)
            if len(poly) >= 3:
                outline_px = cam.project(poly)
        margin = halo.max() / 2.0 + 1.0
        polys = [outline_px] if outline_px is not None else []
        return (polys, (pa, pb)), margin, (pa, pb, thick, value, halo, outline_px)

    def draw(self, img, cam, roi, state, ctx):
        pa, pb, thick, value, halo, outline_px = state
        view = roi.view(img)
        dark = np.zeros(roi.shape, np.float32)
        halo_mask = raster.segments(roi.mask(), pa, pb, halo, np.full(len(pa), 255), roi.origin)
        owned = halo_mask >= 128  # the crack and its spalled halo (the halo is wider than the crack)
        if outline_px is not None and self.patch_dark > 0:
            patch_mask = raster.fill(roi.mask(), [outline_px], roi.origin)
            owned |= patch_mask >= 128
            dark += self.patch_dark * raster.soft(patch_mask, 1.0)
        dark += self.halo * raster.soft(halo_mask, 0.8)
        crack = raster.segments(roi.mask(), pa, pb, thick, value, roi.origin)
        owned |= crack >= 128
        dark += self.strength * raster.soft(crack, 0.0)
        view *= (1.0 - np.minimum(dark, 0.92))[:, :, None]
        return owned


def longitudinal_crack(rng, x, z, length):
    main = random_walk(rng, np.array([x, z]), rng.normal(0.0, 0.06), length, wiggle=0.3, pull=0.3)
    return _crack("D00", rng, main, branch_turn=(0.35, 0.9))


def lateral_crack(rng, x, z, length):
    heading = rng.choice([-1.0, 1.0]) * (math.pi / 2 + rng.uniform(0.08, 0.25) * rng.choice([-1.0, 1.0]))
    main = random_walk(rng, np.array([x, z]), heading, length, wiggle=0.32, pull=0.3)
    return _crack("D10", rng, main, branch_turn=(0.4, 1.1))


def _crack(name, rng, main, branch_turn):
    width = rng.uniform(0.012, 0.026)
    paths, widths = [main], [width]
    for _ in range(rng.integers(0, 4)):
        k = rng.integers(1, len(main) - 1)
        d = main[k] - main[k - 1]
        heading = math.atan2(d[0], d[1]) + rng.choice([-1.0, 1.0]) * rng.uniform(*branch_turn)
        paths.append(random_walk(rng, main[k], heading, rng.uniform(0.2, 0.9), wiggle=0.3, pull=0.2))
        widths.append(width * rng.uniform(0.5, 0.8))
    seg_a = np.vstack([p[:-1] for p in paths])
    seg_b = np.vstack([p[1:] for p in paths])
    seg_w = np.concatenate([w * _wobble(rng, len(p) - 1) for p, w in zip(paths, widths)])
    return CrackNetwork(name, seg_a, seg_b, seg_w, rng.uniform(0.55, 0.8), rng.uniform(0.18, 0.3))


def _wobble(rng, n):
    """Smooth random width factor along a path (0.6..1.4)."""
    knots = rng.uniform(0.6, 1.4, n // 12 + 2)
    return np.interp(np.linspace(0, len(knots) - 1, n), np.arange(len(knots)), knots)


def alligator(rng, cx, cz, size_x, size_z):
    """A rounded, ragged patch covered by a jittered cell network of fine cracks."""
    theta = np.linspace(0, 2 * math.pi, 40, endpoint=False)
    p = rng.uniform(2.5, 4.0)
    rad = (np.abs(np.cos(theta)) ** p + np.abs(np.sin(theta)) ** p) ** (-1.0 / p)
    rad *= 1.0 + sum(rng.uniform(0, 0.08) * np.cos(m * theta + rng.uniform(0, 6.3)) for m in (2, 3, 5))
    outline = np.column_stack([cx + 0.5 * size_x * rad * np.cos(theta), cz + 0.5 * size_z * rad * np.sin(theta)])
    cell = rng.uniform(0.15, 0.28)
    nx, nz = int(size_x / cell) + 3, int(size_z / (cell * 1.2)) + 3
    gx = cx - 0.5 * (nx - 1) * cell + np.arange(nx) * cell
    gz = cz - 0.5 * (nz - 1) * cell * 1.2 + np.arange(nz) * cell * 1.2
    vx, vz = np.meshgrid(gx, gz)
    verts = np.stack([vx, vz], axis=-1) + rng.uniform(-0.42, 0.42, (nz, nx, 2)) * cell
    diag = rng.random((nz - 1, nx - 1)) < 0.35
    flip = rng.random((nz - 1, nx - 1)) < 0.5
    d_a = np.where(flip[..., None], verts[:-1, 1:], verts[:-1, :-1])[diag]
    d_b = np.where(flip[..., None], verts[1:, :-1], verts[1:, 1:])[diag]
    a = np.concatenate([verts[:, :-1].reshape(-1, 2), verts[:-1, :].reshape(-1, 2), d_a])
    b = np.concatenate([verts[:, 1:].reshape(-1, 2), verts[1:, :].reshape(-1, 2), d_b])
    inside = _inside_star((a + b) / 2, cx, cz, size_x, size_z, theta, rad) & (rng.random(len(a)) > 0.22)
    a, b = a[inside], b[inside]
    normal = (b - a)[:, ::-1] * np.array([1.0, -1.0])
    m1 = a + (b - a) / 3 + normal * rng.normal(0, 0.1, (len(a), 1))
    m2 = a + 2 * (b - a) / 3 + normal * rng.normal(0, 0.1, (len(a), 1))
    seg_a = np.concatenate([a, m1, m2])
    seg_b = np.concatenate([m1, m2, b])
    widths = rng.uniform(0.007, 0.016) * rng.uniform(0.6, 1.3, len(seg_a))
    return CrackNetwork("D20", seg_a, seg_b, widths, rng.uniform(0.4, 0.65), rng.uniform(0.08, 0.16),
                        outline=outline, patch_dark=rng.uniform(0.06, 0.15))


def _inside_star(pts, cx, cz, size_x, size_z, theta, rad):
    u = (pts[:, 0] - cx) / (0.5 * size_x)
    v = (pts[:, 1] - cz) / (0.5 * size_z)
    ang = np.mod(np.arctan2(v, u), 2 * math.pi)
    limit = np.interp(ang, np.append(theta, 2 * math.pi), np.append(rad, rad[0]))
    return np.hypot(u, v) < limit * 0.92


# -- potholes -----------------------------------------------------------------

class Pothole(Damage):
    """A ragged hole: dark bottom seen through the rim, a lit far inner wall, a light broken edge."""

    name = "D40"

    def __init__(self, rng, cx, cz, radius):
        theta = np.linspace(0, 2 * math.pi, 36, endpoint=False)
        r = 1.0 + sum(rng.uniform(0, 0.16) / m * 2 * np.cos(m * theta + rng.uniform(0, 6.3)) for m in (2, 3, 4, 6))
        r += rng.normal(0, 0.035, len(theta))
        aspect, rot = rng.uniform(0.6, 1.0), rng.uniform(0, math.pi)
        x, z = radius * r * np.cos(theta), radius * aspect * r * np.sin(theta)
        c, s = math.cos(rot), math.sin(rot)
        self.rim = np.column_stack([cx + c * x - s * z, cz + s * x + c * z])
        super().__init__(self.rim[:, 1].min(), self.rim[:, 1].max())
        depth = rng.uniform(0.05, 0.14)
        shrink = rng.uniform(0.75, 0.9)
        bottom = np.column_stack([cx + shrink * (self.rim[:, 0] - cx), cz + shrink * (self.rim[:, 1] - cz)])
        self.bottom = np.column_stack([bottom[:, 0], np.full(len(bottom), -depth), bottom[:, 1]])
        self.ring_m = rng.uniform(0.03, 0.07)
        self.bottom_dark = rng.uniform(0.5, 0.72)
        self.wall_dark = rng.uniform(0.2, 0.4)
        self.ring_light = rng.uniform(0.15, 0.35)
        self.gravel = local_noise(rng, (2 * radius, 2 * radius), 0.05, octaves=2)
        self.gravel_origin = (cx - radius - 0.15, cz - radius - 0.15)

    def prepare(self, cam):
        rim = cam.clip_polygon(self.rim)
        if len(rim) < 3:
            return None
        rim_px = cam.project(rim)
        bottom = cam.clip_polygon(self.bottom)
        bottom_px = cam.project(bottom) if len(bottom) >= 3 else None
        depth = max(float(cam.depth(rim).min()), 0.5)
        ring = max(1, int(round(self.ring_m * cam.focal / depth)))
        return ([rim_px], None), ring / 2.0 + 1.0, (rim_px, bottom_px, ring)

    def draw(self, img, cam, roi, state, ctx):
        rim_px, bottom_px, ring = state
        rim_mask = raster.fill(roi.mask(), [rim_px], roi.origin)
        rim = raster.soft(rim_mask, 0)
        bottom = np.zeros_like(rim)
        if bottom_px is not None:
            bottom = np.minimum(raster.soft(raster.fill(roi.mask(), [bottom_px], roi.origin), 0), rim)
        edge_mask = cv2.polylines(roi.mask(), [raster.fixed(rim_px, roi.origin)], True, 255, ring, cv2.LINE_AA, raster.SHIFT)
        owned = (rim_mask >= 128) | (edge_mask >= 128)  # the hole and its broken edge
        edge = np.maximum(raster.soft(edge_mask, 0) - rim, 0)
        cell = 0.05
        to_src = np.array([[1 / cell, 0, -self.gravel_origin[0] / cell], [0, 1 / cell, -self.gravel_origin[1] / cell], [0, 0, 1]])
        gravel = warp_world(self.gravel, to_src, cam, roi.x0, roi.y0, roi.shape[1], roi.shape[0])
        gravel *= octave_weights(ctx.footprint[roi.y0:roi.y1], cell, 1.5)[:, None]
        wall = rim - bottom
        dark = bottom * np.clip(self.bottom_dark + 0.12 * gravel, 0, 0.9) + wall * self.wall_dark
        view = roi.view(img)
        view *= (1.0 - dark)[:, :, None]
        view += (edge * self.ring_light)[:, :, None] * (ctx.light_grey - view)
        return owned


# -- faded paint (crosswalk blur, white line blur) ---------------------------

class FadedPaint(Damage):
    """Paint polygons drawn at low opacity and eaten by blotchy world-anchored erosion."""

    def __init__(self, name, rng, polys, colour, cell=None):
        allpts = np.vstack(polys)
        super().__init__(allpts[:, 1].min(), allpts[:, 1].max())
        self.name, self.polys, self.colour = name, polys, colour
        self.alpha = rng.uniform(0.22, 0.45)
        self.cell = cell or rng.uniform(0.08, 0.16)
        lo, hi = allpts.min(axis=0), allpts.max(axis=0)
        self.erosion = local_noise(rng, hi - lo, self.cell, octaves=3)
        self.origin = lo - 3 * self.cell
        self.bias = rng.uniform(0.35, 0.6)

    def prepare(self, cam):
        polys = [cam.clip_polygon(p) for p in self.polys]
        polys = [cam.project(p) for p in polys if len(p) >= 3]
        if not polys:
            return None
        return (polys, None), 1.0, polys

    def draw(self, img, cam, roi, state, ctx):
        cover_mask = raster.fill(roi.mask(), state, roi.origin)
        cover = raster.soft(cover_mask, 0)
        c = self.cell
        to_src = np.array([[1 / c, 0, -self.origin[0] / c], [0, 1 / c, -self.origin[1] / c], [0, 0, 1]])
        noise = warp_world(self.erosion, to_src, cam, roi.x0, roi.y0, roi.shape[1], roi.shape[0])
        noise *= octave_weights(ctx.footprint[roi.y0:roi.y1], c, 2.0)[:, None]
        keep = np.clip(self.bias + 0.55 * noise, 0.0, 1.0)
        alpha = (cover * keep * self.alpha)[:, :, None]
        view = roi.view(img)
        view += alpha * (np.asarray(ctx.paint[self.colour], np.float32) - view)
        return cover_mask >= 128  # the whole faded marking, worn-off parts included
