"""`roadedge cloud segment` runs: Ctrl-C in the middle of a fragment and the restart, a SageMaker endpoint (a small
stand-in answering class-index PNGs) instead of a local IR, and the one-line errors."""
import io
import json
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest
from PIL import Image

from cloud.segment.segmenters import IrSegmenter
from roadedge.cli import main
from roadedge.core.seglabels import index_png_bytes
from tests.kill9 import kill_9_when
from tests.kvs_server import REGION
from tests.seg_ir import LABELS, expected_mask, make_seg_ir
from tests.test_cloud_segment import EVERY, FRAMES, GOP, aws, segment, versions  # noqa: F401 - aws is a fixture


def test_ctrl_c_stops_after_the_current_frame_and_the_restart_finishes_the_fragment_without_rewriting(
        aws, tmp_path, monkeypatch, capsys):  # noqa: F811
    kvs, s3, s3_url = aws
    xml = make_seg_ir(str(tmp_path / "model"))
    checkpoint = tmp_path / "cam.json"
    segment_frame = IrSegmenter.__call__
    calls = []

    def segment_then_interrupt(self, bgr):
        calls.append(1)
        if len(calls) == 1:  # Ctrl-C arrives while frame 0 is being segmented
            signal.raise_signal(signal.SIGINT)
        return segment_frame(self, bgr)

    monkeypatch.setattr(IrSegmenter, "__call__", segment_then_interrupt)
    assert segment(kvs, s3_url, xml, checkpoint) == 0
    assert "(interrupted)" in capsys.readouterr().out
    assert len(calls) == 1
    assert sorted(versions(s3)) == sorted(key for key in versions(s3) if key.rsplit("/", 2)[1] == kvs.streams[
        "cam"].persisted()[0].number) and len(versions(s3)) == 2  # frame 0 whole (JSON and PNG), nothing more
    assert not checkpoint.exists()  # its fragment was not finished
    monkeypatch.setattr(IrSegmenter, "__call__", segment_frame)
    assert segment(kvs, s3_url, xml, checkpoint) == 0
    assert "1 already in S3" in capsys.readouterr().out
    counts = versions(s3)
    assert len(counts) == 2 * len(range(0, FRAMES, EVERY)) and set(counts.values()) == {1}
    assert json.loads(checkpoint.read_text())["frames_seen"] == FRAMES


