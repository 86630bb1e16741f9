"""GetMedia on the test KVS server, read by boto3's own kinesis-video-media client (SigV4 by botocore) and parsed by
the project's GetMedia reader: every persisted fragment with its tags, each StartSelector, live fragments, errors."""
import threading

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from cloud.segment.mkv import GetMediaReader
from tests.kvs_server import ACCESS_KEY, REGION, SECRET_KEY, KvsServer
from tests.test_kvs_server import HEADER, PutMedia, cluster

T0 = 1700000000000
TIMECODES = [T0, T0 + 2000, T0 + 4000, T0 + 6000]


@pytest.fixture
def kvs():
    with KvsServer() as server:
        server.create("cam")
        server.get_media_idle_s = 0.3
        yield server


def client(kvs, service="kinesisvideo", url=None, secret=SECRET_KEY):
    return botocore.session.get_session().create_client(
        service, endpoint_url=url or kvs.url, region_name=REGION, aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}, read_timeout=10))


def put(kvs, timecodes, stream="cam"):
    """PutMedia of one hand-built Cluster per timecode (3 blocks each: a key frame and two others); waits for acks."""
    upload = PutMedia(kvs.url, stream)
    upload.send(HEADER + b"".join(cluster(tc) for tc in timecodes))
    assert upload.wait(lambda: len(upload.acks) == 3 * len(timecodes)), upload.events()
    assert upload.finish() == "final chunk"
    upload.close()


def get_media(kvs, selector, stream="cam", secret=SECRET_KEY):
    """(content type, fragments parsed, the reader) of one whole GetMedia response (it ends when the server idles)."""
    endpoint = client(kvs).get_data_endpoint(StreamName=stream, APIName="GET_MEDIA")["DataEndpoint"]
    answer = client(kvs, "kinesis-video-media", endpoint, secret).get_media(StreamName=stream, StartSelector=selector)
    reader = GetMediaReader()
    fragments = reader.feed(answer["Payload"].read())
    fragments += reader.end()
    return answer["ContentType"], fragments, reader


def test_earliest_serves_every_persisted_fragment_as_its_own_mkv_with_the_service_tags(kvs):
    put(kvs, TIMECODES)
    content_type, got, reader = get_media(kvs, {"StartSelectorType": "EARLIEST"})
    stored = kvs.streams["cam"].persisted()
    assert content_type == "video/webm"
    assert [f.number for f in got] == [f.number for f in stored] and len(got) == 4
    assert [f.producer_ms for f in got] == TIMECODES
    assert [f.server_ms for f in got] == [f.server_ms for f in stored]
    assert [f.timecode for f in got] == TIMECODES  # ABSOLUTE: the Cluster's timecode is the producer's
    for fragment in got:
        assert [(b.track, b.relative, b.keyframe, b.data) for b in fragment.frames] == [
            (1, 33 * i, i == 0, b"frame%d" % i) for i in range(3)]
        assert fragment.track.codec_id == "V_MPEG4/ISO/AVC" and fragment.track.number == 1
        assert [fragment.frame_ms(b) for b in fragment.frames] == [fragment.producer_ms + 33 * i for i in range(3)]
    assert reader.trailing["CONTINUATION_TOKEN"] == stored[-1].number
    assert int(reader.trailing["MILLIS_BEHIND_NOW"]) == 0  # the last fragment is the newest


def test_the_start_selectors_pick_their_first_fragment(kvs):
    put(kvs, TIMECODES)
    numbers = [f.number for f in kvs.streams["cam"].persisted()]

    def first_and_count(selector):
        got = get_media(kvs, selector)[1]
        return (got[0].number if got else None), len(got)

    assert first_and_count({"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": numbers[1]}) == (numbers[1], 3)
    assert first_and_count({"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": numbers[1]}) == (numbers[2], 2)
    assert first_and_count({"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": (T0 + 3000) / 1000.0}) == (
        numbers[2], 2)
    assert first_and_count({"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": (T0 + 4000) / 1000.0}) == (
        numbers[2], 2)
    assert first_and_count({"StartSelectorType": "SERVER_TIMESTAMP", "StartTimestamp": 0}) == (numbers[0], 4)
    assert first_and_count({"StartSelectorType": "NOW"}) == (None, 0)  # nothing new came while it waited


def test_now_streams_fragments_persisted_while_the_response_is_open(kvs):
    kvs.get_media_idle_s = 3.0
    put(kvs, TIMECODES[:1])
    result = {}
    reader = threading.Thread(target=lambda: result.update(got=get_media(kvs, {"StartSelectorType": "NOW"})[1]))
    reader.start()
    with kvs.changed:
        assert kvs.changed.wait_for(lambda: len(getattr(kvs, "get_media_requests", [])) == 1, 5)
    put(kvs, TIMECODES[1:3])
    reader.join(15)
    assert [f.producer_ms for f in result["got"]] == TIMECODES[1:3]


def test_errors_are_aws_shaped(kvs):
    put(kvs, TIMECODES[:1])
    with pytest.raises(ClientError) as missing:
        get_media(kvs, {"StartSelectorType": "EARLIEST"}, stream="nope")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    media = client(kvs, "kinesis-video-media")
    for selector, code in (({"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": "12345"},
                            "ResourceNotFoundException"),
                           ({"StartSelectorType": "CONTINUATION_TOKEN"}, "InvalidArgumentException"),
                           ({"StartSelectorType": "PRODUCER_TIMESTAMP"}, "InvalidArgumentException")):
        with pytest.raises(ClientError) as bad:
            media.get_media(StreamName="cam", StartSelector=selector)
        assert bad.value.response["Error"]["Code"] == code, selector
    with pytest.raises(ClientError) as forbidden:
        get_media(kvs, {"StartSelectorType": "EARLIEST"}, secret="wrong")
    assert forbidden.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_clusters_uploaded_with_unknown_size_are_served_as_received_and_end_at_the_tags_after_them(kvs):
    upload = PutMedia(kvs.url, "cam")
    upload.send(HEADER + cluster(T0, unknown_size=True) + cluster(T0 + 2000, (True, False), unknown_size=True))
    assert upload.finish() == "final chunk"
    upload.close()
    got = get_media(kvs, {"StartSelectorType": "EARLIEST"})[1]
    assert [(f.producer_ms, [b.data for b in f.frames]) for f in got] == [
        (T0, [b"frame0", b"frame1", b"frame2"]), (T0 + 2000, [b"frame0", b"frame1"])]
    assert [f.trailing["CONTINUATION_TOKEN"] for f in got] == [f.number for f in got]
