"""The MQTT sink against a real mosquitto on 127.0.0.1 (tests/mosquitto.py starts and stops it): round trip with
schema checks, a broker outage, kill -9 of the runtime, TLS with client certificates; and the bytes of the CONNECT
packet against a plain TCP server. No other network traffic.

Run with -s to see the numbers (sent, received, duplicated, lost) of the outage and kill -9 tests.
"""
import datetime
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import cv2
import jsonschema
import paho.mqtt.client as mqtt
import pytest

from edge import app, config
from edge.messages import Envelope
from edge.processing.decoders import Detection
from edge.sinks import mqtt as mqtt_sink
from edge.sinks.base import FrameResult
from edge.sources.spec import SAMPLE_VIDEO
from roadedge.core.errors import RoadedgeError
from tests import mosquitto
from tests.mosquitto import Broker, free_port, require_mosquitto
from tests.pki import make_pki

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMAS = {name: json.load(open(os.path.join(ROOT, "edge", "schemas", name + "-v1.schema.json")))
           for name in ("detections", "events", "stats", "status")}

needs_mosquitto = pytest.mark.usefixtures("mosquitto_installed")
RESUME_S = 1.5  # after an outage, delivery resumes within this of the broker's return (0.5 s paced, plus margin)


@pytest.fixture
def mosquitto_installed():
    require_mosquitto()


def context(device="test-dev"):
    return {"log": logging.getLogger("test-mqtt"), "stop": threading.Event(), "device": device, "source_fps": None}


def frame_result(seq, events=(), stats=None):
    message = Envelope("test-dev", "boot-1", next_seq={"detections": seq}).detections(
        timestamp=1.7e9 + seq, frame_index=seq, frame_size=(640, 360), model_name="demo", model_sha256="0" * 64,
        latency_ms=5.0, detections=[Detection(5, "D40", 0.9, (0.1, 0.2, 0.3, 0.4))])
    return FrameResult(None, [], message, events=list(events), stats=stats)


def wait_until(predicate, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class Subscriber(object):
    """A paho client on `topic` collecting (topic, JSON, retain), and when each arrived (`arrived`: time.monotonic()
    per message). persistent: a session that survives its own and the broker's restarts (QoS 1 messages are queued
    for it meanwhile). reconnect_s: its wait between two connection attempts after losing the broker."""

    def __init__(self, port, topic="roadedge/#", client_id="", persistent=False, tls=None, reconnect_s=1):
        self.messages, self.arrived, self.lock, self.subscribed = [], [], threading.Lock(), threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent)
        self.client.reconnect_delay_set(reconnect_s, reconnect_s)
        if tls:
            self.client.tls_set(ca_certs=tls["ca"], certfile=tls["cert"], keyfile=tls["key"])
        self.client.on_connect = lambda client, userdata, flags, rc, props: client.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscriber did not get its SUBACK"

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append((message.topic, json.loads(message.payload.decode("utf-8")), message.retain))
            self.arrived.append(time.monotonic())

    def of(self, kind):
        with self.lock:
            return [payload for topic, payload, _ in self.messages if topic.endswith("/" + kind)]

    def timed(self, kind):
        """(arrival time, message) of each `kind` message."""
        with self.lock:
            return [(at, payload) for at, (topic, payload, _) in zip(self.arrived, self.messages)
                    if topic.endswith("/" + kind)]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def seq_report(name, sent, received):
    """sent: the seqs made; received: the seqs that arrived (with repeats). Printed, and returned as a dict."""
    unique = set(received)
    numbers = {"sent": len(sent), "received": len(received), "unique": len(unique),
               "duplicated": len(received) - len(unique), "lost": len(set(sent) - unique)}
    print("\n{}: {}".format(name, ", ".join("{} {}".format(k, v) for k, v in numbers.items())))
    return numbers


def pipeline_config(tmp_path, port, device, frames, source=None, events=None, **mqtt_options):
    layer = {"device_name": device,
             "source": source or {"type": "opencv", "uri": SAMPLE_VIDEO, "realtime": False},
             "pipeline": {"frames": frames, "publish_empty": True},
             "outputs": [{"type": "jsonl", "path": str(tmp_path / "detections.jsonl")},
                         dict({"type": "mqtt", "port": port, "outbox": str(tmp_path / "outbox.sqlite")}, **mqtt_options)]}
    if events is not None:
        layer["events"] = events
    return config.load("x86-openvino-cpu", None, layer)


D43_RUN, D20_RUN = range(10, 14), range(24, 28)  # where damage_frames() repeats one damage on consecutive frames


