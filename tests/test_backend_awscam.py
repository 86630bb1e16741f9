"""The awscam source and backend against tests/standins/awscam.py, a stand-in with DeepLens's awscam API whose
Model really runs the IR (OpenVINO, CPU). The backend's detections must equal decode_detection_output on the same
IR output, within the one pixel that awscam's integer boxes cost."""
import hashlib
import json
import os
import sys
import threading
import time

import cv2
import numpy as np
import openvino as ov
import pytest

from converters.openvino_native import convert_graph
from converters.ssd_deploy import to_deploy
from edge.backends import awscam as awscam_backend
from edge.backends.openvino import BUNDLED_MODEL
from edge.processing.decoders import DetectionFilter, decode_detection_output
from edge.processing.geometry import Resize
from edge.sources import awscam as awscam_source
from edge.sources.base import SourceError
from edge.synth.api import DriveRenderer
from edge.tasks import detection as detection_task
from roadedge.core.errors import RoadedgeError
from roadedge.core.model_metadata import default_preprocessing, ir_label_offset, model_metadata
from roadedge.core.mxnet_params import split_arg_aux
from roadedge.core.mxnet_symbol import attr_int, attr_tuple
from tests import ssd_models
from tests.conftest import import_standin
from tests.test_sources import make_context, number_of, options, write_video

STANDINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standins")
REAL_IR = BUNDLED_MODEL
MIN_SCORE = 0.05


@pytest.fixture
def awscam(monkeypatch):
    """`import awscam` finds the stand-in (fresh state) for this test only."""
    standin = import_standin(monkeypatch, "awscam")
    assert standin.__file__.startswith(STANDINS)
    standin.reset()
    yield standin
    standin.reset()


@pytest.fixture
def no_awscam(monkeypatch):
    monkeypatch.setitem(sys.modules, "awscam", None)  # as off the device: the import fails


@pytest.fixture
def context():
    return make_context("awscam")


def conv_param_shapes(graph):
    """{'arg:name': shape} of a graph whose weights are all Convolution's (the tiny SSD), read off the attributes."""
    channels, shapes = {}, {}
    for index, node in enumerate(graph.nodes):
        if node.op == "null":
            continue
        inbound = channels.get(node.inputs[0][0], 3) if node.inputs else 3
        if node.op == "Convolution":
            filters = attr_int(node, "num_filter", 0)
            shapes["arg:" + graph.nodes[node.inputs[1][0]].name] = (filters, inbound) + attr_tuple(node, "kernel", kind=int)
            if len(node.inputs) > 2:
                shapes["arg:" + graph.nodes[node.inputs[2][0]].name] = (filters,)
        channels[index] = filters if node.op == "Convolution" else inbound
    return shapes


@pytest.fixture(scope="module")
def tiny_ir(tmp_path_factory):
    """A tiny random SSD (two classes) as an IR with its metadata JSON, input 128 x 96 (non-square)."""
    folder = tmp_path_factory.mktemp("ir")
    deploy = to_deploy(ssd_models.tiny())
    args, aux = split_arg_aux(ssd_models.random_params(conv_param_shapes(deploy), seed=3))
    model = convert_graph(deploy, args, aux, (1, 3, 96, 128), name="tiny")
    xml = str(folder / "tiny.xml")
    ov.save_model(model, xml, compress_to_fp16=False)
    metadata = model_metadata("tiny", ["D00", "D40"], (1, 3, 96, 128), dict(default_preprocessing(deploy), embedded=False),
                              model.outputs[0].get_any_name(), ir_label_offset(xml) or 0,
                              {"threshold": 0.45, "topk": 400, "force_suppress": False}, "native", "FP32", {})
    with open(xml[:-4] + ".json", "w", encoding="utf-8") as handle:
        json.dump(metadata, handle)
    return xml


# ---- the source ----------------------------------------------------------------------------------------------------

def test_source_serves_the_camera_frames_in_order(awscam, tmp_path, context):
    awscam.set_video(write_video(tmp_path / "cam.mp4", 6), loop=False)
    source = awscam_source.open(options(awscam_source), context)
    assert source.live is True and source.fps is None
    frames = [source.read() for _ in range(6)]
    assert [number_of(f.image) for f in frames] == list(range(6)) and [f.index for f in frames] == list(range(6))
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape[2] == 3
    source.close()
    assert source.read() is None


