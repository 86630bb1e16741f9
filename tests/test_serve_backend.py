"""The `sagemaker` backend against `roadedge serve` (a real server on 127.0.0.1, real boto3, real OpenVINO behind it):
what the runtime finds through the endpoint is what it finds on the device, and an endpoint that comes up late costs
only the frames before it did."""
import json
import threading
import time

import pytest

from cloud.serve.model import load_model
from roadedge.cli import main
from tests.local_aws import StatusRecorder
from tests.serve_server import SEG_XML, running

FRAMES = 150  # the whole sample drive: the bundled detector finds damage in a few dozen of its frames


@pytest.fixture(autouse=True)
def credentials(aws_env):
    """boto3 signs every request; the server does not check the signature."""


def settings(path, port, task="detection", content_type="image/png", retry_s=5.0, extra=""):
    path.write_text("backend:\n  type: sagemaker\n  endpoint: road\n  endpoint_url: http://127.0.0.1:{}\n  task: {}\n"
                    "  content_type: {}\n  retry_s: {}\n  timeout_s: 30\n{}".format(port, task, content_type, retry_s, extra))
    return str(path)


def run(tmp_path, name, *args):
    out, summary = tmp_path / (name + ".jsonl"), tmp_path / (name + "-summary.json")
    code = main(["run", "--source", "sample", "--frames", str(FRAMES), "--no-realtime", "--no-preview", "--quiet",
                 "--output", "jsonl:" + str(out), "--summary", str(summary)] + list(args))
    assert code == 0
    return [json.loads(line) for line in out.read_text().splitlines()], json.loads(summary.read_text())


def by_frame(messages):
    return {m["frame"]["index"]: m for m in messages}


def test_detections_through_the_endpoint_are_the_devices(tmp_path):
    """PNG frames (lossless) to `roadedge serve` with the bundled detector: every frame answered, the same detections
    as the OpenVINO backend on the device (labels, scores and boxes within 0.01)."""
    local, _ = run(tmp_path, "local")
    with running(load_model("bundled", hint="latency", workers=2)) as (_, port):
        remote, summary = run(tmp_path, "remote", "--config", settings(tmp_path / "sm.yaml", port))
    assert summary["frames"] == FRAMES and summary["not_inferred"] == 0
    assert summary["backend"]["answered"] == FRAMES and summary["backend"]["failed"] == 0
    local, remote = by_frame(local), by_frame(remote)
    assert len(local) >= 10 and set(remote) == set(local)
    for index, message in local.items():
        got = remote[index]["detections"]
        assert [d["label"] for d in got] == [d["label"] for d in message["detections"]], index
        for mine, theirs in zip(got, message["detections"]):
            assert abs(mine["score"] - theirs["score"]) < 0.01
            assert max(abs(a - b) for a, b in zip(mine["box"], theirs["box"])) < 0.01
    assert {m["model"]["name"] for m in remote.values()} == {"road"}  # the endpoint's model, by its name


def test_segmentation_through_the_endpoint_gives_the_devices_figures(tmp_path):
    """The demo segmentation model behind the endpoint, its class-index PNG answers: the same class shares, drivable
    share and free distance as the model run on the device, frame by frame."""
    local, _ = run(tmp_path, "local", "--model", SEG_XML, "--frames", "12")
    extra = "  metadata: {}\n".format(SEG_XML[:-4] + ".json")
    with running(load_model(SEG_XML, hint="latency", workers=2)) as (_, port):
        remote, summary = run(tmp_path, "remote", "--frames", "12", "--config",
                              settings(tmp_path / "sm.yaml", port, "segmentation", extra=extra))
    assert summary["frames"] == 12 and summary["not_inferred"] == 0
    local, remote = by_frame(local), by_frame(remote)
    assert set(remote) == set(local) == set(range(12))
    for index, message in local.items():
        got = remote[index]
        assert got["classes"] == message["classes"], index
        assert got["drivable_share"] == message["drivable_share"] and got["free_distance"] == message["free_distance"]
    assert any(m["drivable_share"] > 0.2 for m in remote.values())


def test_an_endpoint_that_comes_up_late_costs_only_the_frames_before(tmp_path):
    """The server answers 503 until its model is loaded (a SageMaker endpoint still creating): the first frames are
    not inferred and the status says degraded; once it is up every frame is inferred again and the status says
    online. Every frame is either inferred or counted."""
    from edge import app, config

    recorder = StatusRecorder()

    model = load_model("bundled", hint="latency", workers=2)
    with running() as (server, port):
        path = settings(tmp_path / "sm.yaml", port, content_type="image/jpeg", retry_s=0.2)
        cfg = config.load("x86-openvino-cpu", path, {"source": {"type": "synthetic", "frames": 60, "fps": 15.0}})
        runtime = app.build(cfg, extra_sinks=[recorder])
        threading.Timer(1.5, server.ready, [model]).start()  # about 20 frames in
        try:
            started = time.time()
            summary = runtime.pipeline.run()
        finally:
            runtime.close()
    assert time.time() - started > 1.5
    assert summary["not_inferred"] >= 1 and summary["frames"] >= 10
    assert summary["frames"] + summary["not_inferred"] + summary["dropped"] == 60
    assert recorder.states == ["degraded", "online"]
