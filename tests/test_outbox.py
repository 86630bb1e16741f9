"""The on-disk outbox (edge.outbox): order, acknowledgement, size and age bounds with counted drops, WAL, reopen;
and the bounded drain every durable sink closes with (edge.sinks.durable)."""
import logging
import sqlite3
import threading
import time

import pytest

from edge.outbox import Outbox
from edge.sinks import durable
from roadedge.core.errors import RoadedgeError
from tests.sqlite_faults import FailingConnection, sqlite_error


class Clock(object):
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_messages_come_back_in_order_until_acknowledged(tmp_path):
    box = Outbox(str(tmp_path / "o.sqlite"))
    ids = [box.put("t/{}".format(i % 3), "m{}".format(i).encode()) for i in range(10)]
    assert ids == sorted(ids) and box.depth() == 10
    rows = box.pending(4)
    assert [r.payload for r in rows] == [b"m0", b"m1", b"m2", b"m3"] and rows[0].topic == "t/0" and rows[0].qos == 1
    assert [r.payload for r in box.pending(3, after_id=rows[-1].id)] == [b"m4", b"m5", b"m6"]
    box.ack(rows[1].id)
    box.ack([rows[0].id, rows[2].id, 10 ** 9])  # an unknown id (already dropped) is ignored
    assert [r.payload for r in box.pending(2)] == [b"m3", b"m4"]
    assert box.depth() == 7 and box.bytes() == sum(r.size for r in box.pending(100))
    assert box.put("t", "text", qos=0, retain=True) and box.pending(1, after_id=ids[-1])[0][3:5] == (0, True)
    assert box.dropped == 0


def test_the_database_is_in_wal_mode_and_survives_reopening(tmp_path):
    path = str(tmp_path / "sub" / "o.sqlite")  # the folder is created
    box = Outbox(path)
    for i in range(5):
        box.put("t", b"%d" % i)
    box.ack(box.pending(1)[0].id)
    assert box.journal_mode == "wal"
    # another process's view while the first connection is open (as the kill -9 test reads it)
    reader = sqlite3.connect("file:{}?mode=ro".format(path), uri=True)
    assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [bytes(r[0]) for r in reader.execute("SELECT payload FROM messages ORDER BY id")] == [b"1", b"2", b"3", b"4"]
    reader.close()
    del box  # no close(): as after kill -9, the committed rows must be there
    again = Outbox(path)
    assert [r.payload for r in again.pending(10)] == [b"1", b"2", b"3", b"4"] and again.depth() == 4
    assert again.put("t", b"5") > max(r.id for r in again.pending(4))  # ids keep growing: new rows go after old ones


def test_over_the_size_bound_the_oldest_are_dropped_and_counted_persistently(tmp_path, caplog):
    path = str(tmp_path / "o.sqlite")
    box = Outbox(path, max_bytes=1000, log=logging.getLogger("test-outbox"))
    with caplog.at_level(logging.WARNING, "test-outbox"):
        for i in range(30):
            box.put("tt", b"%02d" % i + b"x" * 96)  # 98 + 2 bytes (topic + payload) each -> 10 fit
    assert box.bytes() == 1000 and box.depth() == 10 and box.dropped == 20
    assert [r.payload[:2] for r in box.pending(100)] == [b"%02d" % i for i in range(20, 30)]
    assert "dropped the 1 oldest message (outbox over 1000 bytes); 1 dropped in total" in caplog.text
    assert caplog.text.count("dropped the") == 1  # then rate limited (one line a minute at most)
    assert box.put("t", b"y" * 2000) is None and box.dropped == 21  # larger than the whole outbox: refused, counted
    box.close()
    again = Outbox(path, max_bytes=1000)
    assert again.dropped == 21 and again.depth() == 10  # the counter is in the file


def test_expired_messages_are_dropped_oldest_first_and_counted(tmp_path):
    clock = Clock()
    box = Outbox(str(tmp_path / "o.sqlite"), max_age_s=60, clock=clock)
    for i in range(3):
        box.put("t", b"old%d" % i)
    clock.now += 30
    box.put("t", b"new")
    clock.now += 40  # the first three are 70 s old, the last 40 s
    assert [r.payload for r in box.pending(10)] == [b"new"] and box.dropped == 3 and box.depth() == 1
    box.close()
    clock.now += 100
    reopened = Outbox(str(tmp_path / "o.sqlite"), max_age_s=60, clock=clock)  # expiry also runs at open
    assert reopened.depth() == 0 and reopened.dropped == 4


def test_one_thread_puts_while_another_reads_and_acks(tmp_path):
    box = Outbox(str(tmp_path / "o.sqlite"))
    seen, done = [], threading.Event()

    def consume():
        last = 0
        while not done.is_set() or box.depth():
            rows = box.pending(7, last)
            if rows:
                seen.extend(int(r.payload) for r in rows)
                last = rows[-1].id
                box.ack([r.id for r in rows])

    worker = threading.Thread(target=consume)
    worker.start()
    for i in range(500):
        box.put("t", b"%d" % i)
    done.set()
    worker.join(30)
    assert seen == list(range(500)) and box.depth() == 0 and box.bytes() == 0


