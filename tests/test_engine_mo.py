"""The mo engine (OpenVINO's Model Optimizer 2024.4 in the MXNet venv), checked against MXNet itself.

Also the venv set-up (`roadedge convert setup-mo`): its bookkeeping with files
only, and reuse of the real environment.
"""
import os
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from converters import engine_mo
from converters.mxnet_env import MARKER, REQUIREMENTS, environment_status, marker_text, venv_dir
from converters.ssd_deploy import to_deploy, write_deploy
from converters.verify import match_detections, mxnet_rows, openvino_detect, openvino_rows
from roadedge.cli import main
from roadedge.core.errors import RoadedgeError
from roadedge.core.model_metadata import ir_label_offset
from roadedge.core.mxnet_symbol import Node, load_symbol
from tests import ssd_models

SHAPE = (64, 96)  # (H, W); not square, so a swapped height and width shows


def require_mo():
    """Skip without a ready MXNet environment, except on CI (.ci/run builds it), where that is a failure."""
    status = environment_status()
    if status != "ready":
        reason = "MXNet environment at {} is {}; create it with `roadedge convert setup-mo`".format(venv_dir(), status)
        if os.environ.get("CI"):
            pytest.fail("CI needs the MXNet environment: " + reason)
        pytest.skip(reason)


def write_ssd(folder, recipe="tiny", shape=SHAPE, head_scale=0.3, graph=None, **deploy_options):
    """A deploy graph (a tests/ssd_models recipe, or `graph`) with seeded weights; returns (symbol, params) paths."""
    from converters.mxnet_forward import mxnet_param_shapes

    deploy = graph if graph is not None else to_deploy(getattr(ssd_models, recipe)(), **deploy_options)
    os.makedirs(folder, exist_ok=True)
    probe = os.path.join(folder, "probe-symbol.json")
    with open(probe, "w", encoding="utf-8") as handle:
        handle.write(deploy.to_json())
    params = ssd_models.random_params(mxnet_param_shapes(probe, (1, 3) + tuple(shape)), seed=1, head_scale=head_scale)
    os.unlink(probe)
    return write_deploy(deploy, params, folder, recipe, 0)


def write_symbol_only(folder, graph):
    """Symbol + an empty params file: enough for the checks made before Model Optimizer runs."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m-symbol.json").write_text(graph.to_json())
    (folder / "m-0000.params").write_bytes(b"")
    return str(folder / "m-symbol.json"), str(folder / "m-0000.params")


def const_bytes(xml_path):
    """{element_type: total bytes} of the IR's Const layers."""
    totals = {}
    for layer in ET.parse(xml_path).getroot().iter("layer"):
        if layer.get("type") == "Const":
            data = layer.find("data")
            totals[data.get("element_type")] = totals.get(data.get("element_type"), 0) + int(data.get("size"))
    return totals


@pytest.fixture(scope="module")
def resnet_ir(tmp_path_factory):
    """The resnet recipe (bn_data with fix_gamma, BatchNorm, pooling, residuals, three feature maps) at f32."""
    require_mo()
    from converters.mxnet_forward import mxnet_forward

    folder = str(tmp_path_factory.mktemp("resnet"))
    symbol, params = write_ssd(folder, "resnet")
    xml = engine_mo.convert(symbol, params, SHAPE, os.path.join(folder, "ir"), "road", "FP32")
    image = np.random.default_rng(2).uniform(0, 255, size=(1, 3) + SHAPE).astype(np.float32)
    expected = mxnet_forward(symbol, params, {"data": image})[0]
    return {"xml": xml, "image": image, "mxnet": expected, "folder": folder}


def test_mo_command_line():
    args = engine_mo.mo_arguments("s/model-symbol.json", "s/model-0000.params", (300, 512), "out", "road", "FP32")
    assert args == ["--framework", "mxnet", "--input_model", "s/model-0000.params", "--input_symbol", "s/model-symbol.json",
                    "--input", "data", "--input_shape", "[1,3,300,512]", "--output_dir", "out", "--model_name", "road",
                    "--compress_to_fp16=False"]
    fp16 = engine_mo.mo_arguments("s", "p", (300, 512), "out", "road", "FP16", legacy=True)
    assert "--compress_to_fp16=True" in fp16 and fp16[-1] == "--legacy_mxnet_model"
    assert not {"--mean_values", "--scale_values", "--reverse_input_channels", "--scale"} & set(fp16)


