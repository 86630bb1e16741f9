"""The v1 detections message: built from decoder output, valid against the schema file in the repo."""
import json
import os

import jsonschema
import pytest

import edge
from edge.messages import Envelope, iso_utc
from edge.processing.decoders import Detection

SCHEMA_PATH = os.path.join(os.path.dirname(edge.__file__), "schemas", "detections-v1.schema.json")


@pytest.fixture(scope="module")
def validator():
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        schema = json.load(handle)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def message(**changes):
    values = dict(timestamp=1795248902.1234, frame_index=1203, frame_size=(640, 360), model_name="road-damage-ssd",
                  model_sha256="ab" * 32, latency_ms=23.45678,
                  detections=[Detection(3, "D40", 0.91234567, (0.1, 0.5, 0.3, 1.0000001)),
                              Detection(0, "D00", 0.5, (0.0, 0.2, 0.05, 0.9))])
    values.update(changes)
    return Envelope("rc-car-1", "b7f3", next_seq={"detections": 41}).detections(**values)


def test_message_content(validator):
    built = message()
    validator.validate(built)
    assert built["ts"] == "2026-11-21T08:15:02.123Z"
    assert built["seq"] == 41 and built["frame"] == {"index": 1203, "width": 640, "height": 360}
    assert built["latency_ms"] == 23.457
    assert built["detections"][0] == {"label": "D40", "name": "pothole / rutting / separation", "score": 0.9123,
                                      "box": [0.1, 0.5, 0.3, 1.0]}
    assert built["detections"][1]["name"] == "longitudinal crack (wheel mark)"
    assert json.loads(json.dumps(built)) == built


def test_schema_rejects_what_a_subscriber_could_not_use(validator):
    for broken in (dict(message(), seq=-1), dict(message(), extra=1), dict(message(), ts="yesterday"),
                   {k: v for k, v in message().items() if k != "boot_id"}):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(broken)
    bad_box = message()
    bad_box["detections"][0]["box"] = [0.1, 0.2, 0.3]
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(bad_box)


def test_iso_utc_has_milliseconds():
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"


def test_the_envelope_counts_each_kind_on_its_own_and_takes_keywords_only():
    envelope = Envelope("rc-car-1", "b7f3")
    kinds = []
    for _ in range(3):
        kinds.append(envelope.detections(timestamp=1.0, frame_index=0, frame_size=(4, 4), model_name="m",
                                         model_sha256="0" * 64, latency_ms=1.0, detections=[])["seq"])
    stats = envelope.stats(timestamp=1.0, stats={"fps": 1.0, "frames": 3, "dropped_frames": 0, "queue_depth": 0,
                                                 "stages_ms": {}})
    status = envelope.status(state="online", timestamp=1.0)
    assert kinds == [0, 1, 2] and stats["seq"] == 0 and "seq" not in status
    assert envelope.count("detections") == 3 and envelope.count("stats") == 1 and envelope.count("events") == 0
    assert {m["device"] for m in (stats, status)} == {"rc-car-1"} and {m["boot_id"] for m in (stats, status)} == {"b7f3"}
    assert status == {"schema": "roadedge.status/1", "device": "rc-car-1", "boot_id": "b7f3",
                      "ts": "1970-01-01T00:00:01.000Z", "state": "online"}
    with pytest.raises(TypeError):
        envelope.detections(1.0, 0, (4, 4), "m", "0" * 64, 1.0, [])  # positional fields are refused
    with pytest.raises(ValueError):
        envelope.status(state="asleep")
