"""GPS position sources: the contract every reader keeps, the readers (gpsd, NMEA serial, synthetic) and --gps specs.

A source keeps the latest fix with the wall time it arrived; `position(now)` reports it with its age. A source never
invents a position: before the first fix, or when the receiver says it has none, lat/lon are None and `fix` is "none";
a fix older than `max_age_s` keeps its last lat/lon but is marked `fix: "stale"` with its age.
"""
import json
import os
import select
import socket
import termios
import threading
import time
import tty

from roadedge.core.errors import RoadedgeError, os_reason

from . import geo, nmea

DEFAULT_MAX_AGE_S = 2.0
GPSD_PORT = 2947
GPSD_WATCH = b'?WATCH={"enable":true,"json":true}\n'
GGA_QUALITY = {1: "gps", 2: "dgps", 3: "pps", 4: "rtk", 5: "rtk-float", 6: "estimated", 7: "manual", 8: "simulation"}
TPV_MODE = {2: "2d", 3: "3d"}
BAUD_RATES = {rate: getattr(termios, "B%d" % rate) for rate in (4800, 9600, 19200, 38400, 57600, 115200)
              if hasattr(termios, "B%d" % rate)}
SPEC_FORMS = "gpsd://HOST:PORT, nmea:DEVICE[:BAUD], file:PATH or synthetic"


def no_fix(age_s=None):
    return {"lat": None, "lon": None, "heading": None, "speed": None, "fix": "none", "age_s": age_s}


def aged(record, age_s, max_age_s):
    """The position of `record` (None: the receiver said it has no fix) as it stands `age_s` seconds later: its
    fix says `stale` beyond max_age_s."""
    if record is None:
        return no_fix(age_s)
    result = dict(record, age_s=age_s)
    if age_s > max_age_s:
        result["fix"] = "stale"
    return result


class GpsSource(object):
    """The latest fix and when it arrived; readers call `update`/`lost`, consumers call `position`."""

    def __init__(self, max_age_s=DEFAULT_MAX_AGE_S):
        self.max_age_s = float(max_age_s)
        self.last_error = None  # a one-line reason while the device/daemon is unreachable, for status messages
        self._lock = threading.Lock()
        self._latest = None   # dict lat, lon, heading, speed, fix
        self._received = None

    def update(self, lat, lon, heading, speed, fix, received=None):
        with self._lock:
            self._latest = {"lat": lat, "lon": lon, "heading": heading, "speed": speed, "fix": fix}
            self._received = time.time() if received is None else received

    def amend(self, heading, speed):
        """Course and speed that arrived after the position of the same epoch (NMEA VTG)."""
        with self._lock:
            if self._latest is not None:
                self._latest = dict(self._latest, heading=heading, speed=speed)

    def lost(self, received=None):
        """The receiver reported that it has no fix."""
        with self._lock:
            self._latest = None
            self._received = time.time() if received is None else received

    def position(self, now=None):
        """dict lat, lon, heading, speed (m/s), fix, age_s (seconds since the fix arrived) at wall time `now`."""
        now = time.time() if now is None else now
        with self._lock:
            latest, received = self._latest, self._received
        if received is None:
            return no_fix()
        return aged(latest, round(max(0.0, now - received), 3), self.max_age_s)

    def start(self):
        return self

    def close(self):
        pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


class NmeaState(object):
    """Merges GGA/RMC/VTG sentences (position, quality, course) into one fix on a GpsSource."""

    def __init__(self, source):
        self.source = source
        self.heading = self.speed = None
        self.quality = None

    def feed(self, fix, received=None):
        if fix is None:
            return
        if fix.heading is not None:
            self.heading = fix.heading
        if fix.speed is not None:
            self.speed = fix.speed
        if fix.kind == "VTG":
            self.source.amend(self.heading, self.speed)
            return
        if not fix.quality or fix.lat is None or fix.lon is None:
            self.quality = None
            self.source.lost(received)
            return
        if fix.kind == "GGA":
            self.quality = GGA_QUALITY.get(fix.quality, "gps")
        self.source.update(fix.lat, fix.lon, self.heading, self.speed, self.quality or "gps", received)


