"""The capture side of the loop: a thread reading the source into a bounded queue, and the per-stage timings.

For live sources the oldest queued frame is dropped when inference falls
behind (counted); files are never dropped unless `drop_frames: always`. The
thread notes when a read started, so the loop's watchdog can tell a source
that stalls without closing (`stalled_for()`).
"""
import collections
import threading
import time

STAGES = ("capture", "preprocess", "infer", "decode", "annotate", "sinks")
WAITING = object()  # Capture.get(timeout): no frame yet, the source has not ended


class StageTimes(object):
    """Per-stage milliseconds: totals for means, plus a window of recent values for percentiles."""

    def __init__(self, window=512):
        self.total = collections.defaultdict(float)
        self.count = collections.defaultdict(int)
        self.recent = collections.defaultdict(lambda: collections.deque(maxlen=window))

    def add(self, stage, ms):
        self.total[stage] += ms
        self.count[stage] += 1
        self.recent[stage].append(ms)

    def summary(self):
        out = {}
        for stage in STAGES + tuple(s for s in self.total if s not in STAGES):
            if self.count.get(stage):
                values = sorted(self.recent[stage])
                out[stage] = {"mean": round(self.total[stage] / self.count[stage], 3),
                              "p50": round(values[len(values) // 2], 3),
                              "p95": round(values[min(len(values) - 1, int(len(values) * 0.95))], 3)}
        return out


class Capture(threading.Thread):
    """Reads the source into a bounded queue; drop-oldest when `drop` is set and the queue is full."""

    def __init__(self, source, size, drop, stop, times):
        threading.Thread.__init__(self, name="roadedge-capture", daemon=True)
        self.source, self.drop, self.stop, self.times = source, drop, stop, times
        self.frames = collections.deque()
        self.size = size
        self.cond = threading.Condition()
        self.finished, self.error, self.dropped, self.read_count = False, None, 0, 0
        self.reading_since = None  # time.monotonic() when the current source.read() began
        self.abandoned = False  # set by the watchdog: this thread's frames are no longer wanted

    def run(self):
        try:
            while not self.stop.is_set() and not self.abandoned:
                started = time.perf_counter()
                self.reading_since = time.monotonic()
                frame = self.source.read()
                self.reading_since = None
                if frame is None or self.abandoned:
                    break
                ms = (time.perf_counter() - started) * 1000.0
                with self.cond:
                    self.times.add("capture", ms)
                    self.read_count += 1
                    while len(self.frames) >= self.size and not self.drop and not self.stop.is_set():
                        self.cond.wait(0.1)
                    if self.stop.is_set():
                        break
                    if len(self.frames) >= self.size:
                        self.frames.popleft()
                        self.dropped += 1
                    self.frames.append(frame)
                    self.cond.notify_all()
        except Exception as err:  # the main thread reports it
            self.error = err
        finally:
            with self.cond:
                self.finished = True
                self.cond.notify_all()

    def get(self, timeout=None):
        """The next frame; None when the source has ended (or stop was set); WAITING after `timeout` seconds
        without either."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while not self.frames and not self.finished and not self.stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    return WAITING
                self.cond.wait(0.1 if deadline is None else max(0.001, min(0.1, deadline - time.monotonic())))
            if not self.frames:
                return None
            frame = self.frames.popleft()
            self.cond.notify_all()
            return frame

    def ready(self):
        """True when a frame is waiting (or the source has ended), so get() would not block."""
        with self.cond:
            return bool(self.frames) or self.finished

    def stalled_for(self):
        """Seconds the current source.read() has been running (0 when none is)."""
        since = self.reading_since
        return time.monotonic() - since if since is not None else 0.0

    def abandon(self):
        """The watchdog gave up on this thread's source: stop taking its frames (the thread ends when read returns)."""
        with self.cond:
            self.abandoned = True
            self.frames.clear()
            self.cond.notify_all()

    def depth(self):
        with self.cond:
            return len(self.frames)
