"""Store and forward: an on-disk queue of messages between the pipeline and a broker (SQLite, WAL mode).

A message is stored (committed) before anything tries to send it, and deleted
only when the broker has acknowledged it (`ack`). Rows keep their insertion
order (an autoincrement id), so a backlog drains in the order it was made, and
a backlog left by an earlier run (kill -9, reboot) is sent before anything new.

The queue is bounded by size (`max_bytes`) and age (`max_age_s`). The policy is
explicit: when over a bound, the oldest rows go first, and every dropped message
is counted in a counter kept in the same database (`dropped`, it survives
restarts) and logged (rate limited).

Durability: WAL mode with synchronous=NORMAL. A committed row survives kill -9,
the OOM killer or a crash (the WAL is written before commit returns); a power
loss keeps the database consistent but may lose the last transactions.
synchronous=FULL would close that window at an fsync per message, which an SD
card pays dearly for.

Storage faults (disk full, read-only, I/O error): a put stores nothing and
does not raise; its messages are counted (`not_stored`, this run, in memory)
and the fault is logged by name once ("outbox PATH: disk full, N messages not
stored"), then at most once a minute, and once when storing works again. A
failed DELETE of acknowledged rows is retried with the next ack. After a failed
transaction the outbox rolls back only if SQLite has not, and re-reads its
count and size: depth() is what is on disk. `limit_pages(n)` (PRAGMA
max_page_count) lets tests fill it without filling a disk.

Thread-safe: one connection guarded by a lock (the pipeline thread puts, a
sender thread reads and acks). One process per outbox file.
"""
import collections
import logging
import os
import sqlite3
import threading
import time

from edge.fault_spell import FaultSpell
from edge.sqlite_queue import SqliteQueue
from roadedge.core.errors import RoadedgeError

Row = collections.namedtuple("Row", "id topic payload qos retain created size")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
    "payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, created REAL NOT NULL, size INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
DROP_LOG_INTERVAL = 60.0  # seconds between two "dropped" log lines while dropping goes on
FAULT_LOG_INTERVAL = 60.0  # seconds between two "N messages not stored" lines while the storage fault goes on
STORAGE_FAULTS = (  # SQLite primary result code, its message (Python < 3.11 has only the message), the name we log
    (13, "database or disk is full", "disk full"),  # SQLITE_FULL: ENOSPC (a short write), or max_page_count reached
    (8, "readonly database", "read-only"),  # SQLITE_READONLY: a read-only file or file system (at open or a new file)
    (10, "disk i/o error", "I/O error"),  # SQLITE_IOERR: any other failed write (EIO, EDQUOT, EROFS after a remount)
    (14, "unable to open database file", "cannot open its files"),  # SQLITE_CANTOPEN: e.g. the -wal or -shm file
)


def storage_fault(err):
    """The name of the storage fault an sqlite3.Error reports ('disk full', 'read-only', 'I/O error', 'cannot open
    its files'), or None for any other error (locked, corrupt, a bug)."""
    if not isinstance(err, sqlite3.Error):
        return None
    code = getattr(err, "sqlite_errorcode", None)  # Python 3.11+; the extended code: the primary is its low byte
    text = str(err).lower()
    for primary, message, name in STORAGE_FAULTS:
        if (code is not None and code & 0xFF == primary) or message in text:
            return name
    return None


def _plural(n, word="message"):
    return "{} {}{}".format(n, word, "" if n == 1 else "s")


