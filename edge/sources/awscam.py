"""Frames from the AWS DeepLens camera: `awscam.getLastFrame() -> (ok, frame)`.

`awscam` exists only on the device (it is imported inside open()). The
frame is the latest one the camera service has, BGR uint8. When the service
gives none (ok False: it is restarting, or the camera was taken by another
process) read() keeps asking with backoff, one log line per attempt, until
a frame comes, `reconnect_attempts` run out (SourceError) or the stop event
is set (read() returns None). Tests use tests/standins/awscam.py.
"""
import threading
import time

from edge.plugins import Option, at_least
from edge.sources.base import Frame, Source, SourceError
from edge.sources.live import RECONNECT_OPTIONS, Pacer, Reconnect, as_bgr

TYPE = "awscam"

OPTIONS = {
    "max_fps": Option(float, 0.0, "ask for frames at most this often per second; 0 = as fast as the pipeline takes them",
                      check=at_least(0)),
}
OPTIONS.update(RECONNECT_OPTIONS)


class AwscamSource(Source):
    live = True
    fps = None  # set on the device (project stream settings), not readable through awscam

    def __init__(self, module, options, context):
        self.module = module
        self.index = 0
        self.closed = threading.Event()
        self.reconnect = Reconnect("awscam", options, context, self.closed)
        self.pacer = Pacer(float(options.get("max_fps") or 0.0), self.reconnect.stop, self.closed)

    def _grab(self):
        ok, image = self.module.getLastFrame()
        if not ok or image is None:
            raise SourceError("getLastFrame() returned no frame")
        return image

    def read(self):
        if self.closed.is_set():
            return None
        self.pacer.wait()
        try:
            image = self._grab()
        except Exception as err:
            image = self.reconnect.run(str(err) if isinstance(err, SourceError) else "getLastFrame() failed: {}: {}".format(
                type(err).__name__, err), self._grab)
            if image is None:
                return None
        frame = Frame(self.index, as_bgr(image), time.time())
        self.index += 1
        return frame

    def close(self):
        self.closed.set()


def open(options, context):
    try:
        import awscam
    except ImportError:
        raise SourceError("source awscam: the awscam module is not installed; it exists only on an AWS DeepLens "
                          "(use opencv, picamera2 or synthetic elsewhere)") from None
    return AwscamSource(awscam, options, context)
