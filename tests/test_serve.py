"""`roadedge serve` over real HTTP with real OpenVINO: /ping before and after the model is loaded, every content type
on both paths (/invocations and the runtime API's /endpoints/NAME/invocations), boto3's invoke_endpoint against it,
the JSON error answers (400, 404, 405, 406, 411, 413, 415, 503), and several clients at once."""
import http.client
import json
import threading

import boto3
import botocore.exceptions
import cv2
import numpy as np
import pytest

from cloud.serve.model import find_model, load_model
from roadedge.core.errors import RoadedgeError
from tests.serve_server import DETECTION_FRAMES, encode, invoke, request, running, sample_frames

BUNDLED_LABELS = ["D00", "D10", "D20", "D40", "D43", "D44"]


@pytest.fixture(scope="module")
def detector():
    model = load_model("bundled", min_score=0.2, workers=2)
    yield model
    model.close()


@pytest.fixture(scope="module")
def frames():
    return sample_frames(DETECTION_FRAMES)


@pytest.fixture(scope="module")
def server(detector):
    with running(detector) as (app, port):
        yield port


def expected_prediction(detector, body):
    """What the model finds in the image as the server must decode it (cv2.imdecode, as cv2.imread reads a file)."""
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    return [[float(d.class_index), d.score] + [min(max(v, 0.0), 1.0) for v in d.box] for d in detector.results(image)]


def assert_same_prediction(answer, expected, some=True):
    got = answer["prediction"]
    assert len(got) == len(expected) and (len(got) > 0 or not some)
    for row, want in zip(got, expected):
        assert row[0] == want[0] and row[1:] == pytest.approx(want[1:], abs=1e-6)
        assert all(0.0 <= v <= 1.0 for v in row[2:]) and row[2] < row[4] and row[3] < row[5]


def test_ping_is_503_until_the_model_is_loaded_then_200(detector, frames):
    with running(None) as (app, port):
        before = request(port, "GET", "/ping")
        assert before.status == 503 and before.json()["error"] == "not_ready"
        early = invoke(port, encode(frames[DETECTION_FRAMES[0]]))
        assert early.status == 503 and "still loading" in early.json()["message"]
        app.ready(detector)
        after = request(port, "GET", "/ping")
        assert after.status == 200 and after.json() == {"status": "ready", "model": "road-damage-ssd", "task": "detection"}
        assert invoke(port, encode(frames[DETECTION_FRAMES[0]])).status == 200


@pytest.mark.parametrize("path", ["/invocations", "/endpoints/road-damage/invocations"])
@pytest.mark.parametrize("content_type, ext", [("image/jpeg", ".jpg"), ("image/png", ".png"), ("application/x-image", ".jpg"),
                                               ("application/x-image", ".png"), ("image/jpeg; charset=binary", ".jpg")])
def test_every_content_type_on_both_paths_answers_sagemaker_detection_json(server, detector, frames, path, content_type, ext):
    body = encode(frames[DETECTION_FRAMES[1]], ext)
    answer = invoke(server, body, content_type, accept="application/json", path=path)
    assert answer.status == 200 and answer.content_type == "application/json"
    assert set(answer.json()) == {"prediction"}
    assert_same_prediction(answer.json(), expected_prediction(detector, body))
    assert {row[0] for row in answer.json()["prediction"]} <= set(range(len(BUNDLED_LABELS)))
    assert answer.headers.get("x-Amzn-Invoked-Production-Variant") == (None if path == "/invocations" else "AllTraffic")


def test_no_accept_and_wildcards_get_the_json_answer(server, frames):
    body = encode(frames[DETECTION_FRAMES[0]])
    answers = [invoke(server, body, accept=accept) for accept in (None, "*/*", "application/*", "text/csv, application/json")]
    assert [a.status for a in answers] == [200] * 4
    assert len({a.body for a in answers}) == 1 and answers[0].json()["prediction"]


def test_boto3_invoke_endpoint_with_endpoint_url(server, detector, frames, aws_env):
    client = boto3.client("sagemaker-runtime", endpoint_url="http://127.0.0.1:{}".format(server), region_name="us-east-1")
    body = encode(frames[DETECTION_FRAMES[0]])
    answer = client.invoke_endpoint(EndpointName="road-damage", Body=body, ContentType="image/jpeg",
                                     Accept="application/json")
    assert answer["ContentType"] == "application/json" and answer["InvokedProductionVariant"] == "AllTraffic"
    assert_same_prediction(json.loads(answer["Body"].read()), expected_prediction(detector, body))
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.invoke_endpoint(EndpointName="road-damage", Body=b"not an image", ContentType="text/csv")
    error = caught.value.response["Error"]
    assert error["Code"] == "ModelError" and caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 415
    assert error["Message"] == "Content-Type 'text/csv': expected image/jpeg, image/png, application/x-image"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.invoke_endpoint(EndpointName="road-damage", Body=b"\xff\xd8 not really a jpeg", ContentType="image/jpeg")
    assert caught.value.response["Error"]["Code"] == "ModelError"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize("method, path, headers, body, status, code, message", [
    ("POST", "/invocations", {"Content-Type": "text/plain"}, b"hello", 415, "unsupported_content_type",
     "Content-Type 'text/plain': expected image/jpeg, image/png, application/x-image"),
    ("POST", "/invocations", {}, b"hello", 415, "unsupported_content_type",
     "Content-Type None: expected image/jpeg, image/png, application/x-image"),
    ("POST", "/invocations", {"Content-Type": "image/jpeg"}, b"\x89PNG\r\n\x1a\n but then nothing", 400,
     "undecodable_image", "cannot decode the 25-byte body as an image (JPEG or PNG)"),
    ("POST", "/invocations", {"Content-Type": "image/png"}, b"", 400, "undecodable_image",
     "cannot decode the 0-byte body as an image (JPEG or PNG)"),
    ("POST", "/invocations", {"Content-Type": "image/jpeg", "Accept": "image/png"}, b"x", 406, "not_acceptable",
     "Accept 'image/png': model road-damage-ssd (detection) answers application/json"),
    ("POST", "/predict", {"Content-Type": "image/jpeg"}, b"x", 404, "not_found",
     "no such path: /predict; this server answers GET /ping, POST /invocations and POST /endpoints/NAME/invocations"),
    ("POST", "/endpoints/a/b/invocations", {"Content-Type": "image/jpeg"}, b"x", 404, "not_found", None),
    ("GET", "/invocations", {}, None, 405, "method_not_allowed", "GET /invocations: use POST"),
    ("POST", "/ping", {}, b"", 405, "method_not_allowed", "POST /ping: use GET"),
    ("DELETE", "/endpoints/x/invocations", {}, None, 405, "method_not_allowed", "DELETE /endpoints/x/invocations: use POST"),
    ("FOO", "/invocations", {}, None, 501, "not_implemented", "Unsupported method ('FOO')"),
])
def test_errors_are_json_with_a_message(server, method, path, headers, body, status, code, message):
    answer = request(server, method, path, body, headers)
    assert answer.status == status and answer.content_type == "application/json"
    assert answer.json()["error"] == code
    if message:
        assert answer.json()["message"] == message
    assert answer.headers["x-amzn-ErrorType"] == ("ModelError" if status in (400, 406, 415) else "ValidationError")


