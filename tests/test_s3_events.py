"""The s3 sink: the events' best frames reach S3 (moto) under the key the events message names; with S3
unreachable they wait in the spool and are uploaded by the next open()."""
import logging
import os
import socket
import time

import cv2
import moto
import numpy as np
import pytest

from edge import plugins
from edge.messages import Envelope
from edge.processing.decoders import Detection
from edge.processing.tracker import IouTracker
from edge.sinks import s3
from edge.sinks.base import FrameResult
from edge.sources.base import Frame
from roadedge.core.errors import RoadedgeError

BUCKET, DEVICE, BOOT = "roadedge-events", "rc-car-1", "4f1c9e"
WIDTH, HEIGHT = 320, 180
T0 = 1795248900.0


def image(index):
    """A distinct picture per frame, smooth enough that JPEG keeps it recognisable."""
    x, y = np.meshgrid(np.linspace(0, 255, WIDTH), np.linspace(0, 255, HEIGHT))
    return np.dstack([(x + 9 * index) % 256, (y * 0.5 + 20 * index) % 256, np.full_like(x, 7 * index % 256)]).astype(
        np.uint8)


def drive(sink, scores, start=0, flush=True):
    """Feed frames with one pothole of these scores (None: not seen) through a tracker into the sink, as the
    pipeline does; -> the events messages."""
    tracker, seq, messages = IouTracker(), 0, []
    index = start
    for index, score in enumerate(scores, start):
        found = [] if score is None else [Detection(3, "D40", score, (0.4, 0.6, 0.5, 0.7))]
        events = tracker.update(found, index, T0 + index / 15.0)
        best = list(tracker.best_changed)
        if flush and index == start + len(scores) - 1:
            events += tracker.flush(T0 + index / 15.0)
        batch = []
        for event in events:
            envelope = Envelope(DEVICE, BOOT, next_seq={"events": seq})
            batch.append(envelope.event(timestamp=T0 + index / 15.0, event=event, model_name="road-damage-ssd",
                                        image_key=s3.image_key(sink.prefix, BOOT, event["track_id"])))
            seq += 1
        result = FrameResult(Frame(index, image(index), T0 + index / 15.0), found, None, events=batch)
        result.best_tracks = best  # what the pipeline hands the sinks: the tracker's best_changed ids
        sink.write(result)
        messages.extend(batch)
    return messages


def closest_frame(jpeg, candidates):
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (HEIGHT, WIDTH, 3)
    errors = {i: float(np.abs(decoded.astype(int) - image(i).astype(int)).mean()) for i in candidates}
    return min(errors, key=errors.get)


def context():
    return {"log": logging.getLogger("test-s3"), "device": DEVICE}


def spooled(spool):
    return sorted(os.path.relpath(os.path.join(folder, name), spool)
                  for folder, _, names in os.walk(spool) for name in names)


@pytest.fixture
def bucket(aws_env):
    with moto.mock_aws():
        client = s3.make_client()
        client.create_bucket(Bucket=BUCKET)
        yield client


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_image_key_and_prefix():
    assert s3.image_key("roadedge/rc-car-1/", "b00t", 7) == "roadedge/rc-car-1/b00t/track-000007.jpg"
    assert s3.normalise_prefix("roadedge/{device}", DEVICE) == "roadedge/rc-car-1/"
    assert s3.normalise_prefix("/images/", DEVICE) == "images/" and s3.normalise_prefix("", DEVICE) == ""
    for bad in ("a//b/", "a/../b/", "{thing}/"):
        with pytest.raises(RoadedgeError, match="prefix"):
            s3.normalise_prefix(bad, DEVICE)
    with pytest.raises(RoadedgeError, match="bucket: required"):
        s3.open({}, context())
    assert plugins.plugin("sink", "s3") is s3


def test_the_best_frame_of_an_event_arrives_under_its_key(bucket, tmp_path):
    spool = str(tmp_path / "spool")
    os.makedirs(spool)  # a spool the profile names must exist
    sink = s3.open({"bucket": BUCKET, "spool": spool}, context())
    assert sink.prefix == "roadedge/rc-car-1/" and not sink.needs_image
    scores = [0.6, 0.65, 0.7, 0.8, 0.9, 0.95, 0.9, 0.8, 0.7, None, 0.6]  # best at frame 5, after the new event
    messages = drive(sink, scores)
    sink.close()
    assert [m["event"] for m in messages] == ["new", "end"]
    key = messages[0]["image_key"]
    assert key == messages[1]["image_key"] == "roadedge/rc-car-1/{}/track-000001.jpg".format(BOOT)
    body = bucket.get_object(Bucket=BUCKET, Key=key)
    assert body["ContentType"] == "image/jpeg"
    assert closest_frame(body["Body"].read(), range(len(scores))) == 5 == messages[1]["best_frame"]
    assert spooled(spool) == [] and os.listdir(os.path.join(spool, BUCKET)) == []  # emptied folders go too
    stats = sink.stats()  # the new event's JPEG, then the end's (one upload if the second came before the first)
    assert stats["uploaded"] in (1, 2) and stats["pending"] == 0 and stats["connected"] is True


