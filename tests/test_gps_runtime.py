"""GPS in the runtime: the vehicle's fix on every message, each detection's place on the road, stale fixes marked.

Real runs of the bundled model on the bundled sample drive (640x360, 15 FPS), with the synthetic drive and a file
replay of its NMEA track; the places are checked against the flat-road projection computed here independently.
"""
import json
import math
import os
import subprocess
import sys

import jsonschema
import pytest

import edge
from edge import app, config
from edge.gps import geo
from edge.gps.sources import SyntheticSource, synthetic_track_nmea
from edge.messages import Envelope
from edge.processing.decoders import Detection
from edge.processing.geotag import Geotagger
from edge.sinks.base import Sink
from edge.sources.spec import SAMPLE_VIDEO

SCHEMAS = os.path.join(os.path.dirname(edge.__file__), "schemas")
CAMERA = {"height_m": 1.4, "pitch_deg": 9.0, "hfov_deg": 70.0}
START, HEADING, SPEED, FPS = (52.5163, 13.3777), 90.0, 12.0, 15.0
FRAMES = 120


def schema(kind):
    with open(os.path.join(SCHEMAS, "{}-v1.schema.json".format(kind))) as handle:
        return json.load(handle)


class Recorder(Sink):
    TYPE = "recorder"

    def __init__(self):
        self.results = []

    def write(self, result):
        self.results.append(result)  # the closing result (final) too: its events end the open tracks


STATS = {}


def run(gps, frames=FRAMES, registry=None, **layers):
    recorder = Recorder()
    outputs = [{"type": "defects", "path": str(registry)}] if registry else []
    settings = {"source": {"type": "opencv", "uri": SAMPLE_VIDEO, "realtime": False}, "pipeline": {"frames": frames},
                "outputs": outputs, "gps": gps, "camera": CAMERA, "events": {"min_hits": 2},
                "detection": {"min_score": 0.3}}
    settings.update(layers)
    runtime = app.build(config.load("x86-openvino-cpu", None, settings), extra_sinks=[recorder])
    try:
        runtime.pipeline.run()
        STATS[gps.get("source")] = runtime.pipeline.stats_snapshot()
    finally:
        runtime.close()
    return recorder.results


def frames_of(results):
    return [r for r in results if not r.final]


def expected_place(box, size, lat, lon, heading):
    """Independently: the bottom centre's ray from a camera `height_m` up, pitched down, meets the road."""
    width, height = size
    focal = width / 2.0 / math.tan(math.radians(CAMERA["hfov_deg"]) / 2.0)
    u, v = (box[0] + box[2]) / 2.0 * width, box[3] * height
    below = math.radians(CAMERA["pitch_deg"]) + math.atan((v - height / 2.0) / focal)  # below the horizontal
    forward_axis = CAMERA["height_m"] / math.tan(below)  # along the ground, in the ray's vertical plane
    slant = math.hypot(CAMERA["height_m"], forward_axis)
    ray_depth = slant * math.cos(math.atan((v - height / 2.0) / focal))  # depth along the optical axis, per unit
    right = (u - width / 2.0) / focal * ray_depth
    return geo.ground_position(lat, lon, heading, forward_axis, right)


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    registry = tmp_path_factory.mktemp("registry") / "defects.sqlite"
    return run({"source": "synthetic", "start": list(START), "heading": HEADING, "speed": SPEED}, registry=registry)


def test_every_message_carries_the_drive_position_at_its_video_time(synthetic_run):
    drive = SyntheticSource(START[0], START[1], HEADING, SPEED, start=0.0)
    messages = [r.message for r in synthetic_run if r.message is not None]
    assert len(frames_of(synthetic_run)) == FRAMES and len(messages) >= 10
    for result in frames_of(synthetic_run):
        lat, lon = drive.at(result.frame.index / FPS)  # media time, however fast the file was read
        assert result.position["fix"] == "synthetic"
        assert geo.distance(result.position["lat"], result.position["lon"], lat, lon) < 0.001
    for message in messages:
        jsonschema.validate(message, schema("detections"))
        lat, lon = drive.at(message["frame"]["index"] / FPS)
        assert message["position"]["heading"] == HEADING and message["position"]["speed"] == SPEED
        assert geo.distance(message["position"]["lat"], message["position"]["lon"], lat, lon) < 0.02


