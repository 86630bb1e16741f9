"""Publish the v1 messages through the local AWS IoT Greengrass core: v1 (a DeepLens Lambda) or v2 (a component).

Topics: `<topic_prefix>/detections` or `/segmentation` (result.message, by its kind), `<topic_prefix>/events`
(each of result.events) and `<topic_prefix>/stats` (result.stats), payloads
compact UTF-8 JSON. The prefix follows AWS IoT's topic rules (edge.topics).

- v1: `greengrasssdk.client("iot-data").publish(topic=..., payload=...,
  queueFullPolicy="AllOrException")`, the Greengrass Core SDK for Python that a
  DeepLens Lambda has (IoTDataPlane.Client.publish takes keyword arguments
  only: topic is required, payload is bytes, queueFullPolicy is "BestEffort",
  "AllOrException" or ""; with "AllOrException" a full core queue is an
  error we count instead of a silent partial drop). The core routes the
  message by the group's subscriptions, with its own QoS; `qos` does not apply.
- v2: `GreengrassCoreIPCClientV2().publish_to_iot_core(topic_name=..., qos=...,
  payload=bytes)` from awsiotsdk (`awsiot.greengrasscoreipc.clientv2`), with
  `awsiot.greengrasscoreipc.model.QOS.AT_LEAST_ONCE` ("1") or AT_MOST_ONCE
  ("0"). The component's recipe must allow `aws.greengrass#PublishToIoTCore`
  on these topics (deploy/). A connection error drops the client; the next
  attempt reconnects (counted in `reconnects`, with back-off).
- auto: v1 if `greengrasssdk` imports, else v2.

Device libraries are imported in open() only. Store and forward, as in the
mqtt sink: write() only commits the messages to an on-disk outbox (edge.outbox,
SQLite WAL; `outbox` is its path, default
~/.cache/roadedge/greengrass-outbox-<device>.sqlite, bounded by `outbox_max_mb`
and `outbox_max_age_s`: beyond them the oldest go first, counted in
`outbox_dropped`), so a slow or absent core never stalls the pipeline and a
crash or kill -9 does not lose what was queued (a power cut at most the last
writes the OS had not synced: edge/outbox.py, Durability). A worker thread
publishes the rows in order and deletes a row only after publish() returned
without error (v1: the SDK handed it to the core; v2: PublishToIoTCore was
answered, for QoS 1 the nucleus accepted it). A failed publish is logged once
per run of failures, counted (`publish_failures`), never raised into the
pipeline; the message stays and is tried again with back-off (1 s doubling to
30 s), so the order is kept. A backlog left by an earlier run is published first.

close() waits up to `drain_timeout_s` for the outbox to empty (the shared drain
of edge.sinks.durable); what is left stays on disk, logged, for the next start.
A full (or read-only, or failing) disk does not stop the pipeline either: the
outbox counts what it could not store (`outbox_not_stored`) and logs it by name.
`stats()` returns the counters (published, publish_failures, outbox_depth,
outbox_dropped, outbox_not_stored, reconnects, connected).
"""
import json
import logging
import socket
import threading
import time

from edge.messages import kind_of
from edge.plugins import Option, checked
from edge.sinks import durable
from edge.sinks.base import Sink
from edge.topics import DEFAULT_PREFIX, KINDS, topic, validate_topic_prefix
from roadedge.core.errors import RoadedgeError

TYPE = "greengrass"
VERSIONS = ("auto", "v1", "v2")
OPTIONS = dict({
    "version": Option(str, "auto", "v1 (greengrasssdk: DeepLens Lambda), v2 (awsiotsdk IPC), or auto (v1 if "
                                   "greengrasssdk imports, else v2)", choices=VERSIONS),
    "topic_prefix": Option(str, DEFAULT_PREFIX, "topics are <prefix>/detections, /events, /stats; {device} is "
                                                "replaced by the device name"),
    "qos": Option(int, 1, "MQTT QoS to AWS IoT Core, 0 or 1 (v2 only)", choices=(0, 1)),
}, **durable.outbox_options("greengrass-outbox", drain_timeout_s=5.0))
RETRY_S = (1.0, 30.0)  # after a failed publish: the first wait before trying again, and the longest
BATCH = 50  # outbox rows read at a time
ACK_EVERY_S = 0.2  # published rows are deleted in groups: at a batch's end, on a failure, or once a group is this old
JOIN_S = 1.0  # after the drain, how long close() waits for a publish stuck in the core
log = logging.getLogger("roadedge.sinks.greengrass")


class V1Publisher(object):
    """Greengrass v1: the Lambda's IoT data-plane client; one call per message, no connection of its own."""

    version = "v1"

    def __init__(self, client):
        self.client = client
        self.connected = True  # the last publish reached the core
        self.reconnects = 0

    def publish(self, topic_name, payload):
        try:
            self.client.publish(topic=topic_name, queueFullPolicy="AllOrException", payload=payload)
        except Exception:
            self.connected = False
            raise
        self.connected = True

    def close(self):
        pass


