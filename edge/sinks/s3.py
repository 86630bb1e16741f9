"""The damage events' best frames as JPEGs in S3, spooled on disk first so nothing captured is lost.

Images never travel inside MQTT: an events message carries only `image_key`,
the S3 key of its track's best frame, which is deterministic,

    image_key(prefix, boot_id, track_id) == f"{prefix}{boot_id}/track-{track_id:06d}.jpg"

so the message can name it before the upload has happened.

What the sink does with each FrameResult:

1. Frames that became a track's best (`result.best_tracks`: the tracker's
   `best_changed` ids for this frame; without it, tracks whose event names
   this frame as best_frame, or a `new` track the sink holds nothing for):
   the frame's JPEG (`result.jpeg()`, the raw frame unless another sink asked
   for the annotated one) is kept in memory, one per open track. Tracks that
   never become events are forgotten after a minute.
2. Events (`result.events`, roadedge.events/1 messages): on `new`, `update`
   and `end`, if the held JPEG changed since it was last spooled, it is written
   to the spool folder (`<spool>/<bucket>/<key>`, atomically: temp file, fsync,
   rename) and queued for upload; the same key is overwritten, so S3 ends up
   with the final best frame. After `end` the track is forgotten.
3. A background thread uploads spooled files with boto3 `put_object`
   (botocore's standard retries, then the sink's own back-off while S3 stays
   unreachable) and removes each file once it is in S3. Files still in the
   spool when the sink closes (S3 unreachable, or `drain_timeout_s` spent:
   the shared drain of edge.sinks.durable) are uploaded by the next open()
   with the same spool and bucket.

`stats()`: uploaded, upload_failures, pending (spooled, not yet uploaded),
held (tracks with a JPEG in memory), connected (the last upload worked; absent
before the first).
"""
import collections
import io
import logging
import os
import threading
import time

from edge.plugins import Option, checked
from edge.sinks import durable
from edge.sinks.base import Sink
from roadedge.core.errors import RoadedgeError
from roadedge.core.fsutil import atomic_file

TYPE = "s3"
OPTIONS = {
    "bucket": Option(str, "", "S3 bucket for the events' best frames (required)"),
    "prefix": Option(str, "roadedge/{device}/", "key prefix; keys are <prefix><boot_id>/track-<id>.jpg"),
    "region": Option(str, "", "AWS region (empty: the usual AWS configuration)"),
    "endpoint_url": Option(str, "", "S3 endpoint URL (empty: AWS); for S3-compatible servers and tests"),
    "spool": Option(str, "", "folder JPEGs wait in until uploaded (empty: ~/.cache/roadedge/s3-spool)"),
    "drain_timeout_s": durable.drain_timeout_option(10.0, "on a clean stop, wait this long for pending uploads (the "
                                                     "rest stays spooled for the next start)"),
}
DEFAULT_SPOOL = os.path.join("~", ".cache", "roadedge", "s3-spool")
HOLD_UNCONFIRMED_S = 60.0
MAX_HELD = 256
log = logging.getLogger("roadedge.sinks.s3")


def image_key(prefix, boot_id, track_id):
    """The S3 key of a track's best frame: `<prefix><boot_id>/track-<track_id, 6 digits>.jpg`."""
    return "{}{}/track-{:06d}.jpg".format(prefix, boot_id, int(track_id))


def normalise_prefix(prefix, device):
    """`roadedge/{device}` -> `roadedge/rc-car-1/` (a trailing '/' is added; no leading '/', no '..')."""
    expanded = (prefix or "").replace("{device}", device or "").lstrip("/")
    if expanded and not expanded.endswith("/"):
        expanded += "/"
    parts = expanded.split("/")[:-1]
    if any(part in ("", ".", "..") for part in parts) or "\\" in expanded or "{" in expanded:
        raise RoadedgeError("s3 sink: prefix: {!r} -> {!r}: empty, '.' or '..' path segments (or a placeholder other "
                            "than {{device}}) are not allowed".format(prefix, expanded))
    return expanded


class Held(object):
    __slots__ = ("jpeg", "frame", "stored_at", "confirmed", "spooled")

    def __init__(self, jpeg, frame, stored_at):
        self.jpeg, self.frame, self.stored_at = jpeg, frame, stored_at
        self.confirmed, self.spooled = False, False


