"""`roadedge serve` says what `roadedge run` says: the bundled detector's boxes on the same image files (same classes,
boxes within 0.01), the demo segmentation model's mask (the masks output's PNG) and figures (its messages); the
container's entry point started as SageMaker starts it (`serve`); the command's one-line errors."""
import io
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from cloud.serve.model import load_model
from tests.serve_server import (
    DETECTION_FRAMES,
    ROOT,
    SEG_XML,
    SEGMENTATION_FRAMES,
    encode,
    invoke,
    request,
    running,
    sample_frames,
)

BUNDLED_LABELS = ["D00", "D10", "D20", "D40", "D43", "D44"]
AGREEMENT_FRAMES = DETECTION_FRAMES + (65, 110)


def run_cli(*args):
    done = subprocess.run([sys.executable, "-m", "roadedge", "run", "--no-preview", "--quiet"] + list(args), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def image_folder(folder, frames, ext):
    """The frames as image files in name order; returns their bytes in that order."""
    os.makedirs(folder)
    bodies = []
    for index in sorted(frames):
        body = encode(frames[index], ext)
        with open(os.path.join(folder, "f{:04d}{}".format(index, ext)), "wb") as handle:
            handle.write(body)
        bodies.append(body)
    return bodies


def test_detections_agree_with_roadedge_run_on_the_same_images(tmp_path):
    bodies = image_folder(str(tmp_path / "frames"), sample_frames(AGREEMENT_FRAMES), ".jpg")
    run_cli("--source", str(tmp_path / "frames"), "--min-score", "0.2", "--output", "jsonl:" + str(tmp_path / "d.jsonl"),
            "--device-name", "t")
    messages = {m["frame"]["index"]: m for m in map(json.loads, open(str(tmp_path / "d.jsonl")))}
    model = load_model("bundled", min_score=0.2)
    compared = 0
    with running(model) as (app, port):
        for index, body in enumerate(bodies):
            answer = invoke(port, body, "image/jpeg", accept="application/json")
            assert answer.status == 200
            served = sorted(answer.json()["prediction"], key=lambda row: -row[1])
            expected = messages[index]["detections"] if index in messages else []
            assert len(served) == len(expected)
            for row, det in zip(served, expected):
                assert BUNDLED_LABELS[int(row[0])] == det["label"] and row[0] == int(row[0])
                assert row[1] == pytest.approx(det["score"], abs=0.01)
                assert row[2:] == pytest.approx(det["box"], abs=0.01)
                compared += 1
    model.close()
    assert compared >= len(bodies)  # boxes on every image, not an agreement on nothing


@pytest.fixture(scope="module")
def segmenter():
    model = load_model(SEG_XML)
    yield model
    model.close()


def test_segmentation_png_and_json_agree_with_roadedge_run(tmp_path, segmenter):
    frames = sample_frames(SEGMENTATION_FRAMES)
    bodies = image_folder(str(tmp_path / "frames"), frames, ".png")
    run_cli("--source", str(tmp_path / "frames"), "--model", SEG_XML, "--output", "jsonl:" + str(tmp_path / "s.jsonl"),
            "--output", "masks:" + str(tmp_path / "masks"))
    messages = [json.loads(line) for line in open(str(tmp_path / "s.jsonl"))]
    assert len(messages) == len(bodies)
    palette = json.load(open(SEG_XML[:-4] + ".json"))["palette"]
    with running(segmenter) as (app, port):
        for index, (body, message) in enumerate(zip(bodies, messages)):
            for path in ("/invocations", "/endpoints/road-seg/invocations"):
                answer = invoke(port, body, "image/png", accept="image/png", path=path)
                assert answer.status == 200 and answer.content_type == "image/png"
                png = Image.open(io.BytesIO(answer.body))
                assert png.mode == "P" and png.size == (640, 360)
                want = np.array(Image.open(str(tmp_path / "masks" / ("frame-%06d.png" % index))))
                np.testing.assert_array_equal(np.array(png), want)
                assert png.getpalette()[:3 * len(palette)] == [v for colour in palette for v in colour]
            shares = invoke(port, body, "application/x-image", accept="application/json").json()
            assert (shares["width"], shares["height"]) == (640, 360) and shares["labels"][1] == "road"
            assert shares["shares"] == pytest.approx(np.bincount(want.ravel(), minlength=15) / want.size, abs=1e-6)
            assert [c["label"] for c in shares["classes"]] == [c["label"] for c in message["classes"]]
            assert [c["share"] for c in shares["classes"]] == pytest.approx([c["share"] for c in message["classes"]],
                                                                             abs=1e-5)
            assert shares["drivable_share"] == pytest.approx(message["drivable_share"], abs=1e-5) and shares[
                "drivable_share"] > 0.2
            assert shares["free_distance"] == {"rows": message["free_distance"]["rows"],
                                               "share": pytest.approx(message["free_distance"]["share"], abs=1e-4)}
        jpeg = encode(frames[SEGMENTATION_FRAMES[0]])
        default = invoke(port, jpeg, "image/jpeg")  # no Accept: SageMaker semantic segmentation's default, the PNG
        assert default.status == 200 and default.content_type == "image/png"
        refused = invoke(port, jpeg, "image/jpeg", accept="text/csv")
        assert refused.status == 406 and refused.json()["message"] == ("Accept 'text/csv': model road-seg (segmentation) "
                                                                        "answers image/png, application/json")


def free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(port, process, deadline_s=120):
    """Poll /ping until 200 (503 while the model compiles); the answers seen on the way."""
    seen, stop = [], time.monotonic() + deadline_s
    while time.monotonic() < stop and process.poll() is None:
        try:
            answer = request(port, "GET", "/ping")
        except OSError:
            time.sleep(0.1)
            continue
        seen.append(answer.status)
        if answer.status == 200:
            return seen
        time.sleep(0.05)
    raise AssertionError("no 200 from /ping: {} (exit {})".format(seen, process.poll()))


@pytest.mark.parametrize("model_dir", ["ir", "empty"])
def test_the_container_entry_point_serves_the_model_in_its_model_folder(tmp_path, model_dir):
    """deploy/sagemaker/serve run as SageMaker runs the image (`serve`), the model folder where /opt/ml/model would be:
    an IR with its metadata, or nothing (the bundled detector)."""
    folder = tmp_path / "opt-ml-model"
    folder.mkdir()
    if model_dir == "ir":
        for ext in (".xml", ".bin", ".json"):
            (folder / ("road-seg" + ext)).write_bytes(open(SEG_XML[:-4] + ext, "rb").read())
    port = free_port()
    env = dict(os.environ, ROADEDGE_MODEL=str(folder), SAGEMAKER_BIND_TO_PORT=str(port), ROADEDGE_HOST="127.0.0.1",
               PYTHON=sys.executable, PYTHONPATH=ROOT, ROADEDGE_SERVE_ARGS="--workers 1")
    process = subprocess.Popen(["sh", os.path.join(ROOT, "deploy", "sagemaker", "serve"), "serve"], cwd=str(tmp_path),
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(port, process)
        task = "segmentation" if model_dir == "ir" else "detection"
        assert request(port, "GET", "/ping").json()["task"] == task
        frame = sample_frames((DETECTION_FRAMES[1],))[DETECTION_FRAMES[1]]
        answer = invoke(port, encode(frame), "image/jpeg", path="/invocations")
        assert answer.status == 200
        if task == "segmentation":
            assert answer.content_type == "image/png" and Image.open(io.BytesIO(answer.body)).size == (640, 360)
        else:
            assert [BUNDLED_LABELS[int(row[0])] for row in answer.json()["prediction"]] == ["D10"]  # 0.63 at 0.5
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 143 and "roadedge: terminated" in err
    assert ("serving the bundled detector" in err) == (model_dir == "empty")
    assert "workers" in err and "ready with 1 workers" in err


@pytest.mark.parametrize("args, message", [
    (["{tmp}/nowhere.xml"], "roadedge: error: model {tmp}/nowhere.xml: no such file or folder"),
    (["{tmp}"], "roadedge: error: model {tmp}: no model in the folder; expected an IR .xml (with its .bin and .json), an "
     ".onnx, a model.tar.gz or an MXNet PREFIX-symbol.json"),
    (["--workers", "-1"], "roadedge: error: --workers -1: expected 0 or more"),
    (["--max-bytes", "0"], "roadedge: error: --max-bytes 0: expected 1 or more"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args, message):
    done = subprocess.run([sys.executable, "-m", "roadedge", "serve", "--port", "0"] + [a.format(tmp=tmp_path) for a in args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == message.format(tmp=tmp_path)
    assert "Traceback" not in done.stderr


def test_a_port_in_use_is_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "roadedge", "serve", "--port", str(port)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "roadedge: error: serve: cannot listen on 127.0.0.1:{} (Address already in use)".format(port)


def test_a_wrong_image_type_in_is_still_decoded_by_its_bytes(segmenter):
    """application/x-image says nothing of the format and image/jpeg with PNG bytes is taken at its bytes, as
    cv2.imread takes a file whatever its name."""
    frame = sample_frames((SEGMENTATION_FRAMES[1],))[SEGMENTATION_FRAMES[1]]
    with running(segmenter) as (app, port):
        png = invoke(port, encode(frame, ".png"), "image/jpeg", accept="application/json").json()
        direct = segmenter.results(cv2.imdecode(np.frombuffer(encode(frame, ".png"), np.uint8), cv2.IMREAD_COLOR))
    assert png["shares"] == pytest.approx(list(direct.shares), abs=1e-6)


def test_segmentation_clients_at_once_with_images_of_different_sizes_get_their_own_masks(segmenter):
    """Several clients at once, images of three sizes, three requests each: every answer is its own image's mask."""
    import threading

    frames = sample_frames(SEGMENTATION_FRAMES)
    images = [cv2.resize(frames[index], size) for index in SEGMENTATION_FRAMES for size in ((640, 360), (320, 200), (97, 61))]
    expected = [segmenter.results(cv2.imdecode(np.frombuffer(encode(image, ".png"), np.uint8), cv2.IMREAD_COLOR)).mask
                for image in images]
    answers = [[] for _ in images]
    start = threading.Barrier(len(images))

    def client(slot):
        start.wait()
        for _ in range(3):
            answers[slot].append(invoke(port, encode(images[slot], ".png"), "image/png", accept="image/png"))

    with running(segmenter) as (app, port):
        threads = [threading.Thread(target=client, args=(slot,)) for slot in range(len(images))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for got, want in zip(answers, expected):
        assert len(got) == 3
        for answer in got:
            assert answer.status == 200
            np.testing.assert_array_equal(np.array(Image.open(io.BytesIO(answer.body))), want)
    assert len({mask.shape for mask in expected}) == 3
