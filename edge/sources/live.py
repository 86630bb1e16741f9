"""What the sources share: reconnecting with backoff (live cameras and streams), pacing, frame conversion and
the context's log and stop event. Not a plugin (no TYPE)."""
import logging
import threading
import time

import cv2
import numpy as np

from edge.plugins import Option, at_least
from edge.sources.base import Backoff, SourceError

RECONNECT_OPTIONS = {
    "reconnect_initial": Option(float, 0.5, "first reconnect delay in seconds; doubles after each failed attempt",
                                check=at_least(0)),
    "reconnect_max": Option(float, 10.0, "longest reconnect delay in seconds", check=at_least(0)),
    "reconnect_attempts": Option(int, 0, "give up (error) after this many failed reconnects; 0 = never give up",
                                 check=at_least(0)),
}


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