def test_ir_matches_mxnet_and_labels_are_mxnet_class_ids(resnet_ir):
    reference = mxnet_rows(resnet_ir["mxnet"], 0.05)
    output = openvino_detect(resnet_ir["xml"], resnet_ir["image"])
    assert output.shape[:2] == (1, 1) and output.shape[3] == 7
    report = match_detections(reference, openvino_rows(output, 0.05, label_offset=engine_mo.LABEL_OFFSET))
    assert report["ok"], {k: report[k] for k in ("matched", "missing", "extra", "max_box_diff", "max_score_diff")}
    # a comparison worth making: many detections, several classes, a spread of scores
    assert report["matched"] >= 100 and len(np.unique(reference[:, 0])) == 3
    assert reference[:, 1].min() < 0.3 and reference[:, 1].max() > 0.8
    # label == class_id: DetectionOutput in MXNet mode; reading it as class_id + 1 would not match
    assert engine_mo.LABEL_OFFSET == 0 == ir_label_offset(resnet_ir["xml"])
    assert not match_detections(reference, openvino_rows(output, 0.05, label_offset=1))["ok"]


# Each case is a Model Optimizer run (10 to 35 s). Plain convolutions on a non-square input are the resnet_ir
# fixture's; SageMaker's symbol at 512 is the same graph as at 300, and VGG's L2Normalization is Model Optimizer's own
# business (the native converter's tests check both against MXNet).
@pytest.mark.parametrize("recipe,shape,head_scale", [
    ("sagemaker", (300, 300), 1e-3),     # the real SageMaker ResNet-50 training symbol, deploy-rewritten
])
def test_model_optimizer_ir_matches_mxnet(tmp_path, recipe, shape, head_scale):
    require_mo()
    from converters.mxnet_forward import mxnet_forward

    symbol, params = write_ssd(str(tmp_path), recipe, shape=shape, head_scale=head_scale)
    xml = engine_mo.convert(symbol, params, shape, str(tmp_path / "ir"), recipe, "FP32")
    image = np.random.default_rng(3).uniform(0, 255, size=(1, 3) + shape).astype(np.float32)
    reference = mxnet_rows(mxnet_forward(symbol, params, {"data": image})[0], 0.05)
    report = match_detections(reference, openvino_rows(openvino_detect(xml, image), 0.05, ir_label_offset(xml)))
    assert report["ok"], {k: report[k] for k in ("matched", "missing", "extra", "max_box_diff", "max_score_diff")}
    assert report["matched"] >= 10 and reference[:, 1].max() < 0.99  # enough unsaturated detections to compare


def test_ir_input_is_mxnets_data_unchanged(resnet_ir):
    import openvino as ov

    model = ov.Core().read_model(resnet_ir["xml"])
    assert len(model.inputs) == 1 and len(model.outputs) == 1
    assert model.input(0).get_names() >= {"data"}
    assert model.input(0).get_element_type() == ov.Type.f32 and list(model.input(0).get_shape()) == [1, 3, 64, 96]
    assert sorted(os.listdir(os.path.dirname(resnet_ir["xml"]))) == ["road.bin", "road.xml"]  # no temporary leftovers


def test_fp16_puts_f16_weights_in_the_bin(tmp_path):
    require_mo()
    from roadedge.core.mxnet_params import load_params

    symbol, params = write_ssd(str(tmp_path), "tiny")
    xml = engine_mo.convert(symbol, params, SHAPE, str(tmp_path / "ir"), "tiny16", "FP16")
    weights = sum(value.size for value in load_params(params).values())
    consts = const_bytes(xml)
    assert "f32" not in consts and consts["f16"] == 2 * weights  # every weight, as f16
    assert os.path.getsize(str(tmp_path / "ir" / "tiny16.bin")) < 2 * weights + 1024
    assert ir_label_offset(xml) == 0


def test_model_optimizer_error_is_one_line(tmp_path):
    require_mo()
    deploy = to_deploy(ssd_models.tiny())
    relu = deploy.find("relu1")
    deploy.nodes[relu].op = "erfinv"  # a real MXNet op Model Optimizer has no extractor for
    deploy.nodes[relu].attrs = {}
    symbol, params = write_ssd(str(tmp_path), graph=deploy)
    with pytest.raises(RoadedgeError) as caught:
        engine_mo.convert(symbol, params, SHAPE, str(tmp_path / "ir"), "road")
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == 2
    assert message.startswith("Model Optimizer failed on ") and "Operation 'erfinv' not supported" in message
    assert "FAQ" not in message and "[ ERROR ]" not in message
    assert os.listdir(str(tmp_path / "ir")) == []


