"""The Kinesis Video producer's on-disk fragment store: an encoded fragment is stored before anything sends it.

A fragment (one MKV cluster, its first and last timecodes, its stream and the header it needs: codec private
data, width, height) is committed before put() returns, and leaves the store only when the uploader says KVS
acknowledged it (`acknowledge(stream, FragmentTimecode)`: PERSISTED, or RECEIVED for a stream without
retention). Ids grow, so each stream's fragments come back in the order they were put, with their original
timecodes and bytes, and a backlog left by kill -9 or a reboot is sent before anything new. The header travels
with every fragment (a `headers` row they point to), so a backlog is sent behind a fresh MKV header even if the
camera's resolution changed since.

Bounds, as the outbox (edge/outbox.py): over `max_bytes` (the sum of the clusters' sizes) or `max_age_s` the
oldest fragments go first, of any stream; every drop is counted in the file (`dropped`, survives restarts) and
logged at most once a minute. Room is made *before* the insert, in the same transaction, so neither the stored
sum nor the file's pages ever exceed the bound by more than SQLite's own overhead.

Why SQLite and not a file per fragment: one commit holds the bytes, the timecodes, the header and the drop
counter together, so a crash leaves a fragment whole or absent, never half-written or without its index (files
would need temp + fsync + rename + a directory fsync, and a sweep for orphans). The cost is that each byte is
written twice (WAL, then the checkpoint): at 1-4 Mbit/s of H.264 that is under 1 MB/s, well within an SD
card. BLOBs of 100 kB - 2 MB are fine in WAL mode; `journal_size_limit` truncates the WAL back to 8 MB after a
checkpoint, and freed pages are reused, so the files do not grow past the bound plus that.

Durability: WAL, synchronous=NORMAL (a committed fragment survives kill -9; a power cut keeps the file
consistent but may lose the last commits). Storage faults (disk full, read-only, I/O error): put stores nothing,
returns None, counts `not_stored` and logs the fault by name once, then at most once a minute; an acknowledged
fragment whose DELETE fails is hidden from pending() and deleted with the next acknowledge. Any other SQLite
error is a one-line RoadedgeError naming the file. Thread-safe: one connection behind a lock (the encoder thread
puts, the uploader thread reads and acknowledges). One process per store file.
"""
import collections
import logging
import os
import sqlite3
import threading
import time

from edge.fault_spell import FaultSpell
from edge.outbox import storage_fault
from edge.sqlite_queue import SqliteQueue
from roadedge.core.errors import RoadedgeError

Fragment = collections.namedtuple(
    "Fragment", "id stream_name first_timecode_ms last_timecode_ms keyframe_ok data codec_private width height "
                "created size")
