"""The Python Kinesis Video producer: frames -> H.264 fragments in the on-disk store -> PutMedia, nothing lost.

    encoder thread   submit(frame) queues a frame (a full queue skips it, counted: the loop never waits);
                     frames are encoded (edge.kvs.encoder) and each GOP becomes one MKV cluster, stored
                     (edge.kvs.store) before anything sends it
    uploader thread  sends the stream's unacknowledged fragments in order over one PutMedia connection
                     (edge.kvs.putmedia), behind an MKV header; a fragment leaves the store on its PERSISTED
                     acknowledgement (RECEIVED when the stream keeps no data). An ERROR acknowledgement, a
                     dropped connection or one that goes silent closes the connection; the next one (after a
                     capped backoff) starts again at the first
                     unacknowledged fragment with its original timecodes. A backlog left by kill -9 is the
                     first thing sent after a restart, as the store keeps it in order.

One fragment is in flight at a time: KVS refuses a timecode lower than the stream's last (4004), so were a later
fragment persisted while an earlier one failed, the earlier one could never be sent again. So ERROR 4004 means
the fragment itself is already in the stream (its PERSISTED was lost with a connection): it is taken out of the
store, counted as a duplicate, not resent. Fragments last 1-10 s and KVS takes at most 5 a second, so waiting
for each acknowledgement costs nothing in real time; a backlog drains at one fragment per round trip.
"""
import collections
import logging
import queue
import threading
import time

from edge.kvs import mkv
from edge.kvs.event_windows import SEND, SKIP
from edge.kvs.putmedia import PutMediaSession
from roadedge.core.errors import RoadedgeError

BACKOFF_S = (0.25, 8.0)
SILENT_S = 20.0  # fragments sent and no acknowledgement for this long: the connection is stuck
ALREADY_THERE = 4004
IN_FLIGHT = 1  # fragments sent and not yet PERSISTED: a later fragment persisted would bar an earlier one's resend
log = logging.getLogger("roadedge.kvs")


