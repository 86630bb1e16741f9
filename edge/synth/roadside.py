"""What stands beside the road (buildings, trees, poles), their shadows, the sky and the distant skyline.

Roadside objects stand beyond the carriageway edge, so (for a camera over the
road) they never hide the road surface and never occlude a damage. Drawing
also writes each item's class into the label mask `lab` (when given), with
the very polygons and rasterisation of its colour.
"""
import math

import cv2
import numpy as np

from roadedge.core.seglabels import SYNTH_SEG_LABELS

BUILDING, VEGETATION, POLE, SKY = (SYNTH_SEG_LABELS.index(n) for n in ("building", "vegetation", "pole", "sky"))


def _hazed(colour, depth, look):
    k = 1.0 - math.exp(-max(depth, 0.0) / look.visibility)
    return tuple(float(v) for v in (1 - k) * np.asarray(colour) + k * look.haze)


def _fill3d(img, cam, quads, colour, lab=None, cls=0):
    polys = []
    for q in quads:
        q = cam.clip_polygon(q)
        if len(q) >= 3:
            polys.append(np.round(cam.project(q) * 16).clip(-2 ** 26, 2 ** 26).astype(np.int32))
    if polys:
        cv2.fillPoly(img, polys, colour, cv2.LINE_8, 4)
        if lab is not None:
            cv2.fillPoly(lab, polys, cls, cv2.LINE_8, 4)


class Building:
    def __init__(self, rng, side, x_face, z0, length):
        self.side, self.x, self.zmin, self.zmax = side, x_face, z0, z0 + length
        self.height = rng.uniform(3.5, 18.0)
        self.depth = rng.uniform(6, 15)
        base = rng.uniform(0.3, 0.75)
        self.colour = np.clip(base + rng.normal(0, 0.05, 3), 0.05, 1)
        self.window = self.colour * rng.uniform(0.35, 0.6)
        self.floors = max(1, int(self.height / 3.2))
        self.bays = max(1, int(length / rng.uniform(2.5, 4.5)))

    def draw(self, img, cam, look, lab=None):
        x, x2, h = self.x, self.x + self.side * self.depth, self.height
        z0, z1 = self.zmin, self.zmax
        depth = max(float(cam.depth(np.array([[x, (z0 + z1) / 2]]))[0]), 0.5)
        face = [np.array([[x, 0, z0], [x, 0, z1], [x, h, z1], [x, h, z0]])]
        end = [np.array([[x, 0, z0], [x2, 0, z0], [x2, h, z0], [x, h, z0]])]
        lit = 1.0 + 0.25 * look.sun_strength * (1 if self.side * look.sun[0] < 0 else -1)
        _fill3d(img, cam, end, _hazed(self.colour * 0.8, depth, look), lab, BUILDING)
        _fill3d(img, cam, face, _hazed(np.clip(self.colour * lit, 0, 1), depth, look), lab, BUILDING)
        if depth < 80:
            wins = []
            bay = (z1 - z0) / self.bays
            for f in range(self.floors):
                y0, y1 = f * 3.2 + 1.0, f * 3.2 + 2.4
                for b in range(self.bays):
                    a = z0 + b * bay + 0.25 * bay
                    wins.append(np.array([[x, y0, a], [x, y0, a + 0.5 * bay], [x, y1, a + 0.5 * bay], [x, y1, a]]))
            _fill3d(img, cam, wins, _hazed(self.window, depth, look))

    def shadow(self, look):
        dx, dz, length = look.sun[0], look.sun[1], self.height / math.tan(look.sun_elevation)
        if dx * self.side >= 0:
            return None  # shadow falls away from the road
        x, z0, z1 = self.x, self.zmin, self.zmax
        return np.array([[x, z0], [x, z1], [x + dx * length, z1 + dz * length], [x + dx * length, z0 + dz * length]])


class Tree:
    def __init__(self, rng, x, z):
        self.x, self.zmin, self.zmax = x, z - 3, z + 3
        self.z = z
        self.trunk_h, self.trunk_w = rng.uniform(1.8, 3.5), rng.uniform(0.2, 0.45)
        self.r = rng.uniform(1.2, 3.2)
        self.shape = 1.0 + 0.18 * rng.standard_normal(20)
        self.leaf = np.clip(np.array([0.1, 0.3, 0.18]) * rng.uniform(0.6, 1.3) + rng.normal(0, 0.03, 3), 0.02, 1)

    def draw(self, img, cam, look, lab=None):
        depth = float(cam.depth(np.array([[self.x, self.z]]))[0])
        if depth < 1.0:
            return
        w = self.trunk_w / 2
        trunk = np.array([[self.x - w, 0, self.z], [self.x + w, 0, self.z], [self.x + w, self.trunk_h + self.r, self.z],
                          [self.x - w, self.trunk_h + self.r, self.z]])
        _fill3d(img, cam, [trunk], _hazed((0.12, 0.16, 0.2), depth, look), lab, VEGETATION)  # a trunk is vegetation
        centre = cam.project(np.array([[self.x, self.trunk_h + self.r * 0.8, self.z]]))[0]
        rad = self.r * cam.focal / depth
        t = np.linspace(0, 2 * math.pi, len(self.shape), endpoint=False)
        for scale, shade, dy in ((1.0, 0.75, 0.0), (0.75, 1.1, -0.2)):
            pts = centre + np.column_stack([np.cos(t), np.sin(t) * 0.9 + dy]) * (rad * scale * self.shape[:, None])
            poly = np.round(pts * 16).clip(-2 ** 26, 2 ** 26).astype(np.int32)
            cv2.fillPoly(img, [poly], _hazed(np.clip(self.leaf * shade, 0, 1), depth, look), cv2.LINE_8, 4)
            if lab is not None:
                cv2.fillPoly(lab, [poly], VEGETATION, cv2.LINE_8, 4)

    def shadow(self, look):
        length = (self.trunk_h + self.r) / math.tan(look.sun_elevation)
        cx, cz = self.x + look.sun[0] * length, self.z + look.sun[1] * length
        t = np.linspace(0, 2 * math.pi, len(self.shape), endpoint=False)
        stretch = 1.0 / max(math.sin(look.sun_elevation), 0.3)
        u = np.cos(t) * self.r * self.shape
        v = np.sin(t) * self.r * self.shape * stretch
        sx, sz = look.sun
        return np.column_stack([cx + u * sz + v * sx, cz - u * sx + v * sz])


