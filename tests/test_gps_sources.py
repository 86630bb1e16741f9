"""GPS sources: --gps specs, the stale/no-fix contract, NMEA from a real pseudo-terminal, a real gpsd fed by gpsfake,
file replay (NMEA and GPX) and the synthetic drive's track."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from edge.gps import geo, nmea, sources
from edge.gps.replay import FileReplaySource
from roadedge.core.errors import RoadedgeError

START = (52.5163, 13.3777)
EPOCH = 1700000000.0  # 2023-11-14T22:13:20Z


def wait_for(check, timeout=15.0):
    """Poll until check() is truthy (a wait for a reader thread, not a timed assertion); returns its last value."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(0.02)
        value = check()
    return value


@pytest.mark.parametrize("spec, expected", [
    ("gpsd://127.0.0.1:2947", ("gpsd", {"host": "127.0.0.1", "port": 2947})),
    ("gpsd://gps.local", ("gpsd", {"host": "gps.local", "port": 2947})),
    ("gpsd://[::1]:3000", ("gpsd", {"host": "::1", "port": 3000})),
    ("nmea:/dev/ttyUSB0", ("nmea", {"device": "/dev/ttyUSB0", "baud": 9600})),
    ("nmea:/dev/ttyUSB0:4800", ("nmea", {"device": "/dev/ttyUSB0", "baud": 4800})),
    ("file:/data/drive.nmea", ("file", {"path": "/data/drive.nmea"})),
    ("synthetic", ("synthetic", {})),
])
def test_specs(spec, expected):
    assert sources.parse_spec(spec) == expected


@pytest.mark.parametrize("spec, says", [
    ("gps://x:1", "expected gpsd://HOST:PORT, nmea:DEVICE[:BAUD], file:PATH or synthetic"),
    ("gpsd://host:http", "host and port 1-65535"),
    ("gpsd://:2947", "host and port 1-65535"),
    ("gpsd://host:70000", "host and port 1-65535"),
    ("nmea:/dev/ttyUSB0:1234", "baud 1234 is not one of 4800, 9600, 19200, 38400, 57600, 115200"),
    ("nmea:", "a device path"),
    ("file:", "expected gpsd://"),
    ("", "expected gpsd://"),
])
def test_bad_specs_are_one_line_errors(spec, says):
    with pytest.raises(RoadedgeError) as err:
        sources.parse_spec(spec)
    assert says in str(err.value) and "\n" not in str(err.value) and repr(spec) in str(err.value)


def test_position_contract_none_fresh_stale_lost():
    source = sources.GpsSource(max_age_s=2.0)
    assert source.position(now=100.0) == sources.no_fix()
    source.update(52.5, 13.4, 90.0, 12.0, "3d", received=100.0)
    assert source.position(now=101.5) == {"lat": 52.5, "lon": 13.4, "heading": 90.0, "speed": 12.0, "fix": "3d",
                                          "age_s": 1.5}
    stale = source.position(now=103.0)
    assert stale["fix"] == "stale" and stale["age_s"] == 3.0 and stale["lat"] == 52.5  # the last fix, marked, not moved
    source.lost(received=104.0)
    assert source.position(now=104.25) == {"lat": None, "lon": None, "heading": None, "speed": None, "fix": "none",
                                           "age_s": 0.25}


# ---- NMEA on a pseudo-terminal ----------------------------------------------------------------------------------------

def test_serial_reader_on_a_pseudo_terminal():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    try:
        with sources.open_source("nmea:{}:4800".format(path), max_age_s=30.0) as source:
            assert source.position()["fix"] == "none"
            utc = 12 * 3600 + 35 * 60 + 19
            lines = [b"\x00\xff garbage before the first sentence",
                     nmea.write_gga(48.1173, 11.5166, utc, quality=2, talker="GN").encode(),
                     nmea.write_rmc(48.1173, 11.5166, 84.4, 11.5, utc, (2026, 12, 1)).encode()[:-1] + b"0",  # bad sum
                     nmea.write_vtg(84.4, 11.5).encode()]
            data = b"\r\n".join(lines) + b"\r\n"
            os.write(master, data[:37])  # a sentence split across reads
            os.write(master, data[37:])
            position = wait_for(lambda: source.position() if source.position()["speed"] is not None else None)
            assert position["lat"] == pytest.approx(48.1173, abs=1e-7) and position["lon"] == pytest.approx(11.5166, abs=1e-7)
            assert position["fix"] == "dgps" and position["heading"] == pytest.approx(84.4)
            assert position["speed"] == pytest.approx(11.5, abs=1e-3) and position["age_s"] >= 0
            os.write(master, (nmea.write_rmc(48.2, 11.6, 90.0, 12.0, utc + 1, (2026, 12, 1)) + "\r\n").encode())
            moved = wait_for(lambda: source.position() if source.position()["lat"] > 48.15 else None)
            assert moved["lat"] == pytest.approx(48.2, abs=1e-7) and moved["heading"] == 90.0 and moved["fix"] == "dgps"
            no_fix_gga = nmea.sentence("GPGGA", ["123521", "", "", "", "", "0", "00", "", "", "M", "", "M", "", ""])
            os.write(master, (no_fix_gga + "\r\n").encode())
            lost = wait_for(lambda: source.position() if source.position()["lat"] is None else None)
            assert lost["fix"] == "none" and lost["lon"] is None
    finally:
        os.close(master)
        os.close(slave)


