"""`roadedge run` end to end with real parts: the bundled IR on OpenVINO, the bundled sample video, real sinks.

Golden detections for the sample video live in tests/golden/sample-drive-detections.json (reviewable JSON).
After a deliberate model or video change, rewrite them with:

    ROADEDGE_UPDATE_GOLDEN=1 python3 -m pytest tests/test_runtime.py -k golden
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import cv2
import jsonschema
import numpy as np
import pytest

from edge import app, config
from edge.backends.openvino import BUNDLED_MODEL
from edge.sinks.base import Sink
from edge.sources.base import Frame
from edge.sources.spec import SAMPLE_VIDEO
from roadedge.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden", "sample-drive-detections.json")
SCHEMA = json.load(open(os.path.join(ROOT, "edge", "schemas", "detections-v1.schema.json")))
GOLDEN_FRAMES = 150  # the whole sample drive


def read_lines(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle]


def golden_view(messages):
    """What the golden file keeps: per frame index, label, score and box."""
    return {str(m["frame"]["index"]): [[d["label"], d["score"], d["box"]] for d in m["detections"]] for m in messages}


def test_run_on_the_bundled_model_and_sample_video_matches_golden(tmp_path, capsys):
    out = tmp_path / "detections.jsonl"
    summary = tmp_path / "summary.json"
    code = main(["run", "--frames", str(GOLDEN_FRAMES), "--no-realtime", "--no-preview", "--output", "jsonl:" + str(out),
                 "--summary", str(summary), "--device-name", "test-rig"])
    assert code == 0
    messages = read_lines(str(out))
    for message in messages:
        jsonschema.validate(message, SCHEMA)
    assert [m["seq"] for m in messages] == list(range(len(messages)))
    assert len({m["boot_id"] for m in messages}) == 1 and all(m["device"] == "test-rig" for m in messages)
    indices = [m["frame"]["index"] for m in messages]
    assert indices == sorted(set(indices)) and indices[-1] < GOLDEN_FRAMES
    assert all(m["frame"]["width"] == 640 and m["frame"]["height"] == 360 for m in messages)
    assert all(d["score"] >= 0.5 for m in messages for d in m["detections"])
    stats = json.load(open(str(summary)))
    assert stats["frames"] == GOLDEN_FRAMES and stats["messages"] == len(messages) and stats["dropped"] == 0
    assert set(stats["stages_ms"]) >= {"capture", "preprocess", "infer", "decode", "sinks"}
    assert "150 frames in" in capsys.readouterr().err

    found = golden_view(messages)
    if os.environ.get("ROADEDGE_UPDATE_GOLDEN"):
        os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
        head = json.dumps({"video": "edge/data/sample-drive.mp4", "model": "edge/models/road-damage-ssd.xml",
                           "frames": GOLDEN_FRAMES, "min_score": 0.5, "row": "frame index: [[label, score, box]]"})
        rows = ",\n".join("  %s: %s" % (json.dumps(k), json.dumps(v)) for k, v in sorted(found.items(), key=lambda i: int(i[0])))
        with open(GOLDEN, "w") as handle:  # one line per frame, so a diff shows which frames changed
            handle.write(head[:-1] + ',\n "detections": {\n' + rows + "\n }\n}\n")
    golden = json.load(open(GOLDEN))
    assert len(golden["detections"]) >= 10, "the golden file should hold a good number of frames with detections"
    assert sorted(found, key=int) == sorted(golden["detections"], key=int)
    for index, expected in golden["detections"].items():
        got = found[index]
        assert [d[0] for d in got] == [d[0] for d in expected], "frame %s labels" % index
        for (_, score, box), (_, want_score, want_box) in zip(got, expected):
            assert abs(score - want_score) < 2e-3
            assert np.allclose(box, want_box, atol=2e-3)


def _config(**overrides):
    layer = {"source": {"type": "opencv", "uri": SAMPLE_VIDEO, "realtime": False}, "outputs": []}
    layer.update(overrides)
    return config.load("x86-openvino-cpu", None, layer)


class Collect(Sink):
    needs_image = True

    def __init__(self):
        self.results = []

    def write(self, result):
        if not result.final:  # the closing result repeats the last frame with the ended tracks' events
            self.results.append(result)

    def close(self):
        pass


class Broken(Sink):
    needs_image = False

    def write(self, result):
        raise IOError("disk full")

    def close(self):
        pass


def test_a_failing_sink_does_not_stop_the_others(tmp_path):
    out = tmp_path / "d.jsonl"
    collect = Collect()
    runtime = app.build(_config(pipeline={"frames": 12, "publish_empty": True},
                                outputs=[{"type": "jsonl", "path": str(out)}]), extra_sinks=[Broken(), collect])
    try:
        summary = runtime.pipeline.run()
    finally:
        runtime.close()
    assert summary["sink_errors"] == {"Broken": 13}  # 12 frames and the closing result
    assert len(read_lines(str(out))) == 12 == len(collect.results)
    assert [r.frame.index for r in collect.results] == list(range(12))
    assert all(r.annotated is not None and r.annotated.shape == r.frame.image.shape for r in collect.results)


class InstantFrames(object):
    """A source that has a new frame the moment it is asked: faster than any inference, to test back-pressure."""

    fps = None

    def __init__(self, live, count=60):
        self.live, self.count, self.index = live, count, 0
        self.image = np.full((360, 640, 3), 90, np.uint8)

    def read(self):
        if self.index >= self.count:
            return None
        self.index += 1
        return Frame(self.index - 1, self.image, time.time())

    def close(self):
        pass


@pytest.mark.parametrize("live", [True, False])
def test_live_sources_drop_the_oldest_frames_and_files_drop_none(live):
    collect = Collect()
    collect.needs_image = False
    runtime = app.build(_config(pipeline={"queue": 2, "publish_empty": True}), extra_sinks=[collect])
    runtime.source.close()
    runtime.source = runtime.pipeline.source = InstantFrames(live)
    slow = runtime.pipeline.backend.collect

    def slow_wait(handle, timeout_s=None):  # inference made slower than capture, as on a device
        time.sleep(0.01)
        return slow(handle, timeout_s)

    runtime.pipeline.backend.collect = slow_wait
    try:
        summary = runtime.pipeline.run()
    finally:
        runtime.close()
    indices = [r.frame.index for r in collect.results]
    assert indices == sorted(indices)
    if live:
        assert summary["dropped"] > 0 and len(indices) + summary["dropped"] == 60 and indices[-1] == 59
    else:
        assert summary["dropped"] == 0 and indices == list(range(60))


def test_preview_answers_with_a_jpeg_while_running():
    cfg = _config(source={"type": "synthetic", "seed": 3, "realtime": False},
                  outputs=[{"type": "mjpeg", "host": "127.0.0.1", "port": 0}])
    runtime = app.build(cfg)
    worker = threading.Thread(target=runtime.pipeline.run)
    worker.start()
    try:
        host, port = runtime.sinks[0].address
        deadline, image = time.time() + 60, None
        while image is None and time.time() < deadline:
            try:
                body = urllib.request.urlopen("http://%s:%d/latest.jpg" % (host, port), timeout=5).read()
                image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
            except OSError:
                time.sleep(0.2)
        page = urllib.request.urlopen("http://%s:%d/" % (host, port), timeout=5).read().decode()
    finally:
        runtime.pipeline.stop()
        worker.join(30)
        runtime.close()
    assert image is not None and image.shape == (360, 640, 3)
    assert "stream.mjpg" in page
    assert not worker.is_alive() and runtime.pipeline.frames_done >= 1


def test_sigterm_stops_cleanly_with_a_summary(tmp_path):
    out = tmp_path / "d.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "roadedge", "run", "--source", "synthetic:5", "--no-preview",
                                "--output", "jsonl:" + str(out), "--min-score", "0.01"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and not (out.exists() and out.stat().st_size):
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    err = err.decode()
    assert process.returncode == 0, err
    assert "stopping (SIGTERM)" in err and " frames in " in err and "Traceback" not in err
    lines = read_lines(str(out))
    assert lines and [m["seq"] for m in lines] == list(range(len(lines)))


def test_a_missing_model_file_is_one_line(capsys):
    assert main(["run", "--model", "/nope/model.xml", "--no-preview"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("roadedge: error: device_profiles/x86-openvino-cpu.yaml + command line: backend.model: "
                   "/nope/model.xml: no such file; expected an IR .xml, .onnx, an MXNet prefix or model.tar.gz")


def test_the_bundled_model_and_video_exist_and_are_small():
    assert os.path.getsize(BUNDLED_MODEL[:-4] + ".bin") < 10e6
    capture = cv2.VideoCapture(SAMPLE_VIDEO)
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) >= 100 and int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == 640
    capture.release()


def test_events_and_stats_of_a_run_are_schema_valid_and_pair_up():
    """Tracker events from the real detections of the sample drive: every track opens once and ends once."""
    events_schema = json.load(open(os.path.join(ROOT, "edge", "schemas", "events-v1.schema.json")))
    stats_schema = json.load(open(os.path.join(ROOT, "edge", "schemas", "stats-v1.schema.json")))
    collect = Collect()
    collect.needs_image = False
    collect.write = lambda result: collect.results.append(result)  # the closing result too
    runtime = app.build(_config(detection={"min_score": 0.3}), extra_sinks=[collect])
    try:
        summary = runtime.pipeline.run()
    finally:
        runtime.close()
    events = [e for r in collect.results for e in r.events]
    stats = [r.stats for r in collect.results if r.stats is not None]
    assert collect.results[-1].final and not any(r.final for r in collect.results[:-1])
    assert events and [e["seq"] for e in events] == list(range(len(events))) == list(range(summary["events"]))
    for event in events:
        jsonschema.validate(event, events_schema)
    tracks = {}
    for event in events:
        tracks.setdefault(event["track_id"], []).append(event["event"])
    for kinds in tracks.values():
        assert kinds[0] == "new" and kinds[-1] == "end" and kinds.count("new") == 1 and kinds.count("end") == 1
    assert len(events) < summary["detections"]  # one damage is a few events, not one message per frame
    assert stats and stats[-1]["frames"] == summary["frames"] == 150
    for message in stats:
        jsonschema.validate(message, stats_schema)