class S3Sink(Sink):
    TYPE = TYPE
    needs_image = False

    def __init__(self, client, bucket, prefix, spool, drain_timeout_s=10.0, log=log, clock=time.monotonic):
        self.client, self.bucket, self.prefix = client, bucket, prefix
        self.root = os.path.join(spool, bucket)
        self.drain_timeout_s, self.log, self.clock = float(drain_timeout_s), log, clock
        self.held = {}
        self.uploaded = self.upload_failures = 0
        self.connected = None
        self._queue = collections.deque()
        self._cond = threading.Condition()
        self._file_lock = threading.Lock()
        self._busy = self._closing = self._failing = False
        self._stop = threading.Event()
        for key in self._spooled_keys():  # left by an earlier run: upload them first
            self._queue.append(key)
        self._thread = threading.Thread(target=self._run, name="roadedge-s3", daemon=True)
        self._thread.start()

    def image_key(self, boot_id, track_id):
        return image_key(self.prefix, boot_id, track_id)

    def path_of(self, key):
        return os.path.join(self.root, *key.split("/"))

    # --- the pipeline thread ---

    def write(self, result):
        now = self.clock()
        index = result.frame.index
        best = set(result.best_tracks)
        for tid in best:
            held = self.held.get(tid)
            if held is None or held.frame != index:
                confirmed = held.confirmed if held is not None else False
                held = self.held[tid] = Held(result.jpeg(), index, now)
                held.confirmed = confirmed
        for message in result.events:
            tid = message["track_id"]
            held = self.held.get(tid)
            if held is not None:
                held.confirmed = True
                if not held.spooled:
                    self._spool(self.image_key(message["boot_id"], tid), held.jpeg)
                    held.spooled = True
            if message["event"] == "end":
                self.held.pop(tid, None)
        self._forget(now)

    def _forget(self, now):
        """Drop JPEGs of tracks that never became events, and the oldest beyond MAX_HELD."""
        for tid in [t for t, h in self.held.items() if not h.confirmed and now - h.stored_at > HOLD_UNCONFIRMED_S]:
            del self.held[tid]
        if len(self.held) > MAX_HELD:
            for tid in sorted(self.held, key=lambda t: (self.held[t].confirmed, self.held[t].stored_at))[
                    :len(self.held) - MAX_HELD]:
                del self.held[tid]

    def _spool(self, key, jpeg):
        path = self.path_of(key)
        try:
            with self._file_lock:
                with atomic_file(path) as handle:
                    handle.write(jpeg)
        except OSError as err:
            self.log.error("s3: cannot spool %s: %s", path, err)
            return
        with self._cond:
            self._queue.append(key)
            self._cond.notify_all()

    # --- the upload thread ---

    def _spooled_keys(self):
        keys = []
        for folder, _, names in os.walk(self.root):
            for name in sorted(names):
                path = os.path.join(folder, name)
                if name.startswith(".") and name.endswith(".tmp"):  # an interrupted spool write
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
                elif name.endswith(".jpg"):
                    keys.append(os.path.relpath(path, self.root).replace(os.sep, "/"))
        return sorted(keys)

    def _run(self):
        delay = 1.0
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue or self._stop.is_set():
                    return
                key = self._queue[0]
                self._busy = True
            ok = self._upload(key)
            with self._cond:
                self._busy = False
                if ok:
                    if self._queue and self._queue[0] == key:
                        self._queue.popleft()
                    delay = 1.0
                self._failing = not ok
                self._cond.notify_all()
            if not ok and self._stop.wait(delay):  # S3 unreachable: back off; close() interrupts
                return
            delay = 1.0 if ok else min(delay * 2.0, 60.0)

    def _upload(self, key):
        path = self.path_of(key)
        with self._file_lock:
            try:
                with io.open(path, "rb") as handle:  # io.open: this module's open() is the plugin entry
                    body = handle.read()
                before = os.stat(path)
            except FileNotFoundError:  # uploaded already (queued twice)
                return True
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="image/jpeg")
        except Exception as err:  # botocore gave up after its retries; the file stays spooled
            self.upload_failures += 1
            self.connected = False
            if not self._failing:
                self.log.warning("s3: uploading s3://%s/%s failed: %s (kept in %s; retrying)", self.bucket, key, err,
                                 self.root)
            return False
        self.uploaded += 1
        self.connected = True
        with self._file_lock:
            try:
                after = os.stat(path)
                if (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns,
                                                                        before.st_size):
                    os.unlink(path)  # a newer best frame spooled meanwhile stays for its own upload
                    self._prune(os.path.dirname(path))
            except FileNotFoundError:
                pass
        return True

    def _prune(self, folder):
        """Remove the emptied folders of a key (one per boot), never the spool's own."""
        while os.path.abspath(folder).startswith(os.path.abspath(self.root) + os.sep):
            try:
                os.rmdir(folder)
            except OSError:
                return
            folder = os.path.dirname(folder)

    def stats(self):
        with self._cond:
            pending = len(set(self._queue))
        counters = {"uploaded": self.uploaded, "upload_failures": self.upload_failures, "pending": pending,
                    "held": len(self.held)}
        if self.connected is not None:  # unknown until the first upload
            counters["connected"] = self.connected
        return counters

    def close(self):
        """Upload what is spooled (up to drain_timeout_s, or until an upload fails), then stop."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        left = durable.drain(lambda: len(set(self._queue)), self._cond, self.drain_timeout_s, clock=self.clock,
                             stop_early=lambda: self._failing)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(5.0)
        if left:
            self.log.warning("s3: %d images not uploaded yet; they stay in %s for the next start", left, self.root)
        self.held.clear()


def make_client(region="", endpoint_url=""):
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=5, read_timeout=30)
    return boto3.session.Session().client("s3", region_name=region or None, endpoint_url=endpoint_url or None,
                                          config=config)


def open(options, context):
    options = checked(OPTIONS, options, "s3 sink")
    context = context or {}
    bucket = options["bucket"].strip()
    if not bucket:
        raise RoadedgeError("s3 sink: bucket: required (the bucket the events' best frames go to)")
    prefix = normalise_prefix(options["prefix"], context.get("device") or "")
    spool = os.path.abspath(os.path.expanduser(options["spool"] or DEFAULT_SPOOL))
    if options["spool"] and not os.path.isdir(spool):  # the default folder is ours to make, a given one is not
        raise RoadedgeError("s3 sink: spool: {}: no such folder (create it, or leave spool empty for {})".format(
            spool, DEFAULT_SPOOL))
    try:
        os.makedirs(os.path.join(spool, bucket), exist_ok=True)
    except OSError as err:
        raise RoadedgeError("s3 sink: spool: {}: {}".format(spool, err.strerror or err)) from None
    try:
        client = make_client(options["region"], options["endpoint_url"])
    except ImportError:
        raise RoadedgeError("s3 sink: needs boto3 (pip install boto3, or roadedge[aws])") from None
    except Exception as err:  # a malformed endpoint URL or region
        raise RoadedgeError("s3 sink: {}: {}".format(type(err).__name__, err)) from None
    return S3Sink(client, bucket, prefix, spool, options["drain_timeout_s"], context.get("log") or log)
