"""The defect registry: matching by class and geodesic radius, sightings and passes, times, best score and snapshot,
severity, events without a position, readers beside the writer, files that are not a registry; the defects sink."""
import json
import os
import re
import sqlite3
import tempfile
import threading

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.defects.registry import DefectRegistry, read_defects
from edge.defects.severity import severity
from edge.gps.geo import destination, distance
from edge.messages import iso_utc
from edge.sinks import defects as defects_sink
from edge.sinks.base import FrameResult
from edge.sources.base import Frame
from roadedge.core.errors import RoadedgeError

T0 = 1795248000.0  # 2026-11-21T08:00:00Z
HOME = (52.2053, 0.1218)


def event(boot, track, lat, lon, label="D40", score=0.8, first=0.0, last=None, kind="new", width=0.5, length=0.5,
          device="van-1"):
    """A roadedge.events/1 message as the runtime makes it with GPS on; first/last: seconds after T0."""
    last = first + 2.0 if last is None else last
    ground = None if lat is None else {"lat": lat, "lon": lon, "width_m": width, "length_m": length}
    return {"schema": "roadedge.events/1", "device": device, "boot_id": boot, "seq": 0, "ts": iso_utc(T0 + last),
            "event": kind, "track_id": track, "label": label, "name": "x", "score": score, "box": [0.4, 0.6, 0.6, 0.8],
            "best_frame": 3, "first_frame": 1, "last_frame": 9, "first_seen": iso_utc(T0 + first),
            "last_seen": iso_utc(T0 + last), "hits": 5, "model": {"name": "m"}, "image_key": None,
            "position": {"lat": HOME[0], "lon": HOME[1], "heading": 90.0, "speed": 8.0, "fix": "3d", "age_s": 0.1},
            "ground": ground}


@pytest.fixture
def registry(tmp_path):
    with DefectRegistry(str(tmp_path / "defects.sqlite")) as opened:
        yield opened


def by_id(registry):
    return dict((d["id"], d) for d in registry.defects())


@settings(max_examples=40)
@given(lat=st.floats(-70, 70), lon=st.floats(-179.9, 179.9), bearing=st.floats(0, 360))
def test_a_sighting_within_the_radius_is_the_same_defect_and_one_beyond_it_a_new_one(lat, lon, bearing):
    with tempfile.TemporaryDirectory() as folder, DefectRegistry(os.path.join(folder, "d.sqlite"), radius_m=8.0) as reg:
        first = reg.record(event("b1", 1, lat, lon))
        beyond = reg.record(event("b1", 2, *destination(lat, lon, bearing, 8.1)))
        within = reg.record(event("b1", 3, *destination(lat, lon, (bearing + 180.0) % 360.0, 7.9)))
        assert first is not None and beyond != first and within == first
        found = by_id(reg)
        assert (found[first]["sightings"], found[beyond]["sightings"]) == (2, 1)


def test_the_nearest_defect_wins_and_another_class_is_another_defect(registry):
    a = registry.record(event("b1", 1, *HOME))
    b = registry.record(event("b1", 2, *destination(HOME[0], HOME[1], 90.0, 10.0)))
    assert registry.record(event("b1", 3, *destination(HOME[0], HOME[1], 90.0, 4.0))) == a
    assert registry.record(event("b1", 4, *destination(HOME[0], HOME[1], 90.0, 6.5))) == b
    crack = registry.record(event("b1", 5, *HOME, label="D20"))
    assert crack not in (a, b)
    assert [(d["id"], d["label"], d["name"], d["sightings"]) for d in registry.defects()] == [
        (a, "D40", "pothole / rutting / separation", 2), (b, "D40", "pothole / rutting / separation", 2),
        (crack, "D20", "alligator crack", 1)]
    assert (registry.defect_count, registry.sighting_count) == (3, 5)


def test_the_position_is_the_score_weighted_mean_of_the_sightings(registry):
    east = destination(HOME[0], HOME[1], 90.0, 6.0)
    defect = registry.record(event("b1", 1, *HOME, score=0.75))
    registry.record(event("b1", 2, *east, score=0.25))
    found = by_id(registry)[defect]
    assert distance(HOME[0], HOME[1], found["lat"], found["lon"]) == pytest.approx(1.5, abs=0.01)
    registry.record(event("b1", 2, *east, score=0.75, kind="update"))  # the second track got better: equal weights
    found = by_id(registry)[defect]
    assert distance(HOME[0], HOME[1], found["lat"], found["lon"]) == pytest.approx(3.0, abs=0.01)
    assert found["best_score"] == 0.75


