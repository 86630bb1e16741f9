"""The library entry points: one still image with labels, or frames of an endless drive."""
import math

import numpy as np

from edge.synth import raster
from edge.synth.camera import Camera
from edge.synth.layout import Road, surface_features
from edge.synth.roadside import roadside_items, skyline_profile
from edge.synth.scene import Look, compose
from edge.synth.world import DriveWorld, StillWorld, add_crosswalk, make_damage
from roadedge.core.catalog import SYNTH_CLASSES
from roadedge.core.errors import RoadedgeError

# how far beyond the nearest visible ground a still's damage may lie (m), per class
STILL_REACH = {"D00": 18.0, "D10": 9.0, "D20": 15.0, "D40": 9.0, "D43": 16.0, "D44": 22.0}
STILL_ROOM = {"D00": 3.0, "D10": 1.5, "D20": 2.5, "D40": 1.5, "D43": 5.0, "D44": 4.0}
DAMAGE_COUNTS = (1, 2, 3, 4)
DAMAGE_COUNT_P = (0.3, 0.35, 0.22, 0.13)


def check_classes(classes):
    """The requested class codes as a tuple, in SYNTH_CLASSES order; RoadedgeError for unknown codes."""
    classes = [classes] if isinstance(classes, str) else list(classes)
    unknown = [c for c in classes if c not in SYNTH_CLASSES]
    if unknown:
        raise RoadedgeError("unknown synth class %s; allowed: %s" % (", ".join(map(repr, unknown)), ",".join(SYNTH_CLASSES)))
    return tuple(c for c in SYNTH_CLASSES if c in classes)


def check_size(size):
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise RoadedgeError("image size must be (width, height), got %r" % (size,)) from None
    if not (32 <= width <= 8192 and 32 <= height <= 8192):
        raise RoadedgeError("image size %dx%d out of range (each side 32..8192)" % (width, height))
    return width, height


def camera_params(rng, width, height, road):
    hfov = math.radians(rng.uniform(55, 80))
    focal = width / 2 / math.tan(hfov / 2)
    cx = width / 2 + rng.normal(0, 0.012 * width)
    cy = height / 2 + rng.normal(0, 0.012 * height)
    horizon = rng.uniform(0.3, 0.5) * height
    right_lane = rng.random() < 0.65
    lane = road.lane_centres[-1] if right_lane else road.lane_centres[0]
    if road.lanes == 3 and rng.random() < 0.4:
        lane = road.lane_centres[1]
    return {"width": width, "height": height, "focal": focal, "cx": cx, "cy": cy,
            "height_m": rng.uniform(1.15, 1.7), "pitch": math.atan((cy - horizon) / focal),
            "yaw": float(np.clip(rng.normal(0, 0.025), -0.07, 0.07)), "x0": lane + rng.normal(0, 0.25), "z0": 0.0}


