"""Composing one frame: sky, ground, markings, damages, shadows, roadside, then the camera's look.

`compose` is shared by still images and the drive video; what differs is
only where the world's items come from (`StillWorld` / the drive's segments).
Damages are drawn strictly inside their own clipped boxes, and every random
draw after the ground comes from `post_rng` in a fixed order, so rendering the
same scene without damages changes nothing outside the boxes but the final
blur's spill.

With `labels`, every drawing step also writes the class (SYNTH_SEG_LABELS
index) of the surface it puts on a pixel into a uint8 mask, in drawing order,
so whatever is drawn last on a pixel owns it: sky and skyline, the ground's
lateral bands (at the pixel centre), markings and damages where they cover at
least half a pixel, roadside objects with their own polygons. Tone-only steps
(surface features, shadows, haze) and the camera's rendition leave it alone.
"""
import math

import cv2
import numpy as np

from edge.synth import raster
from edge.synth.noise import ground_noise
from edge.synth.roadside import BUILDING, VEGETATION, sky
from roadedge.core.seglabels import SYNTH_SEG_LABELS

PAINT = {"white": (0.86, 0.87, 0.87), "yellow": (0.15, 0.62, 0.85)}
LUT_STEP, LUT_HALF, LUT_LEVELS = 0.02, 90.0, 10
OCTAVES = (6.0, 2.0, 0.7, 0.25, 0.09, 0.035)
OCTAVE_AMPS = (0.25, 0.25, 0.2, 0.3, 0.45, 0.6)
MAX_DEPTH = 220.0
DAMAGE_RANGE = 70.0  # damages farther ahead are neither drawn nor labelled (they would be sub-pixel)
PAINT_LABELS = ("lane_marking", "crosswalk")  # later ones own overlapping pixels


class Look:
    """Weather, light and camera rendition of one image or one whole drive."""

    def __init__(self, rng):
        self.sunny = rng.random() < 0.6
        az = rng.uniform(0, 2 * math.pi)
        self.sun = (math.sin(az), math.cos(az))  # ground direction shadows are cast towards
        self.sun_elevation = math.radians(rng.uniform(22, 60))
        self.sun_strength = rng.uniform(0.5, 1.0) if self.sunny else 0.1
        self.shadow = rng.uniform(0.3, 0.55) if self.sunny else 0.0
        clear = np.array([0.82, 0.62, 0.42]) + rng.normal(0, 0.04, 3)
        grey = np.full(3, rng.uniform(0.7, 0.9))
        self.zenith = np.clip(clear if self.sunny else grey * 0.95, 0, 1).astype(np.float32)
        self.haze = np.clip(np.full(3, rng.uniform(0.78, 0.92)) + rng.normal(0, 0.02, 3), 0, 1).astype(np.float32)
        self.skyline_colour = (self.haze * rng.uniform(0.65, 0.85)).astype(np.float32)
        self.visibility = rng.uniform(150, 700)
        self.clouds = rng.random((4, 8)).astype(np.float32)
        self.cloudiness = rng.uniform(0.0, 0.5 if self.sunny else 0.8)
        self.light = rng.uniform(0.85, 1.1) * (1.08 if self.sunny else 0.95)
        self.exposure = rng.uniform(0.8, 1.2)
        self.contrast = rng.uniform(0.8, 1.2)
        self.gamma = rng.uniform(0.8, 1.25)
        self.white_balance = rng.uniform(-0.08, 0.08)
        self.vignette = rng.uniform(0.0, 0.35)
        self.blur = 0.0 if rng.random() < 0.3 else rng.uniform(0.3, 1.0)
        self.noise = rng.uniform(0.004, 0.02)
        self.grain = rng.uniform(0.02, 0.06)
        self.jpeg = int(rng.integers(35, 93)) if rng.random() < 0.5 else None
        self.paint_opacity = rng.uniform(0.8, 0.95)
        tone = rng.uniform(0.9, 1.05)
        self.paint = {k: tuple(float(v) * tone for v in c) for k, c in PAINT.items()}


class Context:
    """What damage drawing needs to know about the frame."""

    def __init__(self, footprint, paint, light_grey):
        self.footprint, self.paint, self.light_grey = footprint, paint, light_grey


