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

Reconnecting, pacing and frame conversion come from edge/sources/live.py, shared with the other sources.
"""
import os
import re
import threading
import time

import cv2

from edge.plugins import Option, above, at_least
from edge.sources.base import Frame, Source, SourceError
from edge.sources.live import RECONNECT_OPTIONS, Pacer, Reconnect, as_bgr, pace_rate

TYPE = "opencv"

APIS = {"auto": cv2.CAP_ANY, "ffmpeg": cv2.CAP_FFMPEG, "gstreamer": cv2.CAP_GSTREAMER, "v4l2": cv2.CAP_V4L2}
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "rtp", "srt")

OPTIONS = {
    "uri": Option(str, "sample", "video file, camera index (0), /dev/videoN, rtsp/http/udp URL or GStreamer pipeline; "
                                 "'sample' = the bundled sample drive"),
    "api": Option(str, "auto", "OpenCV capture backend: auto, ffmpeg, gstreamer or v4l2",
                  choices=("auto", "ffmpeg", "gstreamer", "v4l2", "AUTO", "FFMPEG", "GSTREAMER", "V4L2")),
    "loop": Option(bool, False, "start a video file again at its end"),
    "max_fps": Option(float, 0.0, "read at most this many frames per second; 0 = no cap", check=at_least(0)),
    "realtime": Option(bool, False, "pace a video file at its own frame rate instead of as fast as possible"),
    "width": Option(int, 0, "camera frame width to ask for; 0 = the camera's default", check=at_least(0)),
    "height": Option(int, 0, "camera frame height to ask for; 0 = the camera's default", check=at_least(0)),
    "timeout": Option(float, 10.0, "open and read timeout of network streams in seconds (FFmpeg)", check=above(0)),
    "decode_threads": Option(int, 0, "FFmpeg's decoding threads for files and streams: 0 = FFmpeg's choice (one per "
                             "core); 1 decodes in the capture thread alone and leaves the other cores to inference",
                             check=at_least(0)),
}
OPTIONS.update(RECONNECT_OPTIONS)


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
    decoded = not isinstance(target, int) and not str(target).startswith("/dev/video") and api in (cv2.CAP_ANY,
                                                                                                   cv2.CAP_FFMPEG)
    if decoded and options.get("decode_threads") and hasattr(cv2, "CAP_PROP_N_THREADS"):
        params += [cv2.CAP_PROP_N_THREADS, int(options["decode_threads"])]
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