def test_a_file_that_is_not_sqlite_is_one_line(tmp_path):
    path = tmp_path / "o.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(RoadedgeError) as err:
        Outbox(str(path))
    assert str(err.value).startswith("outbox {}: cannot open it as SQLite".format(path)) and "\n" not in str(err.value)


def test_drain_returns_as_soon_as_nothing_is_pending(tmp_path):
    box, cond = Outbox(str(tmp_path / "o.sqlite")), threading.Condition()
    ids = [box.put("t", b"m") for _ in range(3)]

    def sender():
        for row_id in ids:
            time.sleep(0.02)
            box.ack(row_id)
            with cond:
                cond.notify_all()

    thread = threading.Thread(target=sender)
    started = time.monotonic()
    thread.start()
    assert durable.drain(box.depth, cond, 10.0) == 0
    assert time.monotonic() - started < 2.0
    thread.join()


def test_drain_gives_up_at_the_deadline_or_when_told_and_says_what_is_left():
    cond, clock = threading.Condition(), Clock(0.0)
    started = time.monotonic()
    assert durable.drain(lambda: 5, cond, 0.0) == 5 and durable.drain(lambda: 5, cond, -1.0) == 5
    assert durable.drain(lambda: 5, cond, 0.1) == 5
    assert 0.1 <= time.monotonic() - started < 2.0

    calls = []

    def pending():  # the clock moves on by one second per look
        calls.append(clock.now)
        clock.now += 1.0
        return 2

    assert durable.drain(pending, cond, 3.0, clock=clock) == 2 and calls == [0.0, 1.0, 2.0]  # then 3 s had passed
    started = time.monotonic()
    assert durable.drain(lambda: 7, cond, 30.0, stop_early=lambda: True) == 7
    assert time.monotonic() - started < 1.0