def damage_frames(folder):
    """Sample-drive frames as PNGs (lossless: the model sees the video's own pixels): frames without detections,
    frame 130 (one D43) at D43_RUN and frame 67 (one D20) at D20_RUN. Returns how many."""
    plan = list(range(10)) + [130] * len(D43_RUN) + list(range(10, 20)) + [67] * len(D20_RUN) + [20, 21]
    capture, images = cv2.VideoCapture(SAMPLE_VIDEO), {}
    try:
        for index in range(max(plan) + 1):
            ok, image = capture.read()
            assert ok, "sample video: cannot read frame {}".format(index)
            if index in plan:
                images[index] = image
    finally:
        capture.release()
    folder.mkdir()
    for position, index in enumerate(plan):
        assert cv2.imwrite(str(folder / "{:03d}.png".format(position)), images[index])
    return len(plan)


def mqtt_of(runtime):
    return [s for s in runtime.sinks if isinstance(s, mqtt_sink.MqttSink)][0]


# -- no broker needed -------------------------------------------------------------------------------------------------
def test_bad_options_are_one_line_naming_the_option(tmp_path):
    cases = [({"topic_prefix": "roadedge/+/x"}, "mqtt sink: topic_prefix"),
             ({"topic_prefix": "a/b/c/d/e/f/g/h"}, "mqtt sink: topic_prefix"),
             ({"topic_prefix": "roadedge//{device}"}, "empty topic level"),
             ({"tls": True, "cert": str(tmp_path / "nope.crt"), "key": str(tmp_path / "nope.key")}, "mqtt sink: cert:"),
             ({"tls": True, "cert": "a.crt"}, "cert and key go together"),
             ({"alpn": True}, "alpn needs tls"), ({"port": 0}, "mqtt sink: port: 0"),
             ({"client_id": "x" * 129}, "client_id")]
    for options, expected in cases:
        with pytest.raises(RoadedgeError) as err:
            mqtt_sink.open(dict(options, outbox=str(tmp_path / "o.sqlite")), context())
        assert expected in str(err.value) and "\n" not in str(err.value), (options, str(err.value))


def test_run_flags_add_an_mqtt_output():
    from edge.run_command import overrides_from_args
    from roadedge.cli import build_parser

    def layer(*argv, base=()):
        return overrides_from_args(build_parser().parse_args(["run"] + list(argv)), list(base))

    out = layer("--mqtt", "mqtts://abc-ats.iot.eu-west-1.amazonaws.com", "--mqtt-cert", "c.pem", "--mqtt-key", "k.pem",
                "--mqtt-ca", "ca.pem", "--mqtt-client-id", "rc-car-1", "--outbox", "/tmp/o.sqlite", "--drain-timeout", "3",
                base=[{"type": "jsonl", "path": "-"}])["outputs"]
    assert out == [{"type": "jsonl", "path": "-"},
                   {"type": "mqtt", "host": "abc-ats.iot.eu-west-1.amazonaws.com", "port": 8883, "tls": True,
                    "require_connection_s": 0.0, "cert": "c.pem", "key": "k.pem", "ca": "ca.pem", "client_id": "rc-car-1",
                    "outbox": "/tmp/o.sqlite", "drain_timeout_s": 3.0}]
    assert layer("--mqtt", "mqtts://h", "--mqtt-alpn")["outputs"][0]["port"] == 443
    assert layer("--mqtt", "mqtt://[::1]")["outputs"][0]["port"] == 1883
    profile = [{"type": "mqtt", "host": "old", "port": 1, "topic_prefix": "x/{device}"}]
    assert layer("--mqtt", "mqtt://new:1884", base=profile)["outputs"] == [
        {"type": "mqtt", "host": "new", "port": 1884, "tls": False, "topic_prefix": "x/{device}",
         "require_connection_s": 0.0}]
    assert layer("--mqtt-prefix", "fleet/{device}", base=profile)["outputs"][0]["topic_prefix"] == "fleet/{device}"
    for argv in (["--mqtt", "http://h"], ["--mqtt", "mqtt://h:99999"], ["--mqtt", "mqtt://h/path"], ["--mqtt-cert", "c"]):
        with pytest.raises(RoadedgeError) as err:
            layer(*argv)
        assert "--mqtt" in str(err.value) and "\n" not in str(err.value)


def test_without_a_broker_open_returns_and_require_connection_says_why(tmp_path):
    port = free_port()
    started = time.monotonic()
    sink = mqtt_sink.open({"port": port, "outbox": str(tmp_path / "o.sqlite"), "drain_timeout_s": 0.2}, context())
    sink.write(frame_result(0))
    assert time.monotonic() - started < 1.0 and sink.stats()["outbox_depth"] == 1
    sink.close()
    with pytest.raises(RoadedgeError) as err:
        mqtt_sink.open({"port": port, "outbox": str(tmp_path / "o.sqlite"), "require_connection_s": 1.5}, context())
    assert str(err.value) == "mqtt 127.0.0.1:{}: no connection within 1.5 s: connection refused (no broker listening?)" \
        .format(port)