def test_across_the_antimeridian_positions_match_and_average_without_a_jump(registry):
    west = (-16.8, 179.99998)
    east = destination(west[0], west[1], 90.0, 5.0)
    assert east[1] < -179.9
    defect = registry.record(event("b1", 1, *west))
    assert registry.record(event("b1", 2, *east)) == defect
    found = by_id(registry)[defect]
    assert abs(found["lon"]) > 179.9 and distance(west[0], west[1], found["lat"], found["lon"]) == pytest.approx(2.5, abs=0.01)


def test_passes_count_other_runs_and_gaps_longer_than_pass_gap_s(tmp_path):
    with DefectRegistry(str(tmp_path / "d.sqlite"), pass_gap_s=600.0) as registry:
        defect = registry.record(event("boot-a", 1, *HOME, first=0.0, last=5.0))
        registry.record(event("boot-a", 2, *HOME, first=30.0, last=35.0))  # lost and found again: same pass
        assert (by_id(registry)[defect]["sightings"], by_id(registry)[defect]["passes"]) == (2, 1)
        registry.record(event("boot-b", 1, *HOME, first=60.0, last=62.0))  # another run: a pass
        registry.record(event("boot-b", 7, *HOME, first=662.0, last=664.0))  # exactly pass_gap_s later: not more
        assert (by_id(registry)[defect]["sightings"], by_id(registry)[defect]["passes"]) == (4, 2)
        registry.record(event("boot-b", 8, *HOME, first=1264.5, last=1266.0))  # 600.5 s after the last: a pass
        registry.record(event("boot-b", 8, *HOME, first=1264.5, last=1280.0, kind="end"))  # same sighting
        assert (by_id(registry)[defect]["sightings"], by_id(registry)[defect]["passes"]) == (5, 3)


def test_first_and_last_seen_span_the_sightings_and_their_later_events(registry):
    defect = registry.record(event("b1", 1, *HOME, first=100.0, last=104.0))
    registry.record(event("b1", 1, *HOME, first=100.0, last=130.5, kind="end"))
    registry.record(event("b0", 4, *HOME, first=-86400.0, last=-86390.0))  # yesterday's run, recorded late
    found = by_id(registry)[defect]
    assert (found["first_seen"], found["last_seen"]) == (iso_utc(T0 - 86400.0), iso_utc(T0 + 130.5))
    assert [d["id"] for d in registry.defects(since=iso_utc(T0 + 130.5))] == [defect]
    assert registry.defects(since=iso_utc(T0 + 131.0)) == []


def test_the_best_scoring_sighting_gives_the_snapshot_and_the_others_are_removed(registry, tmp_path):
    shots = tmp_path / "defects-snapshots"
    defect = registry.record(event("b1", 1, *HOME, score=0.6), snapshot=b"jpeg-1a")
    assert by_id(registry)[defect]["snapshot"] == "defects-snapshots/{}-1.jpg".format(defect)
    registry.record(event("b1", 1, *HOME, score=0.65, kind="update"), snapshot=b"jpeg-1b")  # the same track, better
    assert (shots / "{}-1.jpg".format(defect)).read_bytes() == b"jpeg-1b"
    registry.record(event("b2", 1, *HOME, score=0.9, width=2.0, length=1.0), snapshot=b"jpeg-2")
    found = by_id(registry)[defect]
    assert (found["best_score"], found["snapshot"]) == (0.9, "defects-snapshots/{}-2.jpg".format(defect))
    assert (found["severity"], found["footprint_m2"]) == ("high", 2.0)  # the best sighting's footprint
    assert sorted(os.listdir(str(shots))) == ["{}-2.jpg".format(defect)]
    registry.record(event("b1", 1, *HOME, score=0.7, kind="update"), snapshot=b"jpeg-1c")  # better, not the best
    registry.record(event("b3", 1, *HOME, score=0.95), snapshot=None)  # best, without an image
    found = by_id(registry)[defect]
    assert (found["best_score"], found["snapshot"]) == (0.95, "defects-snapshots/{}-2.jpg".format(defect))
    assert sorted(os.listdir(str(shots))) == ["{}-2.jpg".format(defect)]
    assert (shots / "{}-2.jpg".format(defect)).read_bytes() == b"jpeg-2"


def test_events_without_a_ground_position_are_ignored(registry):
    assert registry.record(event("b1", 1, None, None)) is None
    without = event("b1", 2, *HOME)
    del without["ground"]
    assert registry.record(without) is None
    assert registry.defects() == [] and registry.sighting_count == 0
    defect = registry.record(event("b1", 3, *HOME, score=0.5))
    assert registry.record(event("b1", 3, None, None, score=0.9, last=50.0, kind="update")) is None
    found = by_id(registry)[defect]
    assert (found["best_score"], found["last_seen"], found["sightings"]) == (0.5, iso_utc(T0 + 2.0), 1)


