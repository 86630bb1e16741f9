"""A generated 40-second drive for the console's tests, without a model: a real preview server, the console's
routes and state, damage events carrying `position`/`ground` as the runtime makes them, and a real defect
registry filled from those events (edge.defects.registry.DefectRegistry) with JPEG snapshots.

The drive starts 20 s before midnight UTC (2026-11-30 -> 2026-12-01: the date filter has two days to split),
heading north-east at 10 m/s, one frame a second; frames 30-34 have a stale fix (the last one, aging), and the
track seen then has no ground position, so it is an event and never a defect.
"""
import logging
import threading
import types
import urllib.error
import urllib.request

import cv2
import numpy as np

from edge.console import ConsoleState, serve
from edge.gps.geo import destination
from edge.messages import Envelope
from edge.sinks import mjpeg
from edge.sinks.base import FrameResult
from edge.sources.base import Frame
from roadedge.core.catalog import class_color

T0 = 1796083180.0  # 2026-11-30T23:59:40Z
START = (48.137154, 11.575382)
HEADING = 45.0
FRAMES = 40
STALE = range(30, 35)
# track id, class, first frame, best frame, last frame, ground offset (metres forward, right) or None
TRACKS = [(1, "D40", 2, 4, 6, (12.0, 2.0)), (2, "D00", 8, 10, 12, (9.0, -1.5)), (3, "D20", 14, 16, 18, (15.0, 0.5)),
          (4, "D40", 20, 23, 26, (11.0, 3.0)), (5, "D10", 31, 32, 33, None)]
STATS = {"fps": 14.25, "frames": 40, "detections": 23, "dropped_frames": 1, "uptime_s": 41.0,
         "sinks": {"mqtt": {"outbox_depth": 3, "connected": False}, "kvs": {"store_depth": 2, "fragments_sent": 7}}}


class PositionedResult(FrameResult):
    """A FrameResult that can carry `position` whether or not the runtime's FrameResult has that slot yet."""


def vehicle(index):
    """(lat, lon) of the vehicle at frame `index` (the last good fix during the stale frames)."""
    moving = min(index, STALE[0] - 1)
    return destination(START[0], START[1], HEADING, 10.0 * moving)


def position(index):
    lat, lon = vehicle(index)
    stale = index in STALE
    return {"lat": lat, "lon": lon, "heading": HEADING, "speed": 0.0 if stale else 10.0,
            "fix": "stale" if stale else "3d", "age_s": float(index - STALE[0] + 1) + 0.2 if stale else 0.2}


def ground(index, offset):
    if offset is None or index in STALE:
        return None
    lat, lon = vehicle(index)
    forward = destination(lat, lon, HEADING, offset[0])
    lat, lon = destination(forward[0], forward[1], HEADING + (90.0 if offset[1] > 0 else -90.0), abs(offset[1]))
    return {"lat": lat, "lon": lon, "width_m": 0.8, "length_m": 1.1}


def picture(index, label=None):
    image = np.full((180, 320, 3), 90, np.uint8)
    image[:, :, 1] = (index * 6) % 256
    if label is not None:
        cv2.rectangle(image, (110, 90), (210, 150), class_color(label), -1)
    return image


def events_at(envelope, index):
    """The events messages the tracker would make at frame `index`: new at the best frame, end at the last."""
    made = []
    for track_id, label, first, best, last, offset in TRACKS:
        if index not in (best, last):
            continue
        event = {"type": "new" if index == best else "end", "track_id": track_id, "label": label,
                 "score": 0.5 + track_id / 20.0, "box": [0.34, 0.5, 0.66, 0.83], "best_frame": best,
                 "first_frame": first, "last_frame": index, "first_seen": T0 + first, "last_seen": T0 + index,
                 "hits": index - first + 1}
        message = envelope.event(timestamp=T0 + index, event=event, model_name="road-damage-ssd")
        message["position"] = position(best)
        message["ground"] = ground(best, offset)
        made.append(message)
    return made


class Drive(object):
    """The preview server with the console over a registry at `registry_path`, after feeding the whole drive."""

    def __init__(self, registry_path, token=""):
        from edge.defects.registry import DefectRegistry

        self.clock = [0.0]
        self.state = ConsoleState(lambda: dict(STATS), clock=lambda: self.clock[0])
        self.sink = mjpeg.open({"port": 0, "max_fps": 0, "token": token},
                               {"log": logging.getLogger("console-test"), "stop": threading.Event(),
                                "device": "test-car"})
        self.registry = DefectRegistry(registry_path)
        defects_sink = types.SimpleNamespace(TYPE="defects", path=self.registry.path,
                                             snapshots_dir=self.registry.snapshots_dir)
        self.routes = serve([self.sink], self.state, defects_sink, "test-car", "boot-1")
        self.events = []
        envelope = Envelope("test-car", "boot-1")
        for index in range(FRAMES):
            self.clock[0] = float(index)
            label = next((t[1] for t in TRACKS if t[2] <= index <= t[4]), None)
            image = picture(index, label)
            result = PositionedResult(Frame(index, image, T0 + index), [], None, annotated=image,
                                      events=events_at(envelope, index))
            result.position = position(index)
            result.best_tracks = [t[0] for t in TRACKS if t[3] == index]
            for message in result.events:  # what the defects sink does: the snapshot with the best frame's event
                snapshot = result.jpeg() if message["track_id"] in result.best_tracks else None
                self.registry.record(message, snapshot=snapshot)
            self.state.listen(result)
            self.sink.write(result)
            self.events.extend(result.events)

    def url(self, path):
        host, port = self.sink.address
        return "http://{}:{}{}".format(host, port, path)

    def close(self):
        self.sink.close()
        self.registry.close()


def lon_lats(pairs):
    """[(lon, lat), ...] sorted and flattened: positions to compare with pytest.approx."""
    return [value for pair in sorted(tuple(p[:2]) for p in pairs) for value in pair]


def get(url, headers=None):
    """(status, headers, body bytes), also for 4xx answers."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()