def test_source_retries_with_backoff_when_there_is_no_frame(awscam, context):
    renderer = DriveRenderer(4, (96, 64))
    awscam.set_renderer(renderer, 15.0)
    source = awscam_source.open(options(awscam_source, reconnect_initial=0.01, reconnect_max=0.02), context)
    first = source.read()
    awscam.fail_next(3)  # the camera service restarts
    calls = awscam.frame_calls
    second, third = source.read(), source.read()
    assert [first.index, second.index, third.index] == [0, 1, 2]
    assert np.array_equal(second.image, renderer.frame(1, 15.0)[0])  # the next frame the camera had
    assert awscam.frame_calls - calls == 3 + 2
    lines = context["lines"]
    assert lines[0] == "awscam: getLastFrame() returned no frame; reconnecting"
    assert [line for line in lines if "reconnect attempt" in line] == [
        "awscam: reconnect attempt 1 in 0.01 s", "awscam: reconnect attempt 2 in 0.02 s (attempt 1: getLastFrame() "
        "returned no frame)", "awscam: reconnect attempt 3 in 0.02 s (attempt 2: getLastFrame() returned no frame)"]
    assert lines[-1] == "awscam: reconnected after 3 attempts"
    source.close()


def test_source_stops_during_backoff_and_gives_up_after_its_attempts(awscam, context):
    source = awscam_source.open(options(awscam_source, reconnect_initial=30.0), context)  # no feed: never a frame
    threading.Timer(0.2, context["stop"].set).start()
    started = time.monotonic()
    assert source.read() is None and time.monotonic() - started < 2.0
    source = awscam_source.open(options(awscam_source, reconnect_initial=0.01, reconnect_attempts=2), {})
    with pytest.raises(SourceError, match=r"^awscam: gave up after 2 reconnect attempts \(last: getLastFrame\(\) "
                                          r"returned no frame\)$"):
        source.read()


def test_source_off_the_device(no_awscam, context):
    with pytest.raises(SourceError, match="awscam module is not installed; it exists only on an AWS DeepLens"):
        awscam_source.open(options(awscam_source), context)


# ---- the backend ---------------------------------------------------------------------------------------------------

