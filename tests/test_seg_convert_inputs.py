"""`roadedge convert optimize` for segmentation artefacts without MXNet: the metadata it writes, and bad inputs.

Small artefacts (tests/seg_artefacts.py, the basic-block `resnet-tiny`
backbone) keep this quick; what the IRs compute is checked against GluonCV in
tests/test_seg_convert.py.
"""
import json
import tarfile

import numpy as np
import pytest

from converters.gluoncv_seg.artefact import is_segmentation_artefact
from roadedge.cli import main
from roadedge.core.model_metadata import ModelInfo, read_metadata
from tests.seg_artefacts import hyperparams, param_shapes, random_params, write_artefact

VOC_FIRST = [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]


def tiny(tmp_path, algorithm="psp", name="model.tar.gz", params=None, hyper=None, **options):
    return write_artefact(str(tmp_path / name), algorithm, "resnet-tiny", options.pop("num_classes", 5),
                          options.pop("crop_size", 48), seed=1, params=params, hyper=hyper, **options)


def one_line_error(capsys, args):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_metadata_of_a_segmentation_ir(tmp_path):
    model = tiny(tmp_path, hyper=hyperparams("psp", "resnet-tiny", 5, 48,
                                             class_names='["background", "road", "lane_marking", "sky", "D40"]'))
    assert is_segmentation_artefact(model)
    assert main(["convert", "optimize", model, "--output", str(tmp_path / "ir"), "--package"]) == 0
    names = sorted(p.name for p in (tmp_path / "ir").iterdir())
    assert names == ["model.tar.gz", "psp_resnet-tiny.bin", "psp_resnet-tiny.json", "psp_resnet-tiny.xml"]
    meta = read_metadata(str(tmp_path / "ir" / "psp_resnet-tiny.xml"))
    assert meta["task"] == "segmentation" and meta["labels"] == ["background", "road", "lane_marking", "sky", "D40"]
    assert meta["num_classes"] == 5 and meta["palette"] == VOC_FIRST
    assert meta["input"] == {"name": "data", "height": 48, "width": 48, "shape": [1, 3, 48, 48], "layout": "NCHW",
                             "dtype": "float32", "color_order": "RGB"}
    assert meta["preprocessing"]["mean"] == [123.675, 116.28, 103.53] and not meta["preprocessing"]["embedded"]
    np.testing.assert_allclose(meta["preprocessing"]["scale"], [1 / (255 * 0.229), 1 / (255 * 0.224), 1 / (255 * 0.225)])
    assert meta["output"] == {"name": "logits", "format": "segmentation_logits", "label_offset": 0}
    assert meta["segmentation"] == {"algorithm": "psp", "backbone": "resnet-tiny", "crop_size": 48}
    assert set(meta["sources"]) == {"model.tar.gz", "hyperparams.json", "model_algo-1"} and meta["engine"] == "native"
    info = ModelInfo.from_metadata(meta)
    assert info.task == "segmentation" and info.input_size == (48, 48) and info.output_format == "segmentation_logits"
    with tarfile.open(str(tmp_path / "ir" / "model.tar.gz")) as archive:
        assert sorted(archive.getnames()) == ["psp_resnet-tiny.bin", "psp_resnet-tiny.xml"]


def test_labels_argmax_embedded_and_the_input_shape_option(tmp_path):
    folder = tiny(tmp_path, "deeplab", name="model", folder=True)
    out = tmp_path / "ir"
    assert main(["convert", "optimize", folder, "--output", str(out), "--name", "road", "--labels", "a,b,c,d,e",
                 "--input-shape", "40", "56", "--argmax", "--embed-preprocessing", "--precision", "FP16"]) == 0
    meta = json.loads((out / "road.json").read_text())
    assert meta["labels"] == ["a", "b", "c", "d", "e"] and meta["precision"] == "FP16"
    assert meta["input"] == {"name": "data", "height": 40, "width": 56, "shape": [1, -1, -1, 3], "layout": "NHWC",
                             "dtype": "uint8", "color_order": "BGR"}
    assert meta["output"]["format"] == "segmentation_mask" and meta["preprocessing"]["embedded"]
    import openvino as ov

    compiled = ov.Core().compile_model(str(out / "road.xml"), "CPU")
    mask = compiled(np.full((1, 90, 120, 3), 128, np.uint8))[compiled.outputs[0]]  # any frame size: resized inside
    assert mask.shape == (1, 1, 40, 56) and mask.dtype == np.int32 and 0 <= mask.min() <= mask.max() < 5


