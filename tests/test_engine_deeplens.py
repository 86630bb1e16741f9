"""The deeplens engine against tests/standins/mo.py, a stand-in with DeepLens's mo.optimize API that really converts."""
import os
import sys

import numpy as np
import pytest

from converters import engine_deeplens
from converters.ssd_deploy import to_deploy
from converters.verify import match_detections, mxnet_rows, openvino_detect, openvino_rows
from roadedge.core.errors import RoadedgeError
from tests import ssd_models
from tests.test_engine_mo import SHAPE, const_bytes, require_mo, write_ssd, write_symbol_only

STANDINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standins")


@pytest.fixture
def mo(monkeypatch):
    """`import mo` finds the stand-in (fresh state) for this test only."""
    monkeypatch.syspath_prepend(STANDINS)
    monkeypatch.delitem(sys.modules, "mo", raising=False)
    import mo as standin

    monkeypatch.setitem(sys.modules, "mo", standin)
    assert standin.__file__.startswith(STANDINS)
    standin.reset()
    return standin


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    require_mo()  # the stand-in converts with Model Optimizer, as the device does
    folder = str(tmp_path_factory.mktemp("tiny"))
    symbol, params = write_ssd(folder, "tiny")
    return symbol, params


def test_convert_calls_mo_optimize_and_copies_the_ir(mo, tiny_model, tmp_path):
    from converters.mxnet_forward import mxnet_forward

    symbol, params = tiny_model
    xml = engine_deeplens.convert(symbol, params, SHAPE, str(tmp_path / "out"), "road", "FP32")
    assert xml == str(tmp_path / "out" / "road.xml")
    assert sorted(os.listdir(str(tmp_path / "out"))) == ["road.bin", "road.xml"]
    (call,) = mo.calls
    assert call["model_name"] == "road" and call["platform"] == "mx"
    assert (call["input_width"], call["input_height"]) == (96, 64)  # width first, as DeepLens takes them
    aux = call["aux_inputs"]
    assert set(aux) == {"--models-dir", "--output-dir", "--epoch", "--precision"}
    assert aux["--epoch"] == 0 and aux["--precision"] == "FP32"
    assert engine_deeplens.ARTIFACTS not in (aux["--models-dir"], aux["--output-dir"])  # the device's folder is untouched
    assert call["models_dir_listing"] == ["road-0000.params", "road-symbol.json"]
    assert not os.path.exists(aux["--models-dir"]) and not os.path.exists(aux["--output-dir"])  # cleaned up
    # the IR is the model: same detections as MXNet on the same input
    image = np.random.default_rng(3).uniform(0, 255, size=(1, 3) + SHAPE).astype(np.float32)
    reference = mxnet_rows(mxnet_forward(symbol, params, {"data": image})[0], 0.05)
    report = match_detections(reference, openvino_rows(openvino_detect(xml, image), 0.05))
    assert report["ok"] and report["matched"] >= 50, report


def test_fp16_is_asked_for_and_delivered(mo, tiny_model, tmp_path):
    import openvino as ov

    symbol, params = tiny_model
    xml = engine_deeplens.convert(symbol, params, SHAPE, str(tmp_path), "road16", "FP16")
    assert mo.calls[0]["aux_inputs"]["--precision"] == "FP16"
    assert set(const_bytes(xml)) == {"f16", "i64"}
    model = ov.Core().read_model(xml)
    assert list(model.input(0).get_shape()) == [1, 3, 64, 96] and model.input(0).get_element_type() == ov.Type.f32


@pytest.mark.parametrize("error,expected", [
    ("[ ERROR ]  Cannot infer shapes or values for node \"conv1\".\n[ ERROR ]  It can happen due to a bug.\n",
     "[ ERROR ] Cannot infer shapes or values for node \"conv1\". [ ERROR ] It can happen due to a bug."),
    (b"Model optimizer error: unsupported layer\n", "Model optimizer error: unsupported layer"),
    (2, "error code 2 (the model optimizer failed)"),
    (1, "error code 1 (the requested platform is not supported)"),
])
def test_optimizer_errors_become_one_line_exit_2(mo, tmp_path, error, expected):
    symbol, params = write_symbol_only(tmp_path / "m", to_deploy(ssd_models.tiny()))
    mo.next_error = error
    with pytest.raises(RoadedgeError) as caught:
        engine_deeplens.convert(symbol, params, SHAPE, str(tmp_path / "out"), "road")
    assert str(caught.value) == "the DeepLens model optimizer failed on road: " + expected
    assert caught.value.exit_code == 2 and len(mo.calls) == 1
    assert not (tmp_path / "out").exists()