@pytest.mark.parametrize("change,shape,expected", [
    (lambda g: g.nodes[g.find("detection")].attrs.update(force_suppress="True"), SHAPE,
     "MultiBoxDetection node 'detection' has force_suppress=True, which Model Optimizer ignores"),
    (lambda g: g.nodes[g.find("detection")].attrs.update(variances="(0.2, 0.2, 0.4, 0.4)"), SHAPE,
     "MultiBoxDetection node 'detection' has variances=(0.2, 0.2, 0.4, 0.4)"),
    (lambda g: g.nodes[g.find("feat0_anchors")].attrs.update(steps="(0.1, 0.0625)"), SHAPE,
     "MultiBoxPrior node 'feat0_anchors' has steps=(0.1, 0.0625) with different y and x values"),
    (lambda g: g.nodes[g.find("feat1_anchors")].attrs.update(steps="(0.125, 0.125)"), SHAPE,
     "MultiBoxPrior node 'feat1_anchors' has steps=(0.125, 0.125) and the input is not square (64x96)"),
])
def test_graphs_model_optimizer_gets_wrong_are_refused(tmp_path, change, shape, expected):
    deploy = to_deploy(ssd_models.tiny())
    change(deploy)
    symbol, params = write_symbol_only(tmp_path / "m", deploy)
    with pytest.raises(RoadedgeError) as caught:
        engine_mo.convert(symbol, params, shape, str(tmp_path / "ir"), "road")
    message = str(caught.value)
    assert expected in message and message.endswith("convert it with --engine native") and "\n" not in message
    assert not (tmp_path / "ir").exists()


def test_square_inputs_with_steps_and_a_default_deploy_graph_are_accepted():
    deploy = to_deploy(ssd_models.vgg())  # explicit steps (0.0625, 0.0625), (0.125, 0.125)
    assert engine_mo.unsupported_reasons(deploy, (96, 96)) == []
    assert len(engine_mo.unsupported_reasons(deploy, (96, 128))) == 2
    assert engine_mo.unsupported_reasons(to_deploy(ssd_models.tiny()), SHAPE) == []


def test_input_problems(tmp_path, monkeypatch):
    deploy = to_deploy(ssd_models.tiny())
    symbol, params = write_symbol_only(tmp_path / "m", deploy)
    with pytest.raises(RoadedgeError, match="precision 'INT8'"):
        engine_mo.convert(symbol, params, SHAPE, str(tmp_path / "ir"), "road", "INT8")
    with pytest.raises(RoadedgeError, match="no such file"):
        engine_mo.convert(symbol, str(tmp_path / "nope-0000.params"), SHAPE, str(tmp_path / "ir"), "road")
    renamed = to_deploy(ssd_models.tiny())
    renamed.nodes[renamed.find("data")] = Node("null", "image")
    other_symbol, other_params = write_symbol_only(tmp_path / "n", renamed)
    with pytest.raises(RoadedgeError, match="no input named 'data'"):
        engine_mo.convert(other_symbol, other_params, SHAPE, str(tmp_path / "ir"), "road")
    monkeypatch.setenv("ROADEDGE_MXNET_VENV", str(tmp_path / "no-venv"))
    with pytest.raises(RoadedgeError, match="no Model Optimizer .* `roadedge convert setup-mo`"):
        engine_mo.convert(symbol, params, SHAPE, str(tmp_path / "ir"), "road")


def test_mo_error_text_keeps_the_error_and_drops_the_noise():
    output = ("[ INFO ] MO command line tool is considered as the legacy conversion API.\n"
              "[ ERROR ]  Cannot infer shapes or values for node \"pool1\".\n"
              "[ ERROR ]  Stopped shape/value propagation at \"pool1\" node.\n"
              " For more information please refer to Model Conversion API FAQ, question #38. "
              "(https://docs.openvino.ai/2023.0/openvino_docs_MO_DG_prepare_model_Model_Optimizer_FAQ.html?question=38)\n")
    assert engine_mo.mo_error_text(output) == ('Cannot infer shapes or values for node "pool1". '
                                               'Stopped shape/value propagation at "pool1" node.')
    assert engine_mo.mo_error_text("Traceback (most recent call last):\n  ...\nKeyError: 'x'\n") == (
        "Traceback (most recent call last): ... KeyError: 'x'")
    assert engine_mo.mo_error_text("") == "no error message"


# --- the MXNet environment (`roadedge convert setup-mo`) ---------------------------------------------------------


def fake_venv(folder, marker=None, mo=True):
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "python").write_text("")
    (folder / "pyvenv.cfg").write_text("home = /usr/bin\n")
    if mo:
        (folder / "bin" / "mo").write_text("")
    if marker is not None:
        (folder / MARKER).write_text(marker)
    return folder