def _nearest_ground(cam):
    """World Z of the ground at the bottom centre of the frame."""
    _, z = cam.ground_coords(cam.height - 1, cam.height)
    return float(z[0, cam.width // 2])


def render_scene(seed, index, size=(600, 600), classes=SYNTH_CLASSES, draw_damages=True, jpeg=True, labels=False):
    """render_image with internal switches: leave the damages out (same scene otherwise), skip the JPEG pass.

    Returns (image, objects), or (image, objects, class-index mask) with `labels`.
    """
    world, cam, look, r_post = build_scene(seed, index, size, classes)
    image, objects, mask = compose(world, cam, look, r_post, draw_damages, jpeg, labels)
    return (image, objects, mask) if labels else (image, objects)


def build_scene(seed, index, size=(600, 600), classes=SYNTH_CLASSES):
    """The still's (world, camera, look, rng of the passes after the ground), before drawing."""
    width, height = check_size(size)
    classes = check_classes(classes)
    ss = np.random.SeedSequence([int(seed), int(index)])
    r_road, r_look, r_cam, r_dmg, r_scene, r_post = (np.random.default_rng(s) for s in ss.spawn(6))
    road = Road(r_road)
    look = Look(r_look)
    cam = Camera(**camera_params(r_cam, width, height, road))
    world = StillWorld(road, int(ss.generate_state(1)[0]), skyline_profile(r_scene, road.urban))
    z_near = _nearest_ground(cam) + 0.3
    _place_damages(r_dmg, world, cam, classes, z_near)
    part = world.part
    if not any(d.name == "D43" for d in part.damages) and r_scene.random() < 0.25:
        start = r_scene.uniform(z_near, z_near + 18)
        if not part.taken(start, start + 9.0):
            add_crosswalk(r_scene, road, part, start, start + 9.0)
    part.features = surface_features(r_scene, road, z_near, z_near + 90)
    part.roadside = roadside_items(r_scene, road, -15.0, 170.0)
    return world, cam, look, r_post


def render_image(seed, index, size=(600, 600), classes=SYNTH_CLASSES):
    """One synthetic dashcam frame: (HxWx3 uint8 BGR image, objects).

    Objects are dicts {name, bbox: [xmin, ymin, xmax, ymax] ints, truncated, difficult}.
    Deterministic in (seed, index, size, classes).
    """
    return render_scene(seed, index, size, classes)


def render_labelled(seed, index, size=(600, 600), classes=SYNTH_CLASSES):
    """render_image plus its per-pixel ground truth: (image, objects, HxW uint8 mask of SYNTH_SEG_LABELS indices).

    The image is the very one render_image gives; only damage classes in `classes` are drawn, so only those
    appear in the mask (the label list, and so the indices, are always the full SYNTH_SEG_LABELS).
    """
    return render_scene(seed, index, size, classes, labels=True)


def _place_damages(rng, world, cam, classes, z_near):
    """1-4 damages (none in ~5% of images), resampled until well visible and not overlapping others."""
    if not classes or rng.random() < 0.05:
        return
    part = world.part
    boxes = []
    for _ in range(int(rng.choice(DAMAGE_COUNTS, p=DAMAGE_COUNT_P))):
        for attempt in range(24):
            if attempt % 12 == 0:  # a class per slot; another one if it found no place in 12 tries
                name = str(rng.choice(classes))
                if name == "D43" and any(d.name == "D43" for d in part.damages):
                    others = [c for c in classes if c != "D43"]
                    if not others:
                        break
                    name = str(rng.choice(others))
            reach = max(STILL_ROOM[name], STILL_REACH[name] * rng.uniform(0.2, 1.0) ** 1.5)  # favour near
            made = make_damage(name, rng, world.road, z_near, z_near + reach)
            if made is None:
                continue
            damage, gaps = made
            prepared = damage.prepare(cam)
            obj = raster.label(name, prepared[0], prepared[1], cam) if prepared is not None else None
            if obj is None or (obj["difficult"] and rng.random() > 0.08):
                continue
            if _overlaps(obj["bbox"], boxes):
                continue
            part.damages.append(damage)
            boxes.append(obj["bbox"])
            for line_index, span in gaps:
                part.add_gap(line_index, span)
            break


def _overlaps(box, boxes):
    for other in boxes:
        iou, inner = raster.box_overlap(box, other)
        if iou > 0.12 or inner > 0.35:
            return True
    return False


class DriveRenderer:
    """An endless drive down one road: `frame(i, fps)` renders the camera at time i / fps.

    Objects also carry "track_id", the id of the world damage, stable across frames.
    """

    def __init__(self, seed, size=(640, 360), classes=SYNTH_CLASSES, speed_mps=12.0, road_seed=None):
        """`road_seed` (default: `seed`) makes the road, its damages and its surroundings; `seed` the pass over it:
        the light, the camera's mounting and sway, the noise. Two seeds on one road seed are two passes."""
        self.seed = int(seed)
        self.road_seed = self.seed if road_seed is None else int(road_seed)
        self.width, self.height = check_size(size)
        self.classes = check_classes(classes)
        self.speed = float(speed_mps)
        road_ss = np.random.SeedSequence([self.road_seed, 0x44524956])
        ss = np.random.SeedSequence([self.seed, 0x44524956])
        r_road, _, _, r_scene = (np.random.default_rng(s) for s in road_ss.spawn(4))
        _, r_look, r_cam, _ = (np.random.default_rng(s) for s in ss.spawn(4))
        self.road = Road(r_road)
        self.look = Look(r_look)
        self.look.jpeg = None
        self.look.blur = min(self.look.blur, 0.6)
        self.base = camera_params(r_cam, self.width, self.height, self.road)
        self.sway = (r_cam.uniform(0.05, 0.3), 2 * math.pi / r_cam.uniform(6, 14), r_cam.uniform(0, 6.3))
        self.bounce = (r_cam.uniform(0, 6.3), r_cam.uniform(0, 6.3))
        self.world = DriveWorld(self.road_seed, self.road, int(road_ss.generate_state(1)[0]),
                                skyline_profile(r_scene, self.road.urban), self.classes)

    def camera(self, t):
        amp, omega, phase = self.sway
        p = dict(self.base)
        p["z0"] = self.speed * t
        p["x0"] = self.base["x0"] + amp * math.sin(omega * t + phase)
        p["yaw"] = self.base["yaw"] * 0.3 + math.atan(amp * omega * math.cos(omega * t + phase) / max(self.speed, 0.1))
        p["pitch"] = self.base["pitch"] + 0.003 * math.sin(2 * math.pi * 1.7 * t + self.bounce[0]) \
            + 0.002 * math.sin(2 * math.pi * 0.6 * t + self.bounce[1])
        return Camera(**p)

    def damage(self, track_id):
        """The world damage with this track id (objects' `track_id`), or None."""
        segment = int(track_id) // 100
        return next((d for d in self.world._segment(segment).damages if d.track_id == int(track_id)), None)

    def frame(self, i, fps=15.0, labels=False):
        """(image, objects) of frame i; objects have name, bbox, truncated, difficult, track_id.

        With `labels`: (image, objects, class-index mask) as render_labelled.
        """
        cam = self.camera(i / float(fps))
        rng = np.random.default_rng([self.seed, 0x46524D, int(i)])
        image, objects, mask = compose(self.world, cam, self.look, rng, True, False, labels)
        return (image, objects, mask) if labels else (image, objects)