def reference_detections(xml, frame, metadata):
    """decode_detection_output on the IR's output for the frame, preprocessed here from the metadata alone."""
    width, height = metadata["input"]["width"], metadata["input"]["height"]
    pre = metadata["preprocessing"]
    pixels = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
    if pre["color_order"] == "RGB":
        pixels = pixels[:, :, ::-1]
    tensor = (pixels.astype(np.float32) - np.array(pre["mean"], np.float32)) * np.float32(pre["scale"])
    core = ov.Core()
    compiled = core.compile_model(core.read_model(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    output = compiled(np.ascontiguousarray(tensor.transpose(2, 0, 1)[None]))[compiled.outputs[0]]
    keep = DetectionFilter(metadata["labels"], MIN_SCORE, label_offset=metadata["output"]["label_offset"])
    return decode_detection_output(output, keep)


def assert_same_within_a_pixel(found, expected, input_size):
    width, height = input_size
    assert len(found) == len(expected)
    for mine, theirs in zip(found, expected):
        assert (mine.class_index, mine.label) == (theirs.class_index, theirs.label)
        assert mine.score == pytest.approx(theirs.score, abs=1e-6)
        pixels = np.abs(np.subtract(mine.box, theirs.box)) * np.array([width, height, width, height])
        assert pixels.max() <= 1.0, (mine, theirs)


def check_backend(awscam, xml, frame, context, min_count):
    backend = awscam_backend.open(options(awscam_backend, model=xml), context)
    with open(xml[:-4] + ".json", encoding="utf-8") as handle:
        metadata = json.load(handle)
    (model,) = awscam.models
    assert model.model_path == xml and model.loading_config == {"GPU": 1}
    info = backend.model
    assert info.metadata == metadata and list(info.labels) == metadata["labels"]
    assert info.input_size == (metadata["input"]["width"], metadata["input"]["height"])
    assert info.output_format == "awscam_ssd" and info.label_offset == metadata["output"]["label_offset"]
    assert backend.requests == 1 and info.name == metadata["name"]
    with open(xml[:-4] + ".bin", "rb") as handle:
        assert info.sha256 == hashlib.sha256(handle.read()).hexdigest()
    decode = detection_task.decoder(info, {"min_score": MIN_SCORE, "class_thresholds": {}, "top_k": 0})
    raw, _ = backend.collect(backend.submit(frame))  # the contract the loop drives
    found = decode(raw, Resize((frame.shape[1], frame.shape[0]), info.input_size, "stretch"))
    assert model.calls == 1
    assert_same_within_a_pixel(found, reference_detections(xml, frame, metadata), info.input_size)
    assert len(found) >= min_count and all(d.score >= MIN_SCORE for d in found)
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    backend.close()
    return found


def test_backend_matches_decode_detection_output_on_a_tiny_ir(awscam, tiny_ir, context):
    frame = DriveRenderer(11, (320, 200)).frame(3)[0]  # not the model's size: the backend stretches it
    found = check_backend(awscam, tiny_ir, frame, context, min_count=20)
    assert {d.label for d in found} <= {"D00", "D40"}
    assert any("awscam: loading" in line for line in context["lines"])


def test_backend_matches_on_the_trained_road_damage_ir(awscam, context):
    frame = DriveRenderer(2, (640, 360)).frame(10)[0]
    check_backend(awscam, REAL_IR, frame, context, min_count=1)


def test_backend_cpu_device(awscam, tiny_ir, context):
    backend = awscam_backend.open(options(awscam_backend, model=tiny_ir, device="cpu"), context)
    assert awscam.models[0].loading_config == {"GPU": 0}
    backend.close()
    with pytest.raises(RoadedgeError, match="^device: 'VPU' is not GPU or CPU$"):
        awscam_backend.open(options(awscam_backend, model=tiny_ir, device="VPU"), context)


def test_backend_errors_are_one_line(tmp_path, tiny_ir, no_awscam, context):
    def message(**values):
        with pytest.raises(RoadedgeError) as info:
            awscam_backend.open(options(awscam_backend, **values), context)
        assert "\n" not in str(info.value)
        return str(info.value)

    missing = str(tmp_path / "road.xml")
    assert message(model=missing) == "model: {}: no such file (expected the OpenVINO IR .xml)".format(missing)
    assert message() == "backend awscam: model is required (path of the IR .xml)"
    bare = tmp_path / "bare.xml"
    bare.write_text("<net/>")
    (tmp_path / "bare.bin").write_bytes(b"")
    assert message(model=str(bare)).startswith("model: metadata {} not found beside the IR".format(tmp_path / "bare.json"))
    assert message(model=tiny_ir, metadata=str(tmp_path / "m.json")).startswith(
        "model: metadata {} not found (".format(tmp_path / "m.json"))
    assert message(model=tiny_ir).startswith("backend awscam: the awscam module is not installed")


def test_backend_refuses_an_ir_without_detection_output(awscam, tiny_ir, tmp_path, context):
    """parseResult('ssd') reads a DetectionOutput layer: a classifier IR is refused when it loads, not on every frame."""
    import openvino.opset13 as ops

    data = ops.parameter([1, 3, 96, 128], np.float32, name="data")
    scores = ops.reduce_mean(data, ops.constant(np.array([2, 3], np.int64)), False)
    xml = str(tmp_path / "classifier.xml")
    ov.save_model(ov.Model([ops.result(scores)], [data], "classifier"), xml)
    with open(tiny_ir[:-4] + ".json", encoding="utf-8") as handle:
        (tmp_path / "classifier.json").write_text(handle.read())
    with pytest.raises(RoadedgeError) as info:
        awscam_backend.open(options(awscam_backend, model=xml), context)
    assert str(info.value) == ("model: {}: the IR has no DetectionOutput layer; the awscam backend runs SSD detection "
                               "models (output.format awscam_ssd, from parseResult('ssd'))".format(xml))
    assert not awscam.models  # refused before awscam loads it