def test_the_stats_carry_the_latest_fix(synthetic_run):
    stats = Envelope("rig", "boot").stats(timestamp=0.0, stats=STATS["synthetic"])
    jsonschema.validate(stats, schema("stats"))
    last = frames_of(synthetic_run)[-1].position
    assert stats["gps"]["fix"] == "synthetic" and stats["gps"]["lat"] == pytest.approx(last["lat"], abs=1e-7)


def test_each_detection_is_placed_where_its_bottom_centre_meets_the_road(synthetic_run):
    placed = 0
    for result in synthetic_run:
        message = result.message
        if message is None:
            continue
        size = (message["frame"]["width"], message["frame"]["height"])
        for detection in message["detections"]:
            ground = detection["ground"]
            if detection["box"][3] >= 0.995:
                assert ground is None
                continue
            lat, lon = expected_place(detection["box"], size, result.position["lat"], result.position["lon"], HEADING)
            assert ground is not None and geo.distance(ground["lat"], ground["lon"], lat, lon) < 0.05
            # ahead of the vehicle, on the road: a few metres to some tens, never behind
            ahead = geo.inverse(result.position["lat"], result.position["lon"], ground["lat"], ground["lon"])
            assert 2.0 < ahead[0] < 20.5 and abs((ahead[1] - HEADING + 180) % 360 - 180) < 60
            assert ground["width_m"] > 0 and (ground["length_m"] is None or ground["length_m"] >= 0)
            placed += 1
    assert placed >= 10


def test_events_carry_the_fix_and_the_nearest_place_of_their_detections(synthetic_run):
    events = [e for r in synthetic_run for e in r.events]
    assert {e["event"] for e in events} >= {"new", "end"}
    published = []  # (frame index, label, box, ground) of every published detection
    for result in synthetic_run:
        for detection in (result.message or {}).get("detections", []):
            published.append((result.message["frame"]["index"], detection["label"], tuple(detection["box"]),
                              detection["ground"]))
    checked = 0
    for event in events:
        jsonschema.validate(event, schema("events"))
        assert event["position"]["fix"] == "synthetic" and event["position"]["lat"] is not None
        if event["ground"] is None:
            continue
        own = [p for p in published if event["first_frame"] <= p[0] <= event["last_frame"] and p[1] == event["label"]]
        assert event["ground"] in [p[3] for p in own]  # one of its detections' places
        best = [p[3] for p in own if p[0] == event["best_frame"] and p[2] == tuple(event["box"]) and p[3]]
        if best:  # seen from no farther than the best-scoring detection
            assert event["ground"]["range_m"] <= best[0]["range_m"]
            checked += 1
    assert checked >= 3


def test_a_replayed_nmea_track_is_aligned_by_video_time_and_goes_stale_after_its_end(tmp_path):
    track = tmp_path / "drive.nmea"  # 1 Hz for 3 s: frames after 3 + max_age_s seconds have only a stale fix
    track.write_text("\r\n".join(synthetic_track_nmea(START[0], START[1], HEADING, SPEED, 3.0, 1764547200.0)) + "\r\n")
    results = run({"source": "file:" + str(track), "max_age_s": 1.5}, frames=90, registry=tmp_path / "defects.sqlite")
    drive = SyntheticSource(START[0], START[1], HEADING, SPEED, start=0.0)
    stale = 0
    for result in frames_of(results):
        t = result.frame.index / FPS
        position = result.position
        last = min(math.floor(t + 1e-9), 3)  # the last fix at or before t
        lat, lon = drive.at(last)
        assert geo.distance(position["lat"], position["lon"], lat, lon) < 0.05
        assert position["age_s"] == pytest.approx(t - last, abs=0.002)
        if t - last > 1.5:
            assert position["fix"] == "stale"
            stale += 1
            for detection in (result.message or {}).get("detections", []):
                assert detection["ground"] is None  # a stale fix places nothing
        else:
            assert position["fix"] == "gps"
    assert stale == len([i for i in range(90) if i / FPS > 4.5])


def test_a_run_without_gps_has_no_position_keys():
    results = run({}, frames=40)
    messages = [r.message for r in results if r.message is not None]
    assert messages and all("position" not in m and all("ground" not in d for d in m["detections"]) for m in messages)
    assert all(r.position is None for r in results)
    assert all("position" not in e and "ground" not in e for r in results for e in r.events)


