"""`roadedge report` and edge.defects.report: GeoJSON (validated against an RFC 7946 schema), CSV and GPX carry the
registry's defects with their values; --since and --class filter; bad arguments are one line and exit 2."""
import copy
import csv
import datetime
import io
import json
import os
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.defects import times
from edge.defects.registry import DefectRegistry, read_defects
from edge.defects.report import to_csv, to_geojson, to_gpx
from edge.defects.times import epoch_seconds
from edge.gps.geo import destination
from edge.messages import iso_utc
from roadedge.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = os.path.join(ROOT, "tests", "fixtures", "geojson", "FeatureCollection.schema.json")
GPX = "{http://www.topografix.com/GPX/1/1}"
T0 = 1795248000.0  # 2026-11-21T08:00:00Z
DAY = 86400.0


def event(boot, track, lat, lon, label, score, at, width=0.5, length=0.5):
    return {"device": "van-1", "boot_id": boot, "event": "new", "track_id": track, "label": label, "score": score,
            "first_seen": iso_utc(T0 + at), "last_seen": iso_utc(T0 + at + 3.0),
            "ground": {"lat": lat, "lon": lon, "width_m": width, "length_m": length}}


@pytest.fixture(scope="module")
def registry_path(tmp_path_factory):
    """Four defects: a pothole seen on two runs (high, with a snapshot), an alligator crack three days later, a
    crack of unknown length (no severity), and a pothole in San Francisco ten days later (negative longitude)."""
    path = str(tmp_path_factory.mktemp("report") / "defects.sqlite")
    home = (52.2053, 0.1218)
    with DefectRegistry(path) as registry:
        registry.record(event("a", 1, home[0], home[1], "D40", 0.7, 0.0, 1.0, 1.2), snapshot=b"\xff\xd8jpeg")
        registry.record(event("b", 1, home[0], home[1], "D40", 0.6, 600.0, 1.0, 1.2))
        registry.record(event("c", 1, *destination(home[0], home[1], 0.0, 100.0), label="D20", score=0.55, at=3 * DAY,
                              width=2.0, length=1.5))
        registry.record(event("c", 2, *destination(home[0], home[1], 0.0, 200.0), label="D00", score=0.9, at=3 * DAY,
                              width=0.3, length=None))
        registry.record(event("d", 1, 37.7749, -122.4194, "D40", 0.8, 10 * DAY, width=0.4, length=0.5))
    return path


@pytest.fixture(scope="module")
def defects(registry_path):
    return read_defects(registry_path)


@pytest.fixture(scope="module")
def validator():
    with open(SCHEMA) as handle:
        schema = json.load(handle)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_the_registry_reads_back_as_built(defects):
    assert [(d["id"], d["label"], d["severity"], d["sightings"], d["passes"]) for d in defects] == [
        (1, "D40", "high", 2, 2), (2, "D20", "medium", 1, 1), (3, "D00", None, 1, 1), (4, "D40", "low", 1, 1)]
    assert defects[0]["snapshot"] == "defects-snapshots/1-1.jpg" and defects[1]["snapshot"] is None
    assert defects[0]["footprint_m2"] == pytest.approx(1.2) and defects[2]["footprint_m2"] is None


def test_geojson_is_an_rfc7946_feature_collection_of_the_defects(defects, validator):
    collection = to_geojson(defects)
    validator.validate(collection)
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 4
    for feature, defect in zip(collection["features"], defects):
        assert feature["id"] == defect["id"] and feature["geometry"]["type"] == "Point"
        assert feature["geometry"]["coordinates"] == [round(defect["lon"], 7), round(defect["lat"], 7)]  # lon first
        assert feature["properties"] == dict((key, defect[key]) for key in (
            "id", "label", "name", "severity", "footprint_m2", "sightings", "passes", "first_seen", "last_seen",
            "best_score", "snapshot"))
    assert collection["features"][3]["geometry"]["coordinates"] == [-122.4194, 37.7749]
    json.dumps(collection, allow_nan=False)