class V2Publisher(object):
    """Greengrass v2: IPC PublishToIoTCore; reconnects (with back-off) after a connection error."""

    version = "v2"

    def __init__(self, connect, qos, service_error, clock=time.monotonic):
        """`connect()` -> a GreengrassCoreIPCClientV2; `service_error`: model.GreengrassCoreIPCError, the errors
        the nucleus answers with (the connection is fine then)."""
        self.connect, self.qos, self.service_error, self.clock = connect, qos, service_error, clock
        self.client = connect()
        self.connected = True
        self.reconnects = 0
        self.backoff, self.retry_at = 1.0, 0.0

    def publish(self, topic_name, payload):
        if self.client is None:
            self._reconnect()
        try:
            self.client.publish_to_iot_core(topic_name=topic_name, qos=self.qos, payload=payload)
        except self.service_error:
            raise
        except Exception:
            self._drop()
            raise

    def _reconnect(self):
        now = self.clock()
        if now < self.retry_at:
            raise ConnectionError("not connected to the Greengrass nucleus; next attempt in {:.1f} s".format(
                self.retry_at - now))
        try:
            self.client = self.connect()
        except Exception:
            self.retry_at = now + self.backoff
            self.backoff = min(self.backoff * 2.0, 30.0)
            raise
        self.connected = True
        self.reconnects += 1
        self.backoff = 1.0

    def _drop(self):
        """Forget a broken connection; the next publish reconnects at once (back-off only if that fails)."""
        client, self.client, self.connected = self.client, None, False
        _close_quietly(client)

    def close(self):
        client, self.client, self.connected = self.client, None, False
        _close_quietly(client)


def _close_quietly(client):
    if client is None:
        return
    try:
        client.close()
    except Exception:  # closing a broken connection may fail too; nothing is left to do
        pass


class GreengrassSink(Sink):
    """Publishes the outbox's rows through `publisher` (V1Publisher, V2Publisher) from a thread of its own."""

    TYPE = TYPE
    needs_image = False

    def __init__(self, publisher, prefix, outbox, drain_timeout_s=5.0, log=log, retry_s=None):
        self.publisher, self.prefix, self.outbox, self.log = publisher, prefix, outbox, log
        self.topics = dict((kind, topic(prefix, kind)) for kind in KINDS if kind != "status")
        self.drain_timeout_s = float(drain_timeout_s)
        self.retry_s = tuple(retry_s or RETRY_S)
        self.published = self.publish_failures = 0
        self._cond = threading.Condition()
        self._io = threading.Lock()  # the outbox is used and closed under it: a late publish never meets a closed one
        self._wake, self._kick, self._closing, self._stop, self._outbox_closed = True, False, False, False, False
        self._streak, self._final_stats = 0, None  # failed attempts in a row
        self._thread = threading.Thread(target=self._run, name="roadedge-greengrass", daemon=True)
        self._thread.start()

    # -- the pipeline's side ---------------------------------------------------------------------------------------
    def write(self, result):
        items = []
        if result.message is not None:
            items.append((self.topics[kind_of(result.message)], _json(result.message)))
        items.extend((self.topics["events"], _json(message)) for message in result.events)
        if result.stats is not None:
            items.append((self.topics["stats"], _json(result.stats)))
        if not items:
            return
        with self._io:
            if self._closing or self._outbox_closed:
                return
            self.outbox.put_many(items)  # committed: from here on a crash does not lose them
        with self._cond:
            self._wake = True
            self._cond.notify_all()

    def stats(self):
        with self._io:
            if self._final_stats is not None:
                return dict(self._final_stats)
            return self._counters()

    def _counters(self):
        with self._cond:
            published, failures = self.published, self.publish_failures
        return {"published": published, "publish_failures": failures, "outbox_depth": self.outbox.depth(),
                "outbox_dropped": self.outbox.dropped, "outbox_not_stored": self.outbox.not_stored,
                "reconnects": self.publisher.reconnects,
                "connected": bool(self.publisher.connected)}

    # -- the worker thread -------------------------------------------------------------------------------------------
    def _run(self):
        delay = self.retry_s[0]
        while True:
            with self._cond:
                while not (self._wake or self._stop):
                    self._cond.wait()
                if self._stop:
                    return
                self._wake = False
            try:
                ok = self._send()
            except Exception as err:  # the outbox's disk failed: the rows are still there, try again later
                self._failed(err, "reading the outbox", publishing=False)
                ok = False
            if ok:
                delay = self.retry_s[0]
                continue
            with self._cond:  # back off (close() cuts the wait short once, to try again while it drains)
                deadline = time.monotonic() + delay
                while not (self._stop or self._kick) and time.monotonic() < deadline:
                    self._cond.wait(max(0.0, deadline - time.monotonic()))
                self._kick, self._wake = False, True
            delay = min(delay * 2.0, self.retry_s[1])

    def _send(self):
        """Publish the next rows in order; True if all went (or there were none), False after a failure."""
        with self._io:
            if self._outbox_closed:
                return True
            rows = self.outbox.pending(BATCH)
        done, first_done = [], None
        for row in rows:
            if self._stop:
                break
            try:
                self.publisher.publish(row.topic, row.payload)
            except Exception as err:  # counted; the pipeline never sees a publishing error
                self._ack(done)
                self._failed(err, "publishing to " + row.topic)
                return False
            done.append(row.id)
            first_done = first_done or time.monotonic()
            if time.monotonic() - first_done > ACK_EVERY_S:
                self._ack(done)
                done, first_done = [], None
        self._ack(done)
        if rows:
            with self._cond:
                self._wake = True  # there may be more
        return True

    def _ack(self, ids):
        """Delete published rows (a crash before this publishes them again: a duplicate, never a loss)."""
        if not ids:
            return
        with self._io:
            if not self._outbox_closed:
                self.outbox.ack(ids)
        with self._cond:
            self.published += len(ids)
            streak, self._streak = self._streak, 0
            self._cond.notify_all()
        if streak and self.log is not None:
            self.log.info("greengrass %s: publishing again after %d unsuccessful attempt%s", self.publisher.version,
                          streak, "" if streak == 1 else "s")
        del ids[:]

    def _failed(self, error, what, publishing=True):
        with self._cond:
            self.publish_failures += 1 if publishing else 0
            self._streak += 1
            first = self._streak == 1
        if first and self.log is not None:
            self.log.warning("greengrass %s: %s failed: %s: %s; %d messages wait in the outbox %s, retrying with back-off "
                             "(further failures are counted, not logged)", self.publisher.version, what,
                             type(error).__name__, error, self.outbox.depth(), self.outbox.path)

    # -- stopping ------------------------------------------------------------------------------------------------------
    def close(self):
        """Publish what is in the outbox for up to drain_timeout_s, then stop; what is left stays on disk."""
        with self._cond:
            if self._closing:
                return
            self._closing = self._kick = self._wake = True
            self._cond.notify_all()
        durable.drain(self.outbox.depth, self._cond, self.drain_timeout_s)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(JOIN_S)  # a publish stuck in the core: it may still return; its row then goes again
        self.publisher.close()
        with self._io:
            self._final_stats = self._counters()
            left = self.outbox.depth()
            self.outbox.close()
            self._outbox_closed = True
        if left and self.log is not None:
            self.log.warning("greengrass %s: %d message%s not published within drain_timeout_s=%g; they stay in %s "
                             "and go first at the next start", self.publisher.version, left, "" if left == 1 else "s",
                             self.drain_timeout_s, self.outbox.path)


