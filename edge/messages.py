"""The v1 messages roadedge publishes (schemas in edge/schemas/), built from plain values. No I/O.

Each kind (detections, events, stats) has its own `seq` per boot: 0, 1, 2, ...
counted by whoever publishes that kind, so a subscriber can spot gaps and
duplicates in each stream separately; (boot_id, seq) identifies a message of
a kind.
"""
from __future__ import division

import datetime

from roadedge.core.catalog import class_name

DETECTIONS_SCHEMA = "roadedge.detections/1"
EVENTS_SCHEMA = "roadedge.events/1"
STATS_SCHEMA = "roadedge.stats/1"


def iso_utc(timestamp):
    """Seconds since the epoch -> '2026-11-21T08:15:02.123Z'."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def detections_message(device, boot_id, seq, timestamp, frame_index, frame_size, model_name, model_sha256,
                       latency_ms, detections):
    """`detections`: edge.processing.decoders.Detection with boxes normalised to the frame."""
    width, height = frame_size
    return {
        "schema": DETECTIONS_SCHEMA,
        "device": device,
        "boot_id": boot_id,
        "seq": int(seq),
        "ts": iso_utc(timestamp),
        "frame": {"index": int(frame_index), "width": int(width), "height": int(height)},
        "model": {"name": model_name, "sha256": model_sha256},
        "latency_ms": round(float(latency_ms), 3),
        "detections": [
            {"label": d.name, "name": class_name(d.name), "score": round(float(d.score), 4),
             "box": [round(min(max(float(v), 0.0), 1.0), 5) for v in d.box]}
            for d in detections
        ],
    }


def _box(box):
    return [round(min(max(float(v), 0.0), 1.0), 5) for v in box]


def events_message(device, boot_id, seq, timestamp, event, model_name, image_key=None):
    """A damage event (an edge.processing.tracker event dict: new / update / end) as a roadedge.events/1 message.

    `image_key`: the S3 key of the track's best frame (edge.sinks.s3.image_key), or None without an S3 sink.
    """
    return {
        "schema": EVENTS_SCHEMA,
        "device": device,
        "boot_id": boot_id,
        "seq": int(seq),
        "ts": iso_utc(timestamp),
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
    }


def _number(value, digits=3):
    return round(float(value), digits)


def _counter(value):
    return value if isinstance(value, (bool, int)) else _number(value)


def stats_message(device, boot_id, seq, timestamp, stats):
    """A periodic roadedge.stats/1 message from `stats`, a dict with:

    fps             frames per second since the previous stats message (or over a recent window)
    frames          frames processed since the start
    dropped_frames  frames dropped by back-pressure since the start
    queue_depth     frames waiting between capture and inference now
    stages_ms       {stage: {mean, p50, p95}} (edge.pipeline.StageTimes.summary())
    sinks           {sink name: {counter: number or boolean}}, e.g. outbox_depth, outbox_dropped, published,
                    publish_failures, reconnects, connected (each sink's stats())
    optional: uptime_s, detections, events, sink_errors ({sink name: failed writes})
    """
    message = {
        "schema": STATS_SCHEMA,
        "device": device,
        "boot_id": boot_id,
        "seq": int(seq),
        "ts": iso_utc(timestamp),
        "fps": _number(stats["fps"] or 0.0, 2),
        "frames": int(stats["frames"]),
        "dropped_frames": int(stats["dropped_frames"]),
        "queue_depth": int(stats["queue_depth"]),
        "stages_ms": dict((stage, dict((key, _number(value)) for key, value in values.items()))
                          for stage, values in stats["stages_ms"].items()),
        "sinks": dict((name, dict((key, _counter(value)) for key, value in counters.items() if value is not None))
                      for name, counters in (stats.get("sinks") or {}).items()),
    }
    for key in ("uptime_s",):
        if stats.get(key) is not None:
            message[key] = _number(stats[key])
    for key in ("detections", "events"):
        if stats.get(key) is not None:
            message[key] = int(stats[key])
    if stats.get("sink_errors") is not None:
        message["sink_errors"] = dict((name, int(count)) for name, count in stats["sink_errors"].items())
    return message