@pytest.mark.parametrize("break_it", [
    lambda c: c["features"][0]["geometry"].update(coordinates=[0.12]),
    lambda c: c["features"][0]["geometry"].update(type="Pointy"),
    lambda c: c["features"][0].pop("properties"),
    lambda c: c["features"][0].update(id=[1]),
    lambda c: c.update(type="Feature")])
def test_the_schema_refuses_what_rfc7946_does_not_allow(defects, validator, break_it):
    collection = copy.deepcopy(to_geojson(defects))
    break_it(collection)
    assert not validator.is_valid(collection)


def run_report(*args):
    return subprocess.run([sys.executable, "-m", "roadedge", "report"] + list(args), env=dict(os.environ, PYTHONPATH=ROOT),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)


def test_the_report_command_writes_the_three_formats(registry_path, defects, validator, tmp_path):
    writer = sqlite3.connect(registry_path, isolation_level=None)  # a run writing meanwhile: its transaction is open
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE defects SET sightings = 99")
    try:
        result = run_report(registry_path)  # another process reads the committed defects, without waiting
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == to_geojson(defects)
    validator.validate(json.loads(result.stdout))

    out = tmp_path / "defects.csv"
    result = run_report(registry_path, "--format", "csv", "--output", str(out))
    assert result.returncode == 0 and result.stdout == "" and "4 defects written" in result.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8"), newline="")))
    assert [row["id"] for row in rows] == ["1", "2", "3", "4"]
    assert rows[0]["name"] == "pothole / rutting / separation" and rows[0]["severity"] == "high"
    assert (float(rows[3]["lat"]), float(rows[3]["lon"])) == (37.7749, -122.4194)
    assert (rows[2]["severity"], rows[2]["footprint_m2"], rows[1]["snapshot"]) == ("", "", "")
    assert [(int(r["sightings"]), int(r["passes"]), float(r["best_score"]), r["last_seen"]) for r in rows] == [
        (d["sightings"], d["passes"], d["best_score"], d["last_seen"]) for d in defects]

    out = tmp_path / "defects.gpx"
    assert run_report(registry_path, "--format", "gpx", "--output", str(out)).returncode == 0
    root = ET.parse(str(out)).getroot()
    assert root.tag == GPX + "gpx" and root.get("version") == "1.1"
    points = root.findall(GPX + "wpt")
    assert len(points) == 4
    for point, defect in zip(points, defects):
        assert (float(point.get("lat")), float(point.get("lon"))) == (round(defect["lat"], 7), round(defect["lon"], 7))
        assert point.find(GPX + "time").text == defect["last_seen"]
        assert point.find(GPX + "type").text == defect["label"]
        assert point.find(GPX + "name").text.startswith("{} #{}".format(defect["label"], defect["id"]))
        assert "{} sighting".format(defect["sightings"]) in point.find(GPX + "desc").text
    assert [child.tag[len(GPX):] for child in points[0]] == ["time", "name", "desc", "link", "type"]  # wptType's order
    assert points[0].find(GPX + "link").get("href") == "defects-snapshots/1-1.jpg"


def report_ids(capsys, *args):
    assert main(["report"] + list(args)) == 0
    return [feature["id"] for feature in json.loads(capsys.readouterr().out)["features"]]


def test_since_and_class_filter_the_defects(registry_path, capsys):
    assert report_ids(capsys, registry_path) == [1, 2, 3, 4]
    assert report_ids(capsys, registry_path, "--since", "2026-11-24") == [2, 3, 4]
    assert report_ids(capsys, registry_path, "--since", "2026-11-24T08:00:04Z") == [4]
    assert report_ids(capsys, registry_path, "--since", "2026-11-24T09:00:03+01:00") == [2, 3, 4]
    assert report_ids(capsys, registry_path, "--class", "D40") == [1, 4]
    assert report_ids(capsys, registry_path, "--class", "d20,D00") == [2, 3]
    assert report_ids(capsys, registry_path, "--class", "D40", "--class", "D00", "--since", "2026-11-22") == [3, 4]
    assert report_ids(capsys, registry_path, "--class", "D44") == []