class Pole:
    def __init__(self, rng, x, z):
        self.x, self.z, self.zmin, self.zmax = x, z, z - 0.2, z + 0.2
        self.h, self.w = rng.uniform(5.0, 9.0), rng.uniform(0.15, 0.3)

    def draw(self, img, cam, look, lab=None):
        depth = float(cam.depth(np.array([[self.x, self.z]]))[0])
        if depth < 1.0:
            return
        w = self.w / 2
        x, z, h = self.x, self.z, self.h
        quad = np.array([[x - w, 0, z], [x + w, 0, z], [x + w, h, z], [x - w, h, z]])
        _fill3d(img, cam, [quad], _hazed((0.45, 0.46, 0.47), depth, look), lab, POLE)

    def shadow(self, look):
        length = self.h / math.tan(look.sun_elevation)
        sx, sz = look.sun
        px, pz = -sz * self.w / 2, sx * self.w / 2
        x, z = self.x, self.z
        return np.array([[x - px, z - pz], [x + px, z + pz],
                         [x + px + sx * length, z + pz + sz * length], [x - px + sx * length, z - pz + sz * length]])


def roadside_items(rng, road, z0, z1):
    """Buildings (urban), trees and poles along both sides between z0 and z1."""
    items = []
    for side in (-1, 1):
        edge = road.half + 0.3
        if road.urban:
            z = z0 + rng.uniform(-8, 4)
            x_face = side * (road.frontage[side] + rng.uniform(0.0, 3.0))
            while z < z1:
                length = rng.uniform(6, 20)
                if rng.random() < 0.8:
                    items.append(Building(rng, side, x_face + side * rng.uniform(0, 1.5), z, length))
                z += length + rng.uniform(0, 4)
        for _ in range(rng.poisson((z1 - z0) / (12 if road.urban else 8))):
            items.append(Tree(rng, side * (edge + rng.uniform(0.8, 4.0 if road.urban else 12.0)), rng.uniform(z0, z1)))
        spacing = rng.uniform(25, 45)
        phase = rng.uniform(0, spacing)
        x_pole = side * (edge + rng.uniform(0.3, 1.0))
        for z in np.arange(z0 + phase, z1, spacing):
            if rng.random() < 0.7:
                items.append(Pole(rng, x_pole, z))
    return items


def sky(img, cam, look, skyline, yaw, lab=None, skyline_cls=BUILDING):
    """Sky gradient, faint clouds and the distant skyline above the horizon row (in place).

    Labels: sky, and `skyline_cls` where the skyline covers at least half of a pixel.
    """
    top = max(0, min(cam.height, int(math.ceil(cam.horizon + 1))))
    if top == 0:
        return
    h = max(cam.horizon, 1.0)
    t = np.clip(np.arange(top, dtype=np.float32) / h, 0, 1)[:, None, None]
    img[:top] = look.zenith * (1 - t) + look.haze * t
    clouds = cv2.resize(look.clouds, (cam.width, top), interpolation=cv2.INTER_CUBIC)
    img[:top] += (look.cloudiness * clouds)[:, :, None] * (np.float32(0.95) - img[:top])
    angles = np.degrees(np.arctan((np.arange(cam.width) - cam.cx) / cam.focal) + yaw)
    elev = np.interp(angles, np.linspace(-90, 90, len(skyline)), skyline)
    heights = cam.focal * np.tan(np.radians(elev))
    rows = np.arange(top, dtype=np.float32)[:, None]
    cover = np.clip(rows - (cam.horizon - heights[None, :]) + 0.5, 0, 1)
    img[:top] += cover[:, :, None] * (look.skyline_colour - img[:top])
    if lab is not None:
        lab[:top] = np.where(cover >= 0.5, np.uint8(skyline_cls), np.uint8(SKY))


def skyline_profile(rng, urban):
    """Elevation angle (degrees) of the distant skyline sampled over -90..90 degrees of azimuth."""
    n = 721
    if urban:
        edges = np.cumsum(rng.integers(4, 30, 80))
        levels = rng.uniform(0.5, 4.5, 80)
        idx = np.searchsorted(edges, np.arange(n)).clip(0, 79)
        return levels[idx] * (rng.random() < 0.9)
    hills = cv2.resize(rng.uniform(0, 2.5, (1, 12)).astype(np.float32), (n, 1), interpolation=cv2.INTER_CUBIC)[0]
    trees = cv2.resize(rng.uniform(0, 1.0, (1, 200)).astype(np.float32), (n, 1), interpolation=cv2.INTER_LINEAR)[0]
    return np.clip(hills + trees, 0.1, None)
