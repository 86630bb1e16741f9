"""MQTT: detections, events, stats and status to any MQTT broker (AWS IoT Core, Greengrass, mosquitto), none lost.

Topics under `topic_prefix` (default roadedge/<device>): `detections` or, for a
segmentation model, `segmentation` (the same compact JSON the JSON-lines sink
writes for that frame), `events`, `stats`, and
`status` (retained: `online` on connect, `degraded` while frames go without
inference, `stalled` while the watchdog reopens a part, `offline` as the last
will, `stopped` on a clean exit). MQTT 3.1.1 (what AWS IoT speaks), QoS 1, client id = the
thing name (the device name unless `client_id` is set), TLS with a client
certificate (port 8883, or 443 with ALPN x-amzn-mqtt-ca).

Store and forward: write() only puts the messages into the on-disk outbox
(edge.outbox) and wakes the sender thread; it never waits for the network. The
sender publishes outbox rows in id order, at most `max_inflight` without a
PUBACK, and deletes a row only when its PUBACK arrives. On every (re)connect
paho's in-memory copies are dropped and everything unacknowledged is sent again
from the outbox, in order: a subscriber may see a duplicate (dedupe on boot_id +
seq) but nothing is lost. A backlog left by an earlier run goes first. The
connection is made in the background, so a broker that is down does not stop
the runtime, unless `require_connection_s` asks open() to wait for it. A full
disk (or a read-only or failing one) does not stop it either: the outbox counts
what it could not store (`outbox_not_stored` in the stats) and logs it by name.

Reconnecting (paho's loop, paced by the sink): while the broker cannot be
reached (refused, unreachable, timed out) paho tries every RECONNECT_S[1]
seconds at most (0.5: delivery resumes within about half a second of the
broker's return, two attempts a second). Once the broker itself says no (TLS
or login refused, no CONNACK, or two connections in a row lost within
SHORT_LIVED_S), paho backs off to BACKOFF_S (1 s doubling to 30 s): hammering
a broker that refuses helps nothing, and AWS IoT throttles a client id that
connects more than once a second. A connection that then lasts SHORT_LIVED_S
brings the quick pace back.

close() waits up to `drain_timeout_s` for the outbox to empty (the shared drain
of edge.sinks.durable, which also declares the outbox options), publishes the
retained `stopped` status and disconnects cleanly (so the broker does not send
the will); whatever is left stays on disk for the next start.
"""
import json
import logging
import socket
import threading
import time
import uuid

from edge import topics
from edge.messages import Envelope, kind_of, model_fields
from edge.plugins import Option, at_least, between, checked
from edge.sinks import durable
from edge.sinks.base import Sink
from edge.sinks.mqtt_connection import client_class, describe_failure, tls_context
from roadedge.core.errors import RoadedgeError

