"""What the console shows of the running pipeline, kept by a pipeline listener: bounded and thread-safe.

The pipeline thread calls `listen(result)` after every frame; the preview
server's threads read `events()`, `track()` and `stats()`. Everything is
bounded: the latest message of at most MAX_TRACKS damage tracks, at most
MAX_TRACK_POINTS points of the drive (a point when the vehicle moved
TRACK_MIN_M metres or TRACK_MIN_S seconds passed since the last kept one),
and the stats refreshed at most every STATS_EVERY_S seconds.
"""
import collections
import threading
import time

from edge.defects.times import epoch_seconds

MAX_TRACKS = 1000
MAX_TRACK_POINTS = 20000
TRACK_MIN_M = 5.0
TRACK_MIN_S = 1.0
STATS_EVERY_S = 1.0


def _moved_m(a, b):
    from edge.gps.geo import distance

    try:
        return distance(a["lat"], a["lon"], b["lat"], b["lon"])
    except (ValueError, ZeroDivisionError, ArithmeticError):  # Vincenty does not converge for antipodes
        return float("inf")


def summary_stats(snapshot, position):
    """The stats panel's numbers from pipeline.stats_snapshot() and the newest GPS position (or None)."""
    sinks = snapshot.get("sinks") or {}
    outbox = [counters["outbox_depth"] for counters in sinks.values() if "outbox_depth" in counters]
    kvs = sinks.get("kvs") or {}
    return {
        "fps": round(float(snapshot.get("fps") or 0.0), 2),
        "frames": int(snapshot.get("frames") or 0),
        "detections": int(snapshot.get("detections") or 0),
        "dropped_frames": int(snapshot.get("dropped_frames") or 0),
        "uptime_s": round(float(snapshot["uptime_s"]), 1) if snapshot.get("uptime_s") is not None else None,
        "outbox_depth": sum(outbox) if outbox else None,
        "kvs_store_depth": kvs.get("store_depth"),
        "kvs_fragments_sent": kvs.get("fragments_sent"),
        "gps": position,
        "sinks": sinks,
    }


class ConsoleState(object):
    """Recent events (the latest message per track), the drive's track and the latest stats.

    `stats_source`: a callable returning pipeline.stats_snapshot() (or None: no stats); `clock`: monotonic seconds.
    """

    def __init__(self, stats_source=None, clock=time.monotonic):
        self.stats_source, self.clock = stats_source, clock
        self._lock = threading.Lock()
        self._tracks = collections.OrderedDict()  # (boot_id, track_id) -> newest events message
        self._points = collections.deque(maxlen=MAX_TRACK_POINTS)
        self._last_point = None  # (clock, point) of the newest kept point
        self._position = None
        self._stats, self._stats_at = None, None
        self.events_seen = 0

    # -- the pipeline thread -------------------------------------------------------------------------------------
    def listen(self, result):
        position = getattr(result, "position", None)
        now = self.clock()
        with self._lock:
            for message in result.events:
                key = (message.get("boot_id"), message.get("track_id"))
                self._tracks.pop(key, None)
                self._tracks[key] = message
                self.events_seen += 1
            while len(self._tracks) > MAX_TRACKS:
                self._tracks.popitem(last=False)
            if position is not None:
                self._position = dict(position)
                self._add_point(position, now)
        self.refresh_stats(now)

    def _add_point(self, position, now):
        if position.get("lat") is None or position.get("lon") is None:
            return
        point = {"lat": float(position["lat"]), "lon": float(position["lon"]),
                 "stale": position.get("fix") in ("stale", "none"), "fix": position.get("fix")}
        if self._last_point is not None:
            then, last = self._last_point
            if last["stale"] == point["stale"] and now - then < TRACK_MIN_S and _moved_m(last, point) < TRACK_MIN_M:
                return
        self._points.append(point)
        self._last_point = (now, point)

    def refresh_stats(self, now=None, force=False):
        now = self.clock() if now is None else now
        if self.stats_source is None:
            return
        if not force and self._stats_at is not None and now - self._stats_at < STATS_EVERY_S:
            return
        snapshot = self.stats_source()
        with self._lock:
            self._stats, self._stats_at = snapshot, now

    # -- the server's threads ----------------------------------------------------------------------------------
    def events(self, label=None, since=None):
        """The newest message of each track, the track last seen latest first; `label` a class code, `since` epoch
        seconds (the track's last_seen is at or after it)."""
        with self._lock:
            messages = list(self._tracks.values())
        messages.reverse()  # the newest message first among tracks last seen at the same time
        messages.sort(key=lambda m: m.get("last_seen") or "", reverse=True)
        return [m for m in messages if (label is None or m.get("label") == label)
                and (since is None or (m.get("last_seen") and epoch_seconds(m["last_seen"]) >= since))]

    def track(self):
        with self._lock:
            return [dict(point) for point in self._points]

    def position(self):
        with self._lock:
            return None if self._position is None else dict(self._position)

    def stats(self):
        with self._lock:
            snapshot, position = self._stats, self._position
        return summary_stats(snapshot or {}, position)
