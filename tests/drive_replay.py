"""A rendered drive's labelled boxes through the runtime's chain after the detector: places on the road
(edge.processing.geotag), the damage tracker, events messages and the defect registry.

What the chain does with perfect detections, so the registry's figures (one defect per damage, passes, position
error) are the chain's and not the demo detector's. Used by tests/test_defect_passes.py and
benchmarks/bench_defects.py.
"""
import collections
import json
import os
import statistics

from edge import config
from edge.gps import geo
from edge.gps.sources import SyntheticSource
from edge.messages import Envelope
from edge.processing.decoders import Detection
from edge.processing.geotag import Geotagger
from edge.processing.tracker import IouTracker


def read_drive(folder):
    with open(os.path.join(folder, "drive.json"), encoding="utf-8") as handle:
        description = json.load(handle)
    with open(os.path.join(folder, "drive.jsonl"), encoding="utf-8") as handle:
        frames = [json.loads(line) for line in handle]
    return description, frames


def replay_labels(folder, registry, device="rig", boot_id="pass", score=0.9):
    """Every labelled box of the drive in `folder` as a detection (score `score`), placed, tracked and recorded;
    returns the events messages."""
    description, frames = read_drive(folder)
    defaults = config.load("x86-openvino-cpu", None, {"source": {"type": "synthetic"}})
    events_settings, camera = defaults["events"], dict(defaults["camera"], **description["camera"])
    tracker = IouTracker(iou=events_settings["iou"], max_age_s=events_settings["max_age_s"],
                         min_hits=events_settings["min_hits"], update_interval_s=events_settings["update_interval_s"])
    tagger, envelope = Geotagger(camera), Envelope(device, boot_id)
    start = description["gps_start"]
    drive = SyntheticSource(start[0], start[1], description["heading"], description["speed"], start=0.0)
    size = (description["width"], description["height"])
    messages = []
    for record in frames:
        t = record["frame"] / float(description["fps"])
        position = drive.position(t)
        found = [Detection(0, o["name"], score, (o["bbox"][0] / size[0], o["bbox"][1] / size[1], o["bbox"][2] / size[0],
                                                 o["bbox"][3] / size[1])) for o in record["objects"]]
        now = description["start_time"] + t
        raw = tracker.update(tagger.tag(found, size, position), record["frame"], now)
        messages += [envelope.event(timestamp=now, event=e, model_name="labels", position=position) for e in raw]
    t = len(frames) / float(description["fps"])
    messages += [envelope.event(timestamp=description["start_time"] + t, event=e, model_name="labels",
                                position=drive.position(t)) for e in tracker.flush(description["start_time"] + t)]
    for message in messages:
        registry.record(message)
    return messages


def compare(defects, damages, radius_m=8.0):
    """The registry's defects against the rendered damages: which damage each defect is (same class, nearest near
    edge within radius_m), the errors, and what is left over on either side."""
    matched, errors, extra = {}, [], []
    for defect in defects:
        candidates = [(geo.distance(defect["lat"], defect["lon"], d["near_lat"], d["near_lon"]), d["track_id"])
                      for d in damages if d["label"] == defect["label"]]
        best = min(candidates) if candidates else None
        if best is None or best[0] > radius_m:
            extra.append(defect)
            continue
        matched.setdefault(best[1], []).append(defect)
        errors.append(best[0])
    return {"damages": len(damages), "defects": len(defects), "matched_damages": len(matched),
            "defects_per_damage": sorted(len(v) for v in matched.values()),
            "passes": sorted(d["passes"] for v in matched.values() for d in v), "extra": extra,
            "passes_of": {track: max(d["passes"] for d in v) for track, v in matched.items()},
            "errors": errors, "median_error_m": statistics.median(errors) if errors else None,
            "max_error_m": max(errors) if errors else None,
            "missed": sorted(d["track_id"] for d in damages if d["track_id"] not in matched)}


def placeable(folders):
    """The rendered damages a pass sees in two frames at least (the tracker's min_hits) and places on the road in one
    (near enough, not cut by the frame's edge): what the registry can know of. Returns them and the track ids each
    pass places."""
    found, per_pass = set(), []
    for folder in folders:
        per_pass.append(set())
        seen = collections.Counter(o["track_id"] for record in read_drive(folder)[1] for o in record["objects"])
        description, frames = read_drive(folder)
        tagger = Geotagger(dict(description["camera"], max_range_m=20.0))
        fix = {"lat": 0.0, "lon": 0.0, "heading": 0.0, "fix": "synthetic"}
        size = (description["width"], description["height"])
        for record in frames:
            for obj in record["objects"]:
                box = (obj["bbox"][0] / size[0], obj["bbox"][1] / size[1], obj["bbox"][2] / size[0], obj["bbox"][3] / size[1])
                if seen[obj["track_id"]] >= 2 and tagger.ground(box, size, fix) is not None:
                    found.add(obj["track_id"])
                    per_pass[-1].add(obj["track_id"])
    description = read_drive(folders[0])[0]
    start = description["start"]
    # the drive starts on top of the first 20 m: a damage there is seen from close by for a frame or two, too fast to
    # track at 10 FPS
    damages = [d for d in description["damages"] if geo.distance(start[0], start[1], d["near_lat"], d["near_lon"]) > 20.0]
    kept = set(d["track_id"] for d in damages)
    return [d for d in damages if d["track_id"] in found], [ids & kept for ids in per_pass]