def ground_lut(road):
    """Lateral colour+texture profile as a mip pyramid: level k is box-filtered over 2**k samples."""
    xs = np.arange(-LUT_HALF, LUT_HALF, LUT_STEP)
    colour, amp = road.profile(xs)
    base = np.concatenate([colour, amp[:, None]], axis=1).astype(np.float32)
    levels = [base]
    for k in range(1, LUT_LEVELS):
        levels.append(cv2.blur(base[None], (2 ** k + 1, 1), borderType=cv2.BORDER_REPLICATE)[0])
    return np.stack(levels)


def compose(world, cam, look, post_rng, draw_damages=True, jpeg=True, labels=False):
    """Render the world through the camera.

    Returns (uint8 BGR image, objects with their damage, uint8 class-index mask or None without `labels`).
    """
    height, width = cam.height, cam.width
    img = np.empty((height, width, 3), np.float32)
    lab = np.zeros((height, width), np.uint8) if labels else None
    rows = np.arange(height, dtype=np.float64)
    footprint = cam.row_footprint(rows)
    y_g = min(height, max(0, int(math.floor(cam.horizon)) + 1))
    sky(img, cam, look, world.skyline, cam.yaw, lab, BUILDING if world.road.urban else VEGETATION)
    z_near, z_far = cam.z0 - 20.0, cam.z0 + MAX_DEPTH
    items = world.items(z_near, z_far)
    noise = None
    if y_g < height:
        noise, ground_x = _ground(img, world, cam, look, post_rng, footprint, y_g)
        if lab is not None:
            lab[y_g:] = world.road.surface_labels(ground_x)
        for feature in items["features"]:
            feature.draw(img, cam)
        _paint(img, cam, look, items["paint"], noise, y_g, lab)
    ctx = Context(footprint, look.paint, np.float32(min(0.9, float(world.road.asphalt.mean()) * 1.6 + 0.1)))
    objects = []
    for damage in items["damages"]:
        if damage.zmin > cam.z0 + DAMAGE_RANGE:
            continue
        prepared = damage.prepare(cam)
        if prepared is None:
            continue
        pts, margin, state = prepared
        obj = raster.label(damage.name, pts, margin, cam)
        if obj is None:
            continue
        if damage.track_id is not None:
            obj["track_id"] = damage.track_id
        objects.append(obj)
        if draw_damages:
            # drawn in a padded rectangle, so that geometry poking out of its box would show (tests check it)
            roi = raster.Roi.around(obj["bbox"], 6, width, height)
            owned = damage.draw(img, cam, roi, state, ctx)
            if lab is not None:
                roi.view(lab)[owned] = SYNTH_SEG_LABELS.index(damage.name)
    if y_g < height:
        _shadows(img, cam, look, items["roadside"], y_g)
        depth = cam.row_depth(rows[y_g:])
        haze = (1.0 - np.exp(-np.minimum(depth, 1e4) / look.visibility)).astype(np.float32)[:, None, None]
        img[y_g:] += haze * (look.haze - img[y_g:])
    for item in sorted(items["roadside"], key=lambda it: -float(cam.depth(np.array([[it.x, it.zmin]]))[0])):
        item.draw(img, cam, look, lab)
    return _finish(img, look, post_rng, jpeg), objects, lab


