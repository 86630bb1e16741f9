"""The MQTT sink against a real mosquitto on 127.0.0.1 (tests/mosquitto.py starts and stops it): round trip with
schema checks, a broker outage, kill -9 of the runtime, TLS with client certificates. No other network traffic.

Run with -s to see the numbers (sent, received, duplicated, lost) of the outage and kill -9 tests.
"""
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import jsonschema
import paho.mqtt.client as mqtt
import pytest

from edge import app, config
from edge.messages import detections_message
from edge.processing.decoders import Detection
from edge.sinks import mqtt as mqtt_sink
from edge.sinks.base import FrameResult
from edge.sources.spec import SAMPLE_VIDEO
from roadedge.core.errors import RoadedgeError
from tests.mosquitto import Broker, free_port, require_mosquitto

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMAS = {name: json.load(open(os.path.join(ROOT, "edge", "schemas", name + "-v1.schema.json")))
           for name in ("detections", "status")}

needs_mosquitto = pytest.mark.usefixtures("mosquitto_installed")


@pytest.fixture
def mosquitto_installed():
    require_mosquitto()


def context(device="test-dev"):
    return {"log": logging.getLogger("test-mqtt"), "stop": threading.Event(), "device": device, "source_fps": None}


def frame_result(seq, events=(), stats=None):
    message = detections_message("test-dev", "boot-1", seq, 1.7e9 + seq, seq, (640, 360), "demo", "0" * 64, 5.0,
                                 [Detection(5, "D40", 0.9, (0.1, 0.2, 0.3, 0.4))])
    return FrameResult(None, [], message, events=list(events), stats=stats)


def wait_until(predicate, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class Subscriber(object):
    """A paho client on `topic` collecting (topic, JSON, retain). persistent: a session that survives its own and
    the broker's restarts (QoS 1 messages are queued for it meanwhile)."""

    def __init__(self, port, topic="roadedge/#", client_id="", persistent=False, tls=None):
        self.messages, self.lock, self.subscribed = [], threading.Lock(), threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent)
        self.client.reconnect_delay_set(1, 1)
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

    def of(self, kind):
        with self.lock:
            return [payload for topic, payload, _ in self.messages if topic.endswith("/" + kind)]

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


def pipeline_config(tmp_path, port, device, frames, source=None, **mqtt_options):
    layer = {"device_name": device,
             "source": source or {"type": "opencv", "uri": SAMPLE_VIDEO, "realtime": False},
             "pipeline": {"frames": frames, "publish_empty": True},
             "outputs": [{"type": "jsonl", "path": str(tmp_path / "detections.jsonl")},
                         dict({"type": "mqtt", "port": port, "outbox": str(tmp_path / "outbox.sqlite")}, **mqtt_options)]}
    return config.load("x86-openvino-cpu", None, layer)


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


# -- against mosquitto ------------------------------------------------------------------------------------------------
@needs_mosquitto
def test_round_trip_through_the_pipeline_every_message_schema_valid(tmp_path):
    with Broker(tmp_path / "broker") as broker:
        subscriber = Subscriber(broker.port)
        runtime = app.build(pipeline_config(tmp_path, broker.port, "rt-dev", 60))
        try:
            runtime.pipeline.run()
        finally:
            runtime.close()
        assert wait_until(lambda: len(subscriber.of("detections")) >= 60
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
    assert sorted(m["seq"] for m in received) == list(range(60)) == sorted(lines)
    states = [m["state"] for m in subscriber.of("status")]
    assert states == ["online", "stopped"]
    for message in subscriber.of("status"):
        jsonschema.validate(message, SCHEMAS["status"])
    boot_ids = {m["boot_id"] for kind in ("detections", "status", "events", "stats") for m in subscriber.of(kind)}
    assert len(boot_ids) == 1  # one run, one boot_id on every topic
    for kind in ("events", "stats"):
        schema = json.load(open(os.path.join(ROOT, "edge", "schemas", kind + "-v1.schema.json")))
        assert subscriber.of(kind) or kind == "events"
        for message in subscriber.of(kind):
            jsonschema.validate(message, schema)


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
    assert sink.stats() == {"outbox_depth": 0, "outbox_dropped": 0, "published": 3, "publish_failures": 0,
                            "reconnects": 0, "connected": False}


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
    frames = 140  # 7 s at 20 fps; the broker is away from about 1.5 s to 5.5 s
    broker = Broker(tmp_path / "broker", persistence=True).start()
    try:
        subscriber = Subscriber(broker.port, "roadedge/outage-dev/detections", client_id="outage-sub", persistent=True)
        source = {"type": "opencv", "uri": SAMPLE_VIDEO, "realtime": False, "max_fps": 20.0}
        runtime = app.build(pipeline_config(tmp_path, broker.port, "outage-dev", frames, source, drain_timeout_s=20.0))
        sink = mqtt_of(runtime)
        worker = threading.Thread(target=runtime.pipeline.run)
        worker.start()
        try:
            assert wait_until(lambda: len(subscriber.of("detections")) >= 30, 30)
            broker.stop()
            outage, depth = time.monotonic(), 0
            while time.monotonic() - outage < 4.0:
                depth = max(depth, sink.stats()["outbox_depth"])
                time.sleep(0.05)
            broker.start()
            worker.join(60)
        finally:
            runtime.pipeline.stop()
            worker.join(10)
            runtime.close()
        sent = list(range(runtime.pipeline.seq))
        assert wait_until(lambda: set(sent) <= {m["seq"] for m in subscriber.of("detections")}, 20)
        subscriber.close()
    finally:
        broker.stop()
    numbers = seq_report("outage ({} frames, broker down 4 s, {} messages waited in the outbox at most)".format(
        frames, depth), sent, [m["seq"] for m in subscriber.of("detections")])
    stats = sink.stats()
    print("sink: {}".format(stats))
    assert len(sent) == frames and numbers["lost"] == 0 and depth >= 20
    assert stats["reconnects"] >= 1 and stats["outbox_depth"] == 0 and stats["outbox_dropped"] == 0


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
def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_pki(folder):
    """A CA, a server certificate for 127.0.0.1, a client certificate; and a second CA with its own client."""
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "rogue-ca"):
        _openssl("req", "-x509", *key, "-days", "2", "-subj", "/CN=roadedge test " + ca, "-keyout", ca + ".key",
                 "-out", ca + ".crt", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    leaves = (("server", "ca", "127.0.0.1", "serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"),
              ("client", "ca", "rc-car-1", "clientAuth", ""), ("rogue", "rogue-ca", "rc-car-1", "clientAuth", ""))
    for serial, (name, ca, cn, usage, extra) in enumerate(leaves, 1):
        with open(os.path.join(folder, name + ".ext"), "w") as handle:
            handle.write(extra + "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={}\n"
                         "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n".format(usage))
        _openssl("req", "-new", *key, "-subj", "/CN=" + cn, "-keyout", name + ".key", "-out", name + ".csr", cwd=folder)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key", "-set_serial",
                 str(serial), "-days", "2", "-extfile", name + ".ext", "-out", name + ".crt", cwd=folder)
    return {name: os.path.join(folder, name) for name in ("ca", "rogue-ca", "server", "client", "rogue")}


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