def test_serial_errors_are_one_line(tmp_path):
    with pytest.raises(RoadedgeError, match=r"^--gps nmea:/nonexistent/ttyUSB9: cannot open \(no such file or folder\)$"):
        sources.open_source("nmea:/nonexistent/ttyUSB9")
    plain = tmp_path / "not-a-tty"
    plain.write_text("")
    with pytest.raises(RoadedgeError, match=r"not a serial device"):
        sources.open_source("nmea:{}".format(plain))


# ---- gpsd -------------------------------------------------------------------------------------------------------------

def test_gpsd_reports_tpv_and_ignores_the_rest():
    source = sources.GpsdSource()
    source.handle_report(b'{"class":"VERSION","release":"3.22","proto_major":3,"proto_minor":14}')
    source.handle_report(b"not json")
    source.handle_report(b"[1, 2]")
    assert source.position()["fix"] == "none" and source.position()["age_s"] is None
    source.handle_report(json.dumps({"class": "TPV", "mode": 3, "lat": 52.5, "lon": 13.4, "track": 271.0,
                                     "speed": 9.5}).encode())
    assert {k: v for k, v in source.position().items() if k != "age_s"} == {
        "lat": 52.5, "lon": 13.4, "heading": 271.0, "speed": 9.5, "fix": "3d"}
    source.handle_report(b'{"class":"TPV","mode":1}')
    assert source.position()["fix"] == "none" and source.position()["lat"] is None


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gpsd_unreachable_is_no_fix_with_a_reason():
    port = free_port()
    with sources.open_source("gpsd://127.0.0.1:{}".format(port)) as source:
        assert wait_for(lambda: source.last_error) == "gpsd 127.0.0.1:{}: Connection refused".format(port)
        assert source.position() == sources.no_fix()


class RecordingGpsd(sources.GpsdSource):
    def __init__(self, *args, **kwargs):
        super(RecordingGpsd, self).__init__(*args, **kwargs)
        self.fixes = []

    def update(self, *args, **kwargs):
        self.fixes.append(args[:5])
        super(RecordingGpsd, self).update(*args, **kwargs)


