"""Kinesis Video on a DeepLens through the device's DeepLens_Kinesis_Video module (a stand-in with exactly its API):
the stream is created with the credentials and retention given, started and stopped continuously or around events."""
import collections

import pytest

from edge.kvs.deeplens_producer import DeepLensStreaming, open_stream
from roadedge.core.errors import RoadedgeError
from tests.conftest import import_standin

Frozen = collections.namedtuple("Frozen", "access_key secret_key token")


@pytest.fixture
def dkv(monkeypatch):
    module = import_standin(monkeypatch, "DeepLens_Kinesis_Video")
    module.reset()
    return module


def event(kind, track):
    return {"event": kind, "track_id": track}


def test_a_continuous_stream_runs_from_begin_to_end(dkv):
    stream = open_stream("deeplens-7", 24, "us-east-1", Frozen("AKIA1", "secret", "token"))
    streaming = DeepLensStreaming(stream)
    streaming.begin()
    assert streaming.active and dkv.streams[0].retention_hours == 24
    streaming.events([event("new", 1)], 5.0)  # events change nothing in continuous mode
    streaming.end()
    assert dkv.calls == [("createProducer", "AKIA1", "us-east-1", True), ("createStream", "deeplens-7", 24),
                         ("start", "deeplens-7"), ("stop", "deeplens-7")]
    assert streaming.stats() == {"active": False, "starts": 1, "start_failures": 0}


def test_events_mode_streams_from_the_first_event_until_the_post_roll_after_the_last(dkv):
    streaming = DeepLensStreaming(open_stream("car", 2, "eu-west-1", Frozen("AKIA2", "s", "")), "events",
                                  post_roll_s=10.0)
    streaming.begin()
    assert not streaming.active
    streaming.events([event("new", 1)], 100.0)
    streaming.events([event("new", 2), event("end", 1)], 103.0)
    streaming.events([event("end", 2)], 104.0)
    streaming.events([], 113.9)
    assert streaming.active  # still within the post-roll
    streaming.events([], 114.0)
    assert not streaming.active
    streaming.events([event("new", 3)], 200.0)
    assert streaming.active and streaming.stats()["starts"] == 2
    streaming.end()
    assert [c[0] for c in dkv.calls] == ["createProducer", "createStream", "start", "stop", "start", "stop"]
    assert dkv.calls[0] == ("createProducer", "AKIA2", "eu-west-1", False)


def test_a_failed_start_is_counted_and_tried_again_at_the_next_event(dkv):
    streaming = DeepLensStreaming(open_stream("car", 2, "eu-west-1", Frozen("A", "s", "t")), "events")
    dkv.fail_start = RuntimeError("credentials\nrefused")
    streaming.events([event("new", 1)], 1.0)
    assert not streaming.active and streaming.stats()["start_failures"] == 1
    dkv.fail_start = None
    streaming.events([event("new", 2)], 2.0)
    assert streaming.active and streaming.stats()["starts"] == 1


def test_off_the_device_or_without_credentials_it_is_one_line(dkv, monkeypatch):
    with pytest.raises(RoadedgeError, match="no AWS credentials"):
        open_stream("car", 2, "eu-west-1", None)
    with pytest.raises(RoadedgeError, match="kvs stream 7: the DeepLens producer refused it: createStream"):
        open_stream(7, 2, "eu-west-1", Frozen("A", "s", "t"))
    monkeypatch.setitem(__import__("sys").modules, "DeepLens_Kinesis_Video", None)
    with pytest.raises(RoadedgeError, match="exists only on an AWS DeepLens"):
        open_stream("car", 2, "eu-west-1", Frozen("A", "s", "t"))


def test_the_kvs_sink_with_the_deeplens_producer_starts_and_stops_the_device_stream(dkv, monkeypatch):
    import numpy as np

    from edge.sinks import kvs
    from edge.sinks.base import FrameResult
    from edge.sources.base import Frame

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIADEVICE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token")
    sink = kvs.open({"stream_name": "deeplens-cam", "producer": "deeplens", "region": "us-west-2", "mode": "events",
                     "post_roll_s": 2.0}, {})
    frame = np.zeros((4, 4, 3), np.uint8)
    sink.write(FrameResult(Frame(0, frame, 10.0), [], None, events=[{"event": "new", "track_id": 1}]))
    assert sink.stats()["active"]
    sink.write(FrameResult(Frame(1, frame, 11.0), [], None, events=[{"event": "end", "track_id": 1}]))
    sink.write(FrameResult(Frame(2, frame, 13.5), [], None))
    assert not sink.stats()["active"]  # the post-roll is over
    sink.close()
    assert dkv.calls[:2] == [("createProducer", "AKIADEVICE", "us-west-2", True), ("createStream", "deeplens-cam", 24)]
    assert [c[0] for c in dkv.calls[2:]] == ["start", "stop"]
