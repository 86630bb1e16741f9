"""The preview's token: off loopback every route (the page, the stream, /metrics, ...) needs one; on loopback only a
configured one. Real servers, real HTTP clients."""
import logging
import threading

import pytest

from edge import preview_server
from edge.sinks import mjpeg
from tests.console_drive import get


@pytest.fixture(scope="module")
def exposed():
    """A preview bound to every address (0.0.0.0) without a configured token: one is made and logged."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    log = logging.getLogger("console-token-test")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    sink = mjpeg.open({"host": "0.0.0.0", "port": 0, "max_fps": 0}, {"log": log, "stop": threading.Event()})
    sink.add_route("/metrics", lambda request: preview_server.send_body(request, 200, "text/plain", b"roadedge_fps 1\n"))
    yield sink, [r.getMessage() for r in records]
    sink.close()
    log.removeHandler(handler)


def test_off_loopback_every_route_needs_the_token(exposed):
    sink, messages = exposed
    token = sink.server.token
    assert len(token) >= 20 and [m for m in messages if token in m] == [
        "preview at http://0.0.0.0:{}/?token={} (a token is required off loopback)".format(sink.address[1], token)]
    base = "http://127.0.0.1:{}".format(sink.address[1])
    for path in ("/", "/stream.mjpg", "/latest.jpg", "/metrics", "/nothing"):
        status, headers, body = get(base + path)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), path
    assert get(base + "/metrics?token=" + token[:-1] + "x")[0] == 401
    assert get(base + "/metrics", {"Authorization": "Bearer wrong"})[0] == 401
    status, headers, body = get(base + "/metrics?token=" + token)
    assert status == 200 and body == b"roadedge_fps 1\n"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith("roadedge_token=" + token + ";") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert get(base + "/metrics", {"Cookie": "roadedge_token=" + token})[0] == 200
    assert get(base + "/metrics", {"Authorization": "Bearer " + token})[0] == 200
    assert get(base + "/metrics", {"Cookie": "roadedge_token=nope"})[0] == 401


def test_loopback_needs_no_token_unless_one_is_configured():
    for token, expected in (("", 200), ("s3cret", 401)):
        sink = mjpeg.open({"port": 0, "max_fps": 0, "token": token}, {"stop": threading.Event()})
        try:
            assert get(sink.url)[0] == expected
            assert get(sink.url + "?token=s3cret")[0] == 200
        finally:
            sink.close()


def test_preview_flag_moves_the_profiles_preview_and_keeps_its_token_and_rate():
    from edge.run_command import overrides_from_args
    from roadedge.cli import build_parser

    profile = [{"type": "jsonl", "path": "-"}, {"type": "mjpeg", "host": "127.0.0.1", "port": 8080, "max_fps": 10,
                                                "token": "from-the-profile"}]
    outputs = overrides_from_args(build_parser().parse_args(["run", "--preview", "0.0.0.0:9000"]), profile)["outputs"]
    assert outputs == [{"type": "jsonl", "path": "-"},
                       {"type": "mjpeg", "host": "0.0.0.0", "port": 9000, "max_fps": 10, "token": "from-the-profile"}]
    assert profile[1]["host"] == "127.0.0.1"  # the profile's own list is left alone
    outputs = overrides_from_args(build_parser().parse_args(["run", "--preview", "[::1]:9001"]), [])["outputs"]
    assert outputs == [{"type": "mjpeg", "host": "::1", "port": 9001}]


@pytest.mark.parametrize("token", ["two words", "semi;colon", "plus+sign", "é"])
def test_a_token_that_would_not_survive_a_url_or_cookie_is_refused(token):
    from roadedge.core.errors import RoadedgeError

    with pytest.raises(RoadedgeError) as err:
        mjpeg.open({"port": 0, "token": token}, {"stop": threading.Event()})
    assert str(err.value) == "mjpeg sink: token: {!r}; expected letters, digits and ._~- only (it goes in a URL and a " \
                             "cookie as is)".format(token)
