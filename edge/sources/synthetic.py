"""Frames of an endless rendered drive (edge.synth.api.DriveRenderer): a camera that needs no camera.

Live, like a dashcam: with `realtime` (the default) frame i is handed on no
earlier than i / fps seconds after the first, so the pipeline meets the same
pressure as on the road. Deterministic in (seed, width, height, fps, classes,
speed): the same options give the same frames.
"""
import threading
import time

from edge.plugins import Check, Option, at_least, between, checked
from edge.sources.base import Frame, Source, SourceError
from edge.sources.live import Pacer, context_stop, pace_rate

TYPE = "synthetic"

OPTIONS = {
    "seed": Option(int, 7, "which road: the same seed renders the same drive"),
    "width": Option(int, 640, "frame width in pixels", check=between(32, 8192)),
    "height": Option(int, 360, "frame height in pixels", check=between(32, 8192)),
    "fps": Option(float, 15.0, "frames per second of the drive (the camera's time step)",
                  check=Check(lambda v: 0 < v <= 1000, "more than 0 and at most 1000")),
    "realtime": Option(bool, True, "hand frames on at `fps`; false = as fast as they render"),
    "max_fps": Option(float, 0.0, "hand frames on at most this many per second; 0 = no cap beyond realtime",
                      check=at_least(0)),
    "frames": Option(int, 0, "stop after this many frames; 0 = endless", check=at_least(0)),
    "classes": Option(str, "", "damage classes on the road, comma separated (e.g. D00,D40); empty = all it can draw"),
    "speed": Option(float, 12.0, "driving speed in m/s"),
}


class SyntheticSource(Source):
    live = True

    def __init__(self, renderer, options, context):
        self.renderer = renderer
        self.fps = float(options.get("fps") or 15.0)
        self.frames = int(options.get("frames") or 0)
        self.index = 0
        self.closed = threading.Event()
        rate = pace_rate(self.fps if options.get("realtime", True) else 0.0, options.get("max_fps"))
        self.pacer = Pacer(rate, context_stop(context), self.closed)

    def read(self):
        if self.closed.is_set() or (self.frames and self.index >= self.frames):
            return None
        image, _objects = self.renderer.frame(self.index, self.fps)
        self.pacer.wait()
        frame = Frame(self.index, image, time.time())
        self.index += 1
        return frame

    def close(self):
        self.closed.set()


def open(options, context):
    from edge.synth.api import DriveRenderer
    from roadedge.core.errors import RoadedgeError

    options = checked(OPTIONS, options, "synthetic source")
    size = (int(options.get("width", 640)), int(options.get("height", 360)))
    classes = [c.strip() for c in str(options.get("classes") or "").split(",") if c.strip()]
    try:
        kwargs = {"classes": classes} if classes else {}
        renderer = DriveRenderer(int(options.get("seed", 7)), size, speed_mps=float(options.get("speed", 12.0)), **kwargs)
    except RoadedgeError as err:
        raise SourceError("synthetic: {}".format(err)) from None
    return SyntheticSource(renderer, options, context)
