"""Pinhole dashcam over a flat ground plane.

World axes in metres: X to the right, Y up, Z forward along the road; the
ground is Y = 0. The camera sits at (x0, height, z0), yawed (positive turns
right) and pitched down, without roll, so the horizon is one image row and
every image row below it sees the ground at one camera depth.

Ground points map to the image through a 3x3 homography, so world polygons
are projected vertex by vertex once they are clipped against the near plane
(camera depth >= NEAR); lines stay lines.
"""
import math

import numpy as np

NEAR = 0.5


def clip_halfplane(pts, dist):
    """Sutherland-Hodgman step: the part of polygon `pts` where the (linear) signed distance `dist` >= 0."""
    inside = dist >= 0
    if inside.all():
        return pts
    if not inside.any():
        return pts[:0]
    nxt = np.roll(np.arange(len(pts)), -1)
    crossing = inside != inside[nxt]
    d0, d1 = dist, dist[nxt]
    s = (d0 / np.where(crossing, d0 - d1, 1.0))[:, None]
    cut = pts + s * (pts[nxt] - pts)
    candidates = np.stack([pts, cut], axis=1)  # per edge: its start vertex, then the crossing point
    keep = np.stack([inside, crossing], axis=1)
    return candidates[keep]


class Camera:
    def __init__(self, width, height, focal, cx, cy, height_m, pitch, yaw=0.0, x0=0.0, z0=0.0):
        self.width, self.height = int(width), int(height)
        self.focal, self.cx, self.cy = float(focal), float(cx), float(cy)
        self.height_m, self.pitch, self.yaw = float(height_m), float(pitch), float(yaw)
        self.x0, self.z0 = float(x0), float(z0)
        cp, sp = math.cos(pitch), math.sin(pitch)
        cyw, syw = math.cos(yaw), math.sin(yaw)
        forward = np.array([syw * cp, -sp, cyw * cp])
        right = np.array([cyw, 0.0, -syw])
        down = np.cross(right, forward)
        self.R = np.stack([right, down, forward])
        self.C = np.array([self.x0, self.height_m, self.z0])
        self.K = np.array([[self.focal, 0.0, self.cx], [0.0, self.focal, self.cy], [0.0, 0.0, 1.0]])
        t = -self.R @ self.C
        self.H = self.K @ np.column_stack([self.R[:, 0], self.R[:, 2], t])  # (X, Z, 1) -> pixel
        self.Hinv = np.linalg.inv(self.H)
        self.horizon = self.cy - self.focal * math.tan(self.pitch)
        self._depth_row = np.array([self.R[2, 0], self.R[2, 1], self.R[2, 2], float(t[2])])

    # -- depth and projection -------------------------------------------------
    def depth(self, pts):
        """Camera depth of ground points (N, 2) = (X, Z) or 3D points (N, 3) = (X, Y, Z)."""
        pts = np.asarray(pts, dtype=np.float64)
        r = self._depth_row
        if pts.shape[1] == 2:
            return r[0] * pts[:, 0] + r[2] * pts[:, 1] + r[3]
        return r[0] * pts[:, 0] + r[1] * pts[:, 1] + r[2] * pts[:, 2] + r[3]

    def project(self, pts):
        """Pixel coordinates (N, 2) of ground (N, 2) or 3D (N, 3) points; integer = pixel centre."""
        pts = np.asarray(pts, dtype=np.float64)
        if pts.shape[1] == 2:
            pts = np.column_stack([pts[:, 0], np.zeros(len(pts)), pts[:, 1]])
        pc = (pts - self.C) @ self.R.T
        z = np.maximum(pc[:, 2], 1e-6)
        return np.column_stack([self.cx + self.focal * pc[:, 0] / z, self.cy + self.focal * pc[:, 1] / z])

    def clip_polygon(self, pts, near=NEAR):
        """Sutherland-Hodgman clip of a polygon (ground or 3D vertices) to depth >= near; may be empty."""
        pts = np.asarray(pts, dtype=np.float64)
        return clip_halfplane(pts, self.depth(pts) - near)

    def clip_segments(self, a, b, near=NEAR):
        """Clip segments a[i]-b[i] (arrays (N, 2|3)) to depth >= near. Returns (a, b, kept-mask)."""
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        da, db = self.depth(a), self.depth(b)
        kept = (da >= near) | (db >= near)
        a, b, da, db = a[kept], b[kept], da[kept], db[kept]
        s = ((near - da) / np.where(db != da, db - da, 1.0))[:, None]
        cut = a + s * (b - a)
        a = np.where((da < near)[:, None], cut, a)
        b = np.where((db < near)[:, None], cut, b)
        return a, b, kept

    # -- per-row quantities of the ground below the horizon -------------------
    def row_depth(self, rows):
        """Camera depth of the ground seen by image rows (inf at and above the horizon)."""
        rows = np.asarray(rows, dtype=np.float64)
        den = math.cos(self.pitch) * (rows - self.cy) / self.focal + math.sin(self.pitch)
        with np.errstate(divide="ignore"):
            return np.where(den > 1e-9, self.height_m / np.maximum(den, 1e-9), np.inf)

    def row_footprint(self, rows):
        """Ground metres covered by one pixel in the rows: the larger of the along-road and across sizes."""
        rows = np.asarray(rows, dtype=np.float64)
        t0, t1 = self.row_depth(rows - 0.5), self.row_depth(rows + 0.5)
        yp0 = (rows - 0.5 - self.cy) / self.focal
        yp1 = (rows + 0.5 - self.cy) / self.focal
        c, s = math.cos(self.pitch), math.sin(self.pitch)
        with np.errstate(invalid="ignore"):
            along = np.abs(t0 * (c - yp0 * s) - t1 * (c - yp1 * s))
        across = self.row_depth(rows) / self.focal
        return np.where(np.isfinite(along), np.maximum(along, across), np.inf)

    def ground_coords(self, y0, y1):
        """World X and Z (float32, rows y0..y1-1, all columns) of the ground seen by each pixel."""
        x = np.arange(self.width, dtype=np.float64)[None, :]
        y = np.arange(y0, y1, dtype=np.float64)[:, None]
        h = self.Hinv
        w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
        X = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w
        Z = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
        return X.astype(np.float32), Z.astype(np.float32)

    def ground_x(self, y0, y1):
        """World X only (float32), as ground_coords."""
        x = np.arange(self.width, dtype=np.float32)[None, :]
        y = np.arange(y0, y1, dtype=np.float64)[:, None]
        h = self.Hinv
        w = np.float32(h[2, 0]) * x + (h[2, 1] * y + h[2, 2]).astype(np.float32)
        return (np.float32(h[0, 0]) * x + (h[0, 1] * y + h[0, 2]).astype(np.float32)) / w
