"""Where a synthetic drive is: its GPS track, camera settings and each damage's place, and two passes on one road."""
import json
import os
import statistics

import pytest

from edge import config
from edge.gps import geo
from edge.gps.replay import read_track
from edge.gps.sources import SyntheticSource
from edge.processing.geotag import Geotagger
from roadedge import cli

START = (48.137154, 11.576124)
HEADING = 37.0


@pytest.fixture(scope="module")
def passes(tmp_path_factory):
    """Two passes (seeds 3 and 4) over road seed 11, 6 s at 15 FPS."""
    root = tmp_path_factory.mktemp("passes")
    for seed in (3, 4):
        assert cli.main(["synth", "--video", str(root / str(seed)), "--seed", str(seed), "--road-seed", "11",
                         "--duration", "6", "--start", "%r,%r" % START, "--heading", str(HEADING)]) == 0
    return root


def load(folder):
    with open(folder / "drive.json", encoding="utf-8") as handle:
        description = json.load(handle)
    with open(folder / "drive.jsonl", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    return description, records


def test_two_passes_over_one_road_see_the_same_damages_in_other_light(passes):
    (first, frames_a), (second, frames_b) = load(passes / "3"), load(passes / "4")
    assert first["road_seed"] == second["road_seed"] == 11 and (first["seed"], second["seed"]) == (3, 4)
    assert first["damages"] and first["damages"] == second["damages"]  # same places, labels and sizes
    assert first["camera"] != second["camera"]  # each pass mounts its camera a little differently
    assert (passes / "3" / "drive.mp4").read_bytes() != (passes / "4" / "drive.mp4").read_bytes()
    seen = {o["track_id"] for r in frames_a for o in r["objects"]}
    assert seen == {o["track_id"] for r in frames_b for o in r["objects"]} == {d["track_id"] for d in first["damages"]}


def test_the_nmea_track_and_the_settings_place_the_drive_where_the_description_says(passes):
    description, _ = load(passes / "3")
    assert description["start"] == list(START) and description["heading"] == HEADING
    car = description["gps_start"]
    assert 0.5 < geo.distance(START[0], START[1], car[0], car[1]) < 6.0  # in a lane, right or left of the centre
    drive = SyntheticSource(car[0], car[1], HEADING, description["speed"], start=0.0)
    records = read_track(str(passes / "3" / "drive.nmea"))
    assert len(records) == 7  # once a second over 6 s, both ends included
    for t, record in records:
        lat, lon = drive.at(t - description["start_time"])
        assert geo.distance(record["lat"], record["lon"], lat, lon) < 0.01
        assert record["heading"] == pytest.approx(HEADING) and record["speed"] == pytest.approx(description["speed"])
    settings = config.load("x86-openvino-cpu", str(passes / "3" / "drive.yaml"))
    assert settings["camera"]["height_m"] == description["camera"]["height_m"]
    assert settings["gps"]["source"] == "synthetic" and settings["gps"]["start"] == car
    assert settings["gps"]["heading"] == HEADING


def test_the_labelled_boxes_placed_on_the_road_land_on_the_damages(passes):
    """The runtime's flat-road projection of each damage's nearest whole box, from the drive's GPS and camera
    settings, against the renderer's truth: the near edge of the damage's outline."""
    errors = []
    for seed in ("3", "4"):
        description, records = load(passes / seed)
        drive = SyntheticSource(description["gps_start"][0], description["gps_start"][1], HEADING, description["speed"],
                                start=0.0)
        tagger = Geotagger(dict(description["camera"], max_range_m=20.0))  # the default camera.max_range_m
        truth = {d["track_id"]: d for d in description["damages"]}
        nearest = {}
        for record in records:
            for obj in record["objects"]:
                x0, y0, x1, y1 = obj["bbox"]
                if not obj["truncated"] and y1 < description["height"] - 2:
                    nearest[obj["track_id"]] = (record["frame"], obj["bbox"])  # later frames are nearer
        size = (description["width"], description["height"])
        for track_id, (frame, bbox) in nearest.items():
            lat, lon = drive.at(frame / float(description["fps"]))
            box = (bbox[0] / size[0], bbox[1] / size[1], bbox[2] / size[0], bbox[3] / size[1])
            place = tagger.ground(box, size, {"lat": lat, "lon": lon, "heading": HEADING, "fix": "synthetic"})
            if place is None:
                continue
            damage = truth[track_id]
            errors.append(geo.distance(place["lat"], place["lon"], damage["near_lat"], damage["near_lon"]))
    assert len(errors) >= 3
    assert statistics.median(errors) < 1.5 and max(errors) < 5.0  # the camera's sway and yaw are not in the settings


@pytest.mark.parametrize("argv, says", [
    (["--start", "91,0"], "bad --start '91,0'"),
    (["--start", "here"], "bad --start 'here'"),
    (["--heading", "400"], "--heading must be 0..360"),
])
def test_bad_drive_options_are_one_line_errors(tmp_path, capsys, argv, says):
    assert cli.main(["synth", "--video", str(tmp_path / "x"), "--duration", "1"] + argv) == 2
    assert says in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_drive_options_are_refused_for_stills(tmp_path, capsys):
    assert cli.main(["synth", str(tmp_path / "x"), "--road-seed", "3"]) == 2
    assert "--road-seed applies to --video only" in capsys.readouterr().err


def test_drive_frames_are_a_voc_set_of_the_drives_frames_and_labels(tmp_path):
    """--drive-frames K: every K-th frame of the drive the same seed renders, with the same boxes, as VOC stills."""
    from roadedge.core.voc import read_voc_xml

    out = tmp_path / "frames"
    assert cli.main(["synth", str(out), "--drive-frames", "20", "--count", "4", "--seed", "3", "--road-seed", "11"]) == 2
    assert cli.main(["synth", str(out), "--drive-frames", "20", "--count", "4", "--seed", "3", "--size", "640x360"]) == 0
    video = tmp_path / "video"
    assert cli.main(["synth", "--video", str(video), "--seed", "3", "--duration", "4.2", "--fps", "15"]) == 0
    _, records = load(video)
    stems = sorted(name[:-4] for name in os.listdir(str(out / "Annotations")))
    assert stems == ["drive-s3-00000", "drive-s3-00020", "drive-s3-00040", "drive-s3-00060"]
    for stem in stems:
        record, problems = read_voc_xml(str(out / "Annotations" / (stem + ".xml")))
        assert not problems and tuple(record.size[:2]) == (640, 360)
        frame = records[int(stem.rsplit("-", 1)[1])]
        assert sorted((o.name, list(o.bbox)) for o in record.objects) == sorted(
            (o["name"], o["bbox"]) for o in frame["objects"])
