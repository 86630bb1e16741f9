"""The console in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright): the page over a
generated drive (tests/console_drive.py) and a real defect registry. One browser for the module."""
import json
import math
import os

import pytest

from edge.defects.registry import read_defects
from edge.sinks.base import FrameResult, Sink
from edge.sources.base import Frame
from tests.console_drive import Drive, lon_lats, picture

CHROMIUM = "/usr/bin/chromium"
R = 6371008.8  # the projection documented in edge/console/static/console.js
PAD, MIN_SPAN_M = 24, 50
SCREENSHOT = os.environ.get("ROADEDGE_CONSOLE_SCREENSHOT")  # e.g. /tmp/console.png: keep a picture of the page

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    drive = Drive(str(tmp_path_factory.mktemp("console-browser") / "defects.sqlite"))
    yield drive
    drive.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


def open_page(browser, url):
    """A new page at `url` once the console has drawn its data; (page, context, errors seen in its console)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page = context.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_function("Number(document.body.dataset.loaded || 0) >= 1")
    return page, context, errors


@pytest.fixture(scope="module")
def page(browser, drive):
    page, context, errors = open_page(browser, drive.url("/"))
    page.errors = errors
    yield page
    context.close()


def rows(page, table, attribute):
    return page.eval_on_selector_all("#{} tbody tr".format(table), "(rows, a) => rows.map(r => r.getAttribute(a))",
                                     attribute)


def expected_pixels(track, defects, width, height):
    """Each defect's canvas position (CSS pixels) by the documented projection, from the registry's lat/lon."""
    points = [(p["lat"], p["lon"]) for p in track] + [(d["lat"], d["lon"]) for d in defects]
    lats, lons = [p[0] for p in points], [p[1] for p in points]
    lat0, lon0 = (min(lats) + max(lats)) / 2, (min(lons) + max(lons)) / 2
    cos0 = math.cos(math.radians(lat0))
    span_x = max(R * math.radians(max(lons) - min(lons)) * cos0, MIN_SPAN_M)
    span_y = max(R * math.radians(max(lats) - min(lats)), MIN_SPAN_M)
    k = min((width - 2 * PAD) / span_x, (height - 2 * PAD) / span_y)
    return {d["id"]: (width / 2 + R * math.radians(d["lon"] - lon0) * cos0 * k,
                      height / 2 - R * math.radians(d["lat"] - lat0) * k) for d in defects}


def test_the_page_loads_and_lists_the_drives_events_and_defects(page, drive):
    assert page.title() == "roadedge console" and page.text_content("#device") == "test-car"
    assert rows(page, "events", "data-track") == ["5", "4", "3", "2", "1"]
    assert rows(page, "events", "data-label") == ["D10", "D40", "D20", "D00", "D40"]
    assert rows(page, "events", "data-event") == ["end"] * 5
    assert sorted(rows(page, "defects", "data-id")) == sorted(str(d["id"]) for d in read_defects(drive.registry.path))
    page.wait_for_function("document.getElementById('stat-fps').textContent !== '-'")
    assert page.text_content("#stat-fps") == "14.3" and page.text_content("#stat-outbox") == "3 waiting"
    assert page.text_content("#stat-kvs") == "2 fragments stored" and page.text_content("#stat-gps").startswith("3d")
    width, index = 0, 40
    while not width and index < 200:  # a browser shows a part of the stream once the next one starts: live frames
        drive.sink.write(FrameResult(Frame(index, picture(index), 0.0), [], None))
        index += 1
        width = page.evaluate("new Promise(r => setTimeout(() => r(document.getElementById('stream').naturalWidth), 50))")
    assert width == 320
    assert page.errors == []


def check_markers(page, registry):
    """Each defect's marker sits where its lat/lon projects, and the canvas there has the class's colour (when no
    other marker overlaps it)."""
    shown = page.evaluate("window.roadedgeMap")
    assert (shown["pad"], shown["minSpan"]) == (PAD, MIN_SPAN_M)
    track = json.loads(page.evaluate("fetch('/api/track').then(r => r.text())"))["track"]
    assert shown["trackPoints"] == len(track)
    expected = expected_pixels(track, registry, shown["width"], shown["height"])
    markers = {m["id"]: m for m in shown["markers"]}
    assert set(markers) == set(expected)
    classes = json.loads(page.evaluate("fetch('/api/state').then(r => r.text())"))["classes"]
    for defect in registry:
        x, y = expected[defect["id"]]
        assert markers[defect["id"]]["x"] == pytest.approx(x, abs=1.5)
        assert markers[defect["id"]]["y"] == pytest.approx(y, abs=1.5)
        assert 0 < x < shown["width"] and 0 < y < shown["height"]
        if any(math.hypot(x - ox, y - oy) < 16 for other, (ox, oy) in expected.items() if other != defect["id"]):
            continue
        pixel = page.evaluate("([x, y]) => { const c = document.getElementById('map'), r = window.devicePixelRatio || 1;"
                              " return Array.from(c.getContext('2d').getImageData(Math.round(x * r), Math.round(y * r),"
                              " 1, 1).data); }", [x, y])
        colour = classes[defect["label"]]["color"]
        assert pixel[:3] == [int(colour[i:i + 2], 16) for i in (1, 3, 5)], (defect, pixel)  # the class's marker there
    return shown


def test_the_map_puts_each_defect_where_the_registry_says(page, drive):
    registry = read_defects(drive.registry.path)
    shown = check_markers(page, registry)
    assert len(shown["markers"]) == 4 and shown["trackPoints"] == 40


def test_the_snapshots_load(page):
    page.wait_for_function("Array.from(document.querySelectorAll('#defects img.thumb')).every(i => i.complete)")
    sizes = page.eval_on_selector_all("#defects img.thumb", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
    assert sizes == [[True, 320]] * 4


def test_the_report_downloads_as_geojson_with_the_registrys_defects(page, drive, tmp_path):
    with page.expect_download() as download:
        page.click("#report-geojson")
    assert download.value.suggested_filename == "roadedge-defects-test-car.geojson"
    target = str(tmp_path / "report.geojson")
    download.value.save_as(target)
    with open(target, encoding="utf-8") as handle:
        report = json.load(handle)
    registry = read_defects(drive.registry.path)
    assert report["type"] == "FeatureCollection"
    assert lon_lats(f["geometry"]["coordinates"] for f in report["features"]) == pytest.approx(
        lon_lats((d["lon"], d["lat"]) for d in registry), abs=1e-6)  # the report's 6 decimals: 0.1 m


def test_the_class_and_date_filters_narrow_the_lists(page):
    page.select_option("#class-filter", "D40")
    page.wait_for_function("document.querySelectorAll('#events tbody tr').length === 2")
    assert rows(page, "events", "data-track") == ["4", "1"] and rows(page, "defects", "data-label") == ["D40", "D40"]
    assert page.get_attribute("#report-csv", "href") == "/report?class=D40&format=csv"
    page.fill("#since-filter", "2026-12-01")
    page.wait_for_function("document.querySelectorAll('#events tbody tr').length === 1")
    assert rows(page, "events", "data-track") == ["4"] and len(rows(page, "defects", "data-id")) == 1
    assert len(page.evaluate("window.roadedgeMap.markers")) == 1
    page.select_option("#class-filter", "")
    page.wait_for_function("document.querySelectorAll('#events tbody tr').length === 2")
    assert rows(page, "events", "data-track") == ["5", "4"]
    if SCREENSHOT:
        page.fill("#since-filter", "")
        page.wait_for_function("document.querySelectorAll('#events tbody tr').length === 5")
        page.screenshot(path=SCREENSHOT, full_page=True)
    assert page.errors == []


def test_with_a_token_the_browser_gets_in_through_the_link_and_its_cookie(browser, tmp_path):
    drive = Drive(str(tmp_path / "defects.sqlite"), token="c0nsole-t0ken")
    try:
        page, context, errors = open_page(browser, drive.url("/?token=c0nsole-t0ken"))
        assert len(rows(page, "events", "data-track")) == 5 and len(rows(page, "defects", "data-id")) == 4
        assert errors == []
        denied = context.new_page()
        context.clear_cookies()
        response = denied.goto(drive.url("/api/state"))
        assert response.status == 401
        context.close()
    finally:
        drive.close()


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """The bundled model on the bundled sample drive with the synthetic GPS drive, a defects output and the preview:
    the run ends, its preview (and console) stays up until close. The events every frame carried are recorded."""
    from edge import app, config
    from edge.sources.spec import SAMPLE_VIDEO

    recorder = Recorder()
    registry = str(tmp_path_factory.mktemp("console-run") / "defects.sqlite")
    settings = {"source": {"type": "opencv", "uri": SAMPLE_VIDEO, "realtime": False}, "pipeline": {"frames": 120},
                "outputs": [{"type": "mjpeg", "host": "127.0.0.1", "port": 0}, {"type": "defects", "path": registry}],
                "gps": {"source": "synthetic", "start": [52.5163, 13.3777], "heading": 90.0, "speed": 12.0},
                "camera": {"height_m": 1.4, "pitch_deg": 9.0, "hfov_deg": 70.0}, "events": {"min_hits": 2},
                "detection": {"min_score": 0.3}, "device_name": "sample-car"}
    runtime = app.build(config.load("x86-openvino-cpu", None, settings), extra_sinks=[recorder])
    try:
        runtime.pipeline.run()
        yield runtime, recorder.events, registry
    finally:
        runtime.close()


class Recorder(Sink):
    TYPE = "recorder"

    def __init__(self):
        self.events = []

    def write(self, result):
        self.events.extend(result.events)  # the closing result's too


def test_a_real_run_of_the_sample_drive_shows_its_events_defects_and_map(browser, sample_run):
    runtime, events, registry_path = sample_run
    newest = {}
    for event in events:
        newest[event["track_id"]] = event
    assert len(newest) >= 3 and all(e["event"] == "end" for e in newest.values())
    registry = read_defects(registry_path)
    assert registry, "the sample drive with GPS makes defects"
    host, port = runtime.sinks[0].address
    page, context, errors = open_page(browser, "http://{}:{}/".format(host, port))
    try:
        by_time = sorted(newest.values(), key=lambda e: e["last_seen"], reverse=True)
        assert [int(track) for track in rows(page, "events", "data-track")] == [e["track_id"] for e in by_time]
        assert {(r, lb, ev) for r, lb, ev in zip(rows(page, "events", "data-track"), rows(page, "events", "data-label"),
                                                 rows(page, "events", "data-event"))} == {
            (str(e["track_id"]), e["label"], "end") for e in by_time}
        assert sorted(int(i) for i in rows(page, "defects", "data-id")) == sorted(d["id"] for d in registry)
        check_markers(page, registry)
        page.wait_for_function("Array.from(document.querySelectorAll('#defects img.thumb')).every(i => i.complete)")
        sizes = page.eval_on_selector_all("#defects img.thumb", "imgs => imgs.map(i => i.naturalWidth)")
        assert sizes == [640] * sum(1 for d in registry if d["snapshot"])  # the sample drive's frames: 640x360
        assert page.text_content("#stat-gps").startswith("synthetic") and page.text_content("#device") == "sample-car"
        assert errors == []
    finally:
        context.close()
