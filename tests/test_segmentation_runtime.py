"""Segmentation in the runtime, with a real OpenVINO IR (tests/seg_ir.py: a pixel's class is a known function of its
colour): the masks, shares, drivable share and free distance of `roadedge run` against numpy's own computation; the
masks output's PNGs; the segmentation message on its MQTT topic from a real mosquitto; the overlay; bad settings."""
import json
import os
import subprocess
import sys

import cv2
import jsonschema
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from edge import app, config
from edge.processing.overlay import annotate_mask, blend
from edge.processing.segmentation import (
    MaskAnalysis,
    NearestResize,
    SegmentationResult,
    argmax_classes,
    class_mask,
    class_shares,
    free_rows,
)
from roadedge.core.seglabels import SYNTH_SEG_LABELS as LABELS_SEG
from tests.mosquitto import Broker, require_mosquitto
from tests.seg_ir import LABELS, expected_mask, make_seg_ir, scene

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = json.load(open(os.path.join(ROOT, "edge", "schemas", "segmentation-v1.schema.json")))
ROAD = [LABELS.index(name) for name in ("road", "lane_marking")]  # the default road classes this model has


def reference_free_rows(road, band=0.2, min_fill=0.5):
    """free_rows by a plain loop over the rows, bottom up."""
    height, width = road.shape
    half = max(1, int(round(width * band / 2.0)))
    left, right = max(0, width // 2 - half), min(width, width // 2 + half)
    rows = 0
    for y in range(height - 1, -1, -1):
        if sum(bool(road[y, x]) for x in range(left, right)) / float(right - left) < min_fill:
            break
        rows += 1
    return rows


def write_frames(folder, count, size=(64, 48)):
    os.makedirs(folder)
    frames = []
    for index in range(count):
        rgb = scene(size[0], size[1], seed=index)
        cv2.imwrite(os.path.join(folder, "f%03d.png" % index), rgb[:, :, ::-1])
        frames.append(rgb)
    return frames


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "roadedge", "run", "--no-preview"] + list(args),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("argmax", [False, True], ids=["logits", "argmax-in-the-IR"])
def test_run_writes_the_masks_and_the_figures_numpy_computes(tmp_path, argmax):
    frames = write_frames(str(tmp_path / "frames"), 4)
    xml = make_seg_ir(str(tmp_path / "model"), argmax=argmax)
    done = run_cli("--source", str(tmp_path / "frames"), "--model", xml, "--output", "jsonl:" + str(tmp_path / "s.jsonl"),
                   "--output", "masks:" + str(tmp_path / "masks"))
    assert done.returncode == 0, done.stderr
    messages = [json.loads(line) for line in open(str(tmp_path / "s.jsonl"))]
    assert [m["frame"]["index"] for m in messages] == [0, 1, 2, 3] and [m["seq"] for m in messages] == [0, 1, 2, 3]
    palette = json.load(open(xml[:-4] + ".json"))["palette"]
    for message, rgb in zip(messages, frames):
        jsonschema.validate(message, SCHEMA)
        want = expected_mask(rgb)
        counts = np.bincount(want.ravel(), minlength=len(LABELS)) / want.size
        assert {c["label"]: c["share"] for c in message["classes"]} == pytest.approx(
            {LABELS[i]: counts[i] for i in range(len(LABELS)) if counts[i] > 0}, abs=1e-5)
        assert [c["share"] for c in message["classes"]] == sorted((c["share"] for c in message["classes"]), reverse=True)
        road = np.isin(want, ROAD)
        assert message["drivable_share"] == pytest.approx(road.mean(), abs=1e-5)
        assert message["free_distance"]["rows"] == reference_free_rows(road) > 0
        png = Image.open(str(tmp_path / "masks" / ("frame-%06d.png" % message["frame"]["index"])))
        assert png.mode == "P" and png.size == (64, 48)
        np.testing.assert_array_equal(np.array(png), want)
        assert png.getpalette()[:3 * len(palette)] == [v for colour in palette for v in colour]
    assert sorted(os.listdir(str(tmp_path / "masks"))) == ["frame-%06d.png" % i for i in range(4)]  # no temporaries