class _ThreadedSource(GpsSource):
    def __init__(self, max_age_s=DEFAULT_MAX_AGE_S):
        super(_ThreadedSource, self).__init__(max_age_s)
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
            self._thread.start()
        return self

    def close(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self):
        raise NotImplementedError


class GpsdSource(_ThreadedSource):
    """gpsd's JSON protocol over TCP: ?WATCH, then TPV reports. Reconnects every `retry_s` while gpsd is away."""

    def __init__(self, host="127.0.0.1", port=GPSD_PORT, max_age_s=DEFAULT_MAX_AGE_S, retry_s=1.0):
        super(GpsdSource, self).__init__(max_age_s)
        self.host, self.port, self.retry_s = host, int(port), retry_s

    def _run(self):
        while not self._stop.is_set():
            try:
                with socket.create_connection((self.host, self.port), timeout=5) as conn:
                    conn.sendall(GPSD_WATCH)
                    conn.settimeout(0.5)
                    self.last_error = None
                    self._read(conn)
            except (OSError, ValueError) as err:
                self.last_error = "gpsd {}:{}: {}".format(self.host, self.port, os_reason(err))
            self._stop.wait(self.retry_s)

    def _read(self, conn):
        buffer = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise ConnectionError("gpsd closed the connection")
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                self.handle_report(line)

    def handle_report(self, line):
        """One line of gpsd's output; TPV objects update the fix, the rest (VERSION, DEVICES, WATCH, SKY) is ignored."""
        try:
            report = json.loads(line.decode("utf-8"))
        except ValueError:
            return
        if not isinstance(report, dict) or report.get("class") != "TPV":
            return
        mode = report.get("mode", 0)
        lat, lon = report.get("lat"), report.get("lon")
        if mode not in TPV_MODE or not isinstance(lat, (int, float)) or not isinstance(lon, (int, float)):
            self.lost()
            return
        heading, speed = report.get("track"), report.get("speed")
        self.update(float(lat), float(lon), float(heading) if isinstance(heading, (int, float)) else None,
                    float(speed) if isinstance(speed, (int, float)) else None, TPV_MODE[mode])


