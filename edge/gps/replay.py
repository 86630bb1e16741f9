"""Replay of a recorded track (NMEA log or GPX) in step with a recorded video.

The track's first record plays at wall time `start` (the video's first frame; default: when the source was made), so
`position(start + t)` is where the vehicle was t seconds into the recording. Between records the latest earlier record
is reported with its age, never interpolated; before the first record there is no fix.
"""
import bisect
import calendar
import time
import xml.etree.ElementTree as ElementTree

from roadedge.core.errors import RoadedgeError, os_reason

from . import geo, nmea
from .sources import DEFAULT_MAX_AGE_S, GpsSource, NmeaState, aged, no_fix


class _Recorder(GpsSource):
    """Collects what an NmeaState would report, keyed by the sentence time instead of the arrival time."""

    def __init__(self):
        super(_Recorder, self).__init__()
        self.records = []

    def update(self, lat, lon, heading, speed, fix, received=None):
        self.records.append((received, {"lat": lat, "lon": lon, "heading": heading, "speed": speed, "fix": fix}))

    def amend(self, heading, speed):
        if self.records and self.records[-1][1] is not None:
            self.records[-1][1].update(heading=heading, speed=speed)

    def lost(self, received=None):
        self.records.append((received, None))


def read_nmea(text, path):
    """NMEA log -> [(seconds, fix dict or None)]; seconds are UTC epoch when RMC dates are present, else time of day."""
    recorder = _Recorder()
    state = NmeaState(recorder)
    date, last_time, day_offset = None, None, 0.0
    for line in text.splitlines():
        fix = nmea.parse(line)
        if fix is None:
            continue
        if fix.date is not None:
            date = fix.date
        if fix.time is None:
            state.feed(fix)  # VTG: course only, never recorded on its own
            continue
        if date is None and last_time is not None and fix.time < last_time - 43200:
            day_offset += 86400.0  # past midnight in a log without dates
        last_time = fix.time
        base = calendar.timegm(date + (0, 0, 0)) if date is not None else day_offset
        state.feed(fix, base + fix.time)
    # GGA and RMC of one epoch carry the same time: keep the last state per time
    merged = {}
    for t, record in recorder.records:
        merged[t] = record
    if not merged:
        raise RoadedgeError("{}: no GGA or RMC sentence with a valid checksum".format(path))
    return sorted(merged.items(), key=lambda item: item[0])


def _iso_time(text):
    text = text.strip().replace("Z", "+00:00")
    head, _, fraction = text[:19], None, 0.0
    rest = text[19:]
    if rest.startswith("."):
        digits = rest[1:].split("+")[0].split("-")[0]
        fraction = float("0." + digits) if digits.isdigit() else 0.0
        rest = rest[1 + len(digits):]
    if rest not in ("", "+00:00"):
        raise ValueError("only UTC times")
    return calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S")) + fraction


def read_gpx(text, path):
    """GPX track points -> [(epoch, fix dict)]; heading and speed from consecutive points (GPX 1.1 has neither)."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as err:
        raise RoadedgeError("{}: not valid GPX XML ({})".format(path, err)) from None
    points = []
    for element in root.iter():
        if element.tag.split("}")[-1] != "trkpt":
            continue
        stamp = next((child.text for child in element if child.tag.split("}")[-1] == "time"), None)
        try:
            points.append((_iso_time(stamp or ""), float(element.get("lat")), float(element.get("lon"))))
        except (TypeError, ValueError):
            raise RoadedgeError("{}: a trkpt needs lat, lon and a UTC <time> (YYYY-MM-DDTHH:MM:SSZ)".format(path)) from None
    if not points:
        raise RoadedgeError("{}: no <trkpt> in the GPX file".format(path))
    points.sort()
    records = []
    for i, (t, lat, lon) in enumerate(points):
        heading = speed = None
        if i > 0:
            t0, lat0, lon0 = points[i - 1]
            distance, bearing, _ = geo.inverse(lat0, lon0, lat, lon)
            if t > t0:
                speed = distance / (t - t0)
            heading = bearing if distance > 0.5 else None
        records.append((t, {"lat": lat, "lon": lon, "heading": heading, "speed": speed, "fix": "gps"}))
    return records


def read_track(path):
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as err:
        raise RoadedgeError("--gps file:{}: cannot read ({})".format(path, os_reason(err))) from None
    text = raw.decode("utf-8", errors="replace")
    if text.lstrip("\ufeff \t\r\n").startswith("<"):
        return read_gpx(text, path)
    return read_nmea(text, path)


class FileReplaySource(GpsSource):
    def __init__(self, path, start=None, max_age_s=DEFAULT_MAX_AGE_S):
        super(FileReplaySource, self).__init__(max_age_s)
        self.path = path
        self.records = read_track(path)
        self.times = [t for t, _ in self.records]
        self.track_start = self.times[0]  # UTC epoch of the first record (time of day for NMEA logs without RMC dates)
        self.start_time = time.time() if start is None else float(start)

    def position(self, now=None):
        now = time.time() if now is None else now
        track_time = self.track_start + (now - self.start_time)
        index = bisect.bisect_right(self.times, track_time + 1e-9) - 1
        if index < 0:
            return no_fix()
        t, record = self.records[index]
        return aged(record, round(track_time - t, 3), self.max_age_s)

