"""Kinesis Video on an AWS DeepLens: the device's `DeepLens_Kinesis_Video` module streams the camera itself (its
hardware encoder); the runtime only starts and stops it, continuously or around damage events.

    producer = DeepLens_Kinesis_Video.createProducer(access_key, secret_key, session_token, region)
    stream = producer.createStream(stream_name, retention_hours); stream.start(); stream.stop(); stream.isActive

The module exists only on the device: it is imported in open_stream(). Credentials come from botocore's chain
(the Lambda's role on Greengrass v1) or are handed in (the IoT credentials provider); temporary ones are passed
with their session token.
"""
from roadedge.core.errors import RoadedgeError


def open_stream(stream_name, retention_hours, region, credentials):
    """The device's stream object (not started); `credentials`: botocore Credentials (access_key, secret_key,
    token)."""
    try:
        import DeepLens_Kinesis_Video as dkv
    except ImportError:
        raise RoadedgeError("kvs sink: producer deeplens needs the DeepLens_Kinesis_Video module, which exists only "
                            "on an AWS DeepLens (use producer python elsewhere)") from None
    if credentials is None:
        raise RoadedgeError("kvs sink: producer deeplens: no AWS credentials (the Lambda's role, the environment, or "
                            "iot_credentials)")
    frozen = credentials.get_frozen_credentials() if hasattr(credentials, "get_frozen_credentials") else credentials
    try:
        producer = dkv.createProducer(frozen.access_key, frozen.secret_key, frozen.token or "", region)
        return producer.createStream(stream_name, int(retention_hours))
    except Exception as err:  # the device module's own errors: one line
        raise RoadedgeError("kvs stream {}: the DeepLens producer refused it: {}".format(
            stream_name, " ".join(str(err).split()) or type(err).__name__)) from None


class DeepLensStreaming(object):
    """Continuous: on from start() to stop(). Events: on at a damage event's start, off `post_roll_s` after the last
    event ended (the DeepLens streams its live camera: there is no pre-roll to send)."""

    def __init__(self, stream, mode="continuous", post_roll_s=10.0, log=None):
        self.stream, self.mode, self.post_roll_s, self.log = stream, mode, float(post_roll_s), log
        self.open_tracks, self.off_at, self.starts, self.failures = set(), None, 0, 0

    @property
    def active(self):
        return bool(self.stream.isActive)

    def _start(self):
        if self.active:
            return
        try:
            self.stream.start()
            self.starts += 1
        except Exception as err:  # counted and logged; the next event tries again
            self.failures += 1
            if self.log is not None and self.failures == 1:
                self.log.error("kvs deeplens: start failed: %s", " ".join(str(err).split()) or type(err).__name__)

    def _stop(self):
        if self.active:
            self.stream.stop()

    def begin(self):
        if self.mode == "continuous":
            self._start()

    def events(self, messages, now):
        """Damage events (roadedge.events/1 messages) at time `now` (seconds): start, and schedule the stop."""
        if self.mode != "events":
            return
        for message in messages:
            if message["event"] == "end":
                self.open_tracks.discard(message["track_id"])
            else:
                self.open_tracks.add(message["track_id"])
                self._start()
        if self.open_tracks:
            self.off_at = None
        elif self.active and self.off_at is None:
            self.off_at = now + self.post_roll_s
        if self.off_at is not None and now >= self.off_at:
            self.off_at = None
            self._stop()

    def end(self):
        self._stop()

    def stats(self):
        return {"active": self.active, "starts": self.starts, "start_failures": self.failures}