def test_no_fix_and_stale_fixes_place_nothing_and_say_so():
    tagger = Geotagger(CAMERA)
    detection = Detection(0, "D40", 0.9, (0.4, 0.7, 0.6, 0.9))
    for position in ({"lat": None, "lon": None, "heading": None, "speed": None, "fix": "none", "age_s": None},
                     {"lat": 52.5, "lon": 13.4, "heading": 90.0, "speed": 3.0, "fix": "stale", "age_s": 9.0},
                     {"lat": 52.5, "lon": 13.4, "heading": None, "speed": None, "fix": "2d", "age_s": 0.1}):
        assert tagger.tag([detection], (640, 360), position)[0].ground is None
        message = Envelope("rig", "boot").detections(timestamp=0.0, frame_index=1, frame_size=(640, 360), model_name="m",
                                                     model_sha256="0" * 64, latency_ms=1.0,
                                                     detections=tagger.tag([detection], (640, 360), position),
                                                     position=position)
        jsonschema.validate(message, schema("detections"))
        assert message["position"]["fix"] == position["fix"] and message["detections"][0]["ground"] is None
    fix = {"lat": 52.5, "lon": 13.4, "heading": 90.0, "speed": 3.0, "fix": "3d", "age_s": 0.2}
    sky = Detection(0, "D40", 0.9, (0.4, 0.05, 0.6, 0.2))  # bottom edge above the horizon of a 9 degree pitch
    far = Detection(0, "D40", 0.9, (0.4, 0.25, 0.6, 0.3))  # just below it: 1.7 km ahead, beyond max_range_m
    cut = Detection(0, "D40", 0.9, (0.4, 0.8, 0.6, 1.0))  # cut by the frame's bottom edge: its near end is not seen
    assert tagger.tag([cut], (640, 360), fix)[0].ground is None
    assert tagger.tag([sky, far], (640, 360), fix)[0].ground is None
    assert Geotagger(dict(CAMERA, max_range_m=40.0)).tag([far], (640, 360), fix)[0].ground is None
    placed = Geotagger(dict(CAMERA, max_range_m=5000.0)).tag([far], (640, 360), fix)[0].ground
    assert 1000 < geo.distance(52.5, 13.4, placed["lat"], placed["lon"]) < 5000


@pytest.mark.parametrize("argv, says", [
    (["--gps", "gpsd://:99999"], "--gps 'gpsd://:99999': expected"),
    (["--gps", "serial:/dev/ttyUSB0"], "--gps 'serial:/dev/ttyUSB0': expected"),
    (["--gps", "file:/nonexistent/track.nmea"], "/nonexistent/track.nmea: cannot read"),
])
def test_bad_gps_specs_are_one_line_errors(argv, says, tmp_path):
    done = subprocess.run([sys.executable, "-m", "roadedge", "run", "--no-preview", "--frames", "1"] + argv,
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, HOME=str(tmp_path)))
    assert done.returncode == 2 and says in done.stderr
    assert not (tmp_path / ".cache" / "roadedge").exists()  # nothing opened before the GPS source: no registry
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_profile_gps_section_is_checked_before_anything_opens(tmp_path):
    settings = tmp_path / "bad.yaml"
    settings.write_text("gps:\n  source: bluetooth\ncamera:\n  hfov_deg: 400\n")
    with pytest.raises(edge.config.RoadedgeError) as err:
        config.load("x86-openvino-cpu", str(settings))
    assert "gps.source" in str(err.value) and str(settings) in str(err.value)


def test_with_gps_the_defect_registry_is_on_in_its_default_place_unless_named(tmp_path):
    from edge.run_command import load_config
    from roadedge.cli import build_parser

    def outputs(*argv):
        return [o for o in load_config(build_parser().parse_args(["run"] + list(argv)))["outputs"] if o["type"] == "defects"]

    assert outputs() == []  # no GPS, no places: no registry
    assert outputs("--gps", "synthetic") == [{"type": "defects", "path": "", "radius_m": 8.0, "pass_gap_s": 600.0}]
    named = outputs("--gps", "synthetic", "--defects", str(tmp_path / "crew.sqlite"))
    assert [o["path"] for o in named] == [str(tmp_path / "crew.sqlite")]
    settings = tmp_path / "gps.yaml"
    settings.write_text("gps:\n  source: synthetic\noutputs:\n  - type: defects\n    path: {}\n    radius_m: 5.0\n".format(
        tmp_path / "profile.sqlite"))
    assert [(o["path"], o["radius_m"]) for o in outputs("--config", str(settings))] == [(str(tmp_path / "profile.sqlite"), 5.0)]
