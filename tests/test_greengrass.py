"""The greengrass sink against stand-ins of greengrasssdk (v1) and awsiotsdk's IPC client (v2) with their exact
call signatures; topic rules; and the events/stats messages, every published one validated against its schema. Its
on-disk outbox (nothing lost to a slow or failing core, a close before it drained, or kill -9): test_greengrass_outbox.py."""
import json
import logging
import os
import sys
import threading

import jsonschema
import pytest

import edge
from edge import plugins
from edge.messages import Envelope
from edge.pipeline import StageTimes
from edge.processing.decoders import Detection
from edge.processing.tracker import IouTracker
from edge.sinks import greengrass
from edge.sinks.base import FrameResult
from edge.sources.base import Frame
from edge.topics import validate_topic_prefix
from roadedge.core.errors import RoadedgeError
from tests.conftest import import_standin_package

DEVICE, BOOT = "rc-car-1", "b7f3c2"
T0 = 1795248900.0


@pytest.fixture(autouse=True)
def home_and_quick_retries(monkeypatch, tmp_path):
    """Default outboxes go under this test's own ~ (no backlog of another test or run is published), and a
    failed publish is tried again after 10..50 ms instead of 1..30 s."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(greengrass, "RETRY_S", (0.01, 0.05))


def validator(kind):
    path = os.path.join(os.path.dirname(edge.__file__), "schemas", "{}-v1.schema.json".format(kind))
    with open(path, encoding="utf-8") as handle:
        schema = json.load(handle)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


VALIDATORS = {kind: validator(kind) for kind in ("detections", "events", "stats")}


def tracker_events(frames=8):
    """Real events from the tracker: a pothole over `frames` frames, then flushed."""
    tracker, out = IouTracker(), []
    for index in range(frames):
        out.extend(tracker.update([Detection(3, "D40", 0.6 + 0.02 * index, (0.4, 0.6, 0.5, 0.7))], index,
                                  T0 + index / 15.0))
    return out + tracker.flush(T0 + frames / 15.0)


def stats_dict():
    times = StageTimes()
    for ms in (3.0, 4.0, 30.0):
        times.add("infer", ms)
        times.add("decode", ms / 10)
    return {"fps": 14.93, "frames": 1500, "dropped_frames": 3, "queue_depth": 1, "stages_ms": times.summary(),
            "sinks": {"greengrass": {"published": 10, "publish_failures": 0, "outbox_depth": 0, "outbox_dropped": 0,
                                     "outbox_not_stored": 0, "reconnects": 0, "connected": True}},
            "uptime_s": 100.5, "detections": 42, "events": 3, "sink_errors": {"JsonlSink": 0}}


def frame_result(index=0):
    detections = [Detection(3, "D40", 0.9, (0.1, 0.5, 0.3, 0.9))]
    envelope = Envelope(DEVICE, BOOT, next_seq={"detections": index})
    message = envelope.detections(timestamp=T0 + 1, frame_index=index, frame_size=(640, 360),
                                  model_name="road-damage-ssd", model_sha256="ab" * 32, latency_ms=20.0,
                                  detections=detections)
    events = [envelope.event(timestamp=T0 + 1, event=e, model_name="road-damage-ssd") for e in tracker_events()]
    return FrameResult(Frame(index, None, T0), detections, message, events=events,
                       stats=envelope.stats(timestamp=T0 + 1, stats=stats_dict()))


def expected(result, prefix="roadedge/" + DEVICE):
    return ([(prefix + "/detections", result.message)] + [(prefix + "/events", e) for e in result.events]
            + [(prefix + "/stats", result.stats)])


def check_published(pairs):
    """Every published payload is compact UTF-8 JSON valid against the schema of its topic's kind."""
    decoded = []
    for topic, payload in pairs:
        message = json.loads(payload.decode("utf-8"))
        assert payload == json.dumps(message, separators=(",", ":")).encode("utf-8")  # bytes, compact
        VALIDATORS[topic.rsplit("/", 1)[1]].validate(message)
        decoded.append((topic, message))
    return decoded


def context():
    return {"log": logging.getLogger("test-greengrass"), "stop": threading.Event(), "device": DEVICE}