class NmeaSerialSource(_ThreadedSource):
    """An NMEA 0183 receiver on a tty (a USB/UART GPS, or a pseudo-terminal), opened raw at `baud` with termios."""

    def __init__(self, device, baud=9600, max_age_s=DEFAULT_MAX_AGE_S):
        super(NmeaSerialSource, self).__init__(max_age_s)
        if baud not in BAUD_RATES:
            raise RoadedgeError("--gps nmea:{}: baud {} is not one of {}".format(
                device, baud, ", ".join(str(b) for b in sorted(BAUD_RATES))))
        self.device, self.baud = device, baud
        self.state = NmeaState(self)
        self._fd = None

    def start(self):
        if self._fd is None:
            try:
                fd = os.open(self.device, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
            except OSError as err:
                raise RoadedgeError("--gps nmea:{}: cannot open ({})".format(self.device, os_reason(err))) from None
            try:
                tty.setraw(fd)
                attrs = termios.tcgetattr(fd)
                attrs[4] = attrs[5] = BAUD_RATES[self.baud]
                attrs[2] |= termios.CLOCAL | termios.CREAD
                termios.tcsetattr(fd, termios.TCSANOW, attrs)
            except termios.error as err:
                os.close(fd)
                raise RoadedgeError("--gps nmea:{}: not a serial device ({})".format(self.device, err.args[-1])) from None
            self._fd = fd
        return super(NmeaSerialSource, self).start()

    def close(self):
        super(NmeaSerialSource, self).close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _run(self):
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(self._fd, 4096)
            except BlockingIOError:
                continue
            except OSError as err:  # the device went away (unplugged, pty master closed)
                self.last_error = "{}: {}".format(self.device, os_reason(err))
                self._stop.wait(0.5)
                continue
            if not chunk:
                self._stop.wait(0.2)
                continue
            buffer = (buffer + chunk)[-65536:]
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                self.state.feed(nmea.parse(line))


class SyntheticSource(GpsSource):
    """A straight drive from a start point at a fixed heading and speed (the synthetic drive's 12 m/s by default)."""

    def __init__(self, lat=52.5163, lon=13.3777, heading=90.0, speed=12.0, start=None,
                 max_age_s=DEFAULT_MAX_AGE_S):
        super(SyntheticSource, self).__init__(max_age_s)
        self.lat, self.lon, self.heading, self.speed = float(lat), float(lon), float(heading) % 360.0, float(speed)
        self.start_time = time.time() if start is None else float(start)

    def at(self, t):
        """(lat, lon) t seconds after the start."""
        return geo.destination(self.lat, self.lon, self.heading, self.speed * max(0.0, t))

    def position(self, now=None):
        now = time.time() if now is None else now
        lat, lon = self.at(now - self.start_time)
        return {"lat": lat, "lon": lon, "heading": self.heading, "speed": self.speed, "fix": "synthetic", "age_s": 0.0}


def synthetic_track_nmea(lat, lon, heading, speed, duration_s, start_epoch, rate_hz=1.0, talker="GP"):
    """The synthetic drive's NMEA track: RMC, GGA and VTG per sample, `rate_hz` samples a second from `start_epoch`."""
    source = SyntheticSource(lat, lon, heading, speed, start=start_epoch)
    lines = []
    for i in range(int(duration_s * rate_hz) + 1):
        t = i / float(rate_hz)
        la, lo = source.at(t)
        epoch = start_epoch + t
        day = time.gmtime(epoch)
        seconds = day.tm_hour * 3600 + day.tm_min * 60 + day.tm_sec + (epoch % 1.0)
        lines.append(nmea.write_rmc(la, lo, heading, speed, seconds, (day.tm_year, day.tm_mon, day.tm_mday), talker=talker))
        lines.append(nmea.write_gga(la, lo, seconds, talker=talker))
        lines.append(nmea.write_vtg(heading, speed, talker=talker))
    return lines


def parse_spec(spec):
    """'gpsd://HOST:PORT' | 'nmea:DEVICE[:BAUD]' | 'file:PATH' | 'synthetic' -> (kind, options dict)."""
    text = str(spec).strip()
    bad = "--gps {!r}: expected {}".format(text, SPEC_FORMS)
    if text == "synthetic":
        return "synthetic", {}
    if text.startswith("gpsd://"):
        host, sep, port = text[len("gpsd://"):].rstrip("/").rpartition(":")
        if not sep:
            host, port = port, str(GPSD_PORT)
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise RoadedgeError(bad + " (host and port 1-65535)")
        return "gpsd", {"host": host, "port": int(port)}
    if text.startswith("nmea:"):
        device, baud = text[len("nmea:"):], "9600"
        head, sep, tail = device.rpartition(":")
        if sep and tail.isdigit():
            device, baud = head, tail
        if not device:
            raise RoadedgeError(bad + " (a device path)")
        if int(baud) not in BAUD_RATES:
            raise RoadedgeError("--gps {!r}: baud {} is not one of {}".format(
                text, baud, ", ".join(str(b) for b in sorted(BAUD_RATES))))
        return "nmea", {"device": device, "baud": int(baud)}
    if text.startswith("file:") and len(text) > len("file:"):
        return "file", {"path": text[len("file:"):]}
    raise RoadedgeError(bad)


def open_source(spec, max_age_s=DEFAULT_MAX_AGE_S, **options):
    """A started GpsSource for a --gps spec; `options` go to the reader (file: start=, synthetic: lat=, lon=, ...)."""
    kind, parsed = parse_spec(spec)
    parsed.update(options)
    if kind == "gpsd":
        return GpsdSource(max_age_s=max_age_s, **parsed).start()
    if kind == "nmea":
        return NmeaSerialSource(max_age_s=max_age_s, **parsed).start()
    if kind == "file":
        from .replay import FileReplaySource
        return FileReplaySource(max_age_s=max_age_s, **parsed).start()
    return SyntheticSource(max_age_s=max_age_s, **parsed).start()
