"""The messages roadedge publishes (schemas in edge/schemas/), built from plain values by one Envelope. No I/O.

Every message carries the same envelope: `schema`, `device`, `boot_id` (one
per run) and `ts`; detections, events and stats also a `seq` of their own
kind: 0, 1, 2, ... per boot, so a subscriber can spot gaps and duplicates in
each stream separately; (boot_id, seq) identifies a message of a kind. The
retained status message has no seq: only its latest value matters.

Names as in the schemas: a detection's `label` is its class code (D40), its
`name` the human name from the label catalogue; the class index (the
position in the model's labels) stays inside the runtime.
"""
from __future__ import division

import collections
import datetime
import time

from roadedge.core.catalog import class_name

DETECTIONS_SCHEMA = "roadedge.detections/1"
EVENTS_SCHEMA = "roadedge.events/1"
STATS_SCHEMA = "roadedge.stats/1"
STATUS_SCHEMA = "roadedge.status/1"
SEGMENTATION_SCHEMA = "roadedge.segmentation/1"
STATUS_STATES = ("online", "degraded", "stalled", "offline", "stopped")
KINDS = ("detections", "segmentation", "events", "stats")
MODEL_EVENTS = ("model_updated", "model_rolled_back", "model_rejected")


def iso_utc(timestamp):
    """Seconds since the epoch -> '2026-11-21T08:15:02.123Z'."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def kind_of(message):
    """A message's kind from its schema: 'roadedge.segmentation/1' -> 'segmentation' (its topic's last level)."""
    return message["schema"].split(".", 1)[1].split("/", 1)[0]


def _box(box):
    return [round(min(max(float(v), 0.0), 1.0), 5) for v in box]


def _number(value, digits=3):
    return round(float(value), digits)


def position_fields(position):
    """The vehicle's fix as messages carry it (edge.gps.sources position dict): lat/lon rounded to ~1 cm."""
    def rounded(key, digits):
        value = position.get(key)
        return None if value is None else round(float(value), digits)

    return {"lat": rounded("lat", 7), "lon": rounded("lon", 7), "heading": rounded("heading", 2),
            "speed": rounded("speed", 2), "fix": str(position.get("fix") or "none"), "age_s": rounded("age_s", 3)}


def _detection(d, placed):
    item = {"label": d.label, "name": class_name(d.label), "score": round(float(d.score), 4), "box": _box(d.box)}
    if placed:
        item["ground"] = d.ground
    return item


def _counter(value):
    return value if isinstance(value, (bool, int)) else _number(value)


