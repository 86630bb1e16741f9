"""The v1 messages roadedge publishes (schemas in edge/schemas/), built from plain values. No I/O."""
from __future__ import division

import datetime

from edge.catalog import class_name

DETECTIONS_SCHEMA = "roadedge.detections/1"


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