def test_output_inside_a_model_folder_is_fine_but_not_over_its_files(tmp_path, capsys):
    folder = tiny(tmp_path, "fcn", name="model", folder=True)
    assert main(["convert", "optimize", folder, "--output", str(tmp_path / "model" / "ir")]) == 0
    assert (tmp_path / "model" / "ir" / "fcn_resnet-tiny.xml").is_file()
    err = one_line_error(capsys, ["convert", "optimize", folder, "--output", str(tmp_path / "model" / "model_algo-1")])
    assert "model_algo-1" in err


def test_class_names_default_to_class_indices(tmp_path):
    assert main(["convert", "optimize", tiny(tmp_path, "fcn"), "--output", str(tmp_path / "ir")]) == 0
    meta = json.loads((tmp_path / "ir" / "fcn_resnet-tiny.json").read_text())
    assert meta["labels"] == ["class0", "class1", "class2", "class3", "class4"]


def _params(algorithm="psp", **changes):
    params = random_params(param_shapes(algorithm, "resnet-tiny", 5), seed=1)
    for name, value in changes.items():
        name = name.replace("__", ".")
        if value is None:
            del params[name]
        else:
            params[name] = value
    return params


@pytest.mark.parametrize("hyper, expected", [
    (dict(algorithm="unet"), "hyperparams.json: algorithm 'unet': expected one of fcn, psp, deeplab"),
    (dict(algorithm=None), "hyperparams.json: field 'algorithm' missing"),
    (dict(crop_size="abc"), "hyperparams.json: crop_size 'abc': expected a positive whole number"),
    (dict(crop_size=None), "hyperparams.json: field 'crop_size' missing; give the input size with --input-shape H W"),
    (dict(num_classes="7"), "model_algo-1: parameter head.block.4.weight has 5 output channels, but num_classes is 7"),
    (dict(crop_size="60"), "hyperparams.json: crop_size 60: psp needs a height and width that are multiples of 8"),
    (dict(crop_size="16"), "hyperparams.json: crop_size 16: expected a height and width in 32..4096"),
    (dict(backbone=["resnet-50"]), "hyperparams.json: backbone [\"resnet-50\"]: expected text"),
])
def test_bad_hyperparameters_are_one_line_errors_naming_the_field(tmp_path, capsys, hyper, expected):
    values = hyperparams("psp", "resnet-tiny", 5, 48)
    for key, value in hyper.items():
        values.pop(key) if value is None else values.__setitem__(key, value)
    model = tiny(tmp_path, hyper=values)
    err = one_line_error(capsys, ["convert", "optimize", model, "--output", str(tmp_path / "o")])
    assert expected in err and str(tmp_path / "model.tar.gz") in err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


@pytest.mark.parametrize("change, expected", [
    (dict(layer2__0__bn2__running_var=None),
     "model_algo-1: parameter layer2.0.bn2.running_var missing; a GluonCV psp on resnet-tiny (plain stem, basic blocks "
     "1-2-1-1) needs it"),
    (dict(layer3__0__bn1__gamma=np.ones(7, np.float32)),
     "model_algo-1: parameter layer3.0.bn1.gamma has shape (7,), but a GluonCV psp on resnet-tiny"),
    (dict(head__block__0__weight=np.ones((32, 111, 3, 3), np.float32)),
     "model_algo-1: parameter head.block.0.weight has shape (32, 111, 3, 3), but a GluonCV psp on resnet-tiny "
     "(plain stem, basic blocks 1-2-1-1) needs (out, 112, 3, 3) (the layer before it gives 112 channels)"),
    (dict(layer3__0__downsample__0__weight=None),
     "model_algo-1: parameter layer3.0.downsample.0.weight missing; a GluonCV psp on resnet-tiny (plain stem, basic "
     "blocks 1-2-1-1) needs a projection shortcut there (24 channels in, 32 out, stride 1)"),
    (dict(auxlayer__block__0__weight=None, extra__weight=np.ones(3, np.float32)),
     "model_algo-1: 1 parameter(s) a GluonCV psp on resnet-tiny (plain stem, basic blocks 1-2-1-1) does not have, e.g. "
     "extra.weight"),
    (dict(head__psp__conv3__0__weight=None), "model_algo-1: parameter head.psp.conv3.0.weight missing"),
    (dict(layer4__2__conv1__weight=np.ones((48, 48, 3, 3), np.float32)),
     "model_algo-1: parameters of block layer4.1 missing (blocks 0, 2 found)"),
])
def test_bad_parameters_are_one_line_errors_naming_the_parameter(tmp_path, capsys, change, expected):
    model = tiny(tmp_path, params=_params(**change))
    err = one_line_error(capsys, ["convert", "optimize", model, "--output", str(tmp_path / "o")])
    assert expected in err, err


