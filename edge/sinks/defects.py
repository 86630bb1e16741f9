"""The defects sink: damage events with a ground position go to the defect registry (edge.defects.registry).

For each frame it keeps the JPEG of the tracks whose best frame this is (`result.best_tracks`; the annotated
frame when a sink made one, else the raw frame: `result.jpeg()`), then records each of the frame's events with
the JPEG of its track as the snapshot. JPEGs are held only for open tracks: dropped at the track's `end`, after
HOLD_UNCONFIRMED_S for tracks that never made an event (tentative ones end silently), and beyond MAX_HELD, oldest
first. Events without `ground` (no GPS, no fix, a stale fix) are left out by the registry.

Options: `path` (empty = ~/.cache/roadedge/defects-<device>.sqlite), `radius_m` (a sighting of the same class
within it is the same defect), `pass_gap_s` (a sighting this long after the last one is a new pass).
Standard library and edge.* only (Python 3.7: the DeepLens Lambda imports edge.sinks).
"""
import os
import socket
import time

from edge.plugins import Option, above, at_least, checked
from edge.sinks.base import Sink, require_folder
from edge.sinks.durable import outbox_path
from roadedge.core.errors import RoadedgeError, os_reason

TYPE = "defects"
OPTIONS = {
    "path": Option(str, "", "defect registry (SQLite); empty = ~/.cache/roadedge/defects-<device>.sqlite"),
    "radius_m": Option(float, 8.0, "a sighting of the same class within this many metres of a defect is that defect",
                       check=above(0)),
    "pass_gap_s": Option(float, 600.0, "a sighting this many seconds after the defect's last one is a new pass",
                         check=at_least(0, " s")),
}
HOLD_UNCONFIRMED_S = 30.0  # a track's JPEG without an event about it for this long: a tentative track, dropped
MAX_HELD = 64
WARN_INTERVAL_S = 60.0  # at most one warning a minute about snapshots that cannot be written


class DefectsSink(Sink):
    TYPE = TYPE
    needs_image = False  # the snapshot is the annotated frame when another sink wants one, else the raw frame

    def __init__(self, registry, log=None, clock=time.monotonic):
        self.registry = registry
        self.path, self.snapshots_dir = registry.path, registry.snapshots_dir
        self.log, self.clock = log, clock
        self.held = {}  # track id -> [jpeg, stored at, an event was made about it]
        self._warned_at = None

    def write(self, result):
        now = self.clock()
        for tid in result.best_tracks:
            confirmed = tid in self.held and self.held[tid][2]
            self.held[tid] = [result.jpeg(), now, confirmed]
        for message in result.events:
            tid = message["track_id"]
            held = self.held.get(tid)
            if held is not None:
                held[2] = True
            if message["event"] == "end":
                self.held.pop(tid, None)
            errors = self.registry.snapshot_errors
            self.registry.record(message, snapshot=held[0] if held is not None else None)
            if self.registry.snapshot_errors > errors and self.log is not None and (
                    self._warned_at is None or now - self._warned_at >= WARN_INTERVAL_S):
                self._warned_at = now
                self.log.warning("defects: %s; the defect is kept without it (%d snapshots not written so far)",
                                 self.registry.snapshot_error, self.registry.snapshot_errors)
        self._forget(now)

    def _forget(self, now):
        for tid in [t for t, h in self.held.items() if not h[2] and now - h[1] > HOLD_UNCONFIRMED_S]:
            del self.held[tid]
        if len(self.held) > MAX_HELD:
            for tid in sorted(self.held, key=lambda t: (self.held[t][2], self.held[t][1]))[:len(self.held) - MAX_HELD]:
                del self.held[tid]

    def stats(self):
        return {"defects": self.registry.defect_count, "sightings": self.registry.sighting_count}

    def close(self):
        self.held.clear()
        self.registry.close()


def open(options, context):
    options = checked(OPTIONS, options, "defects sink")
    context = context or {}
    device = context.get("device") or socket.gethostname().split(".")[0] or "roadedge"
    path = outbox_path(options["path"], "defects", device)
    if options["path"]:
        require_folder(path, "defects sink")
    else:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)  # the state folder is ours to make
        except OSError as err:
            raise RoadedgeError("defects sink: {}: cannot create its folder ({})".format(path, os_reason(err))) from None
    from edge.defects.registry import DefectRegistry  # sqlite3, with the sink

    registry = DefectRegistry(path, options["radius_m"], options["pass_gap_s"])
    if context.get("log") is not None:
        context["log"].info("defects: registry %s (%d defects, %d sightings)", path, registry.defect_count,
                            registry.sighting_count)
    return DefectsSink(registry, context.get("log"))
