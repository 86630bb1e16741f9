"""The console's HTTP API on a real preview server over a real defect registry (tests/console_drive.py), the
preview's token, and the console's bounded state."""
import csv
import io
import json
import os
import threading
import xml.etree.ElementTree as ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.console import ConsoleState
from edge.console.routes import BadRequest, filters
from edge.defects.registry import read_defects
from edge.defects.times import epoch_seconds
from edge.sinks import mjpeg
from tests.console_drive import STALE, TRACKS, Drive, get, lon_lats, position


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    drive = Drive(str(tmp_path_factory.mktemp("console") / "defects.sqlite"))
    yield drive
    drive.close()


def get_json(drive, path, status=200):
    code, headers, body = get(drive.url(path))
    assert code == status, body
    assert headers["Content-Type"] == "application/json"
    return json.loads(body)


def test_state_has_the_stats_panel_numbers_and_the_latest_fix(drive):
    state = get_json(drive, "/api/state")
    stats = state["stats"]
    assert (stats["fps"], stats["frames"], stats["detections"], stats["dropped_frames"]) == (14.25, 40, 23, 1)
    assert stats["outbox_depth"] == 3 and stats["kvs_store_depth"] == 2 and stats["kvs_fragments_sent"] == 7
    assert stats["gps"] == position(39) and stats["gps"]["fix"] == "3d"
    assert state["device"] == "test-car" and state["registry"] is True
    assert state["classes"]["D40"]["color"] == "#ff0000"  # the catalogue's BGR (0, 0, 255) as CSS


def test_events_are_the_newest_message_of_each_track_newest_first_and_filter(drive):
    events = get_json(drive, "/api/events")["events"]
    assert [(e["track_id"], e["event"], e["label"]) for e in events] == [
        (5, "end", "D10"), (4, "end", "D40"), (3, "end", "D20"), (2, "end", "D00"), (1, "end", "D40")]
    assert events[0]["ground"] is None and events[0]["position"]["fix"] == "stale"
    assert events[1]["ground"]["width_m"] == 0.8 and events[1]["position"] == position(23)
    assert [e["track_id"] for e in get_json(drive, "/api/events?class=D40")["events"]] == [4, 1]
    assert [e["track_id"] for e in get_json(drive, "/api/events?since=2026-12-01")["events"]] == [5, 4]
    assert [e["track_id"] for e in get_json(drive, "/api/events?since=2026-11-30T23:59:55Z")["events"]] == [5, 4, 3]
    assert get_json(drive, "/api/events?class=D40&since=2026-12-02")["events"] == []


def test_bad_filters_are_json_400s_naming_the_parameter(drive):
    assert "class=D99" in get_json(drive, "/api/events?class=D99", 400)["error"]
    assert "since=yesterday" in get_json(drive, "/api/defects?since=yesterday", 400)["error"]
    assert "since=2026-02-30" in get_json(drive, "/api/defects?since=2026-02-30", 400)["error"]
    assert "since=2026-12-01T25:00" in get_json(drive, "/api/events?since=2026-12-01T25:00", 400)["error"]
    assert "format=pdf" in get_json(drive, "/report?format=pdf", 400)["error"]
    assert get_json(drive, "/api/nothing", 404)["error"] == "no such API: /api/nothing"


def test_defects_are_the_registrys_with_snapshot_urls(drive):
    registry = read_defects(drive.registry.path)
    defects = get_json(drive, "/api/defects")["defects"]
    assert len(defects) == 4 == len([t for t in TRACKS if t[5] is not None])  # the stale track is no defect
    by_id = {d["id"]: d for d in defects}
    for expected in registry:
        served = by_id[expected["id"]]
        assert {k: served[k] for k in expected} == expected
        assert served["snapshot_url"] == "/snapshots/" + os.path.basename(expected["snapshot"])
    assert sorted(d["label"] for d in get_json(drive, "/api/defects?class=D40")["defects"]) == ["D40", "D40"]
    assert [d["label"] for d in get_json(drive, "/api/defects?since=2026-12-01")["defects"]] == ["D40"]


def test_snapshots_are_served_and_nothing_outside_their_folder(drive, tmp_path):
    defect = get_json(drive, "/api/defects")["defects"][0]
    status, headers, body = get(drive.url(defect["snapshot_url"]))
    with open(os.path.join(os.path.dirname(drive.registry.path), defect["snapshot"]), "rb") as handle:
        assert status == 200 and headers["Content-Type"] == "image/jpeg" and body == handle.read()
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"\xff\xd8secret")
    os.symlink(str(outside), os.path.join(drive.registry.snapshots_dir, "link.jpg"))
    registry_name = os.path.basename(drive.registry.path)
    for path in ("/snapshots/link.jpg", "/snapshots/..%2f" + registry_name, "/snapshots/../" + registry_name,
                 "/snapshots/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/snapshots/", "/snapshots/.hidden.jpg",
                 "/snapshots/missing.jpg"):
        status, headers, body = get(drive.url(path))
        assert status == 404 and headers["Content-Type"] == "application/json", path
        assert b"secret" not in body and b"SQLite" not in body