def test_masks_follow_the_frame_size_by_nearest_neighbour(tmp_path):
    """Frames twice the model's size: the mask comes back at the frame's size, each model pixel as a 2x2 block."""
    write_frames(str(tmp_path / "frames"), 1, size=(128, 96))
    xml = make_seg_ir(str(tmp_path / "model"))
    done = run_cli("--source", str(tmp_path / "frames"), "--model", xml, "--output", "jsonl:" + str(tmp_path / "s.jsonl"),
                   "--output", "masks:" + str(tmp_path / "masks"))
    assert done.returncode == 0, done.stderr
    mask = np.array(Image.open(str(tmp_path / "masks" / "frame-000000.png")))
    assert mask.shape == (96, 128)
    small = mask[::2, ::2]
    np.testing.assert_array_equal(mask, np.repeat(np.repeat(small, 2, axis=0), 2, axis=1))
    message = json.loads(open(str(tmp_path / "s.jsonl")).readline())
    assert message["frame"]["width"] == 128 and {c["label"] for c in message["classes"]} >= {"sky", "road"}


@pytest.mark.parametrize("args, config_text, expected", [
    # the second --model (the bundled detector) wins over the segmentation model every case starts with
    (["--model", "bundled", "--output", "masks:{tmp}/m"], None, "masks sink: model road-damage-ssd is a detection model"),
    (["--output", "masks:{tmp}/nowhere/m"], None, "masks sink: {tmp}/nowhere/m: folder {tmp}/nowhere does not exist"),
    (["--output", "masks:{tmp}/full"], None, "masks sink: {tmp}/full: already holds 1 masks (frame-000007.png ...)"),
    ([], "segmentation: {road_classes: [road, tarmac]}\n",
     "segmentation.road_classes: tarmac: not a class of model colour-seg"),
    ([], "segmentation: {free_band: 2}\n", "c.yaml: segmentation.free_band: 2; expected 0.01..1.0"),
])
def test_bad_segmentation_settings_are_one_line_exit_2(tmp_path, args, config_text, expected):
    write_frames(str(tmp_path / "frames"), 1)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "frame-000007.png").write_bytes(b"a user's file")
    xml = make_seg_ir(str(tmp_path / "model"))
    argv = ["--source", str(tmp_path / "frames"), "--model", xml]
    argv += [a.replace("{tmp}", str(tmp_path)) for a in args]
    if config_text:
        (tmp_path / "c.yaml").write_text(config_text)
        argv += ["--config", str(tmp_path / "c.yaml")]
    done = run_cli(*argv)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected.replace("{tmp}", str(tmp_path)) in lines[0], done.stderr
    assert (tmp_path / "full" / "frame-000007.png").read_bytes() == b"a user's file"


def test_segmentation_messages_go_to_their_own_mqtt_topic(tmp_path):
    require_mosquitto()
    from tests.test_mqtt import Subscriber, wait_until

    frames = write_frames(str(tmp_path / "frames"), 3)
    xml = make_seg_ir(str(tmp_path / "model"))
    with Broker(tmp_path / "broker") as broker:
        subscriber = Subscriber(broker.port)
        layer = {"device_name": "rc-car", "source": {"type": "images", "path": str(tmp_path / "frames")},
                 "backend": {"model": xml},
                 "outputs": [{"type": "mqtt", "port": broker.port, "outbox": str(tmp_path / "outbox.sqlite")}]}
        runtime = app.build(config.load("x86-openvino-cpu", None, layer))
        try:
            summary = runtime.pipeline.run()
        finally:
            runtime.close()
        assert wait_until(lambda: len(subscriber.of("segmentation")) >= 3, 10)
        subscriber.close()
    assert summary["messages"] == 3 and summary["detections"] == 0
    received = subscriber.of("segmentation")
    assert not subscriber.of("detections") and [m["seq"] for m in received] == [0, 1, 2]
    for message, rgb in zip(received, frames):
        jsonschema.validate(message, SCHEMA)
        assert message["device"] == "rc-car"
        assert message["drivable_share"] == pytest.approx(np.isin(expected_mask(rgb), ROAD).mean(), abs=1e-5)