@pytest.mark.parametrize("label, width, length, expected", [
    ("D40", 0.4, 0.5, "low"), ("D40", 0.5, 0.5, "medium"), ("D40", 1.0, 1.0, "high"), ("D40", 0.5, None, None),
    ("D20", 0.9, 1.0, "low"), ("D20", 2.0, 1.0, "medium"), ("D20", 2.0, 2.0, "high"),
    ("D00", 0.2, 0.9, "low"), ("D00", 0.2, 1.0, "medium"), ("D00", 0.2, 3.0, "high"), ("D00", 3.0, None, None),
    ("D10", 0.9, None, "low"), ("D10", 1.0, 0.1, "medium"), ("D10", 2.5, 0.1, "high"),
    ("D44", 0.2, 4.0, "low"), ("D44", 0.2, 5.0, "medium"), ("D44", 1.0, 5.0, "high"),
    ("D50", 2.0, 2.0, None), ("X99", 2.0, 2.0, None)])
def test_severity_thresholds(label, width, length, expected):
    assert severity(label, width, length) == expected


def test_readers_see_committed_defects_while_the_writer_works(registry):
    registry.record(event("b0", 1, *HOME))
    writer = sqlite3.connect(registry.path, isolation_level=None)  # a write transaction held open by another connection
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE defects SET sightings = 99")
    assert [d["sightings"] for d in read_defects(registry.path)] == [1]  # WAL: the reader neither waits nor sees it
    writer.execute("ROLLBACK")
    writer.close()
    seen, errors, done = [], [], threading.Event()

    def read():
        while not done.is_set():
            try:
                seen.append(len(read_defects(registry.path)))
            except Exception as err:  # any error fails the test below
                errors.append(err)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for track in range(1, 121):  # 120 places 20 m apart: 120 defects, one transaction each
            registry.record(event("b1", track, *destination(HOME[0], HOME[1], 0.0, 20.0 * track)))
    finally:
        done.set()
        reader.join()
    assert errors == [] and seen == sorted(seen) and len(read_defects(registry.path)) == 121


def test_a_file_that_is_not_a_registry_is_refused_untouched(tmp_path):
    text = tmp_path / "notes.sqlite"
    text.write_bytes(b"my notes, not a database\n" * 40)
    for opener in (DefectRegistry, read_defects):
        with pytest.raises(RoadedgeError, match=r"^{}: not a defect registry \(file is not a database\)$".format(
                re.escape(str(text)))):
            opener(str(text))
    assert text.read_bytes() == b"my notes, not a database\n" * 40
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(str(other))
    db.execute("CREATE TABLE photos (id INTEGER)")
    db.commit()
    db.close()
    before = other.read_bytes()
    with pytest.raises(RoadedgeError, match=r"^{}: not a defect registry \(an SQLite file with other tables: photos\)$"
                       .format(re.escape(str(other)))):
        DefectRegistry(str(other))
    assert other.read_bytes() == before
    with pytest.raises(RoadedgeError, match="no such file"):
        read_defects(str(tmp_path / "missing.sqlite"))
    with pytest.raises(RoadedgeError, match="does not exist"):
        DefectRegistry(str(tmp_path / "no-folder" / "d.sqlite"))


def test_a_registry_reopens_with_its_defects_and_refuses_a_newer_version(tmp_path):
    path = str(tmp_path / "d.sqlite")
    with DefectRegistry(path) as registry:
        defect = registry.record(event("b1", 1, *HOME))
    with DefectRegistry(path) as registry:
        assert (registry.defect_count, registry.sighting_count) == (1, 1)
        assert registry.record(event("b2", 1, *destination(HOME[0], HOME[1], 45.0, 3.0))) == defect
        assert by_id(registry)[defect]["passes"] == 2
    db = sqlite3.connect(path)
    db.execute("UPDATE registry_schema SET version = 2")
    db.commit()
    db.close()
    with pytest.raises(RoadedgeError, match="version 2, written by a newer roadedge"):
        DefectRegistry(path)


def frame_result(index, image, events=(), best=()):
    result = FrameResult(Frame(index, image, T0 + index), [], None, events=list(events))
    result.best_tracks = list(best)
    return result


