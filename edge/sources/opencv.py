"""Frames from OpenCV's VideoCapture: a video file, a USB camera, a network stream or a GStreamer pipeline.

`uri` is a file path ("sample" = the bundled sample drive), a camera index
("0") or device (/dev/video0), a URL (rtsp://, rtmp://, http(s)://, udp://,
tcp://: read with FFmpeg) or a GStreamer pipeline (api "gstreamer", or any
text with " ! ").

Files are not live: read() returns None at EOF (or starts again with `loop`),
`realtime` paces them at their own frame rate. Cameras, URLs and pipelines
are live: when a read fails the capture is released and opened again with
backoff (one log line per attempt) until it works, `reconnect_attempts` run
out (SourceError) or the stop event is set (read() returns None). Opening a
live source the first time fails at once with a SourceError, as a typo in a
URL should; later losses are retried.

The helpers here (as_bgr, Pacer, Reconnect) are shared by the other sources.
"""
import logging
import os
import re
import threading
import time

import cv2
import numpy as np

from edge.plugins import Option
from edge.sources.base import Backoff, Frame, Source, SourceError

TYPE = "opencv"

APIS = {"auto": cv2.CAP_ANY, "ffmpeg": cv2.CAP_FFMPEG, "gstreamer": cv2.CAP_GSTREAMER, "v4l2": cv2.CAP_V4L2}
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "rtp", "srt")

RECONNECT_OPTIONS = {
    "reconnect_initial": Option(float, 0.5, "first reconnect delay in seconds; doubles after each failed attempt"),
    "reconnect_max": Option(float, 10.0, "longest reconnect delay in seconds"),
    "reconnect_attempts": Option(int, 0, "give up (error) after this many failed reconnects; 0 = never give up"),
}

OPTIONS = {
    "uri": Option(str, "sample", "video file, camera index (0), /dev/videoN, rtsp/http/udp URL or GStreamer pipeline; "
                                 "'sample' = the bundled sample drive"),
    "api": Option(str, "auto", "OpenCV capture backend: auto, ffmpeg, gstreamer or v4l2"),
    "loop": Option(bool, False, "start a video file again at its end"),
    "max_fps": Option(float, 0.0, "read at most this many frames per second; 0 = no cap"),
    "realtime": Option(bool, False, "pace a video file at its own frame rate instead of as fast as possible"),
    "width": Option(int, 0, "camera frame width to ask for; 0 = the camera's default"),
    "height": Option(int, 0, "camera frame height to ask for; 0 = the camera's default"),
    "timeout": Option(float, 10.0, "open and read timeout of network streams in seconds (FFmpeg)"),
}
OPTIONS.update(RECONNECT_OPTIONS)


# ---- shared helpers ------------------------------------------------------------------------------------------------

