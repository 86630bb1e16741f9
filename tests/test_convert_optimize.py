"""`roadedge convert optimize` + `verify` end to end with the native engine, MXNet as the oracle."""
import hashlib
import json
import shutil
import tarfile

import pytest

from roadedge.cli import main
from tests.mxnet_oracle import require_mxnet
from tests.ssd_models import write_random_model


@pytest.fixture(scope="module")
def vgg_model(tmp_path_factory):
    require_mxnet()
    folder = tmp_path_factory.mktemp("vgg")
    return write_random_model(str(folder), "vgg", (1, 3, 64, 64), seed=4,
                              hyperparams={"num_classes": "2", "image_shape": "300", "class_names": '["D40", "D20"]'})


def test_optimize_writes_ir_and_metadata_and_verify_agrees(vgg_model, tmp_path, capsys):
    out = tmp_path / "ir"
    assert main(["convert", "optimize", vgg_model, "--input-shape", "64", "64", "--output", str(out), "--engine", "native"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["model_algo_1.bin", "model_algo_1.json", "model_algo_1.xml"]
    meta = json.loads((out / "model_algo_1.json").read_text())
    assert meta["labels"] == ["D40", "D20"] and meta["num_classes"] == 2
    assert meta["input"] == {"name": "data", "height": 64, "width": 64, "shape": [1, 3, 64, 64], "layout": "NCHW",
                             "dtype": "float32", "color_order": "RGB"}
    assert meta["preprocessing"] == {"color_order": "RGB", "mean": [123.68, 116.779, 103.939], "scale": 1.0,
                                     "resize": "stretch", "embedded": False}
    assert meta["output"]["label_offset"] == 0 and meta["output"]["name"] == "detection"
    assert meta["nms"] == {"threshold": 0.45, "topk": 400, "force_suppress": False}
    with open(vgg_model + "-0000.params", "rb") as handle:
        assert meta["sources"]["model_algo_1-0000.params"] == hashlib.sha256(handle.read()).hexdigest()
    capsys.readouterr()
    assert main(["convert", "verify", vgg_model, str(out / "model_algo_1.xml")]) == 0
    report = capsys.readouterr().out
    assert "missing 0, extra 0" in report and "OK: the IR matches MXNet" in report
    matched = int(report.split("matched ")[1].split(",")[0])
    assert matched >= 10


def test_embedded_preprocessing_and_package(vgg_model, tmp_path, capsys):
    out = tmp_path / "ir"
    assert main(["convert", "optimize", vgg_model, "--input-shape", "64", "64", "--output", str(out),
                 "--engine", "native", "--embed-preprocessing", "--package", "--name", "road"]) == 0
    with tarfile.open(out / "model.tar.gz") as archive:
        assert sorted(archive.getnames()) == ["road.bin", "road.xml"]
    meta = json.loads((out / "road.json").read_text())
    assert meta["input"]["layout"] == "NHWC" and meta["input"]["dtype"] == "uint8" and meta["preprocessing"]["embedded"]
    capsys.readouterr()
    assert main(["convert", "verify", vgg_model, str(out / "road.xml")]) == 0
    assert "OK: the IR matches MXNet" in capsys.readouterr().out


def test_fp16_weights_are_half_size(vgg_model, tmp_path):
    sizes = {}
    for precision in ("FP32", "FP16"):
        out = tmp_path / precision
        assert main(["convert", "optimize", vgg_model, "--input-shape", "64", "64", "--output", str(out),
                     "--engine", "native", "--precision", precision]) == 0
        sizes[precision] = (out / "model_algo_1.bin").stat().st_size
    assert 0.45 < sizes["FP16"] / sizes["FP32"] < 0.55


def test_verify_reports_a_mismatch_when_the_ir_came_from_other_weights(vgg_model, tmp_path, capsys):
    other = write_random_model(str(tmp_path / "other"), "vgg", (1, 3, 64, 64), seed=5)
    assert main(["convert", "optimize", other, "--input-shape", "64", "64", "--output", str(tmp_path / "ir"),
                 "--engine", "native"]) == 0
    capsys.readouterr()
    assert main(["convert", "verify", vgg_model, str(tmp_path / "ir" / "model_algo_1.xml")]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and ("missing in the IR" in out or "extra in the IR" in out)


def test_optimize_errors(vgg_model, tmp_path, capsys):
    assert main(["convert", "optimize", vgg_model, "--input-shape", "64", "64", "--output", str(tmp_path / "o"),
                 "--labels", "a,b,c"]) == 2
    assert "--labels: 3 names given, the model predicts 2 classes" in capsys.readouterr().err
    assert main(["convert", "optimize", vgg_model, "--input-shape", "0", "128", "--output", str(tmp_path / "o")]) == 2
    assert "--input-shape 0 128: expected" in capsys.readouterr().err
    assert main(["convert", "verify", vgg_model, str(tmp_path / "missing.xml")]) == 2
    assert "missing.xml: IR not found" in capsys.readouterr().err


@pytest.mark.parametrize("layout", ["tarball", "prefix"])
@pytest.mark.parametrize("relation", ["is", "contains"])
def test_an_output_that_is_or_contains_the_input_model_is_refused_before_any_work(tmp_path, capsys, layout, relation):
    # refused before the model is even read: these files are not models, and nothing may touch them
    folder = tmp_path / "model"
    folder.mkdir()
    if layout == "tarball":
        model = folder / "model.tar.gz"
        files = {model: b"not really a tarball"}
    else:
        model = folder / "model_algo_1"
        files = {folder / "model_algo_1-symbol.json": b"{}", folder / "model_algo_1-0000.params": b"params"}
    for path, data in files.items():
        path.write_bytes(data)
    target = next(iter(files)) if relation == "is" else tmp_path
    code = main(["convert", "optimize", str(model), "--input-shape", "64", "64", "--output", str(target), "--package"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("roadedge: error: {}: the output folder {} the input {}".format(
        target, relation, folder)), err
    assert {path: path.read_bytes() for path in files} == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"] and sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in files)


@pytest.fixture(scope="module")
def vgg_ir(vgg_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("vgg-ir")
    assert main(["convert", "optimize", vgg_model, "--input-shape", "64", "64", "--output", str(out), "--engine", "native"]) == 0
    return out / "model_algo_1.xml"


def one_error_line(capsys):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    return lines[0]


def test_verify_with_a_truncated_ir_bin_names_the_bin(vgg_model, vgg_ir, tmp_path, capsys):
    for suffix in (".xml", ".bin", ".json"):
        shutil.copy(str(vgg_ir.with_suffix(suffix)), str(tmp_path / ("cut" + suffix)))
    weights = tmp_path / "cut.bin"
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[: size // 2])
    capsys.readouterr()
    assert main(["convert", "verify", vgg_model, str(tmp_path / "cut.xml")]) == 2
    assert one_error_line(capsys) == "roadedge: error: {}: truncated IR weights: {} bytes, but cut.xml reads up to byte {} " \
                                     "(copy the .bin again)".format(weights, size // 2, size)


def test_verify_with_a_truncated_model_tar_gz_names_the_archive(vgg_model, vgg_ir, tmp_path, capsys):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(str(archive), "w:gz") as tar:
        for suffix in ("-symbol.json", "-0000.params"):
            tar.add(vgg_model + suffix, arcname="model_algo_1" + suffix)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    capsys.readouterr()
    assert main(["convert", "verify", str(archive), str(vgg_ir)]) == 2
    assert one_error_line(capsys).startswith("roadedge: error: {}: truncated or corrupt model.tar.gz (".format(archive))


@pytest.mark.parametrize("flag,value,expected", [
    ("--tolerance", "nan", "--tolerance nan: expected a largest allowed difference in [0, 1)"),
    ("--tolerance", "-1", "--tolerance -1.0: expected a largest allowed difference in [0, 1)"),
    ("--tolerance", "inf", "--tolerance inf: expected a largest allowed difference in [0, 1)"),
    ("--min-score", "nan", "--min-score nan: expected a score in [0, 1]"),
])
def test_verify_refuses_a_tolerance_that_would_pass_another_models_ir(vgg_model, tmp_path, capsys, flag, value, expected):
    other = write_random_model(str(tmp_path / "other"), "vgg", (1, 3, 64, 64), seed=5)
    assert main(["convert", "optimize", other, "--input-shape", "64", "64", "--output", str(tmp_path / "ir"),
                 "--engine", "native"]) == 0
    capsys.readouterr()
    assert main(["convert", "verify", vgg_model, str(tmp_path / "ir" / "model_algo_1.xml"), flag, value]) == 2
    out, err = capsys.readouterr()
    assert "OK" not in out and err.strip() == "roadedge: error: " + expected


@pytest.mark.parametrize("command", ["deploy", "optimize"])
def test_deploy_and_optimize_refuse_nms_that_is_not_an_iou(vgg_model, tmp_path, capsys, command):
    extra = ["--input-shape", "64", "64", "--output", str(tmp_path / "o")] if command == "optimize" else \
        ["--output-dir", str(tmp_path / "o")]
    for value in ("nan", "inf", "0", "1.5"):
        assert main(["convert", command, vgg_model, "--nms", value] + extra) == 2
        assert capsys.readouterr().err.strip() == "roadedge: error: --nms {}: expected an IoU threshold in (0, 1]".format(
            float(value))
    assert main(["convert", command, vgg_model, "--topk", "0"] + extra) == 2
    assert "--topk 0: expected the detections kept before NMS" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_optimize_killed_with_kill_9_leaves_nothing_the_next_run_does_not_clean(vgg_model, tmp_path):
    """A real `roadedge convert optimize` killed in the middle: its staging folder is the only trace, the output
    folder gets no half-written IR, and the next run removes the staging folder and writes a complete IR."""
    import os

    from tests.kill9 import kill_9_when

    args = ["convert", "optimize", vgg_model, "--input-shape", "64", "64", "--engine", "native", "--package"]
    outs = [tmp_path / ("ir%d" % attempt) for attempt in range(5)]
    attempt = kill_9_when(lambda n: ["-m", "roadedge"] + args + ["--output", outs[n]],
                          lambda n: outs[n].is_dir() and any(name.endswith(".partial") for name in os.listdir(str(outs[n]))))
    assert attempt is not None, "the convert always finished before the kill"
    killed = outs[attempt]
    left = sorted(os.listdir(str(killed)))
    assert left and all(name.startswith(".model_algo_1.") for name in left), left  # staging (and its lock) only
    assert main(args + ["--output", str(killed)]) == 0
    assert sorted(os.listdir(str(killed))) == ["model.tar.gz", "model_algo_1.bin", "model_algo_1.json",
                                               "model_algo_1.xml"]
    with tarfile.open(str(killed / "model.tar.gz")) as archive:
        assert sorted(archive.getnames()) == ["model_algo_1.bin", "model_algo_1.xml"]
