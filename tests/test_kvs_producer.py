"""The Python Kinesis Video producer against the local KVS server (both planes, SigV4 checked): every frame arrives
exactly once across an ERROR acknowledgement, a dropped connection and a kill -9 of the producer."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
from botocore.credentials import Credentials

from edge.kvs.control import StreamEndpoint, make_client
from edge.kvs.encoder import H264Encoder
from edge.kvs.producer import Producer
from edge.kvs.store import FragmentStore
from tests.kvs_server import ACCESS_KEY, REGION, SECRET_KEY, KvsServer

FPS, GOP = 15, 15  # one-second fragments
T0 = 1764547200.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def image(index):
    frame = np.zeros((180, 320, 3), np.uint8)
    frame[:, (index * 7) % 300:(index * 7) % 300 + 20] = (40, 200, 90)
    return frame


def producer_for(kvs, store_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    endpoint = StreamEndpoint(make_client(REGION, kvs.url), "cam")
    store = FragmentStore(str(store_path), 64 << 20, 3600)
    return Producer(store, endpoint, Credentials(ACCESS_KEY, SECRET_KEY), REGION, "cam",
                    H264Encoder(320, 180, FPS, GOP, 300000), queue_frames=1000).start()


def run(producer, frames, first=0, pace_s=0.0):
    for index in range(first, first + frames):
        assert producer.submit(image(index), T0 + index / FPS)
        time.sleep(pace_s)
    return producer.close(drain_timeout_s=30)


def received(kvs):
    """Per persisted fragment: (timecode, blocks, starts with a key frame)."""
    return [(f.timecode, f.blocks, f.keyframe) for f in kvs.streams["cam"].fragments if f.status == "PERSISTED"]


def frames_of(fragments):
    return sum(blocks for _, blocks, _ in fragments)


def test_every_frame_arrives_once_in_rising_fragments_that_start_with_a_key_frame(tmp_path, monkeypatch):
    with KvsServer() as kvs:
        producer = producer_for(kvs, tmp_path / "store.sqlite", monkeypatch)
        assert run(producer, 60) == 0
        got, stats = received(kvs), producer.stats()
    assert [t for t, _, _ in got] == [int(T0 * 1000) + k * 1000 for k in range(4)]
    assert frames_of(got) == 60 and all(key for _, _, key in got)
    assert stats["fragments_acknowledged"] == 4 and stats["store_depth"] == 0 and stats["connections"] == 1


def test_an_error_acknowledgement_and_a_dropped_connection_lose_and_repeat_nothing(tmp_path, monkeypatch):
    with KvsServer() as kvs:
        kvs.fail_next(1, 5001)
        kvs.drop_after(3)
        producer = producer_for(kvs, tmp_path / "store.sqlite", monkeypatch)
        assert run(producer, 90, pace_s=0.01) == 0
        got, stats = received(kvs), producer.stats()
    timecodes = [t for t, _, _ in got]
    print("\nkvs across ERROR 5001 and a dropped connection: frames sent 90, received {}, fragments {}, resent {}, "
          "reconnects {}".format(frames_of(got), len(got), stats.get("fragments_resent"), stats.get("reconnects")))
    assert timecodes == sorted(set(timecodes)) == [int(T0 * 1000) + k * 1000 for k in range(6)]
    assert frames_of(got) == 90 and stats["store_depth"] == 0
    assert stats["fragments_errored"] >= 1 and stats["reconnects"] >= 2 and stats["connections"] >= 3


KILLED_PRODUCER = """
import sys, time
sys.path.insert(0, {root!r})
from tests.test_kvs_producer import image, FPS, T0
from edge.kvs.encoder import H264Encoder
from edge.kvs.producer import Producer
from edge.kvs.store import FragmentStore

class Nowhere(object):  # the network is down: nothing leaves the store
    def endpoint(self):
        raise ConnectionError("offline")
    def invalidate(self):
        pass

store = FragmentStore(sys.argv[1], 64 << 20, 3600)
producer = Producer(store, Nowhere(), None, "us-east-1", "cam", H264Encoder(320, 180, FPS, 15, 300000),
                    queue_frames=1000, log=None).start()
for index in range(60):
    producer.submit(image(index), T0 + index / FPS)
while store.depth() < 3:
    time.sleep(0.05)