def disk_rows(path, topic=None):
    """The outbox's rows (their JSON payloads), as another process sees the file."""
    db = sqlite3.connect("file:{}?mode=ro".format(path), uri=True, timeout=5)
    try:
        return [json.loads(bytes(payload)) for kind, payload in db.execute("SELECT topic, payload FROM messages "
                                                                             "ORDER BY id") if topic in (None, kind)]
    finally:
        db.close()


def left_in_the_outbox(log_text):
    """N of the close() line 'N messages not acknowledged ...; they stay in PATH'."""
    found = re.findall(r"(\d+) messages? not acknowledged within drain_timeout_s=\S+; they stay in ", log_text)
    assert len(found) == 1, log_text
    return int(found[0])


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 200 KiB tmpfs (the issue's full disk); skipped where mounting is not permitted."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a 200 KiB tmpfs needs root on Linux; the max_page_count tests cover a full outbox")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(folder)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if mounted.returncode:
        pytest.skip("cannot mount a tmpfs here ({}); the max_page_count tests cover a full outbox".format(
            mounted.stdout.decode(errors="replace").strip()))
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], stderr=subprocess.DEVNULL).returncode:
            subprocess.run(["umount", "-l", str(folder)])


def test_a_full_disk_under_the_outbox_is_reported_once_counted_and_the_sink_goes_on(small_tmpfs, caplog):
    """The issue's case: the outbox on a 200 KiB file system, no broker, 3000 frames; then space frees up."""
    path, filler = str(small_tmpfs / "outbox.sqlite"), small_tmpfs / "filler"
    filler.write_bytes(b"\0" * 48 * 1024)  # room that is given back later
    with caplog.at_level(logging.INFO, "test-mqtt"):
        sink = mqtt_sink.open({"port": free_port(), "outbox": path, "drain_timeout_s": 0.2}, context())
        for seq in range(3000):
            sink.write(frame_result(seq))  # never raises: the pipeline would count a sink error
        stats = sink.stats()
        stored = [m["seq"] for m in disk_rows(path)]
        assert stats["outbox_depth"] == len(stored) and 0 < len(stored) < 3000
        assert stats["outbox_not_stored"] == 3000 - len(stored) and stats["outbox_dropped"] == 0
        assert stored == list(range(len(stored)))  # the first ones, until the disk was full
        assert caplog.text.count(": disk full, ") == 1 and "cannot rollback" not in caplog.text
        assert "outbox {}: disk full, 1 message not stored".format(path) in caplog.text
        print("\ntmpfs 200 KiB, no broker: attempted 3000, stored {}, not stored {}, rows on disk {}, depth {}".format(
            len(stored), stats["outbox_not_stored"], len(stored), stats["outbox_depth"]))

        filler.unlink()  # space again
        for seq in range(3000, 3020):
            sink.write(frame_result(seq))
        stats = sink.stats()
        later = [m["seq"] for m in disk_rows(path)][len(stored):]
        assert later and later == list(range(3000, 3000 + len(later)))  # stored again, from the first one after
        assert stats["outbox_depth"] == len(stored) + len(later)
        assert stats["outbox_not_stored"] == 3020 - len(stored) - len(later)
        assert caplog.text.count("storing messages again (disk full for ") == 1
        print("after freeing 48 KiB: attempted 20, stored {}, not stored {}; rows on disk {}".format(
            len(later), 20 - len(later), len(stored) + len(later)))
        sink.close()
    assert left_in_the_outbox(caplog.text) == len(disk_rows(path)) == len(stored) + len(later)
    assert "{} messages of this run were not stored (disk full)".format(3020 - len(stored) - len(later)) in caplog.text


