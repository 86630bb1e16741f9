"""The Kinesis Video fragment store (edge.kvs.store): order and bytes, acknowledgement by FragmentTimecode, size and
age bounds with counted drops (never over max_bytes), restart and kill -9, storage faults, two threads, and a
stateful property test against a list model."""
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from edge.kvs.store import WAL_LIMIT, FragmentStore
from roadedge.core.errors import RoadedgeError
from tests.sqlite_faults import FailingConnection

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPD = b"\x01\x64\x00\x1f\xff\xe1"  # the start of an avcC record: codec private data as the MKV writer passes it


class Clock(object):
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def cluster(timecode, size=None):
    """Deterministic cluster bytes for a timecode (so a reader can tell an intact fragment from a torn one)."""
    rng = random.Random(timecode)
    size = rng.randint(1000, 400000) if size is None else size
    return rng.getrandbits(8 * size).to_bytes(size, "little")


def put(store, stream, tc, size=None, header=(CPD, 1280, 720)):
    return store.put(stream, tc, tc + 1999, True, cluster(tc, size), *header)


def on_disk(path):
    """(count, sum of sizes, dropped) read by another connection, as another process would see the file."""
    reader = sqlite3.connect("file:{}?mode=ro".format(path), uri=True)
    try:
        count, size = reader.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM fragments").fetchone()
        return count, size, reader.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()[0]
    finally:
        reader.close()


def test_fragments_come_back_in_order_with_their_timecodes_header_and_bytes(tmp_path):
    store = FragmentStore(str(tmp_path / "kvs" / "store.sqlite"), 64 << 20, 3600)  # the folder is created
    ids = []
    for i in range(12):  # two streams, interleaved, sizes 1 kB - 400 kB
        ids.append(put(store, "cam-{}".format(i % 2), 10000 + 2000 * i, header=(CPD + bytes([i % 2]), 640 + i % 2, 480)))
    assert ids == sorted(ids) and store.depth() == 12 and store.journal_mode == "wal"
    first = store.pending("cam-0", limit=4)
    assert [f.first_timecode_ms for f in first] == [10000, 14000, 18000, 22000]
    f = first[1]
    assert (f.stream_name, f.last_timecode_ms, f.keyframe_ok, f.codec_private, f.width, f.height) == \
        ("cam-0", 15999, True, CPD + b"\x00", 640, 480)
    assert f.data == cluster(14000) and f.size == len(f.data)
    rest = store.pending("cam-0", after_id=first[-1].id, limit=10)
    assert [x.first_timecode_ms for x in rest] == [26000, 30000]
    assert [x.data for x in store.pending("cam-1", limit=10)] == [cluster(10000 + 2000 * i) for i in range(1, 12, 2)]
    assert store.bytes() == sum(len(cluster(10000 + 2000 * i)) for i in range(12)) == on_disk(store.path)[1]
    assert store.streams() == ["cam-0", "cam-1"] and store.stream_header("cam-1") == (CPD + b"\x01", 641, 480)
    assert store.stream_header("nobody") is None and store.pending("nobody") == [] and store.dropped == 0


def test_an_acknowledgement_removes_the_one_fragment_it_names(tmp_path):
    store = FragmentStore(str(tmp_path / "s.sqlite"), 64 << 20, 3600)
    for i in range(5):
        put(store, "a", 1000 * i, 100)
        put(store, "b", 1000 * i, 100)
    assert store.acknowledge("a", 2000) is True  # out of order: only that one goes
    assert [f.first_timecode_ms for f in store.pending("a")] == [0, 1000, 3000, 4000]
    assert store.first_unacknowledged("a").first_timecode_ms == 0
    assert store.acknowledge("a", 2000) is False and store.acknowledge("a", 2500) is False  # again / unknown
    assert store.acknowledge("a", 0) and store.first_unacknowledged("a").first_timecode_ms == 1000
    assert len(store.pending("b")) == 5 and store.depth() == 8 and on_disk(store.path)[:2] == (8, 800)
    for tc in (1000, 3000, 4000):
        store.acknowledge("a", tc)
    assert store.first_unacknowledged("a") is None and store.streams() == ["b"] and store.dropped == 0