def as_bgr(image):
    """Any capture result -> BGR uint8 HxWx3 (grey, BGRA/BGRX and 16-bit images converted)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / 65535.0) if image.dtype == np.uint16 else image.astype(np.uint8)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def context_log(context):
    log = (context or {}).get("log")
    return log if log is not None else logging.getLogger("roadedge.source")


def context_stop(context):
    stop = (context or {}).get("stop")
    return stop if stop is not None else threading.Event()


def sleep_unless(stop, closed, seconds):
    """Sleep `seconds`; False as soon as `stop` (at once) or `closed` (within 50 ms) is set, True otherwise."""
    deadline = time.monotonic() + seconds
    while not (stop.is_set() or closed.is_set()):
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        stop.wait(min(left, 0.05))
    return False


class Pacer(object):
    """Spaces frames 1/rate apart (rate 0 or None: no pacing) without drifting; after a stall it catches up at most
    one interval, never a burst."""

    def __init__(self, rate, stop, closed):
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self.stop, self.closed = stop, closed
        self.due = None

    def wait(self):
        if not self.interval:
            return
        now = time.monotonic()
        if self.due is not None and self.due > now:
            sleep_unless(self.stop, self.closed, self.due - now)
            now = time.monotonic()
        self.due = max(self.due or now, now - self.interval) + self.interval


def pace_rate(*rates):
    """The slowest positive rate, or 0 when none is set."""
    positive = [float(r) for r in rates if r and r > 0]
    return min(positive) if positive else 0.0


class Reconnect(object):
    """Retries with backoff for live sources: one log line per attempt, interruptible sleeps, a limit on attempts."""

    def __init__(self, name, options, context, closed):
        self.name = name
        self.backoff = Backoff(options.get("reconnect_initial", 0.5), options.get("reconnect_max", 10.0))
        self.attempts = int(options.get("reconnect_attempts", 0) or 0)
        self.log, self.stop, self.closed = context_log(context), context_stop(context), closed

    def run(self, reason, attempt):
        """Call attempt() after growing delays until it returns a result (returned); None when stopped or closed;
        SourceError when the attempts run out. An exception inside attempt() is a failed attempt; its message is
        logged with the next attempt."""
        self.log.warning("%s: %s; reconnecting", self.name, reason)
        tries, last = 0, reason
        while True:
            if self.attempts and tries >= self.attempts:
                raise SourceError("{}: gave up after {} reconnect attempt{} (last: {})".format(
                    self.name, tries, "" if tries == 1 else "s", last))
            tries += 1
            delay = self.backoff.next()
            self.log.warning("%s: reconnect attempt %d%s in %.2f s%s", self.name, tries,
                             "/%d" % self.attempts if self.attempts else "", delay,
                             "" if tries == 1 else " (attempt %d: %s)" % (tries - 1, last))
            if not sleep_unless(self.stop, self.closed, delay):
                return None
            try:
                result = attempt()
            except Exception as err:  # SourceError, or a device library's own error: try again
                result, last = None, str(err) if isinstance(err, SourceError) else "{}: {}".format(type(err).__name__, err)
            if result is not None:
                self.backoff.reset()
                self.log.warning("%s: reconnected after %d attempt%s", self.name, tries, "" if tries == 1 else "s")
                return result


def redact(uri):
    """A URL with its password hidden, for logs and messages."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/:@]*):[^/@]*@", r"\1:***@", uri)


# ---- the opencv source -------------------------------------------------------------------------------------------

def has_backend(api):
    registry = getattr(cv2, "videoio_registry", None)  # OpenCV >= 4.1
    return registry.hasBackend(api) if registry is not None else True


def describe(options):
    """(target for VideoCapture, api flag, live, name for messages, FFmpeg stream?) from the options."""
    from edge.sources.spec import SAMPLE_VIDEO

    uri, api_name = str(options.get("uri") or "sample").strip(), str(options.get("api") or "auto").lower()
    if api_name not in APIS:
        raise SourceError("api: {!r} is not one of {}".format(api_name, ", ".join(sorted(APIS))))
    if uri == "sample":
        uri = SAMPLE_VIDEO
    pipeline = api_name == "gstreamer" or (api_name == "auto" and " ! " in uri)
    if pipeline:
        if not has_backend(cv2.CAP_GSTREAMER):
            raise SourceError("GStreamer pipeline {!r}: this OpenCV ({}) is built without GStreamer (see "
                              "cv2.getBuildInformation()); use an OpenCV with GStreamer, e.g. apt's python3-opencv, "
                              "or a URL read with FFmpeg".format(uri, cv2.__version__))
        return uri, cv2.CAP_GSTREAMER, True, "pipeline " + uri, False
    if uri.isdigit():
        return int(uri), APIS[api_name], True, "camera " + uri, False
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in STREAM_SCHEMES:
        ffmpeg = api_name == "ffmpeg" or (api_name == "auto" and has_backend(cv2.CAP_FFMPEG))
        return uri, cv2.CAP_FFMPEG if ffmpeg else APIS[api_name], True, redact(uri), ffmpeg
    if uri.startswith("/dev/video"):
        return uri, APIS[api_name], True, "camera " + uri, False
    if os.path.isdir(uri):
        raise SourceError("{}: is a folder, not a video file (an image folder is source type images)".format(uri))
    if not os.path.isfile(uri):
        if uri == SAMPLE_VIDEO:
            raise SourceError("the bundled sample video {} is missing (reinstall roadedge)".format(uri))
        raise SourceError("{}: no such video file".format(uri))
    return uri, APIS[api_name], False, uri, False


