"""The source contract: what every source gives the pipeline.

A source plugin is one file in edge/sources/ defining `TYPE`, `OPTIONS` and
`open(options, context) -> Source`. A Source has:

    live       True for cameras and network streams: the pipeline drops the oldest
               frame when it falls behind. False for files and folders: no frame is
               dropped unless asked.
    fps        nominal frames per second, or None when unknown
    read()     -> Frame, or None at the clean end of the input (EOF, last image).
               Blocks until a frame is there. A live source that loses its camera or
               stream reconnects by itself (with backoff) inside read(); it raises
               SourceError only when it gives up.
    close()    releases the device; read() after close() returns None.
"""
from collections import namedtuple

from roadedge.core.errors import RoadedgeError

# index: 0-based position in the input; image: BGR uint8 HxWx3; timestamp: time.time() at capture
Frame = namedtuple("Frame", "index image timestamp")


class Source(object):
    """Defaults for the optional parts of the contract; subclasses write `read` (and `close` if they hold a device)."""

    live = False
    fps = None

    def read(self):
        raise NotImplementedError

    def close(self):
        """Nothing to release by default."""


class SourceError(RoadedgeError):
    """A source cannot be opened, or a live source gave up reconnecting."""


class Backoff(object):
    """Reconnect delays: initial, doubling up to maximum; reset() after a success."""

    def __init__(self, initial=0.5, maximum=10.0):
        self.initial, self.maximum = float(initial), float(maximum)
        self.delay = self.initial

    def next(self):
        delay = self.delay
        self.delay = min(self.delay * 2.0, self.maximum)
        return delay

    def reset(self):
        self.delay = self.initial