def test_error_string_through_the_command_line(mo, tmp_path, capsys):
    optimize = pytest.importorskip("converters.optimize")
    from converters.ssd_deploy import expected_param_shapes
    from roadedge.cli import main
    from roadedge.core.mxnet_params import dumps_params

    training = ssd_models.tiny()
    shapes = expected_param_shapes(to_deploy(training))  # the right shapes: the optimizer, not our check, fails here
    params = {("aux:" if name.endswith(("moving_mean", "moving_var")) else "arg:") + name:
              np.zeros(tuple(d or 1 for d in shape), np.float32) for name, (shape, _) in shapes.items()}
    (tmp_path / "m-symbol.json").write_text(training.to_json())
    (tmp_path / "m-0000.params").write_bytes(dumps_params(params))
    mo.next_error = "[ ERROR ]  Specified input model does not exist.\n"
    code = main(["convert", "optimize", str(tmp_path / "m"), "--engine", "deeplens", "--input-shape", "64", "96",
                 "--output", str(tmp_path / "ir")])
    err = capsys.readouterr().err
    assert optimize and code == 2 and len(err.strip().splitlines()) == 1, err
    assert "the DeepLens model optimizer failed on" in err and "Specified input model does not exist." in err


def test_inputs_over_1024_pixels_are_refused_before_optimizing(mo, tmp_path):
    symbol, params = write_symbol_only(tmp_path / "m", to_deploy(ssd_models.tiny()))
    with pytest.raises(RoadedgeError, match="at most 1024 pixels a side"):
        engine_deeplens.convert(symbol, params, (1080, 1920), str(tmp_path / "out"), "road")
    with pytest.raises(RoadedgeError, match="precision 'FP64'"):
        engine_deeplens.convert(symbol, params, SHAPE, str(tmp_path / "out"), "road", "FP64")
    assert mo.calls == []


def test_off_the_device_there_is_no_mo_module(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mo", None)  # `import mo` raises ImportError
    symbol, params = write_symbol_only(tmp_path / "m", to_deploy(ssd_models.tiny()))
    with pytest.raises(RoadedgeError, match="runs on an AWS DeepLens, elsewhere use --engine native or mo"):
        engine_deeplens.convert(symbol, params, SHAPE, str(tmp_path / "out"), "road")


def test_a_model_path_that_does_not_exist_is_an_error(mo, tmp_path, monkeypatch):
    symbol, params = write_symbol_only(tmp_path / "m", to_deploy(ssd_models.tiny()))
    monkeypatch.setattr(mo, "optimize", lambda *args, **kwargs: (0, "/opt/awscam/artifacts/nothing_here.xml"))
    with pytest.raises(RoadedgeError, match="reported success but /opt/awscam/artifacts/nothing_here.xml does not exist"):
        engine_deeplens.convert(symbol, params, SHAPE, str(tmp_path / "out"), "road")


def test_is_deeplens(tmp_path, monkeypatch):
    if not os.path.isdir(engine_deeplens.AWSCAM_ROOT):
        assert not engine_deeplens.is_deeplens()
    device = tmp_path / "opt-awscam"
    device.mkdir()
    assert not engine_deeplens.is_deeplens(str(device))  # no mo / awscam modules
    modules = tmp_path / "device-python"
    modules.mkdir()
    (modules / "awscam.py").write_text("")
    monkeypatch.syspath_prepend(str(modules))
    monkeypatch.syspath_prepend(STANDINS)
    assert engine_deeplens.is_deeplens(str(device))
    assert not engine_deeplens.is_deeplens(str(tmp_path / "missing"))