def open_capture(target, api, options, stream):
    """An opened cv2.VideoCapture, or None."""
    params = []
    if stream and hasattr(cv2, "CAP_PROP_OPEN_TIMEOUT_MSEC"):
        ms = int(max(float(options.get("timeout") or 10.0), 0.1) * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    try:
        try:
            capture = cv2.VideoCapture(target, api, params) if params else cv2.VideoCapture(target, api)
        except TypeError:  # an old OpenCV (a DeepLens has 3.x) without the (target, api[, params]) forms
            capture = cv2.VideoCapture(target)
    except cv2.error:
        return None
    if not capture.isOpened():
        capture.release()
        return None
    if isinstance(target, int) or str(target).startswith("/dev/video"):
        if options.get("width"):
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, int(options["width"]))
        if options.get("height"):
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, int(options["height"]))
    return capture


def capture_fps(capture):
    fps = capture.get(cv2.CAP_PROP_FPS)
    return float(fps) if fps and 0 < fps < 1000 else None


class OpenCVSource(Source):
    def __init__(self, capture, reopen, name, live, options, context):
        """`capture`: an opened cv2.VideoCapture; `reopen()`: a new opened one or None (for reconnects and loops)."""
        self.capture, self.reopen, self.name, self.live = capture, reopen, name, live
        self.loop = bool(options.get("loop")) and not live
        self.fps = capture_fps(capture)
        self.index = 0
        self.read_since_open = 0
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.reconnect = Reconnect(name, options, context, self.closed)
        rate = pace_rate(options.get("max_fps"), self.fps if options.get("realtime") and not live else 0)
        self.pacer = Pacer(rate, self.reconnect.stop, self.closed)

    def read(self):
        if self.closed.is_set():
            return None
        self.pacer.wait()
        with self.lock:
            image = self._next_image()
            if image is None:
                return None
            frame = Frame(self.index, as_bgr(image), time.time())
            self.index += 1
            return frame

    def _next_image(self):
        while not self.closed.is_set():
            ok, image = self.capture.read() if self.capture is not None else (False, None)
            if ok and image is not None:
                self.read_since_open += 1
                return image
            if self.live:
                self._release()
                got = self.reconnect.run("no frame (stream ended or failed)", self._reopen_and_read)
                if got is None:
                    return None
                self.capture, image = got
                self.read_since_open = 1
                return image
            if not (self.loop and self.read_since_open):
                return None  # end of the file (or a file with no readable frame: looping it would spin)
            self._release()
            self.capture = self.reopen()
            self.read_since_open = 0
            if self.capture is None:
                raise SourceError("{}: cannot open the video file again to loop it".format(self.name))
        return None

    def _reopen_and_read(self):
        capture = self.reopen()
        if capture is None:
            raise SourceError("cannot open it")
        ok, image = capture.read()
        if not ok or image is None:
            capture.release()
            raise SourceError("opened, but no frame came")
        return capture, image

    def _release(self):
        if self.capture is not None:
            self.capture.release()
            self.capture = None

    def close(self):
        self.closed.set()
        with self.lock:
            self._release()


def open(options, context):
    target, api, live, name, stream = describe(options)

    def reopen():
        return open_capture(target, api, options, stream)

    capture = reopen()
    if capture is None:
        if live:
            raise SourceError("cannot open {} (api {})".format(name, options.get("api") or "auto"))
        raise SourceError("{}: cannot open the video file (not a video OpenCV/FFmpeg can read)".format(name))
    return OpenCVSource(capture, reopen, name, live, options, context)