class SageMakerStandIn(ThreadingHTTPServer):
    """POST /endpoints/NAME/invocations with a JPEG -> the class-index PNG of numpy's colour rule (tests/seg_ir.py)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Invocations)
        self.url = "http://127.0.0.1:{}".format(self.server_address[1])
        self.answers = []  # (path, content type, accept, the mask answered)


class _Invocations(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        bgr = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        mask = expected_mask(bgr[:, :, ::-1])
        self.server.answers.append((self.path, self.headers.get("Content-Type"), self.headers.get("Accept"), mask))
        data = index_png_bytes(mask)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_an_endpoint_segments_through_invoke_endpoint_and_its_png_is_the_mask(aws, tmp_path):  # noqa: F811
    kvs, s3, s3_url = aws
    sagemaker = SageMakerStandIn()
    thread = threading.Thread(target=sagemaker.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        assert main(["cloud", "segment", "--stream", "cam", "--endpoint", "road-seg", "--bucket", "s3://masks/ep",
                     "--every", str(EVERY), "--start", "earliest", "--checkpoint", str(tmp_path / "c.json"),
                     "--region", REGION, "--kvs-endpoint-url", kvs.url, "--s3-endpoint-url", s3_url,
                     "--endpoint-url", sagemaker.url, "--labels", ",".join(LABELS), "--until-idle", "1"]) == 0
    finally:
        sagemaker.shutdown()
        thread.join(5)
    answers = sagemaker.answers
    assert len(answers) == len(range(0, FRAMES, EVERY))
    assert {(path, kind, accept) for path, kind, accept, _ in answers} == {
        ("/endpoints/road-seg/invocations", "image/jpeg", "image/png")}
    pngs = sorted(key for key in versions(s3) if key.endswith(".png"))
    assert len(pngs) == len(answers)
    for key, (_, _, _, mask) in zip(pngs, answers):  # keys sort by fragment number then time: the order sent
        np.testing.assert_array_equal(np.array(Image.open(io.BytesIO(s3.get_object(Bucket="masks", Key=key)[
            "Body"].read()))), mask)
        doc = json.loads(s3.get_object(Bucket="masks", Key=key[:-4] + ".json")["Body"].read())
        assert doc["model"] == {"name": "road-seg", "source": "endpoint road-seg"} and doc["labels"] == LABELS
        assert doc["road_classes"] == ["road", "lane_marking"]
        counts = np.bincount(mask.ravel(), minlength=len(LABELS)) / mask.size
        assert doc["segmentation"]["shares"] == pytest.approx(
            {LABELS[k]: counts[k] for k in range(len(LABELS)) if counts[k] > 0}, abs=1e-6)


@pytest.mark.parametrize("change, expected", [
    ({"--stream": "nope"}, "kvs stream nope: not found (no stream nope)"),
    ({"--bucket": "s3://missing/p"}, "--bucket s3://missing: no such bucket"),
    ({"--bucket": "masks"}, "--bucket 'masks': expected s3://BUCKET/PREFIX"),
    ({"--kvs-endpoint-url": "http://127.0.0.1:9"}, "kvs stream cam: cannot reach http://127.0.0.1:9/getDataEndpoint"),
    ({"--start": "yesterday"}, "--start 'yesterday': expected now, earliest, epoch seconds or an ISO 8601 time"),
    ({"--every": "0"}, "--every 0: expected 1 or more"),
    ({"--model": "{tmp}/none.xml"}, "--model {tmp}/none.xml: no such file"),
    ({"--model": None, "--endpoint": "seg", "--endpoint-url": "http://127.0.0.1:9"},  # found at the first frame
     '--endpoint seg: Could not connect to the endpoint URL: "http://127.0.0.1:9/endpoints/seg/invocations"'),
])
def test_mistakes_are_one_line_errors_with_exit_2(aws, tmp_path, capsys, change, expected):  # noqa: F811
    kvs, s3, s3_url = aws
    xml = make_seg_ir(str(tmp_path / "model"))
    args = {"--stream": "cam", "--model": xml, "--bucket": "s3://masks/p", "--start": "earliest", "--every": "1",
            "--checkpoint": str(tmp_path / "c.json"), "--region": REGION, "--kvs-endpoint-url": kvs.url,
            "--s3-endpoint-url": s3_url, "--until-idle": "1"}
    args.update({key: value.replace("{tmp}", str(tmp_path)) for key, value in change.items() if value})
    args = {key: value for key, value in args.items() if change.get(key, "") is not None}
    assert main(["cloud", "segment"] + [item for pair in args.items() for item in pair]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == "roadedge: error: " + expected.replace("{tmp}", str(tmp_path)), lines
    assert len(lines) == (2 if "--endpoint" in change else 1)  # the rest: found before anything starts
    assert versions(s3) == {} and not (tmp_path / "c.json").exists()


def test_a_consumer_killed_between_a_json_and_its_png_resumes_without_writing_either_twice(aws, tmp_path):  # noqa: F811
    kvs, s3, s3_url = aws
    xml = make_seg_ir(str(tmp_path / "model"))
    checkpoint = tmp_path / "cam.json"
    argv = ["-m", "roadedge", "cloud", "segment", "--stream", "cam", "--model", xml, "--bucket", "s3://masks/k",
            "--every", str(EVERY), "--start", "earliest", "--checkpoint", checkpoint, "--region", REGION,
            "--kvs-endpoint-url", kvs.url, "--s3-endpoint-url", s3_url, "--until-idle", "1"]

    def json_without_png(attempt):
        keys = s3.list_objects_v2(Bucket="masks").get("Contents", [])
        return len(keys) % 2 == 1

    assert kill_9_when(lambda attempt: argv, json_without_png) is not None
    left = versions(s3)
    print("\nkilled with", len(left), "objects in S3")
    assert segment_to(kvs, s3_url, xml, checkpoint, "s3://masks/k") == 0
    counts = versions(s3)
    assert len(counts) == 2 * len(range(0, FRAMES, EVERY)) and set(counts.values()) == {1}, (left, counts)


def segment_to(kvs, s3_url, xml, checkpoint, bucket):
    return main(["cloud", "segment", "--stream", "cam", "--model", xml, "--bucket", bucket, "--every", str(EVERY),
                 "--start", "earliest", "--checkpoint", str(checkpoint), "--region", REGION, "--kvs-endpoint-url",
                 kvs.url, "--s3-endpoint-url", s3_url, "--until-idle", "1"])