def _ground(img, world, cam, look, rng, footprint, y_g):
    """Lateral colour profile (mip level per row, via remap) modulated by world noise and near-field grain."""
    height, width = cam.height, cam.width
    rows = height - y_g
    X = cam.ground_x(y_g, height)
    depth = cam.row_depth(np.arange(y_g, height, dtype=np.float64))
    across = np.minimum(depth, 1e6) / cam.focal
    level = np.clip(np.log2(np.maximum(across / LUT_STEP, 1.0)), 0, LUT_LEVELS - 1).astype(np.float32)
    map_x = (X + np.float32(LUT_HALF)) * np.float32(1.0 / LUT_STEP)
    map_y = np.repeat(level[:, None], width, axis=1)
    prof = cv2.remap(world.lut, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    noise = ground_noise(world.noise, cam, y_g, OCTAVE_AMPS, footprint[y_g:])
    near = np.clip(0.015 / np.maximum(footprint[y_g:], 1e-3), 0, 1).astype(np.float32)[:, None]
    tex = noise + normal_noise(rng, (rows, width)) * (near * np.float32(look.grain / 0.05))
    shade = prof[..., 3] * tex
    shade *= np.float32(1.6 * look.light)
    shade += np.float32(look.light)
    np.multiply(prof[..., :3], shade[..., None], out=img[y_g:])
    return noise, X


def _paint(img, cam, look, paints, noise, y_g, lab=None):
    """Intact markings, one antialiased layer per colour; labelled where a marking covers half a pixel or more."""
    by_colour, by_label = {}, {}
    for colour, poly, name in paints:
        poly = cam.clip_polygon(poly)
        if len(poly) >= 3:
            px = cam.project(poly)
            by_colour.setdefault(colour, []).append(px)
            by_label.setdefault(name, []).append(px)
    masks = {}
    for colour, polys in by_colour.items():
        mask = masks[colour] = raster.fill(np.zeros((cam.height - y_g, cam.width), np.uint8), polys, (0, y_g))
        alpha = raster.soft(mask, 0) * (look.paint_opacity * (1.0 - 0.08 * np.clip(noise, -2, 2)))
        view = img[y_g:]
        view += alpha[:, :, None] * (np.asarray(look.paint[colour], np.float32) * look.light - view)
    if lab is None:
        return
    for name in PAINT_LABELS:
        polys = by_label.get(name)
        if not polys:
            continue
        if len(by_label) == 1 and len(masks) == 1:  # one colour, one kind: its layer is the label's
            mask = next(iter(masks.values()))
        else:
            mask = raster.fill(np.zeros((cam.height - y_g, cam.width), np.uint8), polys, (0, y_g))
        lab[y_g:][mask >= 128] = SYNTH_SEG_LABELS.index(name)


def _shadows(img, cam, look, roadside, y_g):
    if look.shadow <= 0:
        return
    polys = []
    for item in roadside:
        poly = item.shadow(look)
        if poly is None:
            continue
        poly = cam.clip_polygon(poly)
        if len(poly) >= 3:
            polys.append(cam.project(poly))
    if not polys:
        return
    mask = raster.fill(np.zeros((cam.height - y_g, cam.width), np.uint8), polys, (0, y_g))
    alpha = raster.soft(mask, 1.5) * look.shadow
    tint = np.array([0.85, 1.0, 1.1], np.float32)  # skylight keeps shadows bluish
    img[y_g:] *= 1.0 - alpha[:, :, None] * tint


_NOISE_BANK = []
_BANK_SIZE = 1 << 22


def normal_noise(rng, shape):
    """Standard normal float32 noise: a random slice of a fixed per-process bank (cheap), or fresh when large."""
    n = int(np.prod(shape))
    if n > _BANK_SIZE // 2:
        return rng.standard_normal(shape, dtype=np.float32)
    if not _NOISE_BANK:
        _NOISE_BANK.append(np.random.default_rng(0x5EED).standard_normal(_BANK_SIZE, dtype=np.float32))
    start = int(rng.integers(0, _BANK_SIZE - n))
    return _NOISE_BANK[0][start:start + n].reshape(shape)


def _tone_lut(look):
    v = np.arange(256, dtype=np.float64) / 255.0
    v = np.clip((v - 0.45) * look.contrast + 0.45, 0, 1) ** (1.0 / look.gamma)
    return np.clip(v * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _finish(img, look, rng, jpeg):
    """Camera rendition: white balance, exposure, vignetting, blur, sensor noise, tone curve, JPEG."""
    height, width = img.shape[:2]
    gain = np.array([1 + look.white_balance, 1.0, 1 - look.white_balance], np.float32) * np.float32(look.exposure)
    if look.vignette > 0:
        yy = (np.arange(height, dtype=np.float32)[:, None] - height / 2) / (height / 2)
        xx = (np.arange(width, dtype=np.float32)[None, :] - width / 2) / (width / 2)
        img *= ((1.0 - look.vignette * 0.5 * (xx * xx + yy * yy))[:, :, None] * gain)
    else:
        img *= gain
    if look.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), look.blur)
    img = cv2.scaleAdd(normal_noise(rng, img.shape), look.noise, img)
    out = cv2.LUT(cv2.multiply(img, (255.0, 255.0, 255.0, 0.0), dtype=cv2.CV_8U), _tone_lut(look))
    if jpeg and look.jpeg:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, look.jpeg])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out