print("stored", flush=True)
time.sleep(60)
"""


def test_after_kill_9_the_backlog_is_sent_first(tmp_path, monkeypatch):
    store_path = tmp_path / "store.sqlite"
    child = subprocess.Popen([sys.executable, "-c", KILLED_PRODUCER.format(root=ROOT), str(store_path)], cwd=ROOT,
                             stdout=subprocess.PIPE, universal_newlines=True)
    try:
        assert child.stdout.readline().strip() == "stored"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    backlog = FragmentStore(str(store_path), 64 << 20, 3600)
    before = [f.first_timecode_ms for f in backlog.pending("cam", limit=100)]
    backlog.close()
    assert len(before) >= 3
    with KvsServer() as kvs:
        producer = producer_for(kvs, store_path, monkeypatch)
        assert run(producer, 30, first=60) == 0  # two more seconds after the restart
        got = received(kvs)
    timecodes = [t for t, _, _ in got]
    assert timecodes[:len(before)] == before  # the backlog first, with its original timecodes
    assert timecodes == sorted(set(timecodes)) and timecodes[-2:] == [int(T0 * 1000) + 4000, int(T0 * 1000) + 5000]


def test_roadedge_run_streams_every_paced_frame_to_kinesis_video(tmp_path, monkeypatch, capsys):
    import json

    from roadedge.cli import main

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    settings = tmp_path / "kvs.yaml"
    with KvsServer() as kvs:
        settings.write_text(json.dumps({"outputs": [{"type": "kvs", "stream_name": "x", "producer": "python",
                                                     "fragment_s": 1.0, "width": 320, "height": 180,
                                                     "store": str(tmp_path / "kvs.sqlite")}]}))
        code = main(["run", "--source", "sample", "--realtime", "--frames", "45", "--no-preview", "--quiet",
                     "--config", str(settings), "--kvs", "cam", "--kvs-region", REGION, "--kvs-endpoint-url", kvs.url,
                     "--summary", str(tmp_path / "summary.json")])
        got = received(kvs)
    assert code == 0, capsys.readouterr().err
    stats = json.loads((tmp_path / "summary.json").read_text())
    assert stats["frames"] == 45 and not stats["sink_errors"]
    assert len(got) >= 3 and all(key for _, _, key in got) and [t for t, _, _ in got] == sorted(t for t, _, _ in got)
    assert 40 <= frames_of(got) <= 45  # every frame the sink took (paced to 15 fps), once
    assert "cam" in kvs.streams and "x" not in kvs.streams  # --kvs names the stream, over the config's


def test_the_kvs_sink_refuses_what_it_cannot_do_in_one_line(tmp_path):
    import pytest

    from edge.sinks import kvs
    from roadedge.core.errors import RoadedgeError

    for options, message in (({}, "kvs sink: stream_name ''"), ({"stream_name": "a b"}, "stream_name 'a b'"),
                             ({"stream_name": "cam", "producer": "kvssink"}, "kvssink element"),
                             ({"stream_name": "cam", "mode": "live"}, "kvs sink: mode: 'live'"),
                             ({"stream_name": "cam", "fragment_s": 12.0}, "fragment_s: 12.0; expected 1.0..10.0")):
        with pytest.raises(RoadedgeError, match=message.replace("(", r"\(").replace(".", r"\.")):
            kvs.open(options, {})


def test_kvs_upload_sends_a_recording_with_its_own_timecodes(tmp_path, monkeypatch, capsys):
    from edge.sources.spec import SAMPLE_VIDEO
    from roadedge.cli import main

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("HOME", str(tmp_path))  # the store goes under ~/.cache/roadedge
    with KvsServer() as kvs:
        code = main(["kvs", "upload", SAMPLE_VIDEO, "--stream", "docked", "--region", REGION, "--endpoint-url", kvs.url,
                     "--start", str(T0), "--fragment-s", "2"])
        got = [(f.timecode, f.blocks, f.keyframe) for f in kvs.streams["docked"].fragments if f.status == "PERSISTED"]
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("sent 150 frames of ")
    assert frames_of(got) == 150 and all(key for _, _, key in got)
    assert [t for t, _, _ in got] == [int(T0 * 1000) + k * 2000 for k in range(5)]  # 10 s at 15 fps, 2 s fragments


def test_events_mode_sends_only_the_fragments_around_a_damage_event(tmp_path, monkeypatch):
    from edge.kvs.event_windows import EventWindows

    with KvsServer() as kvs:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        producer = Producer(FragmentStore(str(tmp_path / "s.sqlite"), 64 << 20, 3600),
                            StreamEndpoint(make_client(REGION, kvs.url), "cam"), Credentials(ACCESS_KEY, SECRET_KEY),
                            REGION, "cam", H264Encoder(320, 180, FPS, GOP, 300000), queue_frames=1000,
                            windows=EventWindows(pre_roll_s=1.0, post_roll_s=1.0)).start()
        for index in range(8 * FPS):  # 8 one-second fragments; a pothole seen from 4.2 s to 5.1 s
            at = T0 + index / FPS
            if index == int(4.2 * FPS):
                producer.event("new", 1, at)
            if index == int(5.1 * FPS):
                producer.event("end", 1, at)
            producer.submit(image(index), at)
        assert producer.close(drain_timeout_s=30) == 0
        got, stats = received(kvs), producer.stats()
    base = int(T0 * 1000)
    # the event's window [4.2 - 1, 5.07 + 1] s overlaps the fragments starting at 3, 4, 5 and 6 s
    assert [t - base for t, _, _ in got] == [3000, 4000, 5000, 6000] and frames_of(got) == 4 * FPS
    assert stats["fragments_outside_events"] == 4 and stats["store_depth"] == 0


def test_the_sink_paces_frames_and_hands_every_event_over_even_on_skipped_and_final_results():
    from edge.plugins import checked
    from edge.sinks import kvs
    from edge.sinks.base import FrameResult
    from edge.sources.base import Frame

    class Recorder(object):
        def __init__(self):
            self.frames, self.events = [], []

        def submit(self, image, when):
            self.frames.append(round(when, 3))

        def event(self, kind, track, when):
            self.events.append((kind, track, round(when, 3)))

    recorder = Recorder()
    sink = kvs.KvsSink(recorder, checked(kvs.OPTIONS, {"stream_name": "cam", "fps": 10.0, "mode": "events"}, "t"),
                       "python")
    frame = np.zeros((8, 8, 3), np.uint8)
    for index in range(6):  # frames every 50 ms, streamed at 10 fps: every other one
        events = [{"event": "new", "track_id": 7}] if index == 1 else []
        sink.write(FrameResult(Frame(index, frame, 100.0 + index * 0.05), [], None, events=events))
    final = FrameResult(Frame(5, frame, 100.25), [], None, events=[{"event": "end", "track_id": 7}])
    final.final = True
    sink.write(final)
    assert recorder.frames == [100.0, 100.1, 100.2] and sink.paced == 3
    assert recorder.events == [("new", 7, 100.05), ("end", 7, 100.25)]


def test_roadedge_run_killed_while_offline_sends_its_backlog_first_after_the_restart(tmp_path, monkeypatch):
    import json
    import socket
    import sqlite3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    store = tmp_path / "kvs.sqlite"
    settings = tmp_path / "kvs.yaml"
    settings.write_text(json.dumps({"outputs": [{"type": "kvs", "stream_name": "cam", "producer": "python",
                                                 "fragment_s": 1.0, "width": 320, "height": 180, "store": str(store)}]}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        offline = "http://127.0.0.1:%d" % sock.getsockname()[1]
    base = [sys.executable, "-m", "roadedge", "run", "--source", "sample", "--realtime", "--no-preview", "--quiet",
            "--output", "jsonl:" + os.devnull, "--config", str(settings), "--kvs", "cam", "--kvs-region", REGION]
    child = subprocess.Popen(base + ["--kvs-endpoint-url", offline], cwd=ROOT, env=dict(os.environ),
                             stderr=subprocess.DEVNULL)

    def stored():
        try:
            with sqlite3.connect(str(store)) as db:
                return [row[0] for row in db.execute("SELECT first_tc FROM fragments ORDER BY id")]
        except sqlite3.Error:
            return []

    try:
        deadline = time.monotonic() + 60
        while len(stored()) < 3 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.1)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    backlog = stored()
    assert len(backlog) >= 3
    with KvsServer() as kvs:
        subprocess.run(base + ["--kvs-endpoint-url", kvs.url, "--frames", "30"], cwd=ROOT, env=dict(os.environ),
                       check=True, stderr=subprocess.DEVNULL, timeout=120)
        got = received(kvs)
    timecodes = [t for t, _, _ in got]
    print("\nkvs: runtime killed offline with {} fragments stored; after the restart {} fragments arrived, "
          "the backlog first".format(len(backlog), len(got)))
    assert timecodes[:len(backlog)] == backlog and len(got) > len(backlog)  # the backlog first, then the new run
    assert all(key for _, _, key in got) and timecodes[len(backlog):] == sorted(timecodes[len(backlog):])
    assert stored() == []  # everything PERSISTED left the store


def test_a_stream_without_retention_is_done_on_received_and_what_arrives_decodes_as_h264(tmp_path, monkeypatch):
    import av

    from edge.kvs import mkv

    with KvsServer() as kvs:
        kvs.create("cam", retention=0)  # keeps no data: the service never says PERSISTED
        producer = producer_for(kvs, tmp_path / "store.sqlite", monkeypatch)
        assert run(producer, 45) == 0  # nothing left waiting for a PERSISTED that never comes
        fragments = [f for f in kvs.streams["cam"].fragments if f.status == "PERSISTED"]
        stats = producer.stats()
    assert stats["fragments_acknowledged"] == 3 and stats["upload_kbit_s"] > 0
    stream = tmp_path / "received.mkv"  # what the service got, behind a header: real H.264 in real MKV
    stream.write_bytes(mkv.segment_header(320, 180, producer.encoder.codec_private) + b"".join(bytes(f.raw)
                                                                                              for f in fragments))
    with av.open(str(stream)) as container:
        decoded = [frame for frame in container.decode(video=0)]
    assert len(decoded) == 45 and (decoded[0].width, decoded[0].height) == (320, 180)


def test_a_long_outage_keeps_the_store_within_its_bound_dropping_the_oldest_counted(tmp_path):
    class Nowhere(object):
        def endpoint(self):
            raise ConnectionError("offline")

        def invalidate(self):
            pass

    bound = 30000  # about ten of these one-second fragments
    store = FragmentStore(str(tmp_path / "store.sqlite"), bound, 3600)
    producer = Producer(store, Nowhere(), None, REGION, "cam", H264Encoder(320, 180, FPS, GOP, 300000),
                        queue_frames=1000, log=None).start()
    peak = 0
    for index in range(20 * FPS):  # 20 s offline
        assert producer.submit(image(index), T0 + index / FPS)
        if index % 5 == 0:
            time.sleep(0.01)
            peak = max(peak, store.bytes())
    producer.close(drain_timeout_s=1)
    stats = producer.stats()
    kept = [f.first_timecode_ms for f in store.pending("cam", limit=100)]
    print("\nkvs store over a 20 s outage: bound {} bytes, peak stored {} bytes, {} fragments kept, {} dropped".format(
        bound, max(peak, store.bytes()), len(kept), store.dropped))
    assert max(peak, store.bytes()) <= bound and stats["store_dropped"] == store.dropped > 0
    assert kept == sorted(kept) and kept[-1] == int(T0 * 1000) + 19000  # the newest kept, the oldest dropped
    assert stats["fragments_stored"] == 20 and len(kept) + store.dropped == 20


def test_roadedge_run_in_events_mode_streams_only_from_the_first_damage_event(tmp_path, monkeypatch):
    import json

    from roadedge.cli import main

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    settings = tmp_path / "kvs.yaml"
    # a looser tracker than the default makes the sample's damage an event from its frame 34 on (2.27 s)
    settings.write_text(json.dumps({"events": {"iou": 0.1, "min_hits": 2, "max_age_s": 0.5},
                                    "outputs": [{"type": "kvs", "stream_name": "cam", "producer": "python",
                                                 "fragment_s": 1.0, "width": 320, "height": 180, "mode": "events",
                                                 "pre_roll_s": 0.0, "post_roll_s": 10.0, "store": str(tmp_path / "s")}]}))
    with KvsServer() as kvs:
        code = main(["run", "--source", "sample", "--realtime", "--frames", "60", "--no-preview", "--quiet",
                     "--config", str(settings), "--kvs-region", REGION, "--kvs-endpoint-url", kvs.url,
                     "--output", "jsonl:" + str(tmp_path / "d.jsonl")])
        got = received(kvs)
    assert code == 0
    # fragments of frames 0-14 and 15-29 precede every event and are not sent; 30-44 and 45-59 are (the post-roll
    # of 10 s covers the rest of the run, however long the tracker keeps its tracks)
    assert len(got) == 2 and 28 <= frames_of(got) <= 30 and all(key for _, _, key in got)  # a paced-out frame or two
    assert got[1][0] - got[0][0] in range(950, 1050)
