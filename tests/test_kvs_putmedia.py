"""One PutMedia connection against the local Kinesis Video server: signed headers, an MKV of real H.264 sent in
chunks, acknowledgements read while the upload goes on; a wrong secret and a dropped connection are told apart."""
import time

import numpy as np
import pytest
from botocore.credentials import Credentials

from edge.kvs import mkv
from edge.kvs.encoder import H264Encoder
from edge.kvs.putmedia import PutMediaSession
from roadedge.core.errors import RoadedgeError
from tests.kvs_server import ACCESS_KEY, REGION, SECRET_KEY, KvsServer

FPS, GOP = 15, 15  # one-second fragments


def fragments(count, start_ms=1764547200000):
    """`count` one-second fragments of real H.264 (moving bars), as (codec_private, [cluster bytes], [timecodes])."""
    encoder = H264Encoder(320, 180, FPS, GOP, 400000)
    frames = []
    for index in range(count * GOP):
        image = np.zeros((180, 320, 3), np.uint8)
        image[:, (index * 7) % 320:(index * 7) % 320 + 20] = (40, 200, 90)
        frames.extend(encoder.encode(image, start_ms + index * 1000 // FPS))
    frames.extend(encoder.flush())
    groups = [frames[i:i + GOP] for i in range(0, len(frames), GOP)]
    return encoder.codec_private, [mkv.cluster(g) for g in groups], [g[0][0] for g in groups]


def session(kvs, acks, secret=SECRET_KEY):
    return PutMediaSession(kvs.url, "cam", Credentials(ACCESS_KEY, secret), REGION, acks.append, timeout=5)


def wait_for(predicate, seconds=10):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_fragments_are_acknowledged_while_the_upload_goes_on():
    private, clusters, timecodes = fragments(3)
    acks = []
    with KvsServer() as kvs:
        kvs.create("cam")
        upload = session(kvs, acks)
        upload.open(timecodes[0])
        upload.send(mkv.segment_header(320, 180, private))
        for index, data in enumerate(clusters):
            upload.send(data)
            # the acks of a fragment come while the connection stays open (the next Cluster starts it off)
            if index:
                done = timecodes[index - 1]
                assert wait_for(lambda done=done: any(a.event_type == "PERSISTED" and a.fragment_timecode == done
                                                      for a in acks))
        upload.close()
        received = kvs.streams["cam"].fragments
        headers = kvs.streams["cam"].headers[0]
    assert [(a.event_type, a.fragment_timecode) for a in acks if a.event_type != "BUFFERING"] == [
        (kind, t) for t in timecodes for kind in ("RECEIVED", "PERSISTED")]
    assert [f.timecode for f in received] == timecodes and all(f.keyframe for f in received)
    assert [bytes(f.raw) for f in received] == clusters and upload.error is None
    assert headers["x-amzn-fragment-timecode-type"] == "ABSOLUTE"
    assert headers["x-amzn-producer-start-timestamp"] == "%.3f" % (timecodes[0] / 1000.0)
    assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD" and upload.sent_bytes > sum(map(len, clusters))


def test_a_wrong_secret_is_one_line_and_a_dropped_connection_is_a_connection_error():
    private, clusters, timecodes = fragments(3)
    acks = []
    with KvsServer() as kvs:
        kvs.create("cam")
        with pytest.raises(RoadedgeError) as err:
            session(kvs, acks, secret="not-it").open(timecodes[0])
        assert str(err.value).startswith("kvs putMedia cam: HTTP 403 SignatureDoesNotMatch")
        kvs.drop_after(1)
        upload = session(kvs, acks)
        upload.open(timecodes[0])
        upload.send(mkv.segment_header(320, 180, private))
        with pytest.raises(ConnectionError):
            for data in clusters * 20:  # the server cuts the connection after the first fragment's acks
                upload.send(data)
                time.sleep(0.01)
        upload.abort()
    assert [a.event_type for a in acks] == ["BUFFERING", "RECEIVED", "PERSISTED", "BUFFERING"][:len(acks)]
    assert [a.fragment_timecode for a in acks if a.event_type == "PERSISTED"] == [timecodes[0]]