def test_over_max_bytes_the_oldest_go_first_counted_and_the_store_never_exceeds_the_bound(tmp_path, caplog):
    path, bound = str(tmp_path / "s.sqlite"), 2 << 20
    store = FragmentStore(path, bound, 3600, log=logging.getLogger("test-kvs"))
    peak_sum = peak_file = peak_wal = 0
    ids, sizes = [], random.Random(7)
    with caplog.at_level(logging.WARNING, "test-kvs"):
        for i in range(60):  # 60 fragments of 50-500 kB (about 16 MB) through a 2 MB store
            ids.append(put(store, "cam", 2000 * i, sizes.randint(50000, 500000)))
            count, total, dropped = on_disk(path)
            peak_sum, peak_file = max(peak_sum, total), max(peak_file, os.path.getsize(path))
            peak_wal = max(peak_wal, os.path.getsize(path + "-wal"))
            assert total <= bound and (count, total, dropped) == (store.depth(), store.bytes(), store.dropped)
            assert count + dropped == i + 1
    kept = [f.id for f in store.pending("cam", limit=100)]
    assert kept == ids[-len(kept):] and store.dropped == 60 - len(kept) > 40  # the oldest went, all counted
    assert [f.data for f in store.pending("cam", limit=100)] == [cluster(2000 * (60 - len(kept) + k), len(f.data))
                                                                 for k, f in enumerate(store.pending("cam", limit=100))]
    assert peak_file <= bound + 256 * 1024  # room is made before the insert: the file stays near the bound
    assert peak_wal <= WAL_LIMIT + 2 * 500000 + 1000 * 4096  # truncated back after checkpoints (every 1000 pages)
    lines = [line for line in caplog.text.splitlines() if ": dropped " in line]
    assert len(lines) == 1 and ", the oldest (store over 2097152 bytes)" in lines[0]  # rate limited: once a minute
    assert put(store, "cam", 999999, bound + 1) is None and store.dropped == 61 - len(kept)  # larger than the store
    print("\nkvs store bound 2 MB: 60 fragments put, {} kept, {} dropped; peak stored {} bytes, peak file {} bytes, "
          "peak WAL {} bytes".format(len(kept), store.dropped - 1, peak_sum, peak_file, peak_wal))


def test_over_max_age_the_oldest_go_first_and_are_counted(tmp_path):
    clock = Clock()
    store = FragmentStore(str(tmp_path / "s.sqlite"), 64 << 20, 60, clock=clock)
    for i in range(10):
        put(store, "cam", 1000 * i, 100)
        clock.now += 5  # created at 1000, 1005, ... 1045
    assert store.oldest_age_s() == 50.0 and store.dropped == 0
    clock.now = 1098.0  # those created before 1038 are over 60 s old: 8 of them
    assert [f.first_timecode_ms for f in store.pending("cam", limit=20)] == [8000, 9000]
    assert store.dropped == 8 and store.depth() == 2 and store.oldest_age_s() == 58.0
    clock.now = 1200.0
    put(store, "cam", 10000, 100)  # a put expires too
    assert [f.first_timecode_ms for f in store.pending("cam")] == [10000] and store.dropped == 10
    assert on_disk(store.path) == (1, 100, 10)


