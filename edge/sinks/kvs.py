"""Stream the camera to Kinesis Video Streams: the Python producer (edge.kvs: H.264 fragments stored on disk, sent
over PutMedia, resent until PERSISTED), GStreamer's kvssink where it is installed, or a DeepLens's own producer
(DeepLens_Kinesis_Video: the device streams its camera; the sink starts it and stops it at the end).

write() hands a frame to the producer at most `fps` times a second (the raw frame, or the annotated one with
`annotated`) and never waits: a producer that falls behind skips frames and counts them. Credentials come from
the standard AWS chain, or from the AWS IoT credentials provider with the thing's certificate (`iot_credentials`:
endpoint, role_alias, thing_name, cert, key, ca). `mode: events` sends only the seconds around damage events
(pre_roll_s before, post_roll_s after; edge.kvs.event_windows), for metered links.
"""
import os
import re

from edge.plugins import Option, above, at_least, between, checked
from edge.sinks.base import Sink
from roadedge.core.errors import RoadedgeError

TYPE = "kvs"
OPTIONS = {
    "stream_name": Option(str, "", "the Kinesis Video stream (required)"),
    "region": Option(str, "", "AWS region (default: the AWS configuration's)"),
    "endpoint_url": Option(str, "", "control-plane endpoint, as boto3's endpoint_url (the data endpoint always comes "
                                    "from GetDataEndpoint)"),
    "create_stream": Option(bool, True, "create the stream when it does not exist"),
    "retention_hours": Option(int, 24, "retention of a stream created here", check=at_least(0)),
    "producer": Option(str, "auto", "python, kvssink, deeplens, or auto (deeplens on a DeepLens, kvssink where it is "
                                    "installed, else python)", choices=("auto", "python", "kvssink", "deeplens")),
    "fragment_s": Option(float, 2.0, "fragment length in seconds (a key frame starts each)", check=between(1.0, 10.0)),
    "fps": Option(float, 15.0, "frames per second streamed", check=between(1.0, 60.0)),
    "width": Option(int, 640, "streamed width", check=between(16, 4096)),
    "height": Option(int, 360, "streamed height", check=between(16, 4096)),
    "bitrate": Option(int, 800, "H.264 bit rate in kbit/s", check=between(50, 50000)),
    "annotated": Option(bool, False, "stream the annotated frame instead of the camera's"),
    "buffer_mb": Option(float, 256.0, "on-disk store bound; beyond it the oldest fragments go (counted)", check=above(0)),
    "buffer_max_age_s": Option(float, 86400.0, "fragments older than this are dropped (counted)", check=above(0)),
    "store": Option(str, "", "the store's SQLite file (default ~/.cache/roadedge/kvs-<stream>.sqlite)"),
    "mode": Option(str, "continuous", "continuous, or events: only the seconds around damage events",
                   choices=("continuous", "events")),
    "pre_roll_s": Option(float, 5.0, "events mode: seconds before an event that are sent too", check=between(0.0, 600.0)),
    "post_roll_s": Option(float, 5.0, "events mode: seconds after an event ends that are sent too",
                          check=between(0.0, 600.0)),
    "drain_timeout_s": Option(float, 10.0, "on a clean stop, wait this long for stored fragments to be sent",
                              check=at_least(0)),
    "iot_credentials": Option(dict, {}, "AWS IoT credentials provider: endpoint, role_alias, thing_name, cert, key, "
                                        "ca (default: the standard AWS credential chain)"),
}


class KvsSink(Sink):
    TYPE = TYPE

    def __init__(self, producer, options, kind):
        self.producer, self.kind = producer, kind
        self.annotated, self.interval = bool(options["annotated"]), 1.0 / float(options["fps"])
        self.needs_image = self.annotated
        self.last_at, self.paced = None, 0

    def write(self, result):
        if result.frame is None:
            return
        self._events(result)
        if result.final:
            return
        when = result.frame.timestamp
        if self.last_at is not None and when - self.last_at < 0.75 * self.interval:  # a camera's jitter still passes
            self.paced += 1
            return
        self.last_at = when
        image = result.annotated if self.annotated and result.annotated is not None else result.frame.image
        if self.kind == "kvssink":
            self.producer.push(image)
        elif self.kind == "python":
            self.producer.submit(image, when)

    def _events(self, result):
        if self.kind == "python":
            for message in result.events:
                self.producer.event(message["event"], message["track_id"], result.frame.timestamp)
        elif self.kind == "deeplens":  # every frame: the post-roll's end is found on a frame without events
            self.producer.events(result.events, result.frame.timestamp)

    def stats(self):
        return self.producer.stats()

    def close(self):
        if self.kind == "kvssink":
            self.producer.close()
        elif self.kind == "deeplens":
            self.producer.end()
        else:
            self.producer.close(self.drain_timeout_s)


