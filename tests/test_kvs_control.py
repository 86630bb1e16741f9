"""Kinesis Video's control plane against moto: the stream is created when missing (if allowed), its PutMedia data
endpoint is asked for once and again after 45 minutes or a failure; what cannot be fixed by retrying is one line."""
import moto
import pytest
from botocore.stub import Stubber

from edge.kvs.control import REFRESH_S, StreamEndpoint, make_client
from roadedge.core.errors import RoadedgeError


class Clock(object):
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def calls(client):
    seen = []
    client.meta.events.register("before-call.kinesis-video", lambda model, **kw: seen.append(model.name))
    return seen


def test_a_missing_stream_is_created_and_its_endpoint_cached_for_45_minutes(aws_env):
    with moto.mock_aws():
        client, clock = make_client("us-east-1"), Clock()
        seen = calls(client)
        stream = StreamEndpoint(client, "rc-car-1", retention_hours=48, clock=clock)
        url = stream.endpoint()
        assert url.startswith("https://") and "kinesisvideo" in url
        assert seen == ["DescribeStream", "CreateStream", "DescribeStream", "GetDataEndpoint"]
        info = client.describe_stream(StreamName="rc-car-1")["StreamInfo"]
        assert info["DataRetentionInHours"] == 48 and info["MediaType"] == "video/h264" and info["Status"] == "ACTIVE"
        seen.clear()
        clock.now += REFRESH_S - 1
        assert stream.endpoint() == url and seen == []  # cached
        clock.now += 1
        assert stream.endpoint() == url and seen == ["DescribeStream", "GetDataEndpoint"] and stream.refreshes == 2
        seen.clear()
        stream.invalidate()  # after a failed PutMedia connection
        stream.endpoint()
        assert seen == ["DescribeStream", "GetDataEndpoint"]


def test_an_existing_stream_is_used_as_it_is(aws_env):
    with moto.mock_aws():
        client = make_client("us-east-1")
        client.create_stream(StreamName="crew-7", DataRetentionInHours=2, MediaType="video/h264")
        seen = calls(client)
        StreamEndpoint(client, "crew-7", create=False).endpoint()
        assert "CreateStream" not in seen


def test_a_missing_stream_without_create_is_one_line(aws_env):
    with moto.mock_aws():
        with pytest.raises(RoadedgeError) as err:
            StreamEndpoint(make_client("us-east-1"), "nope", create=False).endpoint()
    assert str(err.value) == "kvs stream nope: no such stream (create it, or set create_stream: true)"


def test_a_refusal_is_one_line_naming_the_stream_and_a_network_failure_is_retryable(aws_env):
    client = make_client("us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("describe_stream", "AccessDeniedException", "User is not\nauthorized", 403)
        with pytest.raises(RoadedgeError) as err:
            StreamEndpoint(client, "rc-car-1").endpoint()
    assert str(err.value) == ("kvs stream rc-car-1: DescribeStream refused: AccessDeniedException: User is not "
                              "authorized")
    offline = make_client("us-east-1", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(ConnectionError, match="kvs DescribeStream"):
        StreamEndpoint(offline, "rc-car-1").endpoint()


def test_a_stream_that_never_becomes_active_is_refused():
    class Creating(object):
        def describe_stream(self, StreamName):
            return {"StreamInfo": {"Status": "CREATING"}}

    clock = Clock()

    def sleep(seconds):
        clock.now += seconds

    with pytest.raises(RoadedgeError, match="kvs stream s: status CREATING; expected ACTIVE"):
        StreamEndpoint(Creating(), "s", clock=clock, sleep=sleep).ensure_stream()