@pytest.fixture
def v1(monkeypatch):
    return import_standin_package(monkeypatch, "greengrasssdk")


@pytest.fixture
def v2(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT", str(tmp_path / "ipc.socket"))
    monkeypatch.setenv("SVCUID", "token")
    import_standin_package(monkeypatch, "awsiot.greengrasscoreipc.clientv2")
    return sys.modules["awsiot.greengrasscoreipc"]


# --- messages and schemas ---

def test_events_messages_from_the_tracker_validate():
    events = tracker_events()
    assert [e["type"] for e in events] == ["new", "end"]
    envelope = Envelope(DEVICE, BOOT)
    for seq, event in enumerate(events):
        message = envelope.event(timestamp=T0 + 1, event=event, model_name="road-damage-ssd",
                                 image_key="roadedge/rc-car-1/b7f3c2/track-000001.jpg" if seq else None)
        VALIDATORS["events"].validate(message)
        assert message["seq"] == seq
    assert message["event"] == "end" and message["track_id"] == 1 and message["hits"] == 8
    assert message["label"] == "D40" and message["name"] == "pothole / rutting / separation"
    assert message["score"] == 0.74 and message["best_frame"] == 7 and message["box"] == [0.4, 0.6, 0.5, 0.7]
    assert message["first_seen"] == "2026-11-21T08:15:00.000Z" and message["last_seen"] == "2026-11-21T08:15:00.466Z"
    assert message["model"] == {"name": "road-damage-ssd"} and message["image_key"].endswith("track-000001.jpg")


def test_stats_message_validates_and_rounds():
    message = Envelope(DEVICE, BOOT, next_seq={"stats": 4}).stats(timestamp=T0, stats=stats_dict())
    VALIDATORS["stats"].validate(message)
    assert message["seq"] == 4 and message["fps"] == 14.93 and message["frames"] == 1500
    assert message["stages_ms"]["infer"] == {"mean": 12.333, "p50": 4.0, "p95": 30.0}
    assert message["sinks"]["greengrass"]["connected"] is True
    minimal = Envelope(DEVICE, BOOT).stats(timestamp=T0, stats={"fps": None, "frames": 0, "dropped_frames": 0,
                                                                "queue_depth": 0, "stages_ms": {}})
    VALIDATORS["stats"].validate(minimal)
    assert minimal["fps"] == 0.0 and minimal["sinks"] == {}


def test_schemas_reject_what_a_subscriber_could_not_use():
    envelope = Envelope(DEVICE, BOOT)
    event = envelope.event(timestamp=T0, event=tracker_events()[0], model_name="m")
    stats = envelope.stats(timestamp=T0, stats=stats_dict())
    broken = [("events", dict(event, event="moved")), ("events", dict(event, track_id=0)),
              ("events", dict(event, extra=1)), ("events", {k: v for k, v in event.items() if k != "image_key"}),
              ("events", dict(event, image_key="")), ("stats", dict(stats, fps=-1)), ("stats", dict(stats, extra=1)),
              ("stats", dict(stats, stages_ms={"infer": {"mean": 1}})),
              ("stats", dict(stats, sinks={"mqtt": {"connected": "yes"}}))]
    for kind, message in broken:
        with pytest.raises(jsonschema.ValidationError):
            VALIDATORS[kind].validate(message)


# --- topics ---

def test_topic_prefix_rules():
    assert validate_topic_prefix("roadedge/{device}", DEVICE) == "roadedge/rc-car-1"
    assert validate_topic_prefix("$aws/things/deeplens_x/infer", DEVICE) == "$aws/things/deeplens_x/infer"
    assert validate_topic_prefix("a/b/c/d/e/f/g", DEVICE) == "a/b/c/d/e/f/g"  # 7 levels: 7 slashes with /stats
    problems = {"": "empty", "road+edge/x": "'+'", "road/#": "'#'", "a\0b": "NUL", "a/b/c/d/e/f/g/h": "levels",
                "x" * 244: "bytes", "/roadedge": "empty topic level", "roadedge/": "empty topic level",
                "a//b": "empty topic level", "roadedge/{thing}": "only {device}", "{device}/x": "device name is empty"}
    for prefix, problem in problems.items():
        with pytest.raises(RoadedgeError, match=problem.replace("+", r"\+")):
            validate_topic_prefix(prefix, "" if problem == "device name is empty" else DEVICE, "topic_prefix")
    assert validate_topic_prefix("x" * 243, DEVICE)  # 243 + len("/segmentation") == 256, the longest kind


def test_greengrass_options_are_checked_before_anything_is_imported(v1):
    for options, problem in (({"version": "v3"}, "version: 'v3'; expected one of auto, v1, v2"),
                             ({"qos": 2}, "qos: 2; expected one of 0, 1"),
                             ({"outbox": 1000}, "outbox: expected a string, got an integer"),
                             ({"outbox_max_mb": 0.0}, "outbox_max_mb: 0.0; expected more than 0"),
                             ({"outbox_max_age_s": -1.0}, "outbox_max_age_s: -1.0; expected at least 0 s"),
                             ({"drain_timeout_s": -1.0}, "drain_timeout_s: -1.0; expected at least 0 s"),
                             ({"drain_timeout": 5.0}, "drain_timeout: unknown option"),
                             ({"topic_prefix": "a/+/b"}, "topic_prefix")):
        with pytest.raises(RoadedgeError) as err:
            greengrass.open(options, context())
        assert str(err.value).startswith("greengrass sink: ") and problem in str(err.value), str(err.value)
        assert "\n" not in str(err.value)
    assert v1.invocations == []
    assert plugins.plugin("sink", "greengrass") is greengrass and greengrass.TYPE == "greengrass"


# --- Greengrass v1 ---

def test_v1_stand_in_has_the_sdk_signature(v1):
    client = v1.client("iot-data")
    with pytest.raises(TypeError):
        client.publish("t", b"{}")  # keyword arguments only
    with pytest.raises(ValueError, match='"topic" is a required parameter'):
        client.publish(payload=b"{}")
    with pytest.raises(ValueError, match="queueFullPolicy"):
        client.publish(topic="t", payload=b"{}", queueFullPolicy="DropOldest")
    with pytest.raises(TypeError, match="type str"):
        client.publish(topic="t", payload="{}")
    with pytest.raises(Exception, match="not recognized"):
        v1.client("iot")
    client.publish(topic="t", payload=b"{}", someUnknownKeyword=1)  # ignored, as by the SDK
    assert v1.published() == [("t", b"{}", "")]


def test_v1_publishes_each_kind_on_its_topic(v1):
    sink = greengrass.open({"version": "v1"}, context())
    result = frame_result()
    sink.write(result)
    sink.write(FrameResult(Frame(1, None, T0), [], None))  # nothing to publish
    sink.close()
    published = v1.published()
    assert [policy for _, _, policy in published] == ["AllOrError"] * 4  # queueFullPolicy="AllOrException"
    assert check_published([(t, p) for t, p, _ in published]) == expected(result)
    assert all(call["invocation_type"] == "Event" for call in v1.invocations)
    assert sink.stats() == {"published": 4, "publish_failures": 0, "outbox_depth": 0, "outbox_dropped": 0,
                            "outbox_not_stored": 0, "reconnects": 0, "connected": True}


def test_v1_failures_are_counted_and_logged_once_never_raised(v1, caplog):
    sink = greengrass.open({"version": "v1", "topic_prefix": "$aws/things/deeplens_1/infer"}, context())
    v1.fail_next(3)
    with caplog.at_level(logging.WARNING, "test-greengrass"):
        for index in range(3):
            sink.write(frame_result(index))
        sink.close()
    stats = sink.stats()
    assert stats["publish_failures"] == 3 and stats["published"] == 12 and stats["outbox_depth"] == 0
    assert stats["connected"] is True  # the last publish reached the core
    published = check_published([(t, p) for t, p, _ in v1.published()])  # tried again: none lost, order kept
    assert [m["seq"] for t, m in published if t.endswith("/detections")] == [0, 1, 2]
    assert published[0][0] == "$aws/things/deeplens_1/infer/detections"
    warnings = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(warnings) == 1 and "InvocationException" in warnings[0].getMessage()
    assert "retrying with back-off" in warnings[0].getMessage()


def test_auto_prefers_v1_when_greengrasssdk_imports(v1, v2):
    sink = greengrass.open({}, context())
    sink.write(frame_result())
    sink.close()
    assert len(v1.published()) == 4 and v2.messages == []


# --- Greengrass v2 ---

def test_v2_stand_in_is_keyword_only(v2):
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

    client = GreengrassCoreIPCClientV2()
    with pytest.raises(TypeError):
        client.publish_to_iot_core("t", "1", b"{}")
    with pytest.raises(TypeError):
        client.publish_to_iot_core(topic="t", qos="1", payload=b"{}")
    client.close()


@pytest.mark.parametrize("qos, wire", [(1, "1"), (0, "0")])
def test_v2_publishes_to_iot_core_with_the_qos(v2, qos, wire):
    sink = greengrass.open({"version": "v2", "qos": qos, "topic_prefix": "fleet/{device}/road"}, context())
    result = frame_result()
    sink.write(result)
    sink.close()
    assert [m["qos"] for m in v2.messages] == [wire] * 4
    pairs = [(m["topic_name"], m["payload"]) for m in v2.messages]
    assert check_published(pairs) == expected(result, "fleet/rc-car-1/road")
    assert v2.connections() == 1 and sink.stats()["connected"] is False  # closed


def test_auto_uses_v2_without_greengrasssdk(v2, monkeypatch):
    monkeypatch.setitem(sys.modules, "greengrasssdk", None)  # not importable
    sink = greengrass.open({"version": "auto"}, context())
    sink.write(frame_result())
    sink.close()
    assert len(v2.messages) == 4


def test_v2_service_errors_are_counted_connection_errors_reconnect(v2):
    from awsiot.eventstreamrpc import ConnectionClosedError
    from awsiot.greengrasscoreipc.model import UnauthorizedError

    sink = greengrass.open({"version": "v2"}, context())
    v2.fail_next(2, UnauthorizedError(message="not authorized to publish"))
    sink.write(frame_result(0))
    sink.close()
    stats = sink.stats()
    assert stats["publish_failures"] == 2 and stats["published"] == 4 and stats["reconnects"] == 0

    sink = greengrass.open({"version": "v2"}, context())
    v2.fail_next(1, ConnectionClosedError("nucleus restarted"))
    sink.write(frame_result(1))
    sink.close()
    stats = sink.stats()
    assert stats["publish_failures"] == 1 and stats["published"] == 4 and stats["reconnects"] == 1
    assert v2.connections() == 3 and len(v2.messages) == 8


def test_v2_reconnects_with_back_off(v2):
    from awsiot.eventstreamrpc import ConnectionClosedError
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
    from awsiot.greengrasscoreipc.model import QOS, GreengrassCoreIPCError

    now = [100.0]
    publisher = greengrass.V2Publisher(GreengrassCoreIPCClientV2, QOS.AT_LEAST_ONCE, GreengrassCoreIPCError,
                                       clock=lambda: now[0])
    v2.fail_next(1, ConnectionClosedError("gone"))
    v2.refuse_connections(1)
    outcomes = []
    for _ in range(4):
        try:
            publisher.publish("t/x", b"{}")
            outcomes.append("ok")
        except Exception as err:
            outcomes.append(type(err).__name__)
        now[0] += 0.6
    # the broken connection; the refused reconnect; still backing off (1 s); reconnected
    assert outcomes == ["ConnectionClosedError", "ConnectionRefusedError", "ConnectionError", "ok"]
    assert publisher.reconnects == 1 and publisher.connected and len(v2.messages) == 1
    publisher.close()


def test_v2_outside_a_component_is_one_line(v2, monkeypatch):
    monkeypatch.delenv("SVCUID")
    with pytest.raises(RoadedgeError, match="not running as a Greengrass v2 component.*SVCUID"):
        greengrass.open({"version": "v2"}, context())


def test_neither_sdk_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "greengrasssdk", None)
    monkeypatch.setitem(sys.modules, "awsiot", None)
    with pytest.raises(RoadedgeError, match="awsiotsdk"):
        greengrass.open({}, context())
    with pytest.raises(RoadedgeError, match="greengrasssdk"):
        greengrass.open({"version": "v1"}, context())
