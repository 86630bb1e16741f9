"""The OpenVINO backend on damaged or mismatched models: one line naming the file and what was expected, exit 2,
OpenVINO's human reason rather than its source location, no traceback."""
import os
import shutil

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.backends import openvino as openvino_backend
from edge.backends.openvino import BUNDLED_MODEL
from roadedge.cli import main
from roadedge.core.errors import RoadedgeError, openvino_reason


def options(**values):
    chosen = {name: option.default for name, option in openvino_backend.OPTIONS.items()}
    chosen.update(values)
    return chosen


@pytest.fixture
def model_copy(tmp_path):
    """The bundled IR (.xml, .bin, .json) copied to tmp_path/road.*; returns the .xml path."""
    for suffix in (".xml", ".bin", ".json"):
        shutil.copy(BUNDLED_MODEL[:-4] + suffix, str(tmp_path / ("road" + suffix)))
    return tmp_path / "road.xml"


def run_error(capsys, xml):
    """`roadedge run --model xml`: exit 2 and the one line it printed."""
    assert main(["run", "--model", str(xml), "--no-preview", "--frames", "1", "--no-realtime"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    assert lines[0].startswith("roadedge: error: ")
    return lines[0]


@pytest.mark.parametrize("text,reason", [
    ("Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'is_valid_weights_range(m_weights_provider->size(), "
     "offset, size)' failed at src/core/xml_util/src/xml_deserialize_util.cpp:900:\nIncorrect weights in bin file!\n\n",
     "Incorrect weights in bin file!"),
    ("Exception from src/inference/src/cpp/core.cpp:84:\nException from src/inference/src/model_reader.cpp:148:\n"
     'Unable to read the model: "g.onnx" Please check that model format: ".onnx" is supported\n\n',
     'Unable to read the model: "g.onnx" Please check that model format: ".onnx" is supported'),
    ("Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'util::file_exists(path / \"saved_model.pb\")' failed at "
     "src/frontends/tensorflow/src/graph_iterator_saved_model.cpp:34:\nFrontEnd API failed with GeneralFailure:\n"
     'Could not open the file: "/tmp/saved_model.pb"\n',
     'FrontEnd API failed with GeneralFailure: Could not open the file: "/tmp/saved_model.pb"'),
    ("Caught exception: Exception from src/plugins/intel_cpu/src/node.cpp:794:\n[CPU] Reshape node with name 'R' "
     "Check 'minusOneCount <= 1' failed at src/plugins/intel_cpu/src/shape_inference/custom/reshape.cpp:61:\n"
     "[cpu]reshape: the shape of input data (1.2) conflicts with the reshape pattern (0.4)\n",
     "[CPU] Reshape node with name 'R' [cpu]reshape: the shape of input data (1.2) conflicts with the reshape pattern (0.4)"),
    ("Exception from src/inference/src/cpp/core.cpp:84:", "Exception from src/inference/src/cpp/core.cpp:84:"),
    ("", "RuntimeError"),
])
def test_openvino_reason_skips_source_locations_and_keeps_the_human_lines(text, reason):
    assert openvino_reason(RuntimeError(text)) == reason


def test_run_with_a_truncated_bin_names_the_bin(model_copy, capsys):
    weights = model_copy.with_suffix(".bin")
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[:100000])
    line = run_error(capsys, model_copy)
    assert line.endswith("{}: truncated IR weights: 100000 bytes, but road.xml reads up to byte {} (copy the .bin "
                         "again)".format(weights, size)), line


def test_run_without_the_bin_names_it(model_copy, capsys):
    model_copy.with_suffix(".bin").unlink()
    line = run_error(capsys, model_copy)
    assert "{}: cannot read the IR's weights (no such file or folder); road.xml needs".format(
        model_copy.with_suffix(".bin")) in line, line


def test_run_with_a_cut_xml_gives_openvinos_reason_not_its_source_location(model_copy, capsys):
    model_copy.write_text(model_copy.read_text()[:5000])
    line = run_error(capsys, model_copy)
    assert "backend.model {}: OpenVINO cannot read it (Error parsing element attribute at offset".format(model_copy) in line
    assert "Exception from" not in line and ".cpp" not in line, line


def test_a_device_openvino_does_not_know_is_one_line_with_the_reason(model_copy):
    backend = openvino_backend.open(options(model=str(model_copy), device="NOSUCHDEVICE"))
    with pytest.raises(RoadedgeError) as info:
        backend.prepare((640, 360))
    assert str(info.value) == ("backend.device NOSUCHDEVICE: OpenVINO cannot compile {} there (Device with "
                               "\"NOSUCHDEVICE\" name is not registered in the OpenVINO Runtime)".format(model_copy))


# ---- a model whose output is not what its metadata says: refused when the backend loads -------------------------------

def small_ir(folder, name, output_shape):
    """An IR taking [1, 3, 16, 16] whose one output has `output_shape` (a reshape of the mean over the picture), with
    the bundled model's metadata (input 16 x 16) beside it; returns the .xml path."""
    import json

    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    data = ops.parameter([1, 3, 16, 16], np.float32, name="data")
    flat = ops.reshape(data, ops.constant(np.array([1, -1], np.int64)), False)
    count = int(np.prod(output_shape))
    picked = ops.slice(flat, ops.constant(np.array([0], np.int64)), ops.constant(np.array([count], np.int64)),
                       ops.constant(np.array([1], np.int64)), ops.constant(np.array([1], np.int64)))
    out = ops.reshape(picked, ops.constant(np.array(output_shape, np.int64)), False)
    xml = str(folder / (name + ".xml"))
    ov.save_model(ov.Model([ops.result(out)], [data], name), xml)
    with open(BUNDLED_MODEL[:-4] + ".json", encoding="utf-8") as handle:
        metadata = json.load(handle)
    metadata["input"].update(width=16, height=16)
    with open(str(folder / (name + ".json")), "w", encoding="utf-8") as handle:
        json.dump(metadata, handle)
    return xml


def set_format(xml, output_format):
    import json

    path = xml[:-4] + ".json"
    with open(path, encoding="utf-8") as handle:
        metadata = json.load(handle)
    metadata["output"]["format"] = output_format
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(metadata, handle)


DETECTION_OUTPUT = "[1, 1, N, 7] DetectionOutput rows (image_id, label, conf, box)"
MULTIBOX = "[1, N, 6] MultiBoxDetection rows (class, score, box)"


@pytest.mark.parametrize("shape,output_format,expected", [
    ([1, 10, 6], "detection_output", DETECTION_OUTPUT),  # MXNet's rows, an IR metadata's format
    ([1, 6], "detection_output", DETECTION_OUTPUT),  # a classifier's vector
    ([1, 1, 10, 7], "multibox_detection", MULTIBOX),  # DetectionOutput rows, MXNet's format
    ([2, 1, 10, 7], "detection_output", DETECTION_OUTPUT),  # a batch of two
], ids=["rows of 6", "classifier", "rows of 7 as multibox", "batch of 2"])
def test_run_refuses_a_model_whose_output_is_not_its_metadatas_format(tmp_path, capsys, shape, output_format, expected):
    xml = small_ir(tmp_path, "odd", shape)
    set_format(xml, output_format)
    assert run_error(capsys, xml) == (
        "roadedge: error: {}: the model's output has shape {}, but its metadata says output.format {}: {}; is the "
        "metadata (or the model) another model's?".format(xml, shape, output_format, expected))


def test_a_matching_output_loads_and_formats_that_are_no_tensor_are_refused(tmp_path):
    xml = small_ir(tmp_path, "rows", [1, 1, 10, 7])
    assert openvino_backend.open(options(model=xml)).model.output_format == "detection_output"
    set_format(xml, "awscam_ssd")
    with pytest.raises(RoadedgeError, match=r"rows.xml: output.format awscam_ssd: the openvino backend's output is a "
                                            r"tensor; expected detection_output or multibox_detection$"):
        openvino_backend.open(options(model=xml))
    # the bundled model is what its metadata says
    assert openvino_backend.open(options()).model.output_format == "detection_output"


def test_run_with_a_truncated_model_tar_gz_names_the_archive(tmp_path, capsys):
    from tests.test_sagemaker_model import GOOD, tar_bytes

    data = tar_bytes(GOOD)
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(data[: len(data) // 2])
    assert main(["run", "--model", str(archive), "--input-size", "64", "64", "--no-preview", "--frames", "1",
                 "--no-realtime"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "internal error" not in err, err
    assert "{}: truncated or corrupt model.tar.gz (".format(archive) in err, err


def test_requests_0_queue_four_per_optimal_request_under_the_throughput_hint():
    """The streams must stay busy while the loop finishes a frame: 4 x the device's optimum under THROUGHPUT, the
    optimum itself under LATENCY; explicit numbers are kept."""
    import openvino as ov

    optimal = int(ov.Core().compile_model(openvino_backend.bundled_model(), "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
                  .get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    for hint, requests, want in (("THROUGHPUT", 0, 4 * optimal), ("LATENCY", 0, None), ("THROUGHPUT", 3, 3)):
        backend = openvino_backend.open(options(performance_hint=hint, requests=requests))
        try:
            backend.prepare((64, 48))
            if want is None:  # LATENCY's optimum, whatever this CPU says it is
                want = int(backend.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            assert backend.requests == len(backend.ring) == want, hint
        finally:
            backend.close()
    assert openvino_backend.auto_requests(2, "throughput") == 8 and openvino_backend.auto_requests(0, "LATENCY") == 1


def test_host_and_device_resize_give_the_same_detections_and_host_compiles_once():
    """resize: host (OpenCV before submitting, the default) and device (inside OpenVINO) differ by at most one grey
    level per pixel, so the raw detections agree; the host resize compiles for the model input, whatever the frames."""
    import cv2
    import numpy as np

    from edge.sources.spec import SAMPLE_VIDEO

    capture = cv2.VideoCapture(SAMPLE_VIDEO)
    frames = [capture.read()[1] for _ in range(80)][33::4]  # the sample drive's damage is in view from frame 33
    capture.release()
    outputs = {}
    for where in ("host", "device"):
        backend = openvino_backend.open(options(resize=where, preprocess="device"))
        outputs[where] = [backend.infer(frame) for frame in frames]
        assert backend.frame_size == (640, 360)
        compiled = backend.compiled.inputs[0].get_partial_shape()
        expected = [1, backend.model.input_size[1], backend.model.input_size[0], 3] if where == "host" else [1, 360, 640, 3]
        assert [dim.get_length() for dim in compiled] == expected
        if where == "host":  # a frame of another size: resized as well, no second compile
            compiled_model = backend.compiled
            small = cv2.resize(frames[0], (320, 180))
            assert backend.infer(small).shape == outputs[where][0].shape and backend.compiled is compiled_model
        backend.close()
    strong = 0
    for host, device in zip(outputs["host"], outputs["device"]):
        for row in device[0, 0][device[0, 0][:, 2] >= 0.3]:  # each confident detection has its twin
            twins = host[0, 0][host[0, 0][:, 1] == row[1]]
            assert np.abs(twins[:, 2:] - row[2:]).max(axis=1).min() < 0.03, row
            strong += 1
    assert strong >= 4


@pytest.mark.parametrize("model", ["bundled", "seg"])
def test_host_preprocessing_gives_the_outputs_of_the_compiled_in_preprocessing(model, tmp_path):
    """preprocess: host (OpenCV's blobFromImage, the default) and device (PrePostProcessor) feed the network the same
    floats: the same outputs to float rounding, for the detector (RGB, no mean) and the demo segmentation model (RGB,
    ImageNet mean and per-channel scale); with host preprocessing the compiled model is the bare network."""
    import cv2

    from edge.sources.spec import SAMPLE_VIDEO

    path = "bundled" if model == "bundled" else os.path.join(os.path.dirname(BUNDLED_MODEL), "road-seg.xml")
    capture = cv2.VideoCapture(SAMPLE_VIDEO)
    frames = [capture.read()[1] for _ in range(60)][33::9]
    capture.release()
    outputs = {}
    for where in ("host", "device"):
        backend = openvino_backend.open(options(model=path, preprocess=where))
        outputs[where] = [backend.infer(frame) for frame in frames]
        shape = [d.get_length() for d in backend.compiled.inputs[0].get_partial_shape()]
        width, height = backend.model.input_size
        assert shape == ([1, 3, height, width] if where == "host" else [1, height, width, 3])
        backend.close()
    for host, device in zip(outputs["host"], outputs["device"]):
        if model == "seg":  # class-index masks: a pixel may flip only where two classes were within rounding
            assert (host != device).mean() < 1e-3 and (host != device).sum() < 100
        else:
            confident = device[0, 0][device[0, 0][:, 2] >= 0.1]
            assert len(confident) and np.allclose(host[0, 0][:len(confident)], confident, atol=1e-4)


def test_backends_opened_and_closed_in_any_order_leave_ctrl_c_working():
    """Two backends that overlap and go in the order they came (the watchdog's reopen, a test after another) must
    leave the thread's alternate signal stack valid: with a Core per backend, OpenVINO's CPU plugin left it pointing
    at unmapped memory and the next Ctrl-C was a segmentation fault. In a subprocess, so a crash is an exit code."""
    import subprocess
    import sys

    script = "\n".join([
        "import faulthandler, gc, signal",
        "faulthandler.enable()  # Python's handlers run on an alternate stack, as under pytest",
        "from edge.backends import openvino as ob",
        "options = {name: option.default for name, option in ob.OPTIONS.items()}",
        "import numpy as np",
        "first = ob.open(dict(options)); first.infer(np.zeros((360, 640, 3), np.uint8))",
        "second = ob.open(dict(options)); second.infer(np.zeros((360, 640, 3), np.uint8))",
        "first.close(); del first; gc.collect()",
        "second.close(); del second; gc.collect()",
        "try:",
        "    signal.raise_signal(signal.SIGINT)",
        "except KeyboardInterrupt:",
        "    print('interrupted cleanly')",
    ])
    done = subprocess.run([sys.executable, "-c", script], cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert done.returncode == 0 and b"interrupted cleanly" in done.stdout, done.stdout.decode(errors="replace")[-2000:]


@given(st.integers(1, 20), st.integers(1, 12), st.integers(1, 12), st.integers(0, 2 ** 32 - 1), st.booleans(),
       st.booleans())
def test_property_the_backends_class_index_is_numpys_argmax_ties_included(classes, h, w, seed, coarse, batched):
    rng = np.random.default_rng(seed)
    logits = (rng.integers(0, 3, (classes, h, w)) if coarse else rng.normal(size=(classes, h, w))).astype(np.float32)
    got = openvino_backend.class_index(logits[None] if batched else logits)
    assert got.dtype == np.uint8 and got.shape == (h, w)
    np.testing.assert_array_equal(got, logits.argmax(axis=0))


def test_a_segmentation_ir_with_logits_out_is_read_as_its_mask(tmp_path):
    """The backend takes the argmax itself: the decoder is told segmentation_mask and gets exactly numpy's argmax of
    the IR's own logits."""
    import openvino as ov

    from tests.seg_ir import make_seg_ir, scene

    xml = make_seg_ir(str(tmp_path), argmax=False)
    image = scene(80, 60)[:, :, ::-1].copy()
    unopened = openvino_backend.open(options(model=xml))  # its network_for: the model as the backend compiles it
    network, size = unopened.network_for((80, 60))
    logits = ov.Core().compile_model(network, "CPU").create_infer_request().infer({0: unopened.host_input(image, size)})[0]
    backend = openvino_backend.open(options(model=xml))
    try:
        assert backend.model.task == "segmentation" and backend.model.output_format == "segmentation_mask"
        mask = backend.infer(image)
    finally:
        backend.close()
    assert mask.dtype == np.uint8 and mask.shape == logits.shape[2:]
    np.testing.assert_array_equal(mask, logits[0].argmax(axis=0))
    assert len(np.unique(mask)) > 1


def test_an_ir_with_the_converters_argmax_fold_is_compiled_to_its_logits_and_gives_the_same_mask(tmp_path):
    """`convert --argmax`'s fold (ReduceMax, Equal, Select, ReduceMin) is left to the backend's own argmax: the compiled
    model ends at the logits, and the masks are exactly those of the whole IR (ties: the class_index property test)."""
    import json

    import openvino as ov

    from converters.gluoncv_seg.build import finish_model
    from tests.seg_ir import make_seg_ir, scene

    xml = make_seg_ir(str(tmp_path / "logits"), argmax=False)
    model = ov.Core().read_model(xml)
    folded = finish_model(model.get_results()[0].input_value(0), True, model.get_parameters(), "folded")
    target = str(tmp_path / "folded.xml")
    ov.save_model(folded, target, compress_to_fp16=False)
    meta = json.loads(open(xml[:-4] + ".json").read())
    meta["output"] = {"name": "mask", "format": "segmentation_mask", "label_offset": 0}
    (tmp_path / "folded.json").write_text(json.dumps(meta))
    assert openvino_backend.folded_argmax_input(ov.Core().read_model(xml)) is None  # logits out: nothing to unfold
    whole = ov.Core().compile_model(target, "CPU")
    backend = openvino_backend.open(options(model=target))
    try:
        assert backend.host_argmax and backend.model.output_format == "segmentation_mask"
        assert list(backend.network.outputs[0].get_shape()) == [1, 5, 48, 64]
        for seed in range(3):
            image = scene(64, 48, seed)
            want = whole(_as_network_input(image[:, :, ::-1].copy()))[whole.outputs[0]][0, 0]
            np.testing.assert_array_equal(backend.infer(image[:, :, ::-1].copy()), want)
    finally:
        backend.close()


def _as_network_input(bgr):
    """The float NCHW RGB input of tests.seg_ir's models (mean 0, scale 1)."""
    return np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32))


class _RecordingCore(object):
    """The shared ov.Core, recording what compile_model is given."""

    def __init__(self, core):
        self.core, self.sources = core, []

    def compile_model(self, source, *args):
        self.sources.append(source)
        return self.core.compile_model(source, *args)


@pytest.mark.parametrize("preprocess, cached, from_path", [("host", True, True), ("device", True, False),
                                                           ("host", False, False)])
def test_with_a_model_cache_the_ir_is_compiled_from_its_path_and_a_warm_start_gives_the_same_outputs(
        model_copy, tmp_path, preprocess, cached, from_path):
    """With backend.cache_dir, an IR compiled as read (host preprocessing) is compiled from its path: OpenVINO then keys
    the cache on the file and a cache hit never reads the weights (given the ov.Model it hashes every weight). A model
    the runtime changes (compiled-in preprocessing) is compiled as the ov.Model; so is every model without a cache.
    Cold and warm starts give the same outputs."""
    import cv2
    import openvino as ov

    from edge.sources.spec import SAMPLE_VIDEO

    capture = cv2.VideoCapture(SAMPLE_VIDEO)
    frames = [capture.read()[1] for _ in range(50)][33::8]
    capture.release()
    cache = tmp_path / "cache"
    outputs = []
    for _start in ("cold", "warm"):
        backend = openvino_backend.open(options(model=str(model_copy), preprocess=preprocess,
                                                cache_dir=str(cache) if cached else ""))
        backend.core = _RecordingCore(backend.core)
        outputs.append([backend.infer(frame) for frame in frames])
        (source,) = backend.core.sources
        assert source == str(model_copy) if from_path else isinstance(source, ov.Model)
        backend.close()
    assert (cache.is_dir() and len(list(cache.iterdir())) >= 1) == cached
    for cold, warm in zip(*outputs):
        np.testing.assert_array_equal(cold, warm)
    assert max(float(out[0, 0, :, 2].max()) for out in outputs[0]) > 0.5  # frames with damage detected
