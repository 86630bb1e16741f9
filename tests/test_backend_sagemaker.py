"""The `sagemaker` backend: frames to an endpoint through boto3's sagemaker-runtime InvokeEndpoint.

Against an endpoint that is not there (a closed port on 127.0.0.1, real boto3): every frame is counted as not
inferred, the loop goes on to the end of the source, the status says degraded. Against `roadedge serve`: see
tests/test_serve_backend.py.
"""
import json
import os
import socket

import jsonschema
import pytest

from edge.backends import sagemaker
from roadedge.cli import main
from roadedge.core.errors import RoadedgeError
from tests.local_aws import StatusRecorder


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    """Credentials and a region boto3 can sign with; nothing leaves 127.0.0.1."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDLOCAL")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def options(**values):
    chosen = {name: option.default for name, option in sagemaker.OPTIONS.items()}
    chosen.update(values)
    return chosen


def write_settings(path, endpoint_url, retry_s, requests=2, task="detection"):
    path.write_text("backend:\n  type: sagemaker\n  endpoint: road-damage\n  endpoint_url: {}\n  retry_s: {}\n"
                    "  requests: {}\n  task: {}\n  timeout_s: 2\npipeline: {{stats_interval: 0}}\n".format(
                        endpoint_url, retry_s, requests, task))
    return path


@pytest.mark.parametrize("retry_s", [0, 60])
def test_an_endpoint_out_of_reach_costs_frames_not_the_run(tmp_path, capsys, caplog, retry_s):
    """12 frames to a closed port: none inferred, all counted, the run ends normally; with a back-off only the first
    requests in flight are sent, the rest are not even tried."""
    settings = write_settings(tmp_path / "sm.yaml", "http://127.0.0.1:{}".format(closed_port()), retry_s)
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    code = main(["run", "--source", "synthetic", "--frames", "12", "--config", str(settings), "--no-preview", "--no-realtime",
                 "--output", "jsonl:" + str(out), "--summary", str(summary)])
    err = capsys.readouterr().err
    assert code == 0, err
    result = json.loads(summary.read_text())
    assert result["frames"] == 0 and result["not_inferred"] == 12 and result["lost"] == 0
    assert out.read_text() == ""
    assert "0 frames in" in err and "12 not inferred" in err
    backend = result["backend"]  # retry_s 0: every frame tried; else only those in flight before the first failure
    assert backend["sent"] + backend["not_sent"] == 12 and backend["failed"] == backend["sent"]
    assert backend["sent"] == 12 if retry_s == 0 else 1 <= backend["sent"] <= 2
    warnings = [r.getMessage() for r in caplog.records if "not inferred" in r.getMessage()]
    assert len(warnings) == 1 and "endpoint road-damage" in warnings[0]  # one warning per outage, not one per frame
    # boto3's connection error, not a guess: nothing listens there
    assert "Could not connect to the endpoint URL" in warnings[0]


def test_the_stats_carry_the_backends_counters_and_the_status_says_degraded(tmp_path):
    """The pipeline's stats snapshot after a run against a closed port: not_inferred and the backend's counters;
    the status messages a sink got: degraded once."""
    from edge import app, config
    from edge.messages import Envelope

    recorder = StatusRecorder()

    settings = write_settings(tmp_path / "sm.yaml", "http://127.0.0.1:{}".format(closed_port()), 60, requests=3)
    cfg = config.load("x86-openvino-cpu", str(settings), {"source": {"type": "synthetic", "frames": 7, "realtime": False}})
    runtime = app.build(cfg, extra_sinks=[recorder])
    try:
        summary = runtime.pipeline.run()
        stats = runtime.pipeline.stats_snapshot()
    finally:
        runtime.close()
    assert summary["not_inferred"] == 7 and stats["not_inferred"] == 7
    counters = stats["backend"]
    # sent before the first failure came back (at most the 3 in flight), then held back
    assert 1 <= counters["sent"] <= 3 and counters["sent"] + counters["not_sent"] == 7
    assert counters["failed"] == counters["sent"] and counters["answered"] == 0
    assert recorder.states == ["degraded"]
    message = Envelope("rig", "boot").stats(timestamp=0.0, stats=stats)
    assert message["not_inferred"] == 7 and message["backend"] == counters
    schemas = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "edge", "schemas")
    jsonschema.validate(message, json.load(open(os.path.join(schemas, "stats-v1.schema.json"))))
    status = Envelope("rig", "boot").status(state="degraded", timestamp=0.0)
    jsonschema.validate(status, json.load(open(os.path.join(schemas, "status-v1.schema.json"))))


def test_bad_settings_are_one_line(tmp_path):
    with pytest.raises(RoadedgeError, match="backend.endpoint: missing"):
        sagemaker.open(options())
    with pytest.raises(RoadedgeError, match="no such file"):
        sagemaker.open(options(endpoint="e", metadata=str(tmp_path / "none.json")))
    with pytest.raises(RoadedgeError, match="a detection model, but backend.task is segmentation"):
        sagemaker.model_info(options(endpoint="e", task="segmentation", metadata=sagemaker.BUNDLED_METADATA["detection"]))


def test_the_model_is_the_bundled_ones_unless_said_otherwise():
    detector = sagemaker.model_info(options(endpoint="dets"))
    assert detector.task == "detection" and detector.output_format == "sagemaker_json" and detector.label_offset == 0
    assert detector.name == "dets" and len(detector.labels) >= 4
    masks = sagemaker.model_info(options(endpoint="masks", task="segmentation", labels=["a", "b"]))
    assert masks.task == "segmentation" and masks.output_format == "segmentation_mask" and masks.labels == ("a", "b")