class Outbox(SqliteQueue):
    def __init__(self, path, max_bytes=64 << 20, max_age_s=7 * 86400.0, log=None, clock=time.time, max_pages=None):
        """`max_pages`: limit_pages(max_pages) at once (tests: a file that fills up without filling a disk)."""
        self.path, self.what = path, "outbox " + str(path)
        self.max_bytes = int(max_bytes)
        self.max_age_s = float(max_age_s)
        self.log = log or logging.getLogger("roadedge.outbox")
        self.clock = clock
        self._lock = threading.Lock()
        self._last_expiry = 0.0
        self._unlogged_drops = 0
        self._last_drop_log = self._drop_reason = None
        self._stale = False  # the count and size could not be re-read after a failed transaction: try again
        self._spell = FaultSpell(self.what, "message", "the pipeline goes on", "outbox_not_stored",
                                 FAULT_LOG_INTERVAL)  # while puts fail
        self._delete_fault = None  # the fault's name while deleting acknowledged rows fails
        self._undeleted = []  # acknowledged ids whose DELETE failed: tried again with the next ack()
        self._not_stored, self._fault_names = 0, []
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
            self._dropped = int(self._db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()[0])
        except sqlite3.Error as err:
            raise RoadedgeError("outbox {}: cannot open it as SQLite ({})".format(path, err)) from None
        self.journal_mode = mode.lower()
        if self.journal_mode != "wal" and path != ":memory:":
            self.log.warning("outbox %s: WAL mode unavailable (journal mode %s)", path, mode)
        self._count, self._bytes = int(count), int(total)
        if max_pages:
            self.limit_pages(max_pages)
        if self._count:
            self.log.info("outbox %s: %d messages (%.1f kB) from an earlier run are sent first", path, self._count,
                          self._bytes / 1024.0)
        with self._lock:
            self._expire(force=True)
        self._maybe_log_drops()

    # -- writing ------------------------------------------------------------------------------------------------
    def put(self, topic, payload, qos=1, retain=False):
        """Store one message; committed when this returns. Returns its id (None if it was not stored: too big to
        keep, or the storage failed)."""
        ids = self.put_many([(topic, payload, qos, retain)])
        return ids[0]

    def put_many(self, items):
        """Store (topic, payload[, qos[, retain]]) items in one transaction; their ids (None: not stored). A storage
        fault (disk full, read-only, I/O error) stores none of them, counts them in not_stored and does not raise;
        any other SQLite error is a RoadedgeError naming the outbox."""
        now = self.clock()
        rows = [_row(item) for item in items]
        with self._lock:
            try:
                ids = self._write(lambda: self._insert(rows, now))
            except sqlite3.Error as err:
                fault = storage_fault(err)
                if fault is None:
                    raise RoadedgeError("outbox {}: {} not stored ({})".format(self.path, _plural(len(rows)), err)) \
                        from None
                notes = self._failed_to_store(fault, len(rows), err)
                ids = [None] * len(rows)
            else:
                notes = self._storing_again()
        self._emit(notes)
        self._maybe_log_drops()
        return ids

    def _insert(self, rows, now):
        ids = []
        for topic, payload, qos, retain, size in rows:
            if size > self.max_bytes:
                self._count_drops(1, "a message of {} bytes is larger than the whole outbox".format(size))
                ids.append(None)
                continue
            cursor = self._db.execute(
                "INSERT INTO messages (topic, payload, qos, retain, created, size) VALUES (?, ?, ?, ?, ?, ?)",
                (topic, sqlite3.Binary(payload), qos, retain, now, size))
            ids.append(cursor.lastrowid)
            self._count += 1
            self._bytes += size
        if self._bytes > self.max_bytes:
            self._drop_oldest_over_size()
        self._expire()
        return ids

    def _failed_to_store(self, fault, n, err):
        """Count n messages not stored; the log lines due: at the start of a fault, then once a minute at most."""
        self._not_stored += n
        if fault not in self._fault_names:
            self._fault_names.append(fault)
        return self._spell.failed(fault, n, err)

    def _storing_again(self):
        return self._spell.stored()

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
        """Delete rows older than max_age_s, oldest first (at most once a second unless forced). Inside the caller's
        transaction if there is one; on its own, a storage fault leaves the rows for the next try."""
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
        if not victims:
            return
        reason = "older than {:.0f} s".format(self.max_age_s)
        if self._db.in_transaction:
            self._delete(victims, freed)
            self._count_drops(len(victims), reason)
            return
        try:
            self._write(lambda: (self._delete(victims, freed), self._count_drops(len(victims), reason)))
        except sqlite3.Error as err:
            if storage_fault(err) is None:
                raise
            self.log.debug("outbox %s: cannot delete %s expired: %s", self.path, _plural(len(victims)), err)

    def _delete(self, ids, freed):
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            self._db.execute("DELETE FROM messages WHERE id IN ({})".format(",".join("?" * len(chunk))), chunk)
        self._count -= len(ids)
        self._bytes -= freed

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
        """Count and size from the file (after a failed transaction); if even that fails, try again when asked."""
        try:
            count, total = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages").fetchone()
        except sqlite3.Error as err:
            self._stale = True
            self.log.debug("outbox %s: cannot count the stored messages: %s", self.path, err)
            return
        self._count, self._bytes, self._stale = int(count), int(total), False

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
        """Delete acknowledged messages: one id or an iterable of ids. Unknown ids (already dropped) are ignored. If
        the storage fails, the ids are kept and deleted with the next ack() (logged once); the rows stay meanwhile."""
        ids = [ids] if isinstance(ids, int) else list(ids)
        notes = []
        with self._lock:
            if self._undeleted:
                ids, self._undeleted = list(collections.OrderedDict.fromkeys(self._undeleted + ids)), []
            if not ids:
                return
            try:
                self._write(lambda: self._delete_acknowledged(ids))
            except sqlite3.Error as err:
                fault = storage_fault(err)
                if fault is None:
                    raise
                self._undeleted = ids
                if self._delete_fault != fault:
                    self._delete_fault = fault
                    notes.append((logging.WARNING, "outbox %s: %s, cannot delete %s already sent (SQLite: %s); they "
                                  "stay on disk until it works (and may be sent once more)", self.path, fault,
                                  _plural(len(ids)), err))
            else:
                if self._delete_fault is not None:
                    notes.append((logging.INFO, "outbox %s: deleting sent messages again (%s over)", self.path,
                                  self._delete_fault))
                    self._delete_fault = None
        self._emit(notes)

    def _delete_acknowledged(self, ids):
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            count, freed = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages WHERE id IN "
                                            "({})".format(marks), chunk).fetchone()
            self._db.execute("DELETE FROM messages WHERE id IN ({})".format(marks), chunk)
            self._count -= count
            self._bytes -= freed

    def depth(self):
        """Messages waiting (stored, not yet acknowledged): the rows in the file."""
        with self._lock:
            if self._stale:
                self._resync()
            return self._count

    def bytes(self):
        with self._lock:
            if self._stale:
                self._resync()
            return self._bytes

    def close(self):
        with self._lock:
            if self._db is None:
                return
            self._db.close()
            self._db = None
            lost, names = self._not_stored, ", ".join(self._fault_names)
        if lost:
            self.log.warning("outbox %s: %s of this run were not stored (%s)", self.path, _plural(lost), names)


def _row(item):
    """(topic, payload bytes, qos, retain, size) of a (topic, payload[, qos[, retain]]) item."""
    topic, payload = item[0], item[1]
    qos = int(item[2]) if len(item) > 2 else 1
    retain = int(bool(item[3])) if len(item) > 3 else 0
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return topic, payload, qos, retain, len(payload) + len(topic)