def test_the_sink_records_events_with_the_best_frame_of_their_track(tmp_path):
    sink = defects_sink.open({"path": str(tmp_path / "run.sqlite")}, {"device": "van-1"})
    assert (sink.path, sink.snapshots_dir) == (str(tmp_path / "run.sqlite"), str(tmp_path / "run-snapshots"))
    images = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(4)]
    sink.write(frame_result(0, images[0], best=[1, 2]))  # track 2 stays tentative: never an event
    sink.write(frame_result(1, images[1], best=[1]))
    sink.write(frame_result(2, images[2], events=[event("b1", 1, *HOME, score=0.7)]))
    sink.write(frame_result(3, images[3], events=[event("b1", 1, *HOME, score=0.7, kind="end")]))
    assert sink.stats() == {"defects": 1, "sightings": 1}
    assert set(sink.held) == {2}  # the ended track's JPEG is gone
    snapshot = sink.registry.defects()[0]["snapshot"]
    decoded = cv2.imdecode(np.frombuffer((tmp_path / snapshot).read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (48, 64, 3) and abs(int(decoded.mean()) - 40) <= 2  # frame 1: the track's best
    sink.close()
    with pytest.raises(RoadedgeError, match="folder .* does not exist"):
        defects_sink.open({"path": str(tmp_path / "nowhere" / "d.sqlite")}, {})


def test_two_runs_over_the_sample_drive_are_two_passes_over_the_same_defects(tmp_path):
    """The real loop: the bundled model on the sample drive with the synthetic GPS track, the defects output."""
    from roadedge.cli import main

    path = tmp_path / "defects.sqlite"
    settings = tmp_path / "settings.yaml"
    settings.write_text(json.dumps({"outputs": [{"type": "defects", "path": str(path)}]}))  # JSON is YAML
    args = ["run", "--source", "sample", "--gps", "synthetic", "--config", str(settings), "--no-preview", "--no-realtime",
            "--quiet", "--device-name", "van-1"]
    assert main(args) == 0
    first = dict((d["label"], d) for d in read_defects(str(path)) if d["label"] in ("D20", "D43"))
    # the alligator crack and the worn crosswalk of the drive; a short lateral crack's track near the frame's bottom may
    # or may not become an event (the tracker's ages are wall time): not asserted
    assert sorted(first) == ["D20", "D43"]
    for defect in first.values():
        assert (defect["sightings"], defect["passes"], defect["severity"] is not None) == (1, 1, True)
        image = cv2.imread(str(tmp_path / defect["snapshot"]))
        assert image.shape == (360, 640, 3)
    assert main(args) == 0
    second = [d for d in read_defects(str(path)) if d["label"] in ("D20", "D43")]
    assert [(d["id"], d["label"], d["sightings"], d["passes"]) for d in second] == [
        (first[d["label"]]["id"], d["label"], 2, 2) for d in second]
    for defect in second:  # the same places: a second pass over the same road
        assert distance(defect["lat"], defect["lon"], first[defect["label"]]["lat"], first[defect["label"]]["lon"]) < 0.5
        assert os.path.isfile(str(tmp_path / defect["snapshot"]))
    assert len(os.listdir(str(tmp_path / "defects-snapshots"))) == len(read_defects(str(path)))  # one image per defect


def test_a_track_placed_from_afar_and_refined_near_another_defect_joins_it(registry, tmp_path):
    """Seen first 30 m off (a far box's place), a new defect; refined as the car comes near, its place lies 2 m from a
    known pothole: the twin goes, the sighting and its snapshot join the pothole."""
    known = registry.record(event("b1", 1, *HOME, score=0.7), snapshot=b"\xff\xd8known")
    far = destination(HOME[0], HOME[1], 90.0, 30.0)
    twin = registry.record(event("b2", 7, *far, score=0.6), snapshot=b"\xff\xd8far")
    assert twin != known and registry.defect_count == 2
    near = destination(HOME[0], HOME[1], 90.0, 2.0)
    assert registry.record(event("b2", 7, *near, score=0.9, kind="end"), snapshot=b"\xff\xd8near") == known
    defects = registry.defects()
    assert [(d["id"], d["sightings"], d["passes"], d["best_score"]) for d in defects] == [(known, 2, 2, 0.9)]
    assert (registry.defect_count, registry.sighting_count) == (1, 2)
    assert distance(defects[0]["lat"], defects[0]["lon"], HOME[0], HOME[1]) < 2.0  # the weighted mean of 0 m and 2 m
    shots = sorted(os.listdir(registry.snapshots_dir))
    assert len(shots) == 1 and open(os.path.join(registry.snapshots_dir, shots[0]), "rb").read() == b"\xff\xd8near"
    assert defects[0]["snapshot"].endswith(shots[0])
    # a defect with two sightings does not move: a third track refined near the first defect leaves it be
    other = registry.record(event("b3", 2, *destination(HOME[0], HOME[1], 90.0, 30.0), score=0.6))
    registry.record(event("b3", 3, *destination(HOME[0], HOME[1], 90.0, 31.0), score=0.6))
    registry.record(event("b3", 2, *destination(HOME[0], HOME[1], 90.0, 1.0), score=0.9, kind="end"))
    assert other in [d["id"] for d in registry.defects()]