def test_a_restart_keeps_the_backlog_its_headers_and_the_dropped_counter(tmp_path):
    path = str(tmp_path / "s.sqlite")
    store = FragmentStore(path, 1000, 3600)
    for i in range(6):  # 300 bytes each, 3 fit: 3 dropped
        put(store, "cam", 1000 * i, 300, header=(CPD, 640, 480) if i < 4 else (CPD + b"!", 1280, 720))
    put(store, "other", 50, 101)  # 1001 bytes: drops one more
    store.acknowledge("cam", 4000)
    del store  # no close(): as after kill -9
    again = FragmentStore(path, 1000, 3600)
    assert again.dropped == 4 and again.depth() == 2 and again.streams() == ["cam", "other"]
    backlog = again.pending("cam")
    assert [(f.first_timecode_ms, f.width, f.data) for f in backlog] == [(5000, 1280, cluster(5000, 300))]
    assert again.stream_header("cam") == (CPD + b"!", 1280, 720)
    assert put(again, "cam", 6000, 100) > backlog[0].id  # new fragments go after the backlog
    assert again.first_unacknowledged("cam").first_timecode_ms == 5000
    again.close()


CHILD = """
import sys
sys.path.insert(0, {root!r})
from tests.test_kvs_store import cluster, put
from edge.kvs.store import FragmentStore
store = FragmentStore(sys.argv[1], 1 << 30, 86400)
tc = int(sys.argv[2])
while True:
    fragment_id = put(store, "cam", tc)
    print(fragment_id, tc, flush=True)
    tc += 2000
"""


def test_kill_9_in_the_middle_of_puts_keeps_every_fragment_put_returned_intact(tmp_path):
    path, script = str(tmp_path / "s.sqlite"), tmp_path / "child.py"
    script.write_text(CHILD.format(root=ROOT))
    returned, tc, rng = {}, 0, random.Random(9)
    for _ in range(5):  # five children, each killed a random few puts in, at a random moment of the next put
        child = subprocess.Popen([sys.executable, str(script), path, str(tc)], stdout=subprocess.PIPE)
        try:
            for _ in range(rng.randint(10, 30)):
                fragment_id, tc = (int(x) for x in child.stdout.readline().split())
                returned[fragment_id] = tc
            time.sleep(rng.uniform(0, 0.004))  # a put of 200 kB (on average) takes a few ms
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            for line in child.stdout.read().split(b"\n")[:-1]:  # printed before the kill, not read yet (whole lines)
                fragment_id, tc = (int(x) for x in line.split())
                returned[fragment_id] = tc
        finally:
            child.kill()
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        tc = max(returned.values()) + 1000000
    store = FragmentStore(path, 1 << 30, 86400)
    assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    present = store.pending("cam", limit=1000)
    by_id = {f.id: f for f in present}
    assert set(returned) <= set(by_id)  # every put that returned is there ...
    for f in present:  # ... whole, byte for byte; so is any fragment committed just before a kill
        assert f.data == cluster(f.first_timecode_ms) and f.last_timecode_ms == f.first_timecode_ms + 1999
    assert [f.id for f in present] == sorted(by_id) and store.dropped == 0
    assert len(present) - len(returned) <= 5  # at most the one put each kill cut short after its commit
    print("\nkvs store kill -9 (5 rounds): {} puts returned, {} fragments present and intact ({} committed but "
          "killed before its put returned)".format(len(returned), len(present), len(present) - len(returned)))


def test_a_full_store_stores_no_more_counts_it_says_so_once_and_stores_again_when_there_is_room(tmp_path, caplog):
    store = FragmentStore(str(tmp_path / "s.sqlite"), 64 << 20, 3600, log=logging.getLogger("test-kvs"))
    stored = [tc for tc in range(0, 20000, 2000) if put(store, "cam", tc, 20000)]
    cap = store.limit_pages(1)  # full as it is
    with caplog.at_level(logging.INFO, "test-kvs"):
        attempts = [put(store, "cam", 100000 + tc, 20000) for tc in range(0, 100000, 2000)]
        assert attempts.count(None) >= 45 and store.fault == "disk full"
        stored += [100000 + 2000 * i for i, a in enumerate(attempts) if a is not None]
        assert store.not_stored == attempts.count(None) and caplog.text.count(": disk full, ") == 1
        assert "disk full, 1 fragment not stored (SQLite: database or disk is full)" in caplog.text
        assert (store.depth(), store.bytes()) == on_disk(store.path)[:2] == (len(stored), 20000 * len(stored))
        assert store.limit_pages(cap + 1000) == cap + 1000
        assert put(store, "cam", 999000, 20000) is not None and store.fault is None
        assert caplog.text.count("storing fragments again (disk full for ") == 1
    assert [f.data for f in store.pending("cam", limit=100)] == [cluster(tc, 20000) for tc in stored + [999000]]
    store.close()