def test_a_full_outbox_in_a_run_without_a_broker_costs_messages_counted_in_stats_and_metrics_not_the_run(tmp_path,
                                                                                                    caplog):
    """End to end: the pipeline, the mqtt sink with no broker, its outbox capped (max_page_count) until frame 70,
    then given room; the preview's /metrics. The counts must agree with the rows in the file."""
    frames, freed_at = 120, 70
    layer = {"device_name": "full-dev",
             "source": {"type": "opencv", "uri": SAMPLE_VIDEO, "realtime": False},
             "pipeline": {"frames": frames, "publish_empty": True, "stats_interval": 0.2},
             "outputs": [{"type": "mjpeg", "host": "127.0.0.1", "port": 0},
                         {"type": "mqtt", "port": free_port(), "outbox": str(tmp_path / "outbox.sqlite"),
                          "drain_timeout_s": 0.2}]}
    with caplog.at_level(logging.INFO):
        runtime = app.build(config.load("x86-openvino-cpu", None, layer))
        try:
            sink = mqtt_of(runtime)
            cap = sink.outbox.limit_pages(1)
            sink.outbox.limit_pages(cap + 3)  # room for a few dozen messages
            made, snapshots = {}, []

            def listen(result):
                if result.stats is not None:
                    snapshots.append(result.stats)
                if runtime.pipeline.frames_done + 1 == freed_at:
                    made["freed"] = runtime.pipeline.envelope.count("detections")  # the first seq with room again
                    sink.outbox.limit_pages(cap + 10000)

            runtime.pipeline.listeners.append(listen)
            summary = runtime.pipeline.run()
            host, port = [s for s in runtime.sinks if hasattr(s, "add_route")][0].address
            metrics = urllib.request.urlopen("http://%s:%d/metrics" % (host, port), timeout=5).read().decode()
            stats = sink.stats()
        finally:
            runtime.close()
    envelope = runtime.pipeline.envelope
    attempted = envelope.count("detections") + envelope.count("events") + envelope.count("stats")
    rows = disk_rows(str(tmp_path / "outbox.sqlite"))
    seqs = [m["seq"] for m in rows if m["schema"] == "roadedge.detections/1"]
    print("\nfull outbox in a run (max_page_count): attempted {}, stored {}, not stored {}, rows on disk {}, "
          "depth {}".format(attempted, attempted - stats["outbox_not_stored"], stats["outbox_not_stored"], len(rows),
                            stats["outbox_depth"]))
    assert summary["frames"] == frames and summary["sink_errors"].get("MqttSink", 0) == 0
    assert runtime.pipeline.sink_errors.get("MqttSink", 0) == 0
    assert stats["outbox_not_stored"] > 0 and stats["outbox_dropped"] == 0
    assert len(rows) == stats["outbox_depth"] == attempted - stats["outbox_not_stored"] == left_in_the_outbox(caplog.text)
    assert seqs[-1] == frames - 1 and made["freed"] in seqs  # stored again once there was room
    assert seqs == sorted(set(seqs)) and set(range(made["freed"], frames)) <= set(seqs)  # in order; all once freed
    # each full spell is named once and its end once (a nearly full file may take a small message between two)
    assert 1 <= caplog.text.count(": disk full, ") == caplog.text.count("storing messages again") <= 3
    assert "cannot rollback" not in caplog.text and "sink MqttSink failed" not in caplog.text
    for message in snapshots:  # the stats messages carry the count, schema-valid
        jsonschema.validate(message, SCHEMAS["stats"])
    counts = [m["sinks"]["mqtt"]["outbox_not_stored"] for m in snapshots]
    assert counts == sorted(counts) and counts[-1] == stats["outbox_not_stored"]
    gauge = re.search(r'^roadedge_outbox_not_stored\{sink="mqtt"\} (\S+)$', metrics, re.M)
    assert gauge and float(gauge.group(1)) == stats["outbox_not_stored"]


def test_a_broker_that_drops_every_connection_is_retried_with_backoff(tmp_path, caplog):
    """Quick retries are for a broker that is away; one that takes the connection and closes it (throttling, a
    wrong policy) gets backoff (1 s, 2 s, ...) after the second time, not two attempts a second."""
    accepted = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(0.2)
        with caplog.at_level(logging.WARNING, "test-mqtt"):
            sink = mqtt_sink.open({"port": server.getsockname()[1], "outbox": str(tmp_path / "o.sqlite")}, context())
            try:
                started = time.monotonic()
                while time.monotonic() - started < 5.0:
                    try:
                        conn, _ = server.accept()
                    except socket.timeout:
                        continue
                    accepted.append(time.monotonic() - started)
                    conn.close()
            finally:
                sink.close(drain=False)
    print("\nconnection attempts in 5 s: {}".format(", ".join("{:.2f}".format(t) for t in accepted)))
    assert 3 <= len(accepted) <= 5  # at 0, 0.25, 1.25, 3.25 s (paced at 0.5 s it would be about 10)
    assert "the broker refuses or drops our connections; reconnecting with backoff (1 s up to 30 s)" in caplog.text


def test_a_missing_mosquitto_skips_the_broker_tests_but_fails_them_under_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(mosquitto.shutil, "which", lambda name: None)  # not on PATH
    monkeypatch.setattr(mosquitto, "FALLBACK", str(tmp_path / "mosquitto"))  # nor where Debian puts it
    for ci, outcome in ((None, pytest.skip.Exception), ("false", pytest.skip.Exception),
                        ("true", pytest.fail.Exception), ("TRUE", pytest.fail.Exception)):
        if ci is None:
            monkeypatch.delenv("CI", raising=False)
        else:
            monkeypatch.setenv("CI", ci)
        for attempt in (require_mosquitto, Broker(tmp_path / "broker").start):  # the fixture, and a Broker without it
            with pytest.raises((pytest.skip.Exception, pytest.fail.Exception)) as err:  # a wrong one must not skip this test
                attempt()
            assert err.type is outcome and mosquitto.MISSING in str(err.value), (ci, err.type, str(err.value))