def test_a_body_without_length_gets_411(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=60)
    conn.putrequest("POST", "/invocations")
    conn.putheader("Content-Type", "image/jpeg")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"5\r\nhello\r\n0\r\n\r\n")
    response = conn.getresponse()
    assert response.status == 411 and json.loads(response.read())["error"] == "length_required"
    conn.close()


def test_a_body_over_the_limit_is_refused_before_it_is_sent_with_expect_100_continue(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=60)
    conn.putrequest("POST", "/endpoints/x/invocations")
    conn.putheader("Content-Type", "image/jpeg")
    conn.putheader("Content-Length", str(7 * 1024 * 1024))
    conn.putheader("Expect", "100-continue")
    conn.endheaders()  # no body follows: the answer must come without it
    response = conn.getresponse()
    assert response.status == 413 and json.loads(response.read()) == {
        "error": "payload_too_large", "message": "the body is 7340032 bytes; at most 6291456 bytes are accepted"}
    conn.close()


def test_limits_on_bytes_and_pixels_answer_413_and_the_server_goes_on(detector, frames):
    small = encode(frames[DETECTION_FRAMES[0]])
    with running(detector, max_bytes=len(small), max_pixels=640 * 360) as (app, port):
        assert invoke(port, small).status == 200  # exactly at both limits
        big = invoke(port, small + b"\0")
        assert big.status == 413 and big.json() == {"error": "payload_too_large", "message": "the body is {} bytes; at "
                                                    "most {} bytes are accepted".format(len(small) + 1, len(small))}
        answer = invoke(port, encode(np.zeros((3605, 64, 3), np.uint8), ".png"), "image/png")  # a few hundred bytes
        assert answer.status == 413 and answer.json()["message"] == ("the image is 64x3605 pixels; at most 230400 pixels "
                                                                      "are accepted")
        assert invoke(port, small).status == 200


def test_beyond_the_queue_requests_get_503_busy(detector, frames):
    with running(detector, queue=1) as (app, port):
        assert app.capacity == detector.workers + 1
        app.admitted = app.capacity  # every worker busy and the queue full
        busy = invoke(port, encode(frames[DETECTION_FRAMES[0]]))
        assert busy.status == 503 and busy.json()["error"] == "busy" and busy.headers["Retry-After"] == "1"
        app.admitted = 0
        assert invoke(port, encode(frames[DETECTION_FRAMES[0]])).status == 200


def test_several_clients_at_once_each_get_the_answer_for_their_image(server, detector, frames):
    bodies = [encode(cv2.flip(frames[index], flip), ext) for index in DETECTION_FRAMES for flip in (1, 0)
              for ext in (".jpg", ".png")]
    expected = [expected_prediction(detector, body) for body in bodies]
    answers = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def client(slot):
        conn = http.client.HTTPConnection("127.0.0.1", server, timeout=120)
        start.wait()
        for _ in range(3):  # three requests on one keep-alive connection
            answer = invoke(server, bodies[slot], "image/png" if bodies[slot][:4] == b"\x89PNG" else "image/jpeg",
                            connection=conn)
            answers[slot] = (answers[slot] or []) + [answer]
        conn.close()

    threads = [threading.Thread(target=client, args=(slot,)) for slot in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, want in zip(answers, expected):
        assert [a.status for a in got] == [200, 200, 200]
        for answer in got:
            assert_same_prediction(answer.json(), want, some=False)
    assert sum(len(want) for want in expected) >= len(bodies)


def test_model_folder_finds_its_one_model(tmp_path):
    (tmp_path / "a.xml").write_text("<net/>")
    assert find_model(str(tmp_path)) == str(tmp_path / "a.xml")
    (tmp_path / "b.xml").write_text("<net/>")
    with pytest.raises(RoadedgeError, match=r"2 \.xml files \(a\.xml, b\.xml\); expected one model in the folder"):
        find_model(str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RoadedgeError, match="model .*empty: no model in the folder; expected an IR .xml"):
        find_model(str(tmp_path / "empty"))
    with pytest.raises(RoadedgeError, match="model .*nowhere: no such file or folder"):
        find_model(str(tmp_path / "nowhere"))