def _json(message):
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")


def open_v1():
    try:
        import greengrasssdk
    except ImportError as err:
        raise RoadedgeError("greengrass sink: version v1 needs greengrasssdk, the Greengrass Core SDK for Python "
                            "that a Greengrass v1 Lambda (DeepLens) has: {}".format(err)) from None
    return V1Publisher(greengrasssdk.client("iot-data"))


def open_v2(qos):
    try:
        from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
        from awsiot.greengrasscoreipc.model import QOS, GreengrassCoreIPCError
    except ImportError as err:
        raise RoadedgeError("greengrass sink: version v2 needs awsiotsdk (pip install awsiotsdk) in a Greengrass v2 "
                            "component: {}".format(err)) from None
    level = QOS.AT_LEAST_ONCE if qos == 1 else QOS.AT_MOST_ONCE
    try:
        return V2Publisher(GreengrassCoreIPCClientV2, level, GreengrassCoreIPCError)
    except KeyError as err:  # connect() reads the socket path and token the nucleus gives its components
        raise RoadedgeError("greengrass sink: not running as a Greengrass v2 component ({} is not set)".format(
            err)) from None
    except Exception as err:
        raise RoadedgeError("greengrass sink: cannot connect to the Greengrass nucleus: {}: {}".format(
            type(err).__name__, err)) from None


def _greengrasssdk_available():
    try:
        import greengrasssdk  # noqa: F401
    except ImportError:
        return False
    return True


def open(options, context):
    options = checked(OPTIONS, options, "greengrass sink")
    context = context or {}
    device = context.get("device") or ""
    prefix = validate_topic_prefix(options["topic_prefix"], device, "greengrass sink: topic_prefix")
    version = options["version"]
    if version == "auto":
        version = "v1" if _greengrasssdk_available() else "v2"
    publisher = open_v1() if version == "v1" else open_v2(options["qos"])
    sink_log = context.get("log") or log
    try:
        outbox = durable.open_outbox(options, "greengrass-outbox", device or socket.gethostname().split(".")[0], sink_log)
    except Exception:
        publisher.close()
        raise
    sink_log.info("greengrass %s: publishing to %s/{detections,events,stats} from the outbox %s (%d waiting)", version,
                  prefix, outbox.path, outbox.depth())
    return GreengrassSink(publisher, prefix, outbox, options["drain_timeout_s"], sink_log)