class Packet(object):
    """The body of one MQTT control packet, read field by field (big-endian, as MQTT 3.1.1 section 1.5 says)."""

    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, count):
        assert self.at + count <= len(self.data), "the packet ends early"
        self.at += count
        return self.data[self.at - count:self.at]

    def byte(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("!H", self.take(2))[0]

    def binary(self):
        return self.take(self.u16())

    def string(self):
        return self.binary().decode("utf-8")


def read_packet(conn, timeout=5.0):
    """(fixed header byte, Packet of the rest) of the next control packet on `conn`, within `timeout` seconds."""
    deadline = time.monotonic() + timeout

    def exactly(count):
        data = b""
        while len(data) < count:
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = conn.recv(count - len(data))
            assert chunk, "the client closed the connection after {} of {} bytes".format(len(data), count)
            data += chunk
        return data

    header, length = exactly(1)[0], 0
    for position in range(4):  # remaining length: 7 bits a byte, least significant first, at most 4 bytes
        digit = exactly(1)[0]
        length |= (digit & 0x7F) << (7 * position)
        if digit < 0x80:
            return header, Packet(exactly(length))
    raise AssertionError("remaining length longer than 4 bytes")


def test_the_connect_packet_names_the_client_and_leaves_offline_as_a_retained_will(tmp_path):
    """The CONNECT bytes the sink sends to a plain TCP server, parsed per MQTT 3.1.1 (the sink's protocol)."""
    started = time.time()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(10)
        options = {"port": server.getsockname()[1], "outbox": str(tmp_path / "o.sqlite"), "client_id": "rc-car-1",
                   "topic_prefix": "fleet-x/{device}", "keepalive": 45}
        sink = mqtt_sink.open(options, dict(context("raw-dev"), boot_id="boot-raw"))
        try:
            conn, _ = server.accept()
            with conn:  # no CONNACK: the connection just closes after the CONNECT
                header, packet = read_packet(conn)
        finally:
            sink.close(drain=False)
    assert header == 0x10  # CONNECT, no flags
    assert (packet.string(), packet.byte()) == ("MQTT", 4)  # protocol name and level 4 (3.1.1)
    flags = packet.byte()
    assert {"reserved": flags & 1, "clean_session": flags >> 1 & 1, "will": flags >> 2 & 1, "will_qos": flags >> 3 & 3,
            "will_retain": flags >> 5 & 1, "password": flags >> 6 & 1, "username": flags >> 7} == \
        {"reserved": 0, "clean_session": 1, "will": 1, "will_qos": 1, "will_retain": 1, "password": 0, "username": 0}
    assert packet.u16() == 45  # keepalive
    assert packet.string() == "rc-car-1"  # client id
    assert packet.string() == "fleet-x/raw-dev/status"  # will topic
    will = packet.binary()
    assert packet.at == len(packet.data)  # nothing after the will payload: no user name, no password
    status = json.loads(will.decode("utf-8"))
    jsonschema.validate(status, SCHEMAS["status"])
    assert will == json.dumps(status, separators=(",", ":")).encode("utf-8")  # compact JSON, as every message
    assert {key: status[key] for key in ("schema", "device", "boot_id", "state")} == \
        {"schema": "roadedge.status/1", "device": "raw-dev", "boot_id": "boot-raw", "state": "offline"}
    made = datetime.datetime.strptime(status["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    assert started - 1 <= made.timestamp() <= time.time()  # when open() set the will


# -- against mosquitto ------------------------------------------------------------------------------------------------
@needs_mosquitto
def test_round_trip_through_the_pipeline_every_message_schema_valid(tmp_path):
    """Detections, damage events, stats and status of one run arrive schema-valid and equal to what the run made."""
    frames = damage_frames(tmp_path / "frames")
    source = {"type": "images", "path": str(tmp_path / "frames")}
    with Broker(tmp_path / "broker") as broker:
        subscriber = Subscriber(broker.port)
        # max_age_s: a track ends only when the run does, however slowly this shared machine runs it
        runtime = app.build(pipeline_config(tmp_path, broker.port, "rt-dev", frames, source, events={"max_age_s": 600.0}))
        try:
            runtime.pipeline.run()
        finally:
            runtime.close()
        assert wait_until(lambda: len(subscriber.of("detections")) >= frames and len(subscriber.of("events")) >= 4
                          and subscriber.of("status")[-1:] and subscriber.of("status")[-1]["state"] == "stopped", 10)
        subscriber.close()
        late = Subscriber(broker.port, "roadedge/rt-dev/status")  # the retained status
        assert wait_until(lambda: late.of("status"), 5) and late.messages[0][1]["state"] == "stopped" \
            and late.messages[0][2]
        late.close()
    with open(str(tmp_path / "detections.jsonl")) as handle:
        lines = {m["seq"]: m for m in map(json.loads, handle)}
    received = subscriber.of("detections")
    for message in received:
        jsonschema.validate(message, SCHEMAS["detections"])
        assert message == lines[message["seq"]]  # the same object the JSON-lines sink wrote for that frame
    assert sorted(m["seq"] for m in received) == list(range(frames)) == sorted(lines)
    by_frame = {m["frame"]["index"]: m for m in lines.values()}
    damaged = {index: [d["label"] for d in m["detections"]] for index, m in by_frame.items() if m["detections"]}
    assert damaged == dict([(i, ["D43"]) for i in D43_RUN] + [(i, ["D20"]) for i in D20_RUN])  # what the frames are for
    states = [m["state"] for m in subscriber.of("status")]
    assert states == ["online", "stopped"]
    for message in subscriber.of("status"):
        jsonschema.validate(message, SCHEMAS["status"])
    boot_ids = {m["boot_id"] for kind in ("detections", "status", "events", "stats") for m in subscriber.of(kind)}
    assert len(boot_ids) == 1  # one run, one boot_id on every topic

    events = subscriber.of("events")  # min_hits 2: new on a damage's second frame; end for both when the run ends
    for message in events:
        jsonschema.validate(message, SCHEMAS["events"])
    assert [(e["seq"], e["event"], e["track_id"], e["label"], e["first_frame"], e["last_frame"], e["hits"])
            for e in events] == [(0, "new", 1, "D43", D43_RUN[0], D43_RUN[1], 2),
                                 (1, "new", 2, "D20", D20_RUN[0], D20_RUN[1], 2),
                                 (2, "end", 1, "D43", D43_RUN[0], D43_RUN[-1], len(D43_RUN)),
                                 (3, "end", 2, "D20", D20_RUN[0], D20_RUN[-1], len(D20_RUN))]
    for event in events:  # the track's best detection and its first and last frame, as the detections said
        assert event["first_frame"] <= event["best_frame"] <= event["last_frame"]
        best = by_frame[event["best_frame"]]
        detection = best["detections"][0]
        assert (event["score"], event["box"], event["name"]) == (detection["score"], detection["box"], detection["name"])
        assert (event["first_seen"], event["last_seen"]) == (by_frame[event["first_frame"]]["ts"],
                                                             by_frame[event["last_frame"]]["ts"])
        assert event["device"] == "rt-dev" and event["model"] == {"name": best["model"]["name"]} \
            and event["image_key"] is None

    stats = subscriber.of("stats")  # every stats_interval (10 s), and always one when the run ends
    for message in stats:
        jsonschema.validate(message, SCHEMAS["stats"])
    assert stats and [m["seq"] for m in stats] == list(range(len(stats)))
    assert all(m["frames"] < frames for m in stats[:-1]) and stats[-1]["frames"] == frames
    assert stats[-1]["detections"] == len(D43_RUN) + len(D20_RUN) and stats[-1]["dropped_frames"] == 0
    assert stats[-1]["device"] == "rt-dev" and "mqtt" in stats[-1]["sinks"]


@needs_mosquitto
def test_events_and_stats_go_to_their_topics(tmp_path):
    with Broker(tmp_path / "broker") as broker:
        subscriber = Subscriber(broker.port)
        sink = mqtt_sink.open({"port": broker.port, "outbox": str(tmp_path / "o.sqlite"), "require_connection_s": 5,
                               "topic_prefix": "roadedge/fleet-a/{device}"}, context("car-7"))
        event, stats = {"schema": "roadedge.events/1", "seq": 0}, {"schema": "roadedge.stats/1", "seq": 0}
        sink.write(frame_result(0, events=[event], stats=stats))
        sink.write(FrameResult(None, [], None))  # no message: nothing published
        assert sink.stats()["connected"] is True
        sink.close()
        assert wait_until(lambda: len(subscriber.messages) >= 5, 5)
        subscriber.close()
    topics = [(t, p.get("state")) for t, p, _ in subscriber.messages]
    assert topics == [("roadedge/fleet-a/car-7/status", "online"), ("roadedge/fleet-a/car-7/detections", None),
                      ("roadedge/fleet-a/car-7/events", None), ("roadedge/fleet-a/car-7/stats", None),
                      ("roadedge/fleet-a/car-7/status", "stopped")]
    assert subscriber.of("events") == [event] and subscriber.of("stats") == [stats]
    assert sink.stats() == {"outbox_depth": 0, "outbox_dropped": 0, "outbox_not_stored": 0, "published": 3,
                            "publish_failures": 0, "reconnects": 0, "connected": False}


@needs_mosquitto
def test_a_broker_that_refuses_the_login_is_one_clear_line(tmp_path):
    with Broker(tmp_path / "broker", anonymous=False) as broker:
        with pytest.raises(RoadedgeError) as err:
            mqtt_sink.open({"port": broker.port, "outbox": str(tmp_path / "o.sqlite"), "require_connection_s": 5,
                            "username": "rc-car-1", "password": "wrong"}, context())
    assert str(err.value) == "mqtt 127.0.0.1:{}: cannot connect: connection refused by the broker: not authorized" \
        .format(broker.port)


@needs_mosquitto
def test_a_killed_runtime_leaves_offline_as_its_last_will(tmp_path):
    with Broker(tmp_path / "broker") as broker:
        subscriber = Subscriber(broker.port, "roadedge/will-dev/status")
        code = ("import logging, sys, threading, time\nfrom edge.sinks import mqtt\n"
                "mqtt.open({'port': %d, 'outbox': %r, 'require_connection_s': 10}, {'log': logging.getLogger(), "
                "'stop': threading.Event(), 'device': 'will-dev'})\nprint('up', flush=True)\ntime.sleep(60)\n"
                % (broker.port, str(tmp_path / "o.sqlite")))
        process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE)
        try:
            assert process.stdout.readline().strip() == b"up"
            assert wait_until(lambda: [m["state"] for m in subscriber.of("status")] == ["online"], 5)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        finally:
            process.kill()
            process.stdout.close()
        assert wait_until(lambda: [m["state"] for m in subscriber.of("status")] == ["online", "offline"], 5)
        subscriber.close()
    jsonschema.validate(subscriber.of("status")[-1], SCHEMAS["status"])


@needs_mosquitto
def test_a_broker_outage_in_the_middle_of_a_run_loses_nothing(tmp_path):
    """... and delivery resumes within RESUME_S of the broker's return: measured from the moment the broker's port
    is open again to the arrival at the subscriber of the first message made while the broker was down (so it can
    only have come through the sink's new connection)."""
    frames = 140  # 7 s at 20 fps; the broker is away from about 1.5 s to 5.5 s
    broker = Broker(tmp_path / "broker", persistence=True).start()
    try:  # the subscriber reconnects every 0.1 s: its own reconnection adds at most that to the delay measured
        subscriber = Subscriber(broker.port, "roadedge/outage-dev/detections", client_id="outage-sub", persistent=True,
                                reconnect_s=0.1)
        source = {"type": "opencv", "uri": SAMPLE_VIDEO, "realtime": False, "max_fps": 20.0}
        runtime = app.build(pipeline_config(tmp_path, broker.port, "outage-dev", frames, source, drain_timeout_s=20.0))
        sink = mqtt_of(runtime)
        worker = threading.Thread(target=runtime.pipeline.run)
        worker.start()
        try:
            assert wait_until(lambda: len(subscriber.of("detections")) >= 30, 30)
            broker.stop()
            outage, depth = time.monotonic(), 0
            made_in_outage = runtime.pipeline.envelope.count("detections")  # this seq and later: made with no broker
            while time.monotonic() - outage < 4.0:
                depth = max(depth, sink.stats()["outbox_depth"])
                time.sleep(0.05)
            broker.start()
            back = time.monotonic()  # its port is open again
            worker.join(60)
        finally:
            runtime.pipeline.stop()
            worker.join(10)
            runtime.close()
        sent = list(range(runtime.pipeline.envelope.count("detections")))
        assert wait_until(lambda: set(sent) <= {m["seq"] for m in subscriber.of("detections")}, 20)
        subscriber.close()
    finally:
        broker.stop()
    numbers = seq_report("outage ({} frames, broker down 4 s, {} messages waited in the outbox at most)".format(
        frames, depth), sent, [m["seq"] for m in subscriber.of("detections")])
    stats = sink.stats()
    print("sink: {}".format(stats))
    resumed = min(at for at, m in subscriber.timed("detections") if m["seq"] >= made_in_outage) - back
    print("reconnect delay: the first message made during the outage arrived {:.3f} s after the broker was back "
          "(bound {} s)".format(resumed, RESUME_S))
    assert len(sent) == frames and numbers["lost"] == 0 and depth >= 20 and made_in_outage < frames
    assert stats["reconnects"] >= 1 and stats["outbox_depth"] == 0 and stats["outbox_dropped"] == 0
    assert 0 <= resumed < RESUME_S


def _outbox_rows(path, readonly):
    uri = "file:{}?mode=ro".format(path) if readonly else "file:{}".format(path)
    db = sqlite3.connect(uri, uri=True, timeout=5)
    try:
        return [(topic, json.loads(bytes(payload))) for topic, payload in
                db.execute("SELECT topic, payload FROM messages ORDER BY id")]
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        db.close()


@needs_mosquitto
def test_kill_9_keeps_the_outbox_and_the_restart_sends_it_first(tmp_path):
    port, outbox = free_port(), str(tmp_path / "outbox.sqlite")
    (tmp_path / "settings.yaml").write_text("pipeline: {publish_empty: true}\n")
    command = [sys.executable, "-m", "roadedge", "run", "--config", str(tmp_path / "settings.yaml"), "--source", "sample",
               "--no-realtime", "--max-fps", "25", "--no-preview", "--output", "jsonl:" + str(tmp_path / "d.jsonl"),
               "--device-name", "kill-dev", "--mqtt", "mqtt://127.0.0.1:{}".format(port), "--outbox", outbox]
    with open(str(tmp_path / "first.log"), "wb") as log:  # the broker is down: everything stays in the outbox
        first = subprocess.Popen(command + ["--loop"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        try:
            assert wait_until(lambda: os.path.exists(outbox) and len(_outbox_rows(outbox, True)) >= 20, 60, 0.1), \
                (tmp_path / "first.log").read_text()
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            first.kill()
    stored = [m for topic, m in _outbox_rows(outbox, False) if topic == "roadedge/kill-dev/detections"]
    boot = stored[0]["boot_id"]
    assert {m["boot_id"] for m in stored} == {boot} and [m["seq"] for m in stored] == list(range(len(stored)))
    with Broker(tmp_path / "broker", port=port):
        subscriber = Subscriber(port, "roadedge/kill-dev/detections")
        second = subprocess.run(command + ["--frames", "10", "--drain-timeout", "20"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
        assert second.returncode == 0, second.stderr.decode()
        assert wait_until(lambda: len(subscriber.of("detections")) >= len(stored) + 10, 10)
        subscriber.close()
    arrived = subscriber.of("detections")
    old = [m["seq"] for m in arrived if m["boot_id"] == boot]
    new = [m for m in arrived if m["boot_id"] != boot]
    numbers = seq_report("kill -9 (stored in the outbox before the kill, delivered after the restart)",
                         [m["seq"] for m in stored], old)
    assert numbers["lost"] == 0 and numbers["sent"] >= 20
    assert sorted(m["seq"] for m in new) == list(range(10))
    first_new = arrived.index(new[0])
    assert all(m["boot_id"] == boot for m in arrived[:first_new]) and len(set(old)) == len(stored)  # old ones first
    assert "from an earlier run are sent first" in second.stderr.decode()
    assert _outbox_rows(outbox, False) == []


# -- TLS -------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_options(pki, port, tmp_path, client="client", ca="ca"):
    return {"host": "127.0.0.1", "port": port, "tls": True, "cert": pki[client] + ".crt", "key": pki[client] + ".key",
            "ca": pki[ca] + ".crt", "outbox": str(tmp_path / "o.sqlite"), "require_connection_s": 5}


@needs_mosquitto
def test_tls_with_client_certificates_delivers_and_a_wrong_certificate_is_refused_clearly(tmp_path, pki):
    tls = {"cafile": pki["ca"] + ".crt", "certfile": pki["server"] + ".crt", "keyfile": pki["server"] + ".key"}
    with Broker(tmp_path / "broker", tls=tls) as broker:
        subscriber = Subscriber(broker.port, tls={"ca": pki["ca"] + ".crt", "cert": pki["client"] + ".crt",
                                                  "key": pki["client"] + ".key"}, client_id="tls-sub")
        sink = mqtt_sink.open(tls_options(pki, broker.port, tmp_path), context("rc-car-1"))
        for seq in range(5):
            sink.write(frame_result(seq))
        sink.close()
        assert wait_until(lambda: len(subscriber.of("detections")) == 5, 5)
        assert [m["seq"] for m in subscriber.of("detections")] == list(range(5))
        subscriber.close()
        where = "mqtt 127.0.0.1:{}: ".format(broker.port)
        started = time.monotonic()
        with pytest.raises(RoadedgeError) as err:  # a client certificate from a CA the broker does not trust
            mqtt_sink.open(tls_options(pki, broker.port, tmp_path, client="rogue"), context("rc-car-1"))
        message = str(err.value)
        print("\nwrong client certificate: " + message)
        assert message.startswith(where + "cannot connect: TLS handshake failed: the broker ")
        assert "client certificate" in message and "\n" not in message and time.monotonic() - started < 4.5
        with pytest.raises(RoadedgeError) as err:  # a broker certificate we do not trust
            mqtt_sink.open(tls_options(pki, broker.port, tmp_path, ca="rogue-ca"), context("rc-car-1"))
        print("untrusted broker: " + str(err.value))
        assert str(err.value).startswith(where + "cannot connect: TLS handshake failed: the broker's "
                                                 "certificate is not trusted (")