# --- the pure parts ---

@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 90), st.integers(1, 90), st.integers(0, 2 ** 32 - 1))
def test_property_nearest_resize_is_opencvs_inter_nearest(h, w, out_h, out_w, seed):
    mask = np.random.default_rng(seed).integers(0, 21, (h, w), dtype=np.uint8)
    np.testing.assert_array_equal(NearestResize()(mask, (out_w, out_h)),
                                  cv2.resize(mask, (out_w, out_h), interpolation=cv2.INTER_NEAREST))


@given(st.integers(1, 30), st.integers(1, 30), st.floats(0.01, 1.0), st.floats(0.01, 1.0), st.integers(0, 2 ** 32 - 1))
def test_property_shares_and_free_rows_agree_with_plain_loops(h, w, band, fill, seed):
    rng = np.random.default_rng(seed)
    mask = rng.integers(0, 4, (h, w), dtype=np.uint8)
    mask[h // 2:] = np.where(rng.random((h - h // 2, w)) < 0.8, 1, mask[h // 2:])  # mostly road below
    shares = class_shares(mask, 5)
    for index in range(5):
        assert shares[index] == sum(1 for v in mask.ravel() if v == index) / float(mask.size)
    road = mask == 1
    assert free_rows(road, band, fill) == reference_free_rows(road, band, fill)


@given(st.integers(1, 30), st.integers(1, 30), st.integers(1, 80), st.integers(1, 80), st.floats(0.01, 1.0),
       st.floats(0.01, 1.0), st.integers(0, 2 ** 32 - 1))
def test_property_figures_on_the_model_mask_equal_those_of_the_frame_sized_mask(h, w, out_h, out_w, band, fill, seed):
    """The analysis computes on the small mask with weights; the figures must be those of the resized one, exactly."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 4, (h, w), dtype=np.uint8)
    small[h // 3:] = np.where(rng.random((h - h // 3, w)) < 0.85, 1, small[h // 3:])
    analysis = MaskAnalysis(["a", "road", "c", "d"], [(0, 0, 0)] * 4, "segmentation_mask", [1, 2], band, fill)
    result = analysis(small[None, None], (out_w, out_h))
    big = cv2.resize(small, (out_w, out_h), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(result.mask, big)
    assert list(result.shares) == list(class_shares(big, 4))
    road = np.isin(big, [1, 2])
    assert result.drivable == road.mean() and result.free_rows == reference_free_rows(road, band, fill)
    assert result.free_share == result.free_rows / float(out_h)


@given(st.integers(1, 20), st.integers(1, 12), st.integers(1, 12), st.integers(0, 2 ** 32 - 1), st.booleans())
def test_property_the_class_argmax_is_numpys_ties_included(classes, h, w, seed, coarse):
    rng = np.random.default_rng(seed)
    logits = rng.integers(0, 3, (classes, h, w)).astype(np.float32) if coarse else rng.normal(size=(classes, h, w))
    np.testing.assert_array_equal(argmax_classes(logits.astype(np.float32)), logits.argmax(axis=0))


def test_class_mask_reads_logits_and_folded_masks():
    logits = np.random.default_rng(1).normal(size=(1, 5, 6, 7)).astype(np.float32)
    want = logits[0].argmax(axis=0)
    np.testing.assert_array_equal(class_mask(logits, "segmentation_logits"), want)
    np.testing.assert_array_equal(class_mask(want[None, None].astype(np.int32), "segmentation_mask"), want)
    with pytest.raises(ValueError, match="expected \\[1, C, H, W\\]"):
        class_mask(np.zeros((5, 6)), "segmentation_logits")


def test_the_overlay_blends_the_palette_and_lists_the_classes_present():
    image = np.full((90, 160, 3), 100, np.uint8)
    mask = np.zeros((90, 160), np.uint8)
    mask[45:] = 1
    result = SegmentationResult(mask, ["sky", "road"], [(0, 0, 255), (255, 0, 0)], class_shares(mask, 2), 0.5, 45)
    out = annotate_mask(image, result, fps=None, alpha=0.5)
    assert (image == 100).all()  # not modified
    # below the legend and away from the free-distance tick: exact blends, BGR
    assert tuple(out[30, 10]) == (177, 50, 50) and tuple(out[80, 10]) == (50, 50, 177)
    legend = out[:30, 100:]  # top right: a dark panel with both swatches
    assert (legend == (255, 0, 0)).all(axis=2).sum() > 4 and (legend == (0, 0, 255)).all(axis=2).sum() > 4
    np.testing.assert_array_equal(blend(image, mask, np.array([[0, 0, 0], [255, 255, 255]] + [[0, 0, 0]] * 254,
                                                                np.uint8), 0.0), image)


def test_a_sagemaker_segmentation_artefact_runs_in_memory_as_its_converted_ir_does(tmp_path):
    """--model model.tar.gz of a segmentation model: converted natively in memory, the same figures as the IR that
    `roadedge convert optimize` writes from it."""
    from tests.seg_artefacts import write_artefact

    write_frames(str(tmp_path / "frames"), 3, size=(96, 64))
    tarball = str(tmp_path / "model.tar.gz")
    write_artefact(tarball, "psp", "resnet-tiny", num_classes=6, crop_size=64, seed=3)
    converted = subprocess.run([sys.executable, "-m", "roadedge", "convert", "optimize", tarball, "--output",
                                str(tmp_path / "ir"), "--name", "psp"], cwd=ROOT, capture_output=True, text=True)
    assert converted.returncode == 0, converted.stderr
    runs = {}
    for key, model in (("tarball", tarball), ("ir", str(tmp_path / "ir" / "psp.xml"))):
        done = run_cli("--source", str(tmp_path / "frames"), "--model", model, "--output",
                       "jsonl:" + str(tmp_path / (key + ".jsonl")))
        assert done.returncode == 0, done.stderr
        runs[key] = [json.loads(line) for line in open(str(tmp_path / (key + ".jsonl")))]
    assert len(runs["ir"]) == 3
    for from_tarball, from_ir in zip(runs["tarball"], runs["ir"]):
        jsonschema.validate(from_tarball, SCHEMA)
        assert from_tarball["classes"] == from_ir["classes"] and len(from_ir["classes"]) >= 2
        assert from_tarball["drivable_share"] is None  # class0..class5: no road class


def test_the_bundled_demo_segmentation_model_runs_on_the_sample_drive_with_no_other_option(tmp_path):
    """`roadedge run --model edge/models/road-seg.xml` (the profile's defaults otherwise, preview off for the test):
    the drive's road is seen ahead of the car, the sky above it."""
    done = run_cli("--model", os.path.join(ROOT, "edge", "models", "road-seg.xml"), "--frames", "12",
                   "--output", "masks:" + str(tmp_path / "masks"))
    assert done.returncode == 0, done.stderr
    messages = [json.loads(line) for line in done.stdout.splitlines()]
    assert [m["frame"]["index"] for m in messages] == list(range(12))
    for message in messages:
        jsonschema.validate(message, SCHEMA)
        shares = {c["label"]: c["share"] for c in message["classes"]}
        assert shares.get("road", 0) > 0.2 and message["drivable_share"] >= shares["road"]
        assert message["free_distance"]["rows"] > 0.1 * message["frame"]["height"]
        mask = np.array(Image.open(str(tmp_path / "masks" / ("frame-%06d.png" % message["frame"]["index"]))))
        assert mask.shape == (360, 640)
        sky, road = LABELS_SEG.index("sky"), LABELS_SEG.index("road")
        rows_sky, rows_road = np.nonzero(mask == sky)[0], np.nonzero(mask == road)[0]
        if rows_sky.size and rows_road.size:
            assert rows_sky.mean() < rows_road.mean()  # sky above the road