def test_the_default_outbox_path_is_per_sink_and_device(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert durable.outbox_path("", "greengrass-outbox", "rc car/1") == str(
        tmp_path / ".cache" / "roadedge" / "greengrass-outbox-rc_car_1.sqlite")
    assert durable.outbox_path("~/o.sqlite", "outbox", "x") == str(tmp_path / "o.sqlite")


# -- storage faults: disk full, read-only, I/O errors -------------------------------------------------------------------
def rows_on_disk(path):
    """(rows, their total size) in the outbox file, as another process sees it."""
    reader = sqlite3.connect("file:{}?mode=ro".format(path), uri=True, timeout=5)
    try:
        count, size = reader.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages").fetchone()
        dropped = reader.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()[0]
        return count, size, dropped
    finally:
        reader.close()


def test_a_full_outbox_stores_no_more_counts_what_it_could_not_store_says_so_once_and_goes_on(tmp_path, caplog):
    path = str(tmp_path / "o.sqlite")
    box = Outbox(path, max_bytes=60000, log=logging.getLogger("test-outbox"))
    payload = b"p" * 190  # + the topic "t/x": 193 bytes a message
    for _ in range(20):
        box.put("t/x", payload)
    cap = box.limit_pages(1)  # the file is full as it is (the pages it has may still take a few rows)
    attempted, stored = 0, 20
    with caplog.at_level(logging.INFO, "test-outbox"):
        for _ in range(400):  # one at a time, as the pipeline puts them; then a batch
            attempted += 1
            stored += box.put("t/x", payload) is not None
        ids = box.put_many([("t/x", payload)] * 5)
        attempted += 5
        stored += sum(i is not None for i in ids)
        assert ids == [None] * 5 and box.fault == "disk full"
        full = box.depth()
        assert (full, box.bytes(), box.dropped) == rows_on_disk(path) == (stored, stored * 193, 0)
        assert box.not_stored == attempted - (stored - 20) and box.not_stored >= 350
        assert caplog.text.count(": disk full, ") == 1 and "cannot rollback" not in caplog.text
        assert "outbox {}: disk full, 1 message not stored (SQLite: database or disk is full)".format(path) in caplog.text
        # space again: what comes now is stored, and that is said once
        assert box.limit_pages(cap + 1000) == cap + 1000
        assert [box.put("t/x", payload) is not None for _ in range(10)] == [True] * 10
        assert box.fault is None and caplog.text.count("storing messages again (disk full for ") == 1
    assert "messages not stored)" in caplog.text.splitlines()[-1]
    assert (box.depth(), box.bytes(), box.dropped) == rows_on_disk(path) == (full + 10, (full + 10) * 193, 0)
    print("\nfull outbox (max_page_count; 20 rows before the cap): attempted {}, stored {}, not stored {}, rows on "
          "disk {}".format(attempted + 10, stored - 20 + 10, box.not_stored, rows_on_disk(path)[0]))
    box.close()
    assert "{} messages of this run were not stored (disk full)".format(attempted - (stored - 20)) in caplog.text


def test_while_the_disk_stays_full_the_running_count_is_logged_rate_limited(tmp_path, caplog, monkeypatch):
    box = Outbox(str(tmp_path / "o.sqlite"), log=logging.getLogger("test-outbox"))
    box.limit_pages(1)
    with caplog.at_level(logging.WARNING, "test-outbox"):
        for _ in range(100):
            box.put("t", b"x" * 1000)
        assert caplog.text.count(": disk full, ") == 1  # within the interval: counted only
        monkeypatch.setattr(box._spell, "interval", 0.0)  # the minute is over
        box.put_many([("t", b"x" * 1000)] * 3)
    lines = [line for line in caplog.text.splitlines() if ": disk full, " in line]
    assert len(lines) == 2 and "disk full, {} messages not stored in the last ".format(box.not_stored) in lines[1]
    assert box.not_stored == 103 - box.depth()


def test_a_read_only_outbox_keeps_what_it_has_and_deletes_the_acknowledged_ones_later(tmp_path, caplog):
    path = str(tmp_path / "o.sqlite")
    box = Outbox(path, log=logging.getLogger("test-outbox"))
    ids = [box.put("t", b"m%d" % i) for i in range(6)]
    box._db.execute("PRAGMA query_only = 1")  # writes fail with SQLITE_READONLY, as on a read-only file
    with caplog.at_level(logging.INFO, "test-outbox"):
        assert box.put("t", b"new") is None and box.put_many([("t", b"a"), ("t", b"b")]) == [None, None]
        box.ack(ids[:2])  # sent and acknowledged, but the rows cannot go yet
        box.ack(ids[2])
        assert box.depth() == 6 == rows_on_disk(path)[0] and box.not_stored == 3 and box.fault == "read-only"
        assert caplog.text.count(": read-only, ") == 2  # one line for the puts, one for the deletes
        assert "read-only, 1 message not stored (SQLite: attempt to write a readonly database)" in caplog.text
        assert "read-only, cannot delete 2 messages already sent" in caplog.text
        box._db.execute("PRAGMA query_only = 0")
        assert box.put("t", b"later") is not None
        box.ack(ids[3])  # deletes the three kept back as well
    assert [r.payload for r in box.pending(10)] == [b"m4", b"m5", b"later"] and rows_on_disk(path)[0] == 3
    assert "storing messages again (read-only for " in caplog.text and "deleting sent messages again" in caplog.text
    box.close()


@pytest.mark.parametrize("when", ["INSERT", "COMMIT"])
def test_an_io_error_is_named_counted_and_the_count_is_what_is_on_disk(tmp_path, caplog, when):
    path = str(tmp_path / "o.sqlite")
    box = Outbox(path, max_bytes=9, log=logging.getLogger("test-outbox"))  # 2 bytes a message: 4 fit
    for i in range(4):
        box.put("t", b"%d" % i)
    real = box._db
    box._db = FailingConnection(real, when, sqlite_error("disk I/O error", 778))  # SQLITE_IOERR_WRITE
    with caplog.at_level(logging.WARNING, "test-outbox"):
        assert box.put_many([("t", b"x"), ("t", b"y")]) == [None, None]  # would drop the 2 oldest: undone too
        assert box.put("t", b"z") is None
        assert not real.in_transaction  # rolled back (SQLite had not done it this time)
    assert (box.depth(), box.bytes(), box.dropped) == rows_on_disk(path) == (4, 8, 0)
    assert [r.payload for r in box.pending(10)] == [b"0", b"1", b"2", b"3"]
    assert box.not_stored == 3 and caplog.text.count(": I/O error, ") == 1 and "dropped" not in caplog.text
    assert "I/O error, 2 messages not stored (SQLite: disk I/O error)" in caplog.text
    box._db.error = None
    assert box.put("t", b"4") is not None and (box.depth(), box.bytes(), box.dropped) == rows_on_disk(path) == (4, 8, 1)


def test_any_other_sqlite_error_of_a_put_is_one_line_naming_the_outbox_and_leaves_it_consistent(tmp_path):
    path = str(tmp_path / "o.sqlite")
    box = Outbox(path)
    box.put("t", b"0")
    box._db = FailingConnection(box._db, "INSERT", sqlite_error("database is locked", 5))
    with pytest.raises(RoadedgeError) as err:
        box.put_many([("t", b"1"), ("t", b"2")])
    assert str(err.value) == "outbox {}: 2 messages not stored (database is locked)".format(path)
    assert box.depth() == 1 == rows_on_disk(path)[0] and box.not_stored == 0 and box.fault is None


@pytest.mark.parametrize("message, code, name", [
    ("database or disk is full", None, "disk full"), ("database or disk is full", 13, "disk full"),
    ("attempt to write a readonly database", None, "read-only"), ("whatever", 1032, "read-only"),  # READONLY_DBMOVED
    ("disk I/O error", None, "I/O error"), ("disk I/O error", 4874, "I/O error"),  # IOERR_SHMSIZE
    ("unable to open database file", 14, "cannot open its files"),
    ("database is locked", 5, None), ("database disk image is malformed", 11, None), ("no such table: x", 1, None)])
def test_storage_faults_are_told_by_code_or_by_message(message, code, name):
    from edge.outbox import storage_fault

    assert storage_fault(sqlite_error(message, code)) == name
    assert storage_fault(ValueError(message)) is None