def test_real_gpsd_fed_by_gpsfake(tmp_path):
    if not shutil.which("gpsfake") or not (shutil.which("gpsd") or os.path.exists("/usr/sbin/gpsd")):
        if os.environ.get("CI") == "true":
            pytest.fail("gpsd/gpsfake not installed (apt-get install gpsd gpsd-clients); CI must run this test", pytrace=False)
        pytest.skip("gpsd/gpsfake not installed (apt-get install gpsd gpsd-clients)")
    log = tmp_path / "drive.nmea"
    lines = sources.synthetic_track_nmea(START[0], START[1], 90.0, 12.0, 10, EPOCH)
    log.write_text("\r\n".join(lines) + "\r\n")
    port = free_port()
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin")
    # gpsfake replays the log in a loop (-1, play once, races gpsd's opening of the fake device and can send nothing)
    fake = subprocess.Popen(["gpsfake", "-q", "-c", "0.02", "-P", str(port), str(log)], env=env, cwd=str(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    track = [geo.destination(START[0], START[1], 90.0, 12.0 * i) for i in range(11)]

    def reached_the_end():
        return any(geo.distance(fix[0], fix[1], *track[-1]) < 0.01 for fix in list(source.fixes))

    try:
        source = RecordingGpsd("127.0.0.1", port, retry_s=0.2).start()
        try:
            assert wait_for(reached_the_end, timeout=30), "gpsd never reported the track's last point"
        finally:
            source.close()
    finally:
        os.killpg(fake.pid, signal.SIGKILL)  # gpsfake and the gpsd it started (it ignores SIGTERM while replaying)
        fake.wait(timeout=10)
    assert len(source.fixes) >= 6  # one TPV per epoch: more than half of the 11 epochs came through
    for lat, lon, heading, speed, fix in source.fixes:  # every TPV is one of the written points, none invented
        assert min(geo.distance(lat, lon, *point) for point in track) < 0.01
        assert fix in ("2d", "3d")  # the first TPV of a loop may come before gpsd has an altitude, track or speed
        assert heading in (None, pytest.approx(90.0)) and speed in (None, pytest.approx(12.0, abs=1e-3))
    end = [fix for fix in source.fixes if geo.distance(fix[0], fix[1], *track[-1]) < 0.01][0]
    assert end[2:] == (pytest.approx(90.0), pytest.approx(12.0, abs=1e-3), "3d")


# ---- replay and synthetic ---------------------------------------------------------------------------------------------

def test_nmea_file_replay_aligned_to_a_start_time(tmp_path):
    log = tmp_path / "drive.nmea"
    log.write_text("\r\n".join(sources.synthetic_track_nmea(START[0], START[1], 45.0, 12.0, 10, EPOCH)) + "\r\n")
    video_start = 5000.0
    with sources.open_source("file:{}".format(log), start=video_start) as source:
        assert source.track_start == EPOCH
        assert source.position(video_start - 0.5) == sources.no_fix()
        at = source.position(video_start + 5.25)
        expected = geo.destination(START[0], START[1], 45.0, 60.0)  # the 5 s record, 0.25 s old
        assert at["lat"] == pytest.approx(expected[0], abs=1e-7) and at["lon"] == pytest.approx(expected[1], abs=1e-7)
        assert at["age_s"] == 0.25 and at["fix"] == "gps" and at["heading"] == 45.0
        assert at["speed"] == pytest.approx(12.0, abs=1e-3)
        after = source.position(video_start + 13.0)
        assert after["fix"] == "stale" and after["age_s"] == 3.0


def test_gpx_replay_derives_heading_and_speed(tmp_path):
    points = [geo.destination(START[0], START[1], 180.0, 10.0 * i) for i in range(3)]
    trkpts = "".join('<trkpt lat="{:.9f}" lon="{:.9f}"><time>2023-11-14T22:13:{:02d}Z</time></trkpt>'.format(
        lat, lon, 20 + 2 * i) for i, (lat, lon) in enumerate(points))
    gpx = tmp_path / "drive.gpx"
    gpx.write_text('<?xml version="1.0"?><gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
                   + trkpts + "</trkseg></trk></gpx>")
    source = FileReplaySource(str(gpx), start=0.0)
    assert source.track_start == EPOCH
    first, second = source.position(0.0), source.position(2.5)
    assert first["heading"] is None and first["speed"] is None and first["lat"] == pytest.approx(points[0][0])
    assert second["lat"] == pytest.approx(points[1][0]) and second["heading"] == pytest.approx(180.0, abs=1e-6)
    assert second["speed"] == pytest.approx(5.0, abs=1e-4) and second["age_s"] == 0.5


@pytest.mark.parametrize("content, says", [
    ("", "no GGA or RMC sentence with a valid checksum"),
    ("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*48\n", "no GGA or RMC sentence"),
    ("<gpx><trk><trkseg></trkseg></trk></gpx>", "no <trkpt> in the GPX file"),
    ("<gpx><trkpt lat='1' lon='2'/></gpx>", "a trkpt needs lat, lon and a UTC <time>"),
    ("<gpx><trkpt", "not valid GPX XML"),
])
def test_bad_track_files(tmp_path, content, says):
    path = tmp_path / "track"
    path.write_text(content)
    with pytest.raises(RoadedgeError) as err:
        FileReplaySource(str(path))
    assert str(err.value).startswith(str(path)) and says in str(err.value) and "\n" not in str(err.value)


def test_synthetic_drive():
    source = sources.open_source("synthetic", start=1000.0, heading=30.0)
    position = source.position(1010.0)
    distance, bearing, _ = geo.inverse(START[0], START[1], position["lat"], position["lon"])
    assert distance == pytest.approx(120.0, abs=1e-6) and bearing == pytest.approx(30.0, abs=1e-6)
    assert position["fix"] == "synthetic" and position["speed"] == 12.0 and position["age_s"] == 0.0


def test_gga_only_log_across_midnight(tmp_path):
    # no RMC, so no date: times of day, carried past midnight; a no-fix GGA in the log replays as no fix
    log = tmp_path / "gga.nmea"
    no_fix = nmea.sentence("GPGGA", ["000001.00", "", "", "", "", "0", "00", "", "", "M", "", "M", "", ""])
    log.write_text("\n".join([nmea.write_gga(10.0, 20.0, 86399.0, quality=4), "$GPGSV,garbage*00",
                              nmea.write_gga(10.0001, 20.0, 0.0, quality=4), no_fix]) + "\n")
    source = FileReplaySource(str(log), start=0.0)
    assert source.track_start == 86399.0
    assert source.position(0.5)["lat"] == pytest.approx(10.0) and source.position(0.5)["fix"] == "rtk"
    second = source.position(1.0)
    assert second["lat"] == pytest.approx(10.0001) and second["age_s"] == 0.0 and second["heading"] is None
    assert source.position(2.5) == sources.no_fix(0.5)
