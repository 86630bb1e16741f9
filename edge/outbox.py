"""Store and forward: an on-disk queue of messages between the pipeline and a broker (SQLite, WAL mode).

A message is stored (committed) before anything tries to send it, and deleted
only when the broker has acknowledged it (`ack`). Rows keep their insertion
order (an autoincrement id), so a backlog drains in the order it was made, and
a backlog left by an earlier run (kill -9, reboot) is sent before anything new.

The queue is bounded by size (`max_bytes`) and age (`max_age_s`). The policy is
explicit: when over a bound, the oldest rows go first, and every dropped message
is counted in a counter kept in the same database (`dropped`, it survives
restarts) and logged (rate limited).

Durability: WAL mode with synchronous=NORMAL. A committed row survives the
process being killed at any point (kill -9, OOM killer, a crash), because the
WAL is written before commit returns. On a power loss the database stays
consistent, but the last transactions before the loss (those not yet
checkpointed / synced by the OS) may be missing. synchronous=FULL would close
that window at the price of an fsync per message, which an SD card pays dearly for.

Thread-safe: one connection guarded by a lock (the pipeline thread puts, a
sender thread reads and acks). One process per outbox file.
"""
import collections
import logging
import os
import sqlite3
import threading
import time

from roadedge.core.errors import RoadedgeError

Row = collections.namedtuple("Row", "id topic payload qos retain created size")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
    "payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, created REAL NOT NULL, size INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
DROP_LOG_INTERVAL = 60.0  # seconds between two "dropped" log lines while dropping goes on


