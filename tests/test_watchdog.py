"""The loop's watchdog with parts that stall without closing: a camera whose read never returns, an inference that
hangs. The part is reopened, the status says `stalled` then `online`, frames go on; too many stalls in a row end
the run with exit code 3."""
import threading
import time

import numpy as np
import pytest

from edge import config
from edge.backends.base import SyncBackend
from edge.pipeline import Pipeline
from edge.sinks.base import Sink
from edge.sources.base import Frame, Source
from edge.watchdog import WatchdogExpired
from roadedge.cli import main
from roadedge.core.model_metadata import ModelInfo

LIMIT_S = 0.4


class Frames(Source):
    """Frames first..first+count-1, then a read that blocks until close() when `stall_at` is reached."""

    def __init__(self, first, count, stall_at=None):
        self.index, self.end, self.stall_at = first, first + count, stall_at
        self.closed = threading.Event()
        self.image = np.full((120, 160, 3), 90, np.uint8)

    def read(self):
        if self.index == self.stall_at:
            self.closed.wait(60)  # stalls without closing, as a wedged camera does
            return None
        if self.index >= self.end:
            return None
        self.index += 1
        return Frame(self.index - 1, self.image, time.time())

    def close(self):
        self.closed.set()


class OneBox(SyncBackend):
    """A box on every frame; the call number `hang_on` hangs until released."""

    def __init__(self, hang_on=None):
        self.model = ModelInfo(name="one-box", labels=["D40"], input_size=(64, 64), output_format="multibox_detection")
        self.calls, self.hang_on, self.release = 0, hang_on, threading.Event()

    def infer(self, image):
        self.calls += 1
        if self.calls == self.hang_on:
            self.release.wait(60)
        return np.array([[[0, 0.9, 0.1, 0.1, 0.4, 0.4]]], np.float32)

    def close(self):
        self.release.set()


class Record(Sink):
    TYPE = "record-test"

    def __init__(self):
        self.frames, self.states = [], []

    def write(self, result):
        if not result.final:
            self.frames.append(result.frame.index)

    def publish_status(self, message):
        self.states.append(message["state"])


def settings(restarts=3):
    loaded = config.load("x86-openvino-cpu", None, {"source": {"type": "synthetic"}, "outputs": []})
    loaded["pipeline"].update(watchdog_s=LIMIT_S, watchdog_restarts=restarts, stats_interval=0, publish_empty=True)
    loaded["events"]["enabled"] = False
    return loaded


def test_a_camera_that_stalls_without_closing_is_reopened_and_frames_go_on():
    opened = []

    def reopen():
        opened.append(Frames(100, 5))
        return opened[-1]

    first, sink = Frames(0, 10, stall_at=5), Record()
    pipeline = Pipeline(first, OneBox(), [sink], settings(), boot_id="b", reopen={"capture": reopen})
    started = time.monotonic()
    summary = pipeline.run()
    assert len(opened) == 1 and first.closed.wait(2)  # the stalled source was closed (in the background)
    assert sink.frames == [0, 1, 2, 3, 4, 100, 101, 102, 103, 104]
    assert sink.states == ["stalled", "online"]
    assert summary["stalls"] == {"capture": 1, "inference": 0} and summary["frames"] == 10
    assert LIMIT_S <= time.monotonic() - started < LIMIT_S + 5


def test_an_inference_that_hangs_is_reopened_and_the_frames_in_flight_are_counted_lost():
    backends = [OneBox(hang_on=3)]

    def reopen():
        backends.append(OneBox())
        return backends[-1]

    sink = Record()
    pipeline = Pipeline(Frames(0, 8), backends[0], [sink], settings(), boot_id="b", reopen={"inference": reopen})
    summary = pipeline.run()
    assert len(backends) == 2 and backends[0].release.is_set()  # the hung backend was closed
    assert summary["stalls"] == {"capture": 0, "inference": 1}
    assert summary["lost"] == 1 and summary["frames"] == 7 and 2 not in sink.frames
    assert sink.frames == [0, 1, 3, 4, 5, 6, 7] and sink.states == ["stalled", "online"]