def test_another_algorithms_parameters_are_refused(tmp_path, capsys):
    model = tiny(tmp_path, "fcn", params=_params("deeplab"))  # hyperparams say fcn, the weights are a deeplab's
    err = one_line_error(capsys, ["convert", "optimize", model, "--output", str(tmp_path / "o")])
    assert "model_algo-1: parameter head.block.0.weight has shape (32, 32, 3, 3), but a GluonCV fcn" in err


def test_missing_files_and_broken_archives(tmp_path, capsys):
    model = tiny(tmp_path)
    with tarfile.open(model) as archive:
        hyper = archive.extractfile("hyperparams.json").read()
    only_hyper = tmp_path / "only-hyper.tar.gz"
    with tarfile.open(str(only_hyper), "w:gz") as archive:
        (tmp_path / "hyperparams.json").write_bytes(hyper)
        archive.add(str(tmp_path / "hyperparams.json"), arcname="hyperparams.json")
    err = one_line_error(capsys, ["convert", "optimize", str(only_hyper), "--output", str(tmp_path / "o")])
    assert "only-hyper.tar.gz: no model_algo-1 inside (found: hyperparams.json)" in err
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "hyperparams.json").write_bytes(hyper)
    err = one_line_error(capsys, ["convert", "optimize", str(folder), "--output", str(tmp_path / "o")])
    assert "folder/model_algo-1: parameters (Gluon save_parameters) not found" in err
    (folder / "model_algo-1").write_bytes(b"not a parameters file")
    err = one_line_error(capsys, ["convert", "optimize", str(folder), "--output", str(tmp_path / "o")])
    assert "folder/model_algo-1: not an MXNet params file" in err
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(open(model, "rb").read()[:5000])
    assert "cut.tar.gz: " in one_line_error(capsys, ["convert", "optimize", str(cut), "--output", str(tmp_path / "o"),
                                                      "--input-shape", "48", "48"])


def test_options_that_do_not_fit_the_model(tmp_path, capsys):
    model = tiny(tmp_path)
    out = ["--output", str(tmp_path / "o")]
    assert "--engine mo: segmentation models convert with native or mxnet" in one_line_error(
        capsys, ["convert", "optimize", model, "--engine", "mo"] + out)
    assert "--input-shape 60 64: psp needs a height and width that are multiples of 8" in one_line_error(
        capsys, ["convert", "optimize", model, "--input-shape", "60", "64"] + out)
    assert "--labels: 2 names given, the model predicts 5 classes" in one_line_error(
        capsys, ["convert", "optimize", model, "--labels", "a,b"] + out)
    detection = str(tmp_path / "ssd")  # a detection prefix: the segmentation-only options are refused first
    assert "--argmax: only for segmentation models" in one_line_error(
        capsys, ["convert", "optimize", detection, "--input-shape", "64", "64", "--argmax"] + out)
    assert "--input-shape H W: required for object detection models" in one_line_error(
        capsys, ["convert", "optimize", detection] + out)
    assert "--engine mxnet: only for segmentation models" in one_line_error(
        capsys, ["convert", "optimize", detection, "--input-shape", "64", "64", "--engine", "mxnet"] + out)


def test_the_folded_argmax_is_numpys_ties_included():
    """--argmax's ReduceMax/Equal/Select/ReduceMin: the first class wins a tie, as numpy's (and MXNet's) argmax."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    from converters.gluoncv_seg.build import finish_model

    logits = ops.parameter([1, 7, 9, 11], np.float32, name="logits")
    compiled = ov.Core().compile_model(finish_model(logits.output(0), True, [logits], "argmax"), "CPU")
    for seed in range(5):
        values = np.random.default_rng(seed).integers(0, 3, (1, 7, 9, 11)).astype(np.float32)  # many ties
        got = compiled(values)[0]
        assert got.shape == (1, 1, 9, 11) and got.dtype == np.int32
        np.testing.assert_array_equal(got[0, 0], values[0].argmax(axis=0))