class Envelope(object):
    """device, boot_id and a seq per kind; builds every message of one run (one instance per run).

    `next_seq`: {kind: first seq} (tests that need a message in the middle of a stream).
    """

    def __init__(self, device, boot_id, next_seq=None):
        self.device, self.boot_id = device, boot_id
        self.next_seq = collections.Counter(next_seq or {})

    def count(self, kind):
        """Messages of `kind` built so far (their next seq)."""
        return self.next_seq[kind]

    def _head(self, schema, kind, timestamp):
        head = {"schema": schema, "device": self.device, "boot_id": self.boot_id}
        if kind is not None:
            head["seq"] = int(self.next_seq[kind])
            self.next_seq[kind] += 1
        head["ts"] = iso_utc(timestamp)
        return head

    def detections(self, *, timestamp, frame_index, frame_size, model_name, model_sha256, latency_ms, detections,
                   position=None):
        """roadedge.detections/1; `detections`: edge.processing.decoders.Detection with boxes normalised to the
        frame; `frame_size`: (width, height); `position`: the vehicle's fix when the run has GPS (then every
        detection carries its `ground` place, None when the fix cannot place it), else None."""
        width, height = frame_size
        message = self._head(DETECTIONS_SCHEMA, "detections", timestamp)
        message.update({
            "frame": {"index": int(frame_index), "width": int(width), "height": int(height)},
            "model": {"name": model_name, "sha256": model_sha256},
            "latency_ms": round(float(latency_ms), 3),
            "detections": [_detection(d, position is not None) for d in detections],
        })
        if position is not None:
            message["position"] = position_fields(position)
        return message

    def segmentation(self, *, timestamp, frame_index, frame_size, model_name, model_sha256, latency_ms, segmentation,
                     position=None):
        """roadedge.segmentation/1 from an edge.processing.segmentation SegmentationResult: the classes present with
        their pixel shares (largest first), the drivable share and the free distance ahead; never the mask."""
        width, height = frame_size
        message = self._head(SEGMENTATION_SCHEMA, "segmentation", timestamp)
        free = None
        if segmentation.free_rows is not None:
            free = {"rows": int(segmentation.free_rows), "share": round(float(segmentation.free_share), 4)}
        message.update({
            "frame": {"index": int(frame_index), "width": int(width), "height": int(height)},
            "model": {"name": model_name, "sha256": model_sha256},
            "latency_ms": round(float(latency_ms), 3),
            "classes": [{"label": segmentation.labels[index], "share": round(share, 5)}
                        for index, share in segmentation.present()],
            "drivable_share": None if segmentation.drivable is None else round(float(segmentation.drivable), 5),
            "free_distance": free,
        })
        if position is not None:
            message["position"] = position_fields(position)
        return message

    def event(self, *, timestamp, event, model_name, image_key=None, position=None):
        """roadedge.events/1 from an edge.processing.tracker event dict (new / update / end); `image_key`: the S3
        key of the track's best frame (edge.sinks.s3), or None without an S3 sink; `position`: the vehicle's fix on
        this frame when the run has GPS (then `ground` is the track's place on the road: of its detections' places, the
        one seen from nearest; or None)."""
        message = self._head(EVENTS_SCHEMA, "events", timestamp)
        message.update({
            "event": event["type"],
            "track_id": int(event["track_id"]),
            "label": event["label"],
            "name": class_name(event["label"]),
            "score": round(float(event["score"]), 4),
            "box": _box(event["box"]),
            "best_frame": int(event["best_frame"]),
            "first_frame": int(event["first_frame"]),
            "last_frame": int(event["last_frame"]),
            "first_seen": iso_utc(event["first_seen"]),
            "last_seen": iso_utc(event["last_seen"]),
            "hits": int(event["hits"]),
            "model": {"name": model_name},
            "image_key": image_key,
        })
        if position is not None:
            message["position"] = position_fields(position)
            message["ground"] = event.get("ground")
        return message

    def stats(self, *, timestamp, stats):
        """roadedge.stats/1 from `stats`, a dict with:

        fps             frames per second over a recent window
        frames          frames processed since the start
        dropped_frames  frames dropped by back-pressure since the start
        queue_depth     frames waiting between capture and inference now
        stages_ms       {stage: {mean, p50, p95}} (edge.pipeline.StageTimes.summary())
        sinks           {sink name: {counter: number or boolean}} (each sink's stats())
        optional: uptime_s, detections, events, sink_errors ({sink name: failed writes}), not_inferred (frames the
                        backend could not infer), backend ({counter: number}, the backend's stats()), gps (the
                        latest frame's position, when the run has GPS)
        """
        message = self._head(STATS_SCHEMA, "stats", timestamp)
        message.update({
            "fps": _number(stats["fps"] or 0.0, 2),
            "frames": int(stats["frames"]),
            "dropped_frames": int(stats["dropped_frames"]),
            "queue_depth": int(stats["queue_depth"]),
            "stages_ms": dict((stage, dict((key, _number(value)) for key, value in values.items()))
                              for stage, values in stats["stages_ms"].items()),
            "sinks": dict((name, dict((key, _counter(value)) for key, value in counters.items() if value is not None))
                          for name, counters in (stats.get("sinks") or {}).items()),
        })
        if stats.get("uptime_s") is not None:
            message["uptime_s"] = _number(stats["uptime_s"])
        if stats.get("backend"):
            message["backend"] = dict((key, _counter(value)) for key, value in stats["backend"].items() if value is not None)
        for key in ("detections", "events", "not_inferred"):
            if stats.get(key) is not None:
                message[key] = int(stats[key])
        if stats.get("gps") is not None:
            message["gps"] = position_fields(stats["gps"])
        if stats.get("sink_errors") is not None:
            message["sink_errors"] = dict((name, int(count)) for name, count in stats["sink_errors"].items())
        return message

    def status(self, *, state, timestamp=None, model=None, event=None, reason=None, candidate=None):
        """roadedge.status/1, retained: online, degraded (frames go without inference: an endpoint out of reach),
        stalled (the watchdog reopens a part), offline (the last will) or stopped.

        `model`: the running model (a ModelInfo or its model_fields dict). A model update adds `event` (one of
        MODEL_EVENTS), `reason` (one line) and `candidate` (the version the event is about: the new one, the one
        rolled back or the one refused)."""
        if state not in STATUS_STATES:
            raise ValueError("status state {!r}; expected one of {}".format(state, ", ".join(STATUS_STATES)))
        message = self._head(STATUS_SCHEMA, None, time.time() if timestamp is None else timestamp)
        message["state"] = state
        if model is not None:
            message["model"] = model_fields(model)
        if event is not None:
            if event not in MODEL_EVENTS:
                raise ValueError("status event {!r}; expected one of {}".format(event, ", ".join(MODEL_EVENTS)))
            message["event"] = event
            message["reason"] = str(reason or "")
            if candidate is not None:
                message["candidate"] = model_fields(candidate)
        return message


def model_fields(model):
    """{name, version, sha256} of a ModelInfo (version: its metadata's `version` as text, or None), or of a dict."""
    if isinstance(model, dict):
        version = model.get("version")
        return {"name": model.get("name"), "version": None if version is None else str(version),
                "sha256": model.get("sha256")}
    version = (model.metadata or {}).get("version")
    return {"name": model.name, "version": None if version is None else str(version), "sha256": model.sha256}
