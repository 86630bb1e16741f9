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