@pytest.mark.parametrize("args, message", [
    (["--since", "yesterday"], "--since: yesterday: expected a date (YYYY-MM-DD) or an ISO 8601 time"),
    (["--since", "2026-13-01"], "--since: 2026-13-01: expected a date"),
    (["--class", "D40,D99"], "--class: D99: unknown class code; expected one of D00, D01,"),
    (["--output", "{tmp}/no-folder/out.json"], "--output: {tmp}/no-folder/out.json: folder {tmp}/no-folder does not exist"),
    (["--output", "{registry}"], "is the registry itself"),
])
def test_bad_arguments_are_one_line_and_exit_2(registry_path, tmp_path, capsys, args, message):
    args = [a.format(tmp=tmp_path, registry=registry_path) for a in args]
    assert main(["report", registry_path] + args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert captured.err.startswith("roadedge: error: ") and message.format(tmp=tmp_path) in captured.err
    assert os.listdir(str(tmp_path)) == []


def test_a_missing_file_or_one_that_is_not_a_registry_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing.sqlite")]) == 2
    assert capsys.readouterr().err == "roadedge: error: {}: no such file (expected a defect registry)\n".format(
        tmp_path / "missing.sqlite")
    (tmp_path / "notes.txt").write_text("not SQLite\n" * 50)
    assert main(["report", str(tmp_path / "notes.txt"), "--format", "gpx"]) == 2
    assert capsys.readouterr().err == "roadedge: error: {}: not a defect registry (file is not a database)\n".format(
        tmp_path / "notes.txt")


def test_text_is_escaped_and_unknowns_are_empty():
    defect = {"id": 7, "label": "D40", "name": 'a <b> & "c"', "lat": -33.5, "lon": 180.0, "severity": None,
              "footprint_m2": None, "sightings": 1, "passes": 1, "first_seen": "2026-11-21T08:00:00.000Z",
              "last_seen": "2026-11-21T08:00:03.000Z", "best_score": 0.5, "snapshot": "my defects-snapshots/7-1.jpg"}
    point = ET.fromstring(to_gpx([defect])).find(GPX + "wpt")
    assert point.get("lon") == "-180.0"  # GPX: -180 <= lon < 180
    assert point.find(GPX + "desc").text.startswith('a <b> & "c"; 1 sighting in 1 pass; first seen')
    assert point.find(GPX + "link").get("href") == "my%20defects-snapshots/7-1.jpg"
    row = next(csv.DictReader(io.StringIO(to_csv([defect]))))
    assert (row["name"], row["severity"], row["footprint_m2"]) == ('a <b> & "c"', "", "")
    assert to_geojson([])["features"] == [] and to_csv([]).splitlines() == [",".join([
        "id", "label", "name", "severity", "lat", "lon", "footprint_m2", "sightings", "passes", "first_seen", "last_seen",
        "best_score", "snapshot"])]


@given(moment=st.datetimes(min_value=datetime.datetime(1971, 1, 1), max_value=datetime.datetime(2200, 1, 1)),
       minutes=st.integers(-14 * 60, 14 * 60), style=st.sampled_from(["Z", "offset", "date"]))
def test_since_times_parse_to_the_moment_they_name(moment, minutes, style):
    if style == "date":
        expected = datetime.datetime(moment.year, moment.month, moment.day, tzinfo=datetime.timezone.utc).timestamp()
        assert epoch_seconds(moment.strftime("%Y-%m-%d")) == expected
        return
    zone = datetime.timezone(datetime.timedelta(minutes=0 if style == "Z" else minutes))
    local = moment.replace(tzinfo=zone)
    text = local.strftime("%Y-%m-%dT%H:%M:%S.%f") + ("Z" if style == "Z" else local.strftime("%z"))
    assert epoch_seconds(text) == pytest.approx(local.timestamp(), abs=1e-6)


@settings(max_examples=80)
@given(text=st.one_of(st.text(max_size=30), st.from_regex(times._ISO, fullmatch=True)))
def test_any_since_text_is_a_time_or_a_value_error(text):
    """Near-misses included: what the pattern lets through (month 13, zone +99:99) must be a ValueError too."""
    try:
        assert isinstance(epoch_seconds(text), float)
    except ValueError:
        pass
