"""The greengrass sink's on-disk outbox (edge.outbox, as the mqtt sink's): a slow core never blocks write(), the
size bound drops the oldest (counted), close() keeps what it could not publish on disk, the next start publishes a
backlog first, and a kill -9 loses nothing, through the Greengrass v1 and v2 stand-ins in child processes."""
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from edge.outbox import Outbox
from edge.sinks import greengrass
from roadedge.core.errors import RoadedgeError
from tests.conftest import import_standin_package
from tests.test_greengrass import check_published, context, expected, frame_result

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDINS = os.path.join(ROOT, "tests", "standins")


@pytest.fixture(autouse=True)
def home_and_quick_retries(monkeypatch, tmp_path):
    """Default outboxes go under this test's own ~, and a failed publish is tried again after 10..50 ms."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(greengrass, "RETRY_S", (0.01, 0.05))


@pytest.fixture
def v1(monkeypatch):
    return import_standin_package(monkeypatch, "greengrasssdk")


# --- the outbox ---

class SlowPublisher(object):
    version, connected, reconnects = "test", True, 0

    def __init__(self):
        self.gate, self.entered, self.sent = threading.Event(), threading.Event(), []

    def publish(self, topic, payload):
        self.entered.set()
        self.gate.wait(5)
        self.sent.append(topic)

    def close(self):
        pass


def disk_depth(path):
    """Messages in an outbox file, as another process sees it."""
    db = sqlite3.connect(str(path), timeout=5.0)
    try:
        return db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    finally:
        db.close()


def test_a_slow_core_never_blocks_write_and_the_outbox_drops_the_oldest(tmp_path):
    publisher = SlowPublisher()
    outbox = Outbox(str(tmp_path / "o.sqlite"), max_bytes=4000)
    sink = greengrass.GreengrassSink(publisher, "roadedge/x", outbox, drain_timeout_s=5.0)
    started = time.monotonic()
    sink.write(frame_result(0))  # 4 messages each
    assert publisher.entered.wait(5)
    for index in range(1, 4):
        sink.write(frame_result(index))
    assert time.monotonic() - started < 1.0
    stats = sink.stats()
    dropped = stats["outbox_dropped"]
    assert dropped >= 4 and stats["outbox_depth"] + dropped == 16 and outbox.bytes() <= 4000  # the oldest went
    publisher.gate.set()
    sink.close()
    stats = sink.stats()  # frame 0's 4, read from the outbox before they were dropped, went; then the kept ones
    assert stats["published"] == 4 + 16 - dropped and stats["outbox_depth"] == 0 and stats["outbox_dropped"] == dropped
    assert publisher.sent[-1] == "roadedge/x/stats" and disk_depth(tmp_path / "o.sqlite") == 0


def test_close_after_drain_timeout_keeps_the_rest_on_disk(tmp_path, caplog):
    publisher = SlowPublisher()
    path = tmp_path / "o.sqlite"
    sink = greengrass.GreengrassSink(publisher, "roadedge/x", Outbox(str(path)), drain_timeout_s=0.2)
    sink.write(frame_result())
    assert publisher.entered.wait(5)
    release = threading.Timer(0.4, publisher.gate.set)  # the stuck publish returns only after the deadline
    release.start()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "roadedge.sinks.greengrass"):
        sink.close()
    assert time.monotonic() - started < 3.0
    stats = sink.stats()
    assert stats["published"] == 1 and stats["outbox_depth"] == 3 and stats["outbox_dropped"] == 0  # left, not dropped
    assert "3 messages not published within drain_timeout_s=0.2; they stay in {}".format(path) in caplog.text
    release.join()
    left = Outbox(str(path))
    assert [row.topic for row in left.pending()] == ["roadedge/x/events"] * 2 + ["roadedge/x/stats"]
    left.close()


def test_a_backlog_left_by_an_earlier_run_is_published_first(v1, tmp_path):
    path = str(tmp_path / "gg.sqlite")
    v1.fail_next(10 ** 6)  # the core is not there
    sink = greengrass.open({"version": "v1", "outbox": path, "drain_timeout_s": 0.0}, context())
    for index in range(2):
        sink.write(frame_result(index))
    deadline = time.monotonic() + 5
    while not sink.stats()["publish_failures"] and time.monotonic() < deadline:
        time.sleep(0.01)
    sink.close()
    stats = sink.stats()
    assert stats["publish_failures"] >= 1 and stats["published"] == 0 and stats["connected"] is False
    assert stats["outbox_depth"] == 8 and disk_depth(path) == 8 and v1.published() == []

    v1.fail_next(0)  # the core is back
    sink = greengrass.open({"version": "v1", "outbox": path}, context())
    sink.write(frame_result(2))
    sink.close()
    published = check_published([(t, p) for t, p, _ in v1.published()])
    assert [m["seq"] for t, m in published if t.endswith("/detections")] == [0, 1, 2]
    assert published == expected(frame_result(0)) + expected(frame_result(1)) + expected(frame_result(2))
    assert sink.stats()["published"] == 12 and disk_depth(path) == 0


def test_the_default_outbox_is_one_file_per_device_under_the_cache(v1, tmp_path):
    sink = greengrass.open({"version": "v1", "topic_prefix": "fleet/x"}, dict(context(), device="rc car/1"))
    sink.close()
    path = tmp_path / ".cache" / "roadedge" / "greengrass-outbox-rc_car_1.sqlite"  # ~ is tmp_path here
    assert sink.outbox.path == str(path) and path.is_file()
    with pytest.raises(RoadedgeError, match="greengrass sink: outbox: expected a string"):
        greengrass.open({"version": "v1", "outbox": 3}, context())
    (tmp_path / "file").write_text("")
    with pytest.raises(RoadedgeError, match="outbox .*file/o.sqlite: cannot create its folder"):
        greengrass.open({"version": "v1", "outbox": str(tmp_path / "file" / "o.sqlite")}, context())


# --- kill -9 ---

CHILD = textwrap.dedent('''
    """One run of the greengrass sink through a stand-in: `fail` (the core refuses everything: the messages pile up
    in the outbox; the test kills this process with SIGKILL) or `deliver` (the core works; close, then write what
    was published to `record`)."""
    import json, sys, time
    version, mode, outbox, record, first, count = sys.argv[1:5] + [int(a) for a in sys.argv[5:7]]
    if version == "v1":
        import greengrasssdk as standin
        if mode == "fail":
            standin.fail_next(10 ** 9)  # every publish raises InvocationException, as with the core's IPC down
    else:
        import awsiot.greengrasscoreipc as standin
        from awsiot.eventstreamrpc import ConnectionClosedError
        if mode == "fail":
            standin.fail_next(10 ** 6, ConnectionClosedError("the nucleus is restarting"))
    from edge.messages import Envelope
    from edge.sinks import greengrass
    from edge.sinks.base import FrameResult
    from edge.sources.base import Frame

    greengrass.RETRY_S = (0.05, 0.2)
    sink = greengrass.open({"version": version, "outbox": outbox, "drain_timeout_s": 60.0}, {"device": "rc-car-1"})
    envelope = Envelope("rc-car-1", mode, next_seq={"detections": first})
    for seq in range(first, first + count):
        message = envelope.detections(timestamp=1795248900.0, frame_index=seq, frame_size=(640, 360), model_name="m",
                                      model_sha256="ab" * 32, latency_ms=20.0, detections=[])
        sink.write(FrameResult(Frame(seq, None, 1795248900.0), [], message))
    if mode == "fail":
        time.sleep(120)  # until killed
        sys.exit(3)
    sink.close()
    if version == "v1":
        payloads = [payload for _, payload, _ in standin.published()]
    else:
        payloads = [message["payload"] for message in standin.messages]
    with open(record, "w") as handle:
        json.dump({"seqs": [json.loads(p.decode("utf-8"))["seq"] for p in payloads], "stats": sink.stats()}, handle)
''')


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_kill_9_loses_nothing_the_next_start_publishes_the_backlog_first(version, tmp_path):
    n, new = 200, 10
    script, outbox, record = tmp_path / "child.py", tmp_path / "gg-outbox.sqlite", tmp_path / "published.json"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([STANDINS, ROOT]), HOME=str(tmp_path), SVCUID="token",
               AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT=str(tmp_path / "ipc.socket"))

    def run(mode, first, count):
        log = (tmp_path / "{}.log".format(mode)).open("w")
        return subprocess.Popen([sys.executable, str(script), version, mode, str(outbox), str(record), str(first),
                                 str(count)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp_path))

    child = run("fail", 0, n)
    try:
        deadline, depth = time.monotonic() + 60, 0
        while time.monotonic() < deadline and child.poll() is None:
            try:
                depth = disk_depth(outbox) if outbox.exists() else 0
            except sqlite3.OperationalError:  # the child is still creating it
                depth = 0
            if depth == n:
                break
            time.sleep(0.05)
        assert depth == n, (depth, child.poll(), (tmp_path / "fail.log").read_text())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL and disk_depth(outbox) == n

    child = run("deliver", n, new)
    assert child.wait(120) == 0, (tmp_path / "deliver.log").read_text()
    result = json.loads(record.read_text())
    seqs = result["seqs"]
    lost = sorted(set(range(n)) - set(seqs))
    duplicates = len(seqs) - len(set(seqs))
    print("greengrass {} kill -9: {} written, {} published after the restart ({} distinct), {} duplicates, {} lost"
          .format(version, n, sum(1 for s in seqs if s < n), len(set(s for s in seqs if s < n)), duplicates, len(lost)))
    assert lost == [] and set(seqs) == set(range(n + new))
    backlog_done = max(seqs.index(seq) for seq in range(n))
    assert backlog_done < min(seqs.index(seq) for seq in range(n, n + new))  # the backlog went first
    assert result["stats"]["outbox_depth"] == 0 and result["stats"]["outbox_dropped"] == 0
    assert result["stats"]["published"] == len(seqs) and disk_depth(outbox) == 0