class Producer(object):
    def __init__(self, store, endpoint, credentials, region, stream_name, encoder, log=log, clock=time.monotonic,
                 queue_frames=30, windows=None):
        """`windows`: an edge.kvs.event_windows.EventWindows in events mode (None: every fragment is sent)."""
        self.store, self.endpoint, self.credentials, self.region = store, endpoint, credentials, region
        self.stream_name, self.encoder, self.log, self.clock = stream_name, encoder, log, clock
        self.frames = queue.Queue(maxsize=queue_frames)
        self.counts = collections.Counter()
        self.group = []
        self.cond = threading.Condition()
        self.stopping = self.encoding_done = False
        self.session = None
        self.last_ack_at = None
        self.errors = collections.deque()
        self.windows = windows
        self.done_event = "PERSISTED"  # RECEIVED for a stream that keeps no data (retention 0): nothing persists
        self.started_at, self.bytes_sent = None, 0
        self.threads = [threading.Thread(target=self._encode_loop, name="roadedge-kvs-encode", daemon=True),
                        threading.Thread(target=self._upload_loop, name="roadedge-kvs-upload", daemon=True)]

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    # --- the loop's side ---
    def submit(self, image, timestamp_s, wait=False):
        """Hand a BGR frame over; False when the encoder is behind and the frame is skipped. Never blocks unless
        `wait` (an upload of a recording, where every frame counts and nothing is live)."""
        try:
            self.frames.put((image, int(round(timestamp_s * 1000))), block=wait)
            return True
        except queue.Full:
            self.counts["encoder_skips"] += 1
            return False

    # --- encoding ---
    def _encode_loop(self):
        while True:
            item = self.frames.get()
            if item is None:
                break
            for frame in self.encoder.encode(*item):
                self._add(frame)
            self.counts["frames_encoded"] += 1
        for frame in self.encoder.flush():
            self._add(frame)
        self._store_group()
        with self.cond:
            self.encoding_done = True
            self.cond.notify_all()

    def _add(self, frame):
        if frame[1] and self.group:  # a key frame starts the next fragment
            self._store_group()
        if self.group or frame[1]:
            self.group.append(frame)

    def _store_group(self):
        if not self.group:
            return
        group, self.group = self.group, []
        if self.windows is not None:
            with self.cond:
                self.windows.seen(group[-1][0])
        data = mkv.cluster(group)
        stored = self.store.put(self.stream_name, group[0][0], group[-1][0], True, data, self.encoder.codec_private,
                                self.encoder.width, self.encoder.height)
        self.counts["fragments_stored" if stored is not None else "fragments_not_stored"] += 1
        with self.cond:
            self.cond.notify_all()

    # --- uploading ---
    def _on_ack(self, ack):
        self.last_ack_at = self.clock()
        if ack.event_type == self.done_event:
            if self.store.acknowledge(self.stream_name, ack.fragment_timecode):
                self.counts["fragments_acknowledged"] += 1
        elif ack.event_type == "ERROR":
            if ack.error_id == ALREADY_THERE and ack.fragment_timecode is not None:
                if self.store.acknowledge(self.stream_name, ack.fragment_timecode):
                    self.counts["fragments_duplicate"] += 1
                return
            self.counts["fragments_errored"] += 1
            self.errors.append(ack)
        with self.cond:
            self.cond.notify_all()

    def _connect(self, first):
        url = self.endpoint.endpoint()
        info = getattr(self.endpoint, "info", None) or {}
        self.done_event = "RECEIVED" if info.get("DataRetentionInHours") == 0 else "PERSISTED"
        session = PutMediaSession(url, self.stream_name, self.credentials, self.region, self._on_ack)
        session.open(first.first_timecode_ms)
        session.send(mkv.segment_header(first.width, first.height, first.codec_private))
        self.counts["connections"] += 1
        return session

    def _upload_loop(self):
        delay, sent_after, header = BACKOFF_S[0], 0, None
        while True:
            with self.cond:
                if self.stopping and self.encoding_done and self.store.first_unacknowledged(self.stream_name) is None:
                    break
            if self.session is None:
                first = self._next_to_send()
                if first is None:
                    with self.cond:
                        self.cond.wait(0.2)
                    continue
                try:
                    self.session, sent_after, header = self._connect(first), first.id - 1, first.codec_private
                    self.last_ack_at, delay = self.clock(), BACKOFF_S[0]
                except (ConnectionError, RoadedgeError) as err:
                    self._failed(err, delay)
                    delay = min(delay * 2, BACKOFF_S[1])
                    continue
            outstanding = [f for f in self.store.pending(self.stream_name, limit=IN_FLIGHT) if f.id <= sent_after]
            fragments = [] if outstanding else [f for f in [self._next_to_send()] if f is not None]
            try:
                for fragment in fragments:
                    if fragment.codec_private != header:  # the picture changed: a new header needs a new connection
                        raise ConnectionError("kvs: the stream's header changed")
                    self.session.send(fragment.data)
                    sent_after = fragment.id
                    self.counts["fragments_sent"] += 1
                    self.bytes_sent += len(fragment.data)
                    self.started_at = self.started_at or self.clock()
                if self.errors:
                    ack = self.errors.popleft()
                    raise ConnectionError("kvs: ERROR {} for fragment {}".format(ack.error_id, ack.fragment_timecode))
                if self.session.closed.is_set():
                    raise self.session.error or ConnectionError("kvs: the connection ended")
                if outstanding and self.clock() - self.last_ack_at > SILENT_S:
                    raise ConnectionError("kvs: no acknowledgement for {:g} s".format(SILENT_S))
            except (ConnectionError, RoadedgeError) as err:
                self._reconnect_after(err)
                continue
            if not fragments:
                with self.cond:
                    self.cond.wait(0.05)
        if self.session is not None:
            self.session.close()
            self.session = None

    def _next_to_send(self):
        """The stream's first unacknowledged fragment if it is to be sent now; in events mode the ones no event
        wants are taken out of the store (counted) and undecided ones wait (None)."""
        while True:
            first = self.store.first_unacknowledged(self.stream_name)
            if first is None or self.windows is None:
                return first
            with self.cond:
                decision = self.windows.decide(first.first_timecode_ms, first.last_timecode_ms)
            if decision == SEND:
                return first
            if decision != SKIP:
                return None
            if self.store.acknowledge(self.stream_name, first.first_timecode_ms):
                self.counts["fragments_outside_events"] += 1

    def event(self, kind, track_id, at_s):
        """A damage event for events mode."""
        if self.windows is not None:
            with self.cond:
                self.windows.event(kind, track_id, int(round(at_s * 1000)))
                self.cond.notify_all()

    def _reconnect_after(self, err):
        session, self.session = self.session, None
        if session is not None:
            session.abort()
        self.counts["reconnects"] += 1
        self.counts["fragments_resent"] += len(self.store.pending(self.stream_name, limit=1000))
        self.endpoint.invalidate()
        self._failed(err, BACKOFF_S[0])

    def _failed(self, err, delay):
        if self.log is not None:
            self.log.warning("kvs %s: %s; again in %.2f s", self.stream_name, " ".join(str(err).split()), delay)
        time.sleep(delay)

    def close(self, drain_timeout_s=10.0):
        """Encode what is queued, then send what is stored for up to drain_timeout_s; the rest stays on disk."""
        self.frames.put(None)
        deadline = time.monotonic() + drain_timeout_s
        self.threads[0].join(max(0.0, deadline - time.monotonic()))  # the last fragment is stored
        with self.cond:
            self.stopping = True
            if self.windows is not None:
                self.windows.finish()
            self.cond.notify_all()
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        left = self.store.depth()
        if left and self.log is not None:
            self.log.warning("kvs %s: %d fragments not acknowledged within %g s; they stay in the store and go first "
                             "at the next start", self.stream_name, left, drain_timeout_s)
        return left

    def stats(self):
        counters = dict(self.counts)
        seconds = self.clock() - self.started_at if self.started_at is not None else 0.0
        counters["upload_kbit_s"] = round(self.bytes_sent * 8 / 1000.0 / seconds, 1) if seconds > 0 else 0.0
        counters.update(store_depth=self.store.depth(), store_bytes=self.store.bytes(),
                        store_oldest_s=round(self.store.oldest_age_s() or 0.0, 1), store_dropped=self.store.dropped)
        return counters
