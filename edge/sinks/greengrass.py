"""Publish the v1 messages through the local AWS IoT Greengrass core: v1 (a DeepLens Lambda) or v2 (a component).

Topics: `<topic_prefix>/detections` (result.message), `<topic_prefix>/events`
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
  message reconnects (counted in `reconnects`, with back-off).
- auto: v1 if `greengrasssdk` imports, else v2.

Device libraries are imported in open() only. write() only queues: a worker
thread publishes from a bounded outbox (the oldest message is dropped beyond
`outbox`, counted), so a slow core never stalls the pipeline. A failed
publish is logged once, counted (`publish_failures`) and never raised into
the pipeline; the core's own spooler handles retries. `stats()` returns the
counters (published, publish_failures, outbox_depth, outbox_dropped,
reconnects, connected).
"""
import collections
import json
import logging
import threading
import time

from edge.plugins import Option, with_defaults
from edge.sinks.base import Sink
from edge.topics import DEFAULT_PREFIX, topic, validate_topic_prefix
from roadedge.core.errors import RoadedgeError

TYPE = "greengrass"
OPTIONS = {
    "version": Option(str, "auto", "v1 (greengrasssdk: DeepLens Lambda), v2 (awsiotsdk IPC), or auto (v1 if "
                                   "greengrasssdk imports, else v2)"),
    "topic_prefix": Option(str, DEFAULT_PREFIX, "topics are <prefix>/detections, /events, /stats; {device} is "
                                                "replaced by the device name"),
    "qos": Option(int, 1, "MQTT QoS to AWS IoT Core, 0 or 1 (v2 only)"),
    "outbox": Option(int, 1000, "messages queued while publishing lags; beyond it the oldest is dropped (counted)"),
    "drain_timeout": Option(float, 5.0, "seconds close() waits for queued messages to be published"),
}
VERSIONS = ("auto", "v1", "v2")
log = logging.getLogger("roadedge.sinks.greengrass")


class V1Publisher(object):
    """Greengrass v1: the Lambda's IoT data-plane client; one call per message, no connection of its own."""

    version = "v1"

    def __init__(self, client):
        self.client = client
        self.connected = True
        self.reconnects = 0

    def publish(self, topic_name, payload):
        self.client.publish(topic=topic_name, queueFullPolicy="AllOrException", payload=payload)

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
    TYPE = TYPE
    needs_image = False

    def __init__(self, publisher, prefix, outbox=1000, drain_timeout=5.0, log=log):
        self.publisher, self.prefix = publisher, prefix
        self.topics = dict((kind, topic(prefix, kind)) for kind in ("detections", "events", "stats"))
        self.limit, self.drain_timeout, self.log = max(1, int(outbox)), float(drain_timeout), log
        self.published = self.publish_failures = self.outbox_dropped = 0
        self._outbox = collections.deque()
        self._cond = threading.Condition()
        self._busy = self._closing = False
        self._thread = threading.Thread(target=self._run, name="roadedge-greengrass", daemon=True)
        self._thread.start()

    def write(self, result):
        items = []
        if result.message is not None:
            items.append(("detections", result.message))
        items.extend(("events", message) for message in result.events)
        if result.stats is not None:
            items.append(("stats", result.stats))
        for kind, message in items:
            payload = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")
            self._put(self.topics[kind], payload)

    def _put(self, topic_name, payload):
        with self._cond:
            if self._closing:
                return
            if len(self._outbox) >= self.limit:
                self._outbox.popleft()
                self.outbox_dropped += 1
            self._outbox.append((topic_name, payload))
            self._cond.notify_all()

    def _run(self):
        while True:
            with self._cond:
                while not self._outbox and not self._closing:
                    self._cond.wait()
                if not self._outbox:
                    return
                topic_name, payload = self._outbox.popleft()
                self._busy = True
            try:
                self.publisher.publish(topic_name, payload)
                ok, error = True, None
            except Exception as err:  # counted; the pipeline never sees a publishing error
                ok, error = False, err
            with self._cond:
                self._busy = False
                if ok:
                    self.published += 1
                else:
                    self.publish_failures += 1
                    if self.publish_failures == 1 and self.log is not None:
                        self.log.warning("greengrass %s: publishing to %s failed: %s: %s (further failures are "
                                         "counted, not logged)", self.publisher.version, topic_name,
                                         type(error).__name__, error)
                self._cond.notify_all()

    def stats(self):
        with self._cond:
            return {"published": self.published, "publish_failures": self.publish_failures,
                    "outbox_depth": len(self._outbox) + (1 if self._busy else 0),
                    "outbox_dropped": self.outbox_dropped, "reconnects": self.publisher.reconnects,
                    "connected": bool(self.publisher.connected)}

    def close(self):
        """Publish what is queued (up to drain_timeout seconds), then stop; what is left is dropped, counted."""
        deadline = time.monotonic() + self.drain_timeout
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
            while (self._outbox or self._busy) and time.monotonic() < deadline:
                self._cond.wait(max(0.0, min(0.1, deadline - time.monotonic())))
            left = len(self._outbox)
            if left:
                self._outbox.clear()
                self.outbox_dropped += left
        if left and self.log is not None:
            self.log.warning("greengrass: %d queued messages were not published before close", left)
        self._thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
        self.publisher.close()



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
    options = with_defaults(OPTIONS, options)
    context = context or {}
    prefix = validate_topic_prefix(options["topic_prefix"], context.get("device") or "", "greengrass sink: topic_prefix")
    version = options["version"]
    if version not in VERSIONS:
        raise RoadedgeError("greengrass sink: version: {!r}; expected one of {}".format(version, ", ".join(VERSIONS)))
    if options["qos"] not in (0, 1):
        raise RoadedgeError("greengrass sink: qos: {!r}; expected 0 or 1".format(options["qos"]))
    if options["outbox"] < 1:
        raise RoadedgeError("greengrass sink: outbox: {!r}; expected at least 1".format(options["outbox"]))
    if version == "auto":
        version = "v1" if _greengrasssdk_available() else "v2"
    publisher = open_v1() if version == "v1" else open_v2(options["qos"])
    sink_log = context.get("log") or log
    sink_log.info("greengrass %s: publishing to %s/{detections,events,stats}", version, prefix)
    return GreengrassSink(publisher, prefix, options["outbox"], options["drain_timeout"], sink_log)