def test_too_many_stalls_in_a_row_end_the_run_with_exit_code_3():
    opened = []

    def reopen():
        opened.append(Frames(0, 5, stall_at=0))
        return opened[-1]

    sink = Record()
    pipeline = Pipeline(Frames(0, 5, stall_at=0), OneBox(), [sink], settings(restarts=2), boot_id="b",
                        reopen={"capture": reopen})
    with pytest.raises(WatchdogExpired) as err:
        pipeline.run()
    assert err.value.exit_code == 3 and "stalled 3 times in a row" in str(err.value)
    assert len(opened) == 2 and sink.states == ["stalled", "stalled"] and sink.frames == []


def test_roadedge_run_exits_3_when_the_camera_keeps_stalling(tmp_path, monkeypatch, capsys):
    from edge.sources import synthetic

    monkeypatch.setattr(synthetic, "open", lambda options, context: Frames(0, 5, stall_at=0))
    settings_file = tmp_path / "watchdog.yaml"
    settings_file.write_text("pipeline: {watchdog_s: 0.3, watchdog_restarts: 1}\n")
    started = time.monotonic()
    code = main(["run", "--source", "synthetic:1", "--config", str(settings_file), "--no-preview", "--quiet",
                 "--output", "jsonl:" + str(tmp_path / "out.jsonl")])
    assert code == 3 and time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == ("roadedge: error: watchdog: the capture stalled 2 times in a row (no result "
                                            "within 0.3 s each time); giving up so the service can be restarted")


def test_without_a_watchdog_a_slow_part_is_waited_for(monkeypatch):
    loaded = settings()
    loaded["pipeline"]["watchdog_s"] = 0
    backend = OneBox(hang_on=2)
    threading.Timer(0.8, backend.release.set).start()  # slower than the limit above, but no watchdog now
    sink = Record()
    summary = Pipeline(Frames(0, 4), backend, [sink], loaded, boot_id="b").run()
    assert sink.frames == [0, 1, 2, 3] and summary["stalls"] == {"capture": 0, "inference": 0} and not sink.states


def test_the_mqtt_sink_keeps_the_watchdogs_state_retained_across_reconnects(tmp_path):
    import json
    import os

    import jsonschema

    from edge.messages import Envelope
    from edge.sinks import mqtt as mqtt_sink
    from tests.mosquitto import Broker
    from tests.test_mqtt import Subscriber, context, wait_until

    schema = json.load(open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "edge",
                                         "schemas", "status-v1.schema.json")))
    broker = Broker(tmp_path / "broker").start()
    sink = subscriber = None
    try:
        sink = mqtt_sink.open({"port": broker.port, "outbox": str(tmp_path / "o.sqlite"), "require_connection_s": 5},
                              context("cam-1"))
        sink.publish_status(Envelope("cam-1", "b").status(state="stalled"))
        subscriber = Subscriber(broker.port, "roadedge/cam-1/status")  # joins later: gets the retained one
        assert wait_until(lambda: subscriber.of("status"), 5)
        assert subscriber.of("status")[-1]["state"] == "stalled"
        for message in subscriber.of("status"):
            jsonschema.validate(message, schema)
        seen = len(subscriber.of("status"))
        broker.stop()  # the connection drops (the broker may publish the will, offline); on the way back the sink
        broker.start()  # says what it says now
        assert wait_until(lambda: [m["state"] for m in subscriber.of("status")[seen:]][-1:] == ["stalled"], 15), \
            subscriber.of("status")
        sink.publish_status(Envelope("cam-1", "b").status(state="online"))
        assert wait_until(lambda: subscriber.of("status")[-1]["state"] == "online", 5)
    finally:
        if subscriber is not None:
            subscriber.close()
        if sink is not None:
            sink.close(drain=False)
        broker.stop()