def test_track_keeps_the_fixes_and_marks_the_stale_ones(drive):
    track = get_json(drive, "/api/track")
    points = track["track"]
    assert len(points) == 40  # 10 m apart (or a second apart while stale): every frame's fix is kept
    assert [i for i, p in enumerate(points) if p["stale"]] == list(STALE)
    assert (points[0]["lat"], points[0]["lon"]) == pytest.approx((position(0)["lat"], position(0)["lon"]))
    assert track["position"] == position(39)


def test_reports_download_as_attachments_built_from_the_registry(drive):
    registry = read_defects(drive.registry.path)
    status, headers, body = get(drive.url("/report?format=geojson"))
    assert status == 200 and headers["Content-Type"] == "application/geo+json"
    assert headers["Content-Disposition"] == 'attachment; filename="roadedge-defects-test-car.geojson"'
    features = json.loads(body)["features"]
    assert lon_lats(f["geometry"]["coordinates"] for f in features) == pytest.approx(
        lon_lats((d["lon"], d["lat"]) for d in registry), abs=1e-6)  # the report's 6 decimals: 0.1 m
    status, headers, body = get(drive.url("/report?format=csv&class=D40"))
    assert headers["Content-Disposition"].endswith('.csv"') and headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    assert len(rows) == 2 and {row["label"] for row in rows} == {"D40"}
    status, headers, body = get(drive.url("/report?format=gpx"))
    waypoints = ElementTree.fromstring(body).findall("{http://www.topografix.com/GPX/1/1}wpt")
    assert status == 200 and len(waypoints) == 4


def test_the_page_and_its_static_files_and_the_preview_routes_still_work(drive):
    status, headers, page = get(drive.url("/"))
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'src="/stream.mjpg"' in page and b'<canvas id="map"' in page and b"http" not in page  # nothing remote
    status, headers, script = get(drive.url("/static/console.js"))
    assert status == 200 and headers["Content-Type"] == "text/javascript; charset=utf-8" and b"roadedgeMap" in script
    assert get(drive.url("/static/../routes.py"))[0] == 404 and get(drive.url("/static/%2e%2e%2froutes.py"))[0] == 404
    status, headers, jpeg = get(drive.url("/latest.jpg"))
    assert status == 200 and jpeg[:2] == b"\xff\xd8"


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=30), st.datetimes().map(lambda d: d.isoformat()[:st_len(d)]),
                 st.from_regex(r"\A\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?Z?)?\Z")))
def test_the_console_takes_a_since_exactly_when_the_registry_does(text):
    try:
        expected = epoch_seconds(text) if text else None  # empty: no filter
    except ValueError:
        expected = BadRequest
    try:
        _, since = filters({"since": text})
    except BadRequest:
        since = BadRequest
    assert since == expected  # a 400 from the console, never a surprise from the registry; the same moment


def st_len(moment):
    return 10 + (moment.microsecond % 4) * 3


def test_state_is_bounded_and_decimates_the_track():
    from edge.console import state as module

    clock = [0.0]
    state = ConsoleState(clock=lambda: clock[0])

    class Result(object):
        def __init__(self, events, fix):
            self.events, self.position = events, fix

    for i in range(module.MAX_TRACKS + 5):
        state.listen(Result([{"boot_id": "b", "track_id": i, "label": "D00", "last_seen": "2026"}], None))
    assert len(state.events()) == module.MAX_TRACKS and state.events()[0]["track_id"] == module.MAX_TRACKS + 4
    for i in range(30):  # 0.1 s and ~1.1 m apart: a point per 5 m
        clock[0] = i * 0.1
        state.listen(Result([], {"lat": 48.0 + i * 1e-5, "lon": 11.0, "fix": "3d"}))
    state.listen(Result([], {"lat": None, "lon": None, "fix": "none"}))
    assert [round((p["lat"] - 48.0) / 1e-5) for p in state.track()] == [0, 5, 10, 15, 20, 25]
    assert state.stats()["gps"]["fix"] == "none" and state.stats()["outbox_depth"] is None


def test_without_a_defects_output_the_lists_are_empty_and_there_is_no_report():
    from edge.console import serve

    sink = mjpeg.open({"port": 0, "max_fps": 0}, {"stop": threading.Event()})
    try:
        serve([sink], ConsoleState(), None, "bare", "boot-2")
        url = sink.url.rstrip("/")
        state = json.loads(get(url + "/api/state")[2])
        assert state["registry"] is False and state["stats"]["gps"] is None and state["stats"]["frames"] == 0
        assert json.loads(get(url + "/api/defects")[2]) == {"defects": [], "registry": False}
        assert json.loads(get(url + "/api/track")[2]) == {"track": [], "position": None}
        status, headers, body = get(url + "/report?format=csv")
        assert status == 404 and json.loads(body)["error"].startswith("no defect registry")
    finally:
        sink.close()


def test_the_deeplens_package_carries_the_console_and_its_page():
    """app.build imports edge.console when there is a preview: its static files travel with it (a DeepLens too)."""
    from packagers import deeplens

    names = {name for _, name in deeplens.project_files()}
    static = os.path.join(os.path.dirname(os.path.abspath(deeplens.__file__)), "..", "edge", "console", "static")
    assert {"edge/console/static/" + name for name in os.listdir(static)} | {"edge/console/routes.py"} <= names