Header = collections.namedtuple("Header", "codec_private width height")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS headers (id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, "
    "codec_private BLOB NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS fragments (id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, "
    "first_tc INTEGER NOT NULL, last_tc INTEGER NOT NULL, keyframe INTEGER NOT NULL, header INTEGER NOT NULL, "
    "created REAL NOT NULL, size INTEGER NOT NULL, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS fragments_stream ON fragments (stream, id)",
    "CREATE INDEX IF NOT EXISTS fragments_timecode ON fragments (stream, first_tc)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
COLUMNS = ("SELECT f.id, f.stream, f.first_tc, f.last_tc, f.keyframe, f.data, h.codec_private, h.width, h.height, "
           "f.created, f.size FROM fragments f JOIN headers h ON h.id = f.header ")
WAL_LIMIT = 8 << 20  # bytes the WAL is truncated back to after a checkpoint
DROP_LOG_INTERVAL = 60.0  # seconds between two "dropped" lines while dropping goes on
FAULT_LOG_INTERVAL = 60.0  # seconds between two "not stored" lines while a storage fault goes on


def _plural(n):
    return "{} fragment{}".format(n, "" if n == 1 else "s")


class FragmentStore(SqliteQueue):
    def __init__(self, path, max_bytes, max_age_s, log=None, clock=time.time):
        self.path, self.max_bytes, self.max_age_s = path, int(max_bytes), float(max_age_s)
        self.what = "kvs store " + str(path)
        self.log = log or logging.getLogger("roadedge.kvs.store")
        self.clock = clock
        self._lock = threading.Lock()
        self._headers = {}  # (stream, codec_private, width, height) -> headers.id
        self._hidden = set()  # acknowledged ids whose DELETE failed: not pending, deleted with the next acknowledge
        self._unlogged_drops, self._drop_reason, self._last_drop_log = 0, None, None
        self._delete_fault, self._not_stored, self._last_expiry = None, 0, 0.0
        self._spell = FaultSpell(self.what, "fragment", "the encoder goes on", "not_stored",
                                 FAULT_LOG_INTERVAL)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        except OSError as err:
            raise RoadedgeError("kvs store {}: cannot create its folder ({})".format(path, err.strerror or err)) \
                from None
        try:
            self._db = sqlite3.connect(path, timeout=10.0, check_same_thread=False, isolation_level=None)
            self.journal_mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower()
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA journal_size_limit={:d}".format(WAL_LIMIT))
            for statement in SCHEMA:
                self._db.execute(statement)
            self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped', 0)")
            self._db.execute("DELETE FROM headers WHERE id NOT IN (SELECT header FROM fragments) "
                             "AND id NOT IN (SELECT MAX(id) FROM headers GROUP BY stream)")
            self._dropped = int(self._db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()[0])
            self._resync()
        except sqlite3.Error as err:
            raise RoadedgeError("kvs store {}: cannot open it as SQLite ({})".format(path, err)) from None
        if self._count:
            self.log.info("kvs store %s: %s (%.1f MB) from an earlier run are sent first", path, _plural(self._count),
                          self._bytes / 1048576.0)
        with self._lock:
            self._run(self._expire, True)
        self._log_drops()

    # -- writing ------------------------------------------------------------------------------------------------
    def put(self, stream_name, first_timecode_ms, last_timecode_ms, keyframe_ok, mkv_cluster_bytes, codec_private,
            width, height):
        """Store one fragment, committed when this returns -> its id; None if it was not stored (larger than the
        whole store: counted as dropped; or a storage fault: counted in not_stored)."""
        data, codec_private = bytes(mkv_cluster_bytes), bytes(codec_private)
        row = (str(stream_name), int(first_timecode_ms), int(last_timecode_ms), int(bool(keyframe_ok)), data,
               (str(stream_name), codec_private, int(width), int(height)))
        notes = []
        with self._lock:
            try:
                fragment_id = self._write(lambda: self._insert(row))
            except sqlite3.Error as err:
                fault = storage_fault(err)
                if fault is None:
                    raise RoadedgeError("kvs store {}: fragment {} of {} not stored ({})".format(
                        self.path, row[1], row[0], err)) from None
                fragment_id = None
                notes = self._failed_to_store(fault, err)
            else:
                notes = self._spell.stored()
        self._emit(notes)
        self._log_drops()
        return fragment_id

    def _insert(self, row):
        stream, first_tc, last_tc, keyframe, data, header = row
        size = len(data)
        if self._count is None:
            self._resync()
        self._expire()
        if size > self.max_bytes:
            self._count_drops(1, "a fragment of {} bytes is larger than the whole store".format(size))
            return None
        if self._bytes + size > self.max_bytes:
            self._drop_oldest(self._bytes + size - self.max_bytes)
        header_id = self._headers.get(header)
        if header_id is None:
            header_id = self._db.execute("INSERT INTO headers (stream, codec_private, width, height) VALUES (?, ?, ?, ?)",
                                         (header[0], sqlite3.Binary(header[1]), header[2], header[3])).lastrowid
            self._headers[header] = header_id
        cursor = self._db.execute(
            "INSERT INTO fragments (stream, first_tc, last_tc, keyframe, header, created, size, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (stream, first_tc, last_tc, keyframe, header_id, self.clock(), size,
                                                sqlite3.Binary(data)))
        self._count += 1
        self._bytes += size
        return cursor.lastrowid

    def _resync_failed(self, err):
        self._count = None  # re-read when asked
        self.log.debug("%s: cannot count the stored fragments: %s", self.what, err)

    def _resync(self):
        count, total = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM fragments").fetchone()
        rows = self._db.execute("SELECT id, stream, codec_private, width, height FROM headers").fetchall()
        self._headers = {(r[1], bytes(r[2]), r[3], r[4]): r[0] for r in rows}
        self._count, self._bytes = int(count), int(total)

    def _failed_to_store(self, fault, err):
        self._not_stored += 1
        return self._spell.failed(fault, 1, err)

    def _drop_oldest(self, excess):
        victims, freed = [], 0
        for fragment_id, size in self._db.execute("SELECT id, size FROM fragments ORDER BY id"):
            if freed >= excess:
                break
            victims.append(fragment_id)
            freed += size
        self._delete(victims)
        self._count_drops(len(victims), "store over {} bytes".format(self.max_bytes))

    def _expire(self, force=False):
        """Drop fragments older than max_age_s (inside the caller's transaction; at most once a second unless
        forced)."""
        now = self.clock()
        if self.max_age_s <= 0 or not self._count or (not force and now - self._last_expiry < 1.0):
            return
        self._last_expiry = now
        victims = [r[0] for r in self._db.execute("SELECT id FROM fragments WHERE created < ? ORDER BY id",
                                                  (now - self.max_age_s,))]
        if victims:
            self._delete(victims)
            self._count_drops(len(victims), "older than {:.0f} s".format(self.max_age_s))

    def _run(self, work, *args):
        """work(*args) in its own transaction when it has to write (expiry outside a put); a storage fault leaves
        the fragments for the next try."""
        try:
            self._write(lambda: work(*args))
        except sqlite3.Error as err:
            if storage_fault(err) is None:
                raise RoadedgeError("kvs store {}: {}".format(self.path, err)) from None
            self.log.debug("kvs store %s: cannot delete: %s", self.path, err)

    def _delete(self, ids):
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            count, freed = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM fragments WHERE id IN "
                                            "({})".format(marks), chunk).fetchone()
            self._db.execute("DELETE FROM fragments WHERE id IN ({})".format(marks), chunk)
            self._count -= count
            self._bytes -= freed

    def _log_drops(self):
        with self._lock:
            n, now = self._unlogged_drops, time.monotonic()
            if not n or (self._last_drop_log is not None and now - self._last_drop_log < DROP_LOG_INTERVAL):
                return
            self._unlogged_drops, self._last_drop_log = 0, now
        self.log.warning("kvs store %s: dropped %s, the oldest (%s); %d dropped in total", self.path,
                         _plural(n), self._drop_reason, self.dropped)

    # -- reading and acknowledging --------------------------------------------------------------------------------
    def _read(self, sql, args):
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as err:
            raise RoadedgeError("kvs store {}: cannot read it ({})".format(self.path, err)) from None

    def pending(self, stream_name, after_id=0, limit=8):
        """Up to `limit` unacknowledged fragments of the stream with id > after_id, in the order they were put."""
        with self._lock:
            if self.max_age_s > 0 and self._count and self.clock() - self._last_expiry >= 1.0:
                self._run(self._expire)
            rows = self._read(COLUMNS + "WHERE f.stream = ? AND f.id > ? ORDER BY f.id LIMIT ?",
                              (str(stream_name), int(after_id), int(limit) + len(self._hidden)))
            rows = [r for r in rows if r[0] not in self._hidden][:int(limit)]
        self._log_drops()
        return [Fragment(r[0], r[1], r[2], r[3], bool(r[4]), bytes(r[5]), bytes(r[6]), r[7], r[8], r[9], r[10])
                for r in rows]

    def first_unacknowledged(self, stream_name):
        """The stream's oldest fragment not yet acknowledged (where a resend starts), or None."""
        rows = self.pending(stream_name, limit=1)
        return rows[0] if rows else None

    def acknowledge(self, stream_name, timecode_ms):
        """Remove the stream's fragment whose first timecode is `timecode_ms` (KVS names FragmentTimecode), and
        only that one. -> True if there was one (False: unknown or already dropped). A storage fault hides it from
        pending() and deletes it with the next acknowledge (logged once)."""
        notes = []
        with self._lock:
            rows = self._read("SELECT id FROM fragments WHERE stream = ? AND first_tc = ? ORDER BY id",
                              (str(stream_name), int(timecode_ms)))
            rows = [r[0] for r in rows if r[0] not in self._hidden][:1]
            ids = sorted(self._hidden) + rows
            if not ids:
                return False
            try:
                self._write(lambda: self._delete(ids))
            except sqlite3.Error as err:
                fault = storage_fault(err)
                if fault is None:
                    raise RoadedgeError("kvs store {}: cannot delete acknowledged fragments ({})".format(
                        self.path, err)) from None
                self._hidden.update(ids)
                if self._delete_fault != fault:
                    self._delete_fault = fault
                    notes.append((logging.WARNING, "kvs store %s: %s, cannot delete %s already acknowledged (SQLite: "
                                  "%s); they stay on disk, not sent again, until it works", self.path, fault,
                                  _plural(len(ids)), err))
            else:
                self._hidden.difference_update(ids)
                if self._delete_fault is not None:
                    notes.append((logging.INFO, "kvs store %s: deleting acknowledged fragments again (%s over)",
                                  self.path, self._delete_fault))
                    self._delete_fault = None
        self._emit(notes)
        return bool(rows)

    def streams(self):
        """The streams with unacknowledged fragments, the one with the oldest first (the backlog's order)."""
        with self._lock:
            rows = self._read("SELECT stream, MIN(id) FROM fragments GROUP BY stream ORDER BY MIN(id)", ())
        return [r[0] for r in rows]

    def stream_header(self, stream_name):
        """The header (codec private data, width, height) the stream's newest fragment was put with, or None."""
        with self._lock:
            rows = self._read("SELECT codec_private, width, height FROM headers WHERE stream = ? ORDER BY id DESC "
                              "LIMIT 1", (str(stream_name),))
        return Header(bytes(rows[0][0]), rows[0][1], rows[0][2]) if rows else None

    def _counted(self):
        if self._count is None:
            try:
                self._resync()
            except sqlite3.Error as err:
                raise RoadedgeError("kvs store {}: cannot count it ({})".format(self.path, err)) from None
        return self._count, self._bytes

    def depth(self):
        """Fragments on disk (stored, not yet deleted)."""
        with self._lock:
            return self._counted()[0]

    def bytes(self):
        """The sum of the stored clusters' sizes (what max_bytes bounds)."""
        with self._lock:
            return self._counted()[1]

    def oldest_age_s(self):
        """Seconds since the oldest stored fragment was put (0.0 when empty)."""
        with self._lock:
            rows = self._read("SELECT MIN(created) FROM fragments", ())
        return max(0.0, self.clock() - rows[0][0]) if rows[0][0] is not None else 0.0

    def close(self):
        with self._lock:
            if self._db is None:
                return
            self._db.close()
            self._db = None
            lost = self._not_stored
        if lost:
            self.log.warning("kvs store %s: %s of this run were not stored", self.path, _plural(lost))