def test_a_full_tmpfs_costs_fragments_never_the_encoder(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a 256 kB tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True)
    if result.returncode:
        pytest.skip("cannot mount a tmpfs here: " + result.stderr.decode(errors="replace").strip())
    store = None
    try:
        store = FragmentStore(str(folder / "s.sqlite"), 64 << 20, 3600)
        ids = [put(store, "cam", tc, 30000) for tc in range(0, 40000, 2000)]  # 600 kB into 256 kB
        kept = [(i, 2000 * n) for n, i in enumerate(ids) if i is not None]
        assert store.not_stored == ids.count(None) > 0 and store.fault in ("disk full", "I/O error")
        assert [(f.id, f.first_timecode_ms) for f in store.pending("cam", limit=100)] == kept
        for f in store.pending("cam", limit=100):
            assert f.data == cluster(f.first_timecode_ms, 30000)
        print("\nkvs store on a 256 kB tmpfs: 20 fragments of 30 kB put, {} stored, {} not stored ({})".format(
            len(kept), store.not_stored, store.fault))
    finally:
        if store is not None:
            store.close()
        subprocess.run(["umount", str(folder)], check=True)


def test_an_io_error_stores_nothing_and_any_other_error_is_one_line_naming_the_file(tmp_path):
    path = str(tmp_path / "s.sqlite")
    store = FragmentStore(path, 1000, 3600)
    for i in range(3):
        put(store, "cam", 1000 * i, 300)
    real = store._db
    store._db = FailingConnection(real, "COMMIT", sqlite3.OperationalError("disk I/O error"))
    assert put(store, "cam", 3000, 300) is None  # would have dropped the oldest: undone as well
    assert (store.depth(), store.bytes(), store.dropped) == on_disk(path) == (3, 900, 0) and not real.in_transaction
    assert store.not_stored == 1 and store.fault == "I/O error"
    store._db = FailingConnection(real, "INSERT", sqlite3.OperationalError("database is locked"))
    with pytest.raises(RoadedgeError) as err:
        put(store, "cam", 3000, 300)
    assert str(err.value) == "kvs store {}: fragment 3000 of cam not stored (database is locked)".format(path)
    store._db = real
    assert put(store, "cam", 3000, 300) and on_disk(path) == (3, 900, 1)
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(RoadedgeError, match=r"^kvs store .*junk.sqlite: cannot open it as SQLite \(file is not a"):
        FragmentStore(str(tmp_path / "junk.sqlite"), 1000, 3600)


def test_an_acknowledged_fragment_that_cannot_be_deleted_is_not_sent_again_and_goes_later(tmp_path, caplog):
    store = FragmentStore(str(tmp_path / "s.sqlite"), 64 << 20, 3600, log=logging.getLogger("test-kvs"))
    for i in range(4):
        put(store, "cam", 1000 * i, 100)
    store._db.execute("PRAGMA query_only = 1")  # writes fail with SQLITE_READONLY
    with caplog.at_level(logging.INFO, "test-kvs"):
        assert store.acknowledge("cam", 0) and store.acknowledge("cam", 1000)
        assert store.first_unacknowledged("cam").first_timecode_ms == 2000 and on_disk(store.path)[0] == 4
        assert put(store, "cam", 4000, 100) is None and store.fault == "read-only"
        store._db.execute("PRAGMA query_only = 0")
        assert store.acknowledge("cam", 2000)
    assert [f.first_timecode_ms for f in store.pending("cam")] == [3000] and on_disk(store.path)[0] == 1
    assert caplog.text.count("read-only, cannot delete") == 1 and "deleting acknowledged fragments again" in caplog.text