def test_tracks_that_never_become_events_upload_nothing(bucket, tmp_path):
    spool = str(tmp_path / "spool")
    os.makedirs(spool)  # a spool the profile names must exist
    sink = s3.open({"bucket": BUCKET, "spool": spool}, context())
    drive(sink, [None, 0.9, None, None])  # a one-frame false positive
    assert len(sink.held) == 1  # its JPEG is kept while it might still become an event
    sink.close()
    assert bucket.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    assert sink.stats()["uploaded"] == 0 and sink.held == {}


def test_unconfirmed_tracks_are_forgotten_after_a_while(tmp_path):
    class Client(object):
        def put_object(self, **kwargs):
            pass

    now = [0.0]
    sink = s3.S3Sink(Client(), BUCKET, "p/", str(tmp_path), clock=lambda: now[0])
    drive(sink, [0.9], flush=False)
    assert len(sink.held) == 1
    now[0] += s3.HOLD_UNCONFIRMED_S + 1
    drive(sink, [None], start=1, flush=False)
    assert sink.held == {}
    sink.close()


def test_with_s3_unreachable_the_jpeg_waits_in_the_spool_for_the_next_open(aws_env, tmp_path):
    spool = str(tmp_path / "spool")
    os.makedirs(spool)  # a spool the profile names must exist
    options = {"bucket": BUCKET, "spool": spool, "endpoint_url": "http://127.0.0.1:{}".format(closed_port()),
               "drain_timeout_s": 20.0}
    sink = s3.open(options, context())
    messages = drive(sink, [0.7, 0.9, 0.8])
    started = time.monotonic()
    sink.close()
    assert time.monotonic() - started < 10.0  # close() does not wait out drain_timeout_s once uploads fail
    key = messages[-1]["image_key"]
    assert spooled(spool) == [os.path.join(BUCKET, *key.split("/"))]
    stats = sink.stats()
    assert stats["upload_failures"] >= 1 and stats["uploaded"] == 0 and stats["pending"] == 1
    assert stats["connected"] is False

    with moto.mock_aws():
        client = s3.make_client()
        client.create_bucket(Bucket=BUCKET)
        sink = s3.open({"bucket": BUCKET, "spool": spool}, context())
        deadline = time.monotonic() + 10
        while sink.stats()["pending"] and time.monotonic() < deadline:
            time.sleep(0.02)
        sink.close()
        jpeg = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert closest_frame(jpeg, range(3)) == 1
    assert spooled(spool) == [] and sink.stats()["uploaded"] == 1


def test_an_interrupted_spool_write_is_cleaned_up_and_not_uploaded(bucket, tmp_path):
    spool = tmp_path / "spool"
    partial = spool / BUCKET / "roadedge" / DEVICE / BOOT / ".track-000003.jpg.x1y2.tmp"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\xff\xd8half")
    sink = s3.open({"bucket": BUCKET, "spool": str(spool)}, context())
    sink.close()
    assert not partial.exists()
    assert bucket.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


KILL_CHILD = """
import sys, time
import tests.test_s3_events as t
from edge.sinks import s3
sink = s3.open({"bucket": t.BUCKET, "spool": sys.argv[1], "endpoint_url": sys.argv[2]}, t.context())
for run in range(1000):
    t.BOOT = "boot%04d" % run  # one event (and its best frame) per run, each under its own key
    t.drive(sink, [0.7, 0.9, 0.8])
"""


def test_a_spool_writer_killed_with_kill_9_loses_no_finished_image(aws_env, tmp_path):
    import signal
    import subprocess
    import sys

    spool = tmp_path / "spool"
    spool.mkdir()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child = subprocess.Popen([sys.executable, "-c", KILL_CHILD, str(spool), "http://127.0.0.1:{}".format(closed_port())],
                             cwd=root, env=dict(os.environ, PYTHONPATH=root), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(name.endswith(".jpg") for name in spooled(str(spool))) < 8:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)  # in the middle of writing: more frames keep coming until now
    child.wait(10)
    finished = [name for name in spooled(str(spool)) if name.endswith(".jpg")]
    assert len(finished) >= 8
    with moto.mock_aws():
        client = s3.make_client()
        client.create_bucket(Bucket=BUCKET)
        sink = s3.open({"bucket": BUCKET, "spool": str(spool)}, context())
        deadline = time.monotonic() + 20
        while sink.stats()["pending"] and time.monotonic() < deadline:
            time.sleep(0.05)
        sink.close()
        keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))
        for key in keys:  # every upload is a whole JPEG
            data = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None, key
    print("\nkill -9 of the s3 spool writer: {} finished images on disk, {} uploaded, {} left".format(
        len(finished), len(keys), len(spooled(str(spool)))))
    assert keys == sorted(os.path.relpath(name, BUCKET).replace(os.sep, "/") for name in finished)
    assert spooled(str(spool)) == []  # uploaded, and interrupted writes (.tmp) cleaned up