TYPE = "mqtt"
OPTIONS = dict({
    "host": Option(str, "127.0.0.1", "broker host (AWS IoT: <prefix>-ats.iot.<region>.amazonaws.com)"),
    "port": Option(int, 1883, "broker port: 1883 plain, 8883 TLS, 443 TLS with alpn", check=between(1, 65535)),
    "tls": Option(bool, False, "TLS; cert + key for client-certificate authentication (AWS IoT Core)"),
    "cert": Option(str, "", "client certificate (PEM), with tls"),
    "key": Option(str, "", "private key of the client certificate (PEM), with tls"),
    "ca": Option(str, "", "CA certificate(s) to trust for the broker (PEM); empty = the system's trusted CAs"),
    "alpn": Option(bool, False, "offer ALPN x-amzn-mqtt-ca: MQTT over TLS on port 443 to AWS IoT Core (needs tls)"),
    "client_id": Option(str, "", "MQTT client id, the AWS IoT thing name; empty = the device name"),
    "topic_prefix": Option(str, "roadedge/{device}", "topics are <prefix>/detections|events|status|stats"),
    "keepalive": Option(int, 30, "seconds between keep-alive pings (AWS IoT accepts 30..1200)",
                        check=at_least(5, " seconds")),
    "username": Option(str, "", "user name for brokers with password authentication"),
    "password": Option(str, "", "password for brokers with password authentication"),
    "max_inflight": Option(int, 20, "messages published and not yet acknowledged, at most", check=at_least(1)),
    "require_connection_s": Option(float, 0.0, "open() waits this long for the first connection and fails with the "
                                   "reason if there is none; 0 = do not wait (connect in the background)",
                                   check=at_least(0, " s")),
}, **durable.outbox_options("outbox", drain_timeout_s=10.0))
RECONNECT_S = (0.25, 0.5)  # paho's reconnect delay (first, longest) while the broker cannot be reached
BACKOFF_S = (1, 30)  # ... once the broker refuses us (or drops every connection at once)
SHORT_LIVED_S = 10.0  # a connection lost sooner counts as one the broker did not keep
def to_json(message):
    """Compact JSON bytes, exactly as the JSON-lines sink writes a line (without the newline)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")


class MqttSink(Sink):
    TYPE = TYPE  # the name its counters go under in the stats message
    needs_image = False

    def __init__(self, client, outbox, prefix, device, boot_id, options, log, model=None):
        self.client, self.outbox, self.log = client, outbox, log
        self.model = model  # the running model ({name, version, sha256}) every status message names
        self.subscriptions = {}  # topic -> handler(topic, payload bytes), subscribed again on every connection
        self.connect_hooks = []  # callables run (on paho's thread) after each connection: the shadow asks for its state
        self.device, self.boot_id = device, boot_id
        self.envelope = Envelope(device, boot_id)  # status messages: online, degraded, stalled, stopped
        self.state = "online"  # what the status topic says while connected (the loop sets degraded or stalled)
        self.client_id = options["client_id"] or device
        self.where = "{}:{}".format(options["host"], options["port"])
        self.topics = {kind: topics.topic(prefix, kind) for kind in topics.KINDS}
        self.max_inflight = max(1, int(options["max_inflight"]))
        self.drain_timeout_s = float(options["drain_timeout_s"])
        self.published = self.publish_failures = self.reconnects = 0
        self._cond = threading.Condition()
        self._acked, self._wake = [], False
        self._generation = 0  # +1 per successful connection: the sender then re-sends from the outbox's start
        self._connected = self._ever_connected = self._stopping = self._closed = False
        self._failure = self._logged_failure = self._log_error = None
        self._lost_at = self._connected_at = None
        self._strikes, self._backing_off = 0, False  # refusals / short-lived connections in a row; paho's pace
        self._final_stats = None
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        client.on_publish, client.on_log = self._on_publish, self._on_log
        client.roadedge_attempt_failed = self._attempt_failed
        self._sender = threading.Thread(target=self._send_loop, name="roadedge-mqtt-sender", daemon=True)

    # -- the pipeline's side -------------------------------------------------------------------------------------
    def write(self, result):
        if self._closed:
            return
        items = []
        if result.message is not None:
            items.append((self.topics[kind_of(result.message)], to_json(result.message)))
        for event in getattr(result, "events", None) or ():
            items.append((self.topics["events"], to_json(event)))
        stats = getattr(result, "stats", None)
        if stats is not None:
            items.append((self.topics["stats"], to_json(stats)))
        if items:
            self.outbox.put_many(items)
            self._notify()

    def publish_status(self, message):
        """The runtime's state changed (degraded, stalled, online again): retained on the status topic now if
        connected, and again on every reconnect."""
        self.state = message["state"]
        self.model = message.get("model", self.model)
        with self._cond:
            connected = self._connected
        if connected and not self._closed:
            self.client.publish(self.topics["status"], to_json(message), 1, True)

    def subscribe(self, topic, handler):
        """Call handler(topic, payload) for each message on `topic` (QoS 1, subscribed again on every connection; the
        AWS IoT device shadow's topics, edge.models_update.shadow). Called on paho's thread: hand work on quickly."""
        self.subscriptions[topic] = handler

        def deliver(client, userdata, message):
            try:
                handler(message.topic, message.payload)
            except Exception as err:  # a handler's bug must not kill paho's network thread
                self.log.error("mqtt %s: handling a message on %s failed: %s", self.where, message.topic, err)

        self.client.message_callback_add(topic, deliver)
        with self._cond:
            connected = self._connected
        if connected:
            self.client.subscribe(topic, 1)

    def send(self, topic, message):
        """Publish a JSON message on any topic through the outbox (in order with everything else, never lost)."""
        if self._closed:
            return
        self.outbox.put_many([(topic, to_json(message))])
        self._notify()

    def stats(self):
        """Counters for the stats message and Prometheus."""
        if self._final_stats is not None:
            return dict(self._final_stats)
        with self._cond:
            connected = self._connected
        return {"outbox_depth": self.outbox.depth(), "outbox_dropped": self.outbox.dropped,
                "outbox_not_stored": self.outbox.not_stored, "published": self.published,
                "publish_failures": self.publish_failures, "reconnects": self.reconnects, "connected": connected}

    def _notify(self):
        with self._cond:
            self._wake = True
            self._cond.notify_all()

    # -- paho's callbacks (its network thread) ---------------------------------------------------------------------
    def _attempt_failed(self, error):
        text, permanent = describe_failure(error)
        self._failed(text, permanent)
        if permanent:  # TLS refused: the broker was reached and said no
            self._strike()

    def _strike(self, count=True):
        """One more refusal or short-lived connection (count) or a connection that lasted (not count): set paho's
        reconnect pace (quick while the broker is merely away, backing off once it refuses us)."""
        self._strikes = self._strikes + 1 if count else 0
        backing_off = self._strikes >= 2
        if backing_off != self._backing_off:
            self._backing_off = backing_off
            self.client.reconnect_delay_set(*(BACKOFF_S if backing_off else RECONNECT_S))
            if backing_off and not self._stopping:
                self.log.warning("mqtt %s: the broker refuses or drops our connections; reconnecting with backoff "
                                 "(%g s up to %g s)", self.where, BACKOFF_S[0], BACKOFF_S[1])

    def _on_log(self, client, userdata, level, buf):
        if level == 8:  # MQTT_LOG_ERR: e.g. "failed to receive on socket: [SSL: TLSV1_ALERT_UNKNOWN_CA] ..."
            self._log_error = buf
            self.log.debug("mqtt %s: paho: %s", self.where, buf)

    def _failed(self, text, permanent):
        with self._cond:
            self._failure = (text, permanent)
            repeated, self._logged_failure = text == self._logged_failure, text
            self._cond.notify_all()
        if not repeated and not self._stopping:
            (self.log.error if permanent else self.log.warning)(
                "mqtt %s: %s; retrying with backoff, messages wait in the outbox", self.where, text)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._failed("connection refused by the broker: {}".format(str(reason_code).lower()), True)
            return  # paho closes the connection: _on_disconnect counts the refusal
        client.drop_out_messages()  # their rows are still in the outbox: the sender sends them again, in order
        client.publish(self.topics["status"], to_json(self.envelope.status(state=self.state, model=self.model)), 1, True)
        for topic in self.subscriptions:
            client.subscribe(topic, 1)
        with self._cond:
            first, self._ever_connected, self._connected = not self._ever_connected, True, True
            self._generation += 1
            self._failure = self._logged_failure = self._log_error = None
            self.reconnects += 0 if first else 1
            lost_at, self._wake = self._lost_at, True
            self._connected_at = time.monotonic()
            self._cond.notify_all()
        for hook in self.connect_hooks:
            hook()
        if first:
            self.log.info("mqtt %s: connected as %r, publishing to %s/...; %d messages in the outbox", self.where,
                          self.client_id, self.topics["status"].rsplit("/", 1)[0],
                          self.outbox.depth())
        else:
            self.log.info("mqtt %s: reconnected after %.1f s; sending the %d messages of the outbox", self.where,
                          time.monotonic() - (lost_at or time.monotonic()), self.outbox.depth())

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self._cond:
            was, self._connected = self._connected, False
            if was:
                self._lost_at = time.monotonic()
            lived = self._lost_at - self._connected_at if was and self._connected_at is not None else None
            self._cond.notify_all()
        if not self._stopping:  # a connection the broker did not keep (or never confirmed) counts against it
            self._strike(lived is None or lived < SHORT_LIVED_S)
        if was and not self._stopping:
            why = self._log_error or str(reason_code)
            self.log.warning("mqtt %s: connection lost (%s); messages wait in the outbox", self.where, why)
        elif not was and self._log_error:  # e.g. the broker refused our certificate after the TLS 1.3 handshake
            self._failed(*describe_failure(self._log_error))
        self._log_error = None

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._cond:  # only noted here (paho holds its own lock); the sender thread acks the row
            self._acked.append(mid)
            self._cond.notify_all()

    # -- the sender thread -------------------------------------------------------------------------------------------
    def _send_loop(self):
        state = {"inflight": {}, "last_id": 0, "seen": 0}  # inflight: mid -> outbox row id
        last_error = None
        while True:
            try:
                if self._send_step(state):
                    return
            except Exception as err:  # e.g. the outbox's disk failed: keep trying, the rows are still there
                if str(err) != last_error:
                    self.log.error("mqtt %s: sending from the outbox failed: %s; retrying", self.where, err)
                last_error = str(err)
                time.sleep(1.0)

    def _send_step(self, state):
        """Ack what was acknowledged, then publish the next rows; True when it is time to stop."""
        inflight = state["inflight"]
        with self._cond:
            if not (self._wake or self._acked or self._stopping or self._generation != state["seen"]):
                self._cond.wait(0.5)
            acked, self._acked, self._wake = self._acked, [], False
            generation, connected, stopping = self._generation, self._connected, self._stopping
        done = [inflight.pop(mid) for mid in acked if mid in inflight]
        if done:
            self.outbox.ack(done)
            self.published += len(done)
        if stopping == "now":
            return True
        if generation != state["seen"]:  # a new connection: everything unacknowledged goes again, oldest first
            inflight.clear()
            state["last_id"], state["seen"] = 0, generation
        if not connected or len(inflight) >= self.max_inflight:
            return False
        for row in self.outbox.pending(self.max_inflight - len(inflight), state["last_id"]):
            try:
                info = self.client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
            except ValueError as err:  # a message no broker would take: drop it rather than block the queue
                self.log.error("mqtt %s: dropping outbox message %d on %s: %s", self.where, row.id, row.topic, err)
                self.outbox.ack(row.id)
                self.publish_failures += 1
                continue
            if info.rc != 0:  # not connected any more: the next connection re-sends from the outbox
                self.publish_failures += 1
                break
            inflight[info.mid] = row.id
            state["last_id"] = row.id
        return False

    def start(self, options):
        self._sender.start()
        self.client.connect_async(options["host"], options["port"], keepalive=options["keepalive"])
        self.client.loop_start()

    def wait_connected(self, seconds):
        """Wait up to `seconds` for the first connection; stops early on a permanent failure (TLS, refused login)."""
        deadline = time.monotonic() + seconds
        with self._cond:
            while not self._ever_connected and not (self._failure and self._failure[1]):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.1))
            return self._ever_connected, self._failure

    # -- stopping ------------------------------------------------------------------------------------------------------
    def close(self, drain=True):
        if self._closed:
            return
        self._closed = True
        self._notify()
        left = durable.drain(self.outbox.depth, self._cond, self.drain_timeout_s if drain else 0.0)
        if left and drain:
            self.log.warning("mqtt %s: %d message%s not acknowledged within drain_timeout_s=%g; they stay in %s and "
                             "go first at the next start", self.where, left, "" if left == 1 else "s",
                             self.drain_timeout_s, self.outbox.path)
        with self._cond:
            self._stopping = "now"
            self._cond.notify_all()
        self._sender.join(5.0)
        with self._cond:
            connected = self._connected
        if connected:
            try:
                info = self.client.publish(self.topics["status"],
                                           to_json(self.envelope.status(state="stopped", model=self.model)), 1, True)
                info.wait_for_publish(2.0)
            except (ValueError, RuntimeError) as err:
                self.log.warning("mqtt %s: could not publish the stopped status: %s", self.where, err)
        self.client.drop_out_messages()
        self.client.disconnect()  # a clean DISCONNECT: the broker discards the last will
        stopper = threading.Thread(target=self.client.loop_stop, name="roadedge-mqtt-stop", daemon=True)
        stopper.start()
        stopper.join(5.0)
        self._final_stats = dict(self.stats(), connected=False)
        self.outbox.close()


def open(options, context):
    options = checked(OPTIONS, options, "mqtt sink")
    context = context or {}
    log = context.get("log") or logging.getLogger("roadedge")
    device = context.get("device") or socket.gethostname().split(".")[0] or "roadedge"
    if options["alpn"] and not options["tls"]:
        raise RoadedgeError("mqtt sink: alpn needs tls (mqtts://)")
    prefix = topics.validate_topic_prefix(options["topic_prefix"], device, "mqtt sink: topic_prefix")
    client_id = options["client_id"] or device
    if len(client_id.encode("utf-8")) > 128:
        raise RoadedgeError("mqtt sink: client_id {!r}: longer than 128 bytes (AWS IoT's limit)".format(client_id))
    ssl_context = tls_context(options) if options["tls"] else None
    if not options["tls"] and (options["cert"] or options["key"] or options["ca"]):
        log.warning("mqtt %s:%d: cert/key/ca ignored: tls is off", options["host"], options["port"])
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise RoadedgeError("mqtt sink: paho-mqtt is not installed (pip install 'paho-mqtt>=2,<3')") from None
    outbox = durable.open_outbox(options, "outbox", device, log)
    boot_id = context.get("boot_id") or uuid.uuid4().hex
    client = client_class(mqtt)(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True,
                                 protocol=mqtt.MQTTv311)
    client.reconnect_delay_set(*RECONNECT_S)  # the sink switches to BACKOFF_S once the broker refuses it
    client.max_inflight_messages_set(0)  # the sink's sender keeps the window (max_inflight)
    model = context.get("model")
    offline = Envelope(device, boot_id).status(state="offline", model=model)
    client.will_set(topics.topic(prefix, "status"), to_json(offline), qos=1, retain=True)
    if options["username"]:
        client.username_pw_set(options["username"], options["password"] or None)
    if ssl_context is not None:
        client.tls_set_context(ssl_context)
    sink = MqttSink(client, outbox, prefix, device, boot_id, options, log,
                    model=model_fields(model) if model is not None else None)
    sink.start(options)
    if options["require_connection_s"] > 0:
        connected, failure = sink.wait_connected(options["require_connection_s"])
        if not connected:
            sink.close(drain=False)
            if failure and failure[1]:  # permanent: TLS or login refused, no point in waiting longer
                raise RoadedgeError("mqtt {}: cannot connect: {}".format(sink.where, failure[0]))
            raise RoadedgeError("mqtt {}: no connection within {:g} s: {}".format(
                sink.where, options["require_connection_s"], failure[0] if failure else "no answer"))
    return sink