def test_one_thread_puts_while_another_sends_and_acknowledges_nothing_lost_or_twice(tmp_path):
    store = FragmentStore(str(tmp_path / "s.sqlite"), 1 << 30, 86400)
    n, sent, done = 300, [], threading.Event()

    def encoder():
        for i in range(n):
            put(store, "cam", 2000 * i, 5000 + i)
        done.set()

    def uploader():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not done.is_set() or store.depth()):
            for f in store.pending("cam", limit=7):
                assert f.data == cluster(f.first_timecode_ms, 5000 + f.first_timecode_ms // 2000)
                sent.append(f.first_timecode_ms)
                assert store.acknowledge("cam", f.first_timecode_ms)

    threads = [threading.Thread(target=encoder), threading.Thread(target=uploader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert sent == [2000 * i for i in range(n)] and store.depth() == 0 and store.dropped == 0


class StoreModel(RuleBasedStateMachine):
    """put / acknowledge / time passing / reopen against a list: the same fragments in the same order, the same
    drops (size: the oldest until the new one fits; age: older than AGE seconds, checked after every step)."""

    BOUND, AGE = 5000, 30.0

    def __init__(self):
        super().__init__()
        import tempfile

        self.folder = tempfile.mkdtemp(prefix="kvs-model-")
        self.path = os.path.join(self.folder, "s.sqlite")
        self.clock = Clock()
        self.store = FragmentStore(self.path, self.BOUND, self.AGE, clock=self.clock)
        self.model, self.dropped, self.tc = [], 0, 0  # model: (stream, tc, size, created), oldest first

    @rule(stream=st.sampled_from(["a", "b"]), size=st.integers(1, 6000))
    def put(self, stream, size):
        self.tc += 1
        fragment_id = put(self.store, stream, self.tc, size)
        if size > self.BOUND:
            self.dropped += 1
            assert fragment_id is None
            return
        while sum(m[2] for m in self.model) + size > self.BOUND:
            self.model.pop(0)
            self.dropped += 1
        self.model.append((stream, self.tc, size, self.clock.now))

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def acknowledge(self, data):
        fragment = data.draw(st.sampled_from(self.model))
        assert self.store.acknowledge(fragment[0], fragment[1])
        self.model.remove(fragment)

    @rule(seconds=st.integers(1, 20))
    def time_passes(self, seconds):
        self.clock.now += seconds  # a second or more: the next pending() expires (at most once a second)
        old = [m for m in self.model if m[3] < self.clock.now - self.AGE]
        self.model = [m for m in self.model if m not in old]
        self.dropped += len(old)

    @rule(close=st.booleans())
    def reopen(self, close):
        if close:
            self.store.close()
        self.store = FragmentStore(self.path, self.BOUND, self.AGE, clock=self.clock)

    @invariant()
    def same_as_the_model(self):
        for stream in ("a", "b"):
            got = [(f.stream_name, f.first_timecode_ms, f.size) for f in self.store.pending(stream, limit=100)]
            assert got == [m[:3] for m in self.model if m[0] == stream]
        assert self.store.dropped == self.dropped and self.store.bytes() == sum(m[2] for m in self.model)
        assert on_disk(self.path) == (len(self.model), self.store.bytes(), self.dropped)

    def teardown(self):
        import shutil

        self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)


TestPutAcknowledgeAndReopenBehaveLikeAList = StoreModel.TestCase
# each step touches SQLite on disk: a third of the conftest profile's examples (ci: 50; soak: 1666) keeps it to seconds
TestPutAcknowledgeAndReopenBehaveLikeAList.settings = settings(settings.default,
                                                               max_examples=max(1, settings.default.max_examples // 3))