def _credentials(options, region):
    iot = options["iot_credentials"]
    if iot:
        from edge.kvs.iot_credentials import IotCredentialsProvider

        missing = [key for key in ("endpoint", "role_alias", "thing_name", "cert", "key") if not iot.get(key)]
        if missing:
            raise RoadedgeError("kvs sink: iot_credentials: {} missing".format(", ".join(missing)))
        return IotCredentialsProvider(iot["endpoint"], iot["role_alias"], iot["thing_name"], iot["cert"], iot["key"],
                                      iot.get("ca", "")).botocore()
    import botocore.session

    return botocore.session.get_session().get_credentials()


def python_producer(options, context, stream, region):
    from edge.kvs.control import StreamEndpoint, make_client
    from edge.kvs.encoder import H264Encoder
    from edge.kvs.producer import Producer
    from edge.kvs.store import FragmentStore

    credentials = _credentials(options, region)
    if credentials is None:
        raise RoadedgeError("kvs sink: no AWS credentials (environment, profile, instance role, or iot_credentials)")
    client = make_client(region, options["endpoint_url"])
    endpoint = StreamEndpoint(client, stream, options["create_stream"], options["retention_hours"])
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", stream)
    path = os.path.expanduser(options["store"] or os.path.join("~", ".cache", "roadedge", "kvs-{}.sqlite".format(safe)))
    if not options["store"]:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    store = FragmentStore(path, int(options["buffer_mb"] * 1048576), options["buffer_max_age_s"], context.get("log"))
    gop = max(1, int(round(options["fragment_s"] * options["fps"])))
    encoder = H264Encoder(options["width"], options["height"], options["fps"], gop, options["bitrate"] * 1000)
    windows = None
    if options["mode"] == "events":
        from edge.kvs.event_windows import EventWindows

        windows = EventWindows(options["pre_roll_s"], options["post_roll_s"])
    return Producer(store, endpoint, credentials, client.meta.region_name, stream, encoder, log=context.get("log"),
                    windows=windows).start()


def open(options, context):
    options = checked(OPTIONS, options, "kvs sink")
    context = context or {}
    stream = options["stream_name"].strip()
    if not re.match(r"^[a-zA-Z0-9_.-]{1,256}$", stream):
        raise RoadedgeError("kvs sink: stream_name {!r}: expected 1-256 of a-z, A-Z, 0-9, '_', '.', '-'".format(stream))
    kind = options["producer"]
    if kind == "auto":
        from edge.kvs import kvssink_producer

        kind = "deeplens" if os.path.isdir("/opt/awscam") else "kvssink" if kvssink_producer.available() else "python"
    if kind == "kvssink":
        from edge.kvs.kvssink_producer import GstProducer, available, kvssink, pipeline

        if not available():
            raise RoadedgeError("kvs sink: producer kvssink: GStreamer's gst-launch-1.0 with the kvssink element (AWS's "
                                "C++ producer SDK) is not installed; use producer python")

        sink_args = kvssink(stream, options["region"] or "us-east-1", options["retention_hours"], options["buffer_mb"])
        producer = GstProducer(pipeline(options["width"], options["height"], options["fps"], options["bitrate"],
                                        max(1, int(round(options["fragment_s"] * options["fps"]))), sink_args),
                               options["width"], options["height"], context.get("log"))
        producer.start()
    elif kind == "deeplens":  # the device streams its own camera: the sink starts and stops it
        from edge.kvs.deeplens_producer import DeepLensStreaming, open_stream

        producer = DeepLensStreaming(open_stream(stream, options["retention_hours"], options["region"] or "us-east-1",
                                                 _credentials(options, options["region"])), options["mode"],
                                     options["post_roll_s"], log=context.get("log"))
        producer.begin()
    else:
        producer = python_producer(options, context, stream, options["region"])
    sink = KvsSink(producer, options, kind)
    sink.drain_timeout_s = options["drain_timeout_s"]
    return sink
