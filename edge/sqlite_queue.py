"""What the MQTT outbox and the Kinesis Video fragment store share: write transactions on their one SQLite
connection that, when they fail, roll back (unless SQLite already did), forget the drops counted inside and re-read
the counters from the file; the log notes they gather under their lock; the test hook on the file's size."""
import sqlite3


class SqliteQueue(object):
    """Subclasses set _db, _lock, log, `what` ('outbox PATH'), the drop counters (_unlogged_drops, _drop_reason,
    _dropped), _not_stored and _spell (edge.fault_spell.FaultSpell), and write _resync() (re-read the counters)."""

    @property
    def dropped(self):
        """Items dropped by the size/age bounds since the file was created (the count is kept in the file)."""
        with self._lock:
            return self._dropped

    @property
    def not_stored(self):
        """Items this run could not store (disk full, read-only, I/O error): lost, counted in memory only, as the
        file could not take the count either."""
        with self._lock:
            return self._not_stored

    @property
    def fault(self):
        """The storage fault puts are failing with right now ('disk full', ...), or None."""
        with self._lock:
            return self._spell.name

    def _write(self, work):
        """work() in one write transaction (the caller holds the lock); on any error the state is the file's again
        and the error is raised."""
        before = self._unlogged_drops, self._drop_reason, self._dropped
        try:
            self._db.execute("BEGIN IMMEDIATE")
            result = work()
            self._db.execute("COMMIT")
        except BaseException:
            self._unlogged_drops, self._drop_reason, self._dropped = before
            try:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            except sqlite3.Error as err:  # nothing more to undo: the error that matters is the one re-raised
                self.log.debug("%s: rollback failed: %s", self.what, err)
            try:
                self._resync()
            except sqlite3.Error as err:
                self._resync_failed(err)
            raise
        return result

    def _count_drops(self, n, why):
        """`n` items dropped by the bounds (inside a write transaction): the file's counter, ours, and the log's."""
        if n <= 0:
            return
        self._db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (n,))
        self._dropped += n
        self._unlogged_drops += n
        self._drop_reason = why

    def _resync_failed(self, err):
        raise err

    def _emit(self, notes):
        """Log the (level, format, args...) notes gathered under the lock."""
        for note in notes:
            self.log.log(note[0], note[1], *note[2:])

    def limit_pages(self, pages):
        """Cap the file at `pages` database pages (PRAGMA max_page_count, this connection): a write that needs more
        fails as on a full disk. For tests. Returns the cap in effect: never below the pages in use."""
        with self._lock:
            return int(self._db.execute("PRAGMA max_page_count = {:d}".format(int(pages))).fetchone()[0])