class Outbox(object):
    def __init__(self, path, max_bytes=64 << 20, max_age_s=7 * 86400.0, log=None, clock=time.time):
        self.path = path
        self.max_bytes = int(max_bytes)
        self.max_age_s = float(max_age_s)
        self.log = log or logging.getLogger("roadedge.outbox")
        self.clock = clock
        self._lock = threading.Lock()
        self._last_expiry = 0.0
        self._unlogged_drops = 0
        self._last_drop_log = self._drop_reason = None
        if path != ":memory:":
            folder = os.path.dirname(os.path.abspath(path))
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as err:
                raise RoadedgeError("outbox {}: cannot create its folder ({})".format(path, err.strerror or err)) \
                    from None
        try:
            self._db = sqlite3.connect(path, timeout=10.0, check_same_thread=False, isolation_level=None)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self._db.execute("PRAGMA synchronous=NORMAL")
            for statement in SCHEMA:
                self._db.execute(statement)
            self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped', 0)")
            count, total = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages").fetchone()
        except sqlite3.Error as err:
            raise RoadedgeError("outbox {}: cannot open it as SQLite ({})".format(path, err)) from None
        self.journal_mode = mode.lower()
        if self.journal_mode != "wal" and path != ":memory:":
            self.log.warning("outbox %s: WAL mode unavailable (journal mode %s)", path, mode)
        self._count, self._bytes = int(count), int(total)
        if self._count:
            self.log.info("outbox %s: %d messages (%.1f kB) from an earlier run are sent first", path, self._count,
                          self._bytes / 1024.0)
        with self._lock:
            self._expire(force=True)
        self._maybe_log_drops()

    # -- writing ------------------------------------------------------------------------------------------------
    def put(self, topic, payload, qos=1, retain=False):
        """Store one message; committed when this returns. Returns its id (None if it was too big to keep)."""
        ids = self.put_many([(topic, payload, qos, retain)])
        return ids[0]

    def put_many(self, items):
        """Store (topic, payload[, qos[, retain]]) items in one transaction; their ids (None: too big, dropped)."""
        now = self.clock()
        ids = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for item in items:
                    topic, payload = item[0], item[1]
                    qos = item[2] if len(item) > 2 else 1
                    retain = item[3] if len(item) > 3 else False
                    if isinstance(payload, str):
                        payload = payload.encode("utf-8")
                    size = len(payload) + len(topic)
                    if size > self.max_bytes:
                        self._count_drops(1, "a message of {} bytes is larger than the whole outbox".format(size))
                        ids.append(None)
                        continue
                    cursor = self._db.execute(
                        "INSERT INTO messages (topic, payload, qos, retain, created, size) VALUES (?, ?, ?, ?, ?, ?)",
                        (topic, sqlite3.Binary(payload), int(qos), int(bool(retain)), now, size))
                    ids.append(cursor.lastrowid)
                    self._count += 1
                    self._bytes += size
                if self._bytes > self.max_bytes:
                    self._drop_oldest_over_size()
                self._expire()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._resync()
                raise
        self._maybe_log_drops()
        return ids

    def _drop_oldest_over_size(self):
        """Delete the oldest rows until the total fits max_bytes (inside the caller's transaction)."""
        excess = self._bytes - self.max_bytes
        victims, freed = [], 0
        for row_id, size in self._db.execute("SELECT id, size FROM messages ORDER BY id"):
            if freed >= excess:
                break
            victims.append(row_id)
            freed += size
        self._delete(victims, freed)
        limit = self.max_bytes
        self._count_drops(len(victims), "outbox over {}".format(
            "{:g} MB".format(round(limit / 1048576.0, 1)) if limit >= 1048576 else "{} bytes".format(limit)))

    def _expire(self, force=False):
        """Delete rows older than max_age_s, oldest first (at most once a second unless forced)."""
        now = self.clock()
        if self.max_age_s <= 0 or not self._count or (not force and now - self._last_expiry < 1.0):
            return
        self._last_expiry = now
        cutoff = now - self.max_age_s
        victims, freed = [], 0
        for row_id, created, size in self._db.execute("SELECT id, created, size FROM messages ORDER BY id"):
            if created >= cutoff:
                break
            victims.append(row_id)
            freed += size
        if victims:
            in_transaction = self._db.in_transaction
            if not in_transaction:
                self._db.execute("BEGIN IMMEDIATE")
            self._delete(victims, freed)
            self._count_drops(len(victims), "older than {:.0f} s".format(self.max_age_s))
            if not in_transaction:
                self._db.execute("COMMIT")

    def _delete(self, ids, freed):
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            self._db.execute("DELETE FROM messages WHERE id IN ({})".format(",".join("?" * len(chunk))), chunk)
        self._count -= len(ids)
        self._bytes -= freed

    def _count_drops(self, n, why):
        if n <= 0:
            return
        self._db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (n,))
        self._unlogged_drops += n
        self._drop_reason = why

    def _maybe_log_drops(self):
        with self._lock:
            n = self._unlogged_drops
            now = time.monotonic()
            if not n or (self._last_drop_log is not None and now - self._last_drop_log < DROP_LOG_INTERVAL):
                return
            self._unlogged_drops, self._last_drop_log = 0, now
        self.log.warning("outbox %s: dropped the %d oldest message%s (%s); %d dropped in total", self.path, n,
                         "" if n == 1 else "s", self._drop_reason, self.dropped)

    def _resync(self):
        self._count, self._bytes = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages").fetchone()

    # -- reading and acknowledging --------------------------------------------------------------------------------
    def pending(self, limit=100, after_id=0):
        """Up to `limit` stored messages with id > after_id, in id (= creation) order."""
        with self._lock:
            self._expire()
            rows = self._db.execute("SELECT id, topic, payload, qos, retain, created, size FROM messages WHERE id > ? "
                                    "ORDER BY id LIMIT ?", (int(after_id), int(limit))).fetchall()
        self._maybe_log_drops()
        return [Row(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5], r[6]) for r in rows]

    def ack(self, ids):
        """Delete acknowledged messages: one id or an iterable of ids. Unknown ids (already dropped) are ignored."""
        ids = [ids] if isinstance(ids, int) else list(ids)
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(ids), 500):
                    chunk = ids[start:start + 500]
                    marks = ",".join("?" * len(chunk))
                    count, freed = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages WHERE id IN "
                                                    "({})".format(marks), chunk).fetchone()
                    self._db.execute("DELETE FROM messages WHERE id IN ({})".format(marks), chunk)
                    self._count -= count
                    self._bytes -= freed
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._resync()
                raise

    def depth(self):
        """Messages waiting (stored, not yet acknowledged)."""
        with self._lock:
            return self._count

    def bytes(self):
        with self._lock:
            return self._bytes

    @property
    def dropped(self):
        """Messages dropped by the size/age policy since the outbox file was created (persistent)."""
        with self._lock:
            return int(self._db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()[0])

    def close(self):
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