def test_environment_status_from_its_files(tmp_path):
    assert environment_status(str(tmp_path / "none")) == "missing"
    assert environment_status(str(fake_venv(tmp_path / "a"))) == "incomplete"  # interrupted build, or made by hand
    assert environment_status(str(fake_venv(tmp_path / "b", marker_text("3.11")))) == "ready"
    assert environment_status(str(fake_venv(tmp_path / "c", marker_text("3.11"), mo=False))) == "incomplete"
    stale = marker_text("3.11").replace(REQUIREMENTS[1], "mxnet==1.8.0")
    assert environment_status(str(fake_venv(tmp_path / "d", stale))) == "stale"


def test_setup_never_deletes_what_is_not_its_environment(tmp_path, monkeypatch):
    from converters import mxnet_env

    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(RoadedgeError, match="is not a virtual environment; refusing to delete it"):
        mxnet_env._remove_venv(str(foreign), log=lambda line: None)
    assert (foreign / "notes.txt").exists()
    target = fake_venv(tmp_path / "real")
    link = tmp_path / "link"
    link.symlink_to(target)
    lines = []
    mxnet_env._remove_venv(str(link), log=lines.append)
    assert not os.path.lexists(str(link)) and (target / "bin" / "python").exists()  # only the link goes
    assert "left alone" in lines[0]


def test_setup_reuses_a_working_environment(capsys):
    require_mo()
    started = time.monotonic()
    assert main(["convert", "setup-mo"]) == 0
    out = capsys.readouterr().out
    assert "is ready" in out and "reused" in out and "installing" not in out
    assert time.monotonic() - started < 60
    with open(os.path.join(venv_dir(), MARKER), encoding="utf-8") as handle:
        assert [line for line in handle.read().splitlines() if "==" in line] == list(REQUIREMENTS)


def linked_venv(folder, real):
    """A venv at `folder` that runs the real one's interpreter and packages (symlinks) with a marker of its own."""
    (folder / "bin").mkdir(parents=True)
    (folder / "pyvenv.cfg").write_text(open(os.path.join(real, "pyvenv.cfg"), encoding="utf-8").read())
    for name in ("python", "mo"):
        (folder / "bin" / name).symlink_to(os.path.join(real, "bin", name))
    (folder / "lib").symlink_to(os.path.join(real, "lib"))
    return folder


def test_setup_adopts_an_environment_whose_packages_satisfy_newer_pins(tmp_path, monkeypatch, capsys):
    """A marker from before gluoncv was pinned, gluoncv installed by hand: adopted (marker rewritten), not rebuilt."""
    from converters import mxnet_env

    require_mo_packages = mxnet_env.check_environment()
    if not require_mo_packages[0]:
        pytest.skip("the MXNet environment does not satisfy the pins: " + require_mo_packages[1])
    venv = linked_venv(tmp_path / "venv", os.path.realpath(venv_dir()))
    older = marker_text("3.11").replace(REQUIREMENTS[-1] + "\n", "")
    assert "gluoncv" not in older
    (venv / MARKER).write_text(older)
    monkeypatch.setenv(mxnet_env.VENV_VARIABLE, str(venv))
    assert environment_status() == "stale"
    monkeypatch.setattr(mxnet_env, "_build", lambda *args: pytest.fail("rebuilt an environment that satisfies the pins"))
    assert main(["convert", "setup-mo"]) == 0
    assert "adopted" in capsys.readouterr().out
    assert environment_status() == "ready"
    assert [line for line in (venv / MARKER).read_text().splitlines() if "==" in line] == list(REQUIREMENTS)
    assert "gluoncv==0.10.5.post0" in REQUIREMENTS


def test_setup_rebuilds_a_stale_environment_that_fails_its_checks(tmp_path, monkeypatch, capsys):
    from converters import mxnet_env

    venv = fake_venv(tmp_path / "venv", marker_text("3.11").replace(REQUIREMENTS[-1] + "\n", ""))
    monkeypatch.setenv(mxnet_env.VENV_VARIABLE, str(venv))
    monkeypatch.setattr(mxnet_env, "check_environment", lambda venv=None: (False, "gluoncv not installed, 0.10.5.post0 wanted"))
    built = []
    monkeypatch.setattr(mxnet_env, "_build", lambda venv, log: built.append(venv) or (_ for _ in ()).throw(RoadedgeError("stop")))
    with pytest.raises(RoadedgeError, match="stop"):
        mxnet_env.setup_environment(log=print)
    assert built == [str(venv)] and "gluoncv not installed" in capsys.readouterr().out


def test_deploy_graph_from_the_fixture_symbol_is_fine_for_mo():
    graph = load_symbol(ssd_models.SAGEMAKER_SYMBOL)
    assert engine_mo.unsupported_reasons(to_deploy(graph), (512, 512)) == []
