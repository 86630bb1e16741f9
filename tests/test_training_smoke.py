"""The demo model's recipe (`roadedge train`) end to end in --quick mode, its pure parts, and the bundled model."""
import json
import os
import tarfile

import numpy as np
import pytest

from roadedge.cli import main
from roadedge.core.catalog import SYNTH_CLASSES
from roadedge.core.mxnet_symbol import loads_symbol
from tests.mxnet_oracle import require_mxnet
from training import augment, data
from training.network import HEADS, VARIANTS, head_kernels, ssd_symbol
from training.recipe import MODEL_NAME, MODELS_DIR, metrics_markdown

SAGEMAKER_FILES = {"model_algo_1-symbol.json", "model_algo_1-0000.params", "hyperparams.json"}
BUNDLED = os.path.join(MODELS_DIR, MODEL_NAME)


# ---------------------------------------------------------------------------
# pure parts


def test_annotation_json_becomes_normalised_zero_based_rows():
    record = {"file": "a.jpg", "image_size": [{"width": 200, "height": 100, "depth": 3}],
              "annotations": [{"class_id": 0, "left": 20, "top": 10, "width": 40, "height": 50},
                              {"class_id": 5, "left": 150, "top": 80, "width": 80, "height": 40}],
              "categories": [{"class_id": i, "name": c} for i, c in enumerate(SYNTH_CLASSES)]}
    name, width, height, rows = data.parse_annotation(record, "a.json", num_classes=6)
    assert (name, width, height) == ("a.jpg", 200.0, 100.0)
    np.testing.assert_allclose(rows, [[0, 0.1, 0.1, 0.3, 0.6], [5, 0.75, 0.8, 1.0, 1.0]])  # second one clipped


def test_annotation_with_bad_class_id_names_the_file():
    record = {"file": "a.jpg", "image_size": [{"width": 10, "height": 10}],
              "annotations": [{"class_id": 6, "left": 1, "top": 1, "width": 2, "height": 2}]}
    with pytest.raises(Exception, match="a.json: class_id 6 outside 0..5"):
        data.parse_annotation(record, "a.json", num_classes=6)


def test_pad_labels_uses_minus_one_rows():
    padded = data.pad_labels([np.zeros((2, 5), np.float32), np.ones((0, 5), np.float32)])
    assert padded.shape == (2, 2, 5)
    assert (padded[1] == -1).all() and (padded[0] == 0).all()


def test_crop_keeps_objects_whole_or_leaves_them_out():
    rng = np.random.default_rng(0)
    labels = np.array([[0, 0.1, 0.1, 0.3, 0.5], [3, 0.6, 0.6, 0.7, 0.65], [-1, -1, -1, -1, -1]], np.float32)
    for _ in range(50):
        sampled = augment.sample_crop(labels, rng)
        if sampled is None:
            continue
        crop, kept = sampled
        assert len(kept) >= 1 and (kept[:, 1:] >= 0).all() and (kept[:, 1:] <= 1).all()
        coverage = augment.box_coverage(labels[:2, 1:], crop)
        assert np.all((coverage >= 0.7) | (coverage <= 0.05))
        assert len(kept) == int((coverage >= 0.7).sum())


def test_augment_batch_flips_boxes_with_the_image():
    image = np.zeros((32, 32, 3), np.uint8)
    image[4:8, 2:6] = 255  # a white square at x 2..6
    labels = np.array([[[1, 2 / 32, 4 / 32, 6 / 32, 8 / 32]]], np.float32)
    batch, out = augment.augment_batch(image[None], labels, np.random.default_rng(1), 32, crop_p=0.0, flip_p=1.0,
                                       strength=0.0)
    assert batch.shape == (1, 3, 32, 32) and batch.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [1, 26 / 32, 4 / 32, 30 / 32, 8 / 32], atol=1e-6)
    assert batch[0, :, 4:8, 26:30].min() == 255 and batch[0, :, 4:8, 2:6].max() == 0


def test_resize_crop_of_the_whole_image_is_the_identity():
    image = np.random.default_rng(2).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    np.testing.assert_allclose(augment.resize_crop(image, (0, 0, 1, 1), 24), image, atol=1e-4)


def test_network_is_a_sagemaker_training_graph():
    graph = loads_symbol(ssd_symbol(6).to_json())
    ops = graph.ops()
    assert {"_contrib_MultiBoxTarget", "SoftmaxOutput", "smooth_l1", "MakeLoss", "_contrib_MultiBoxDetection"} <= ops
    assert [graph.nodes[i].op for i in graph.consumers(graph.find("data"))] == ["_copy"]
    assert graph.nodes[graph.find("bn_data")].attrs["fix_gamma"] == "True"
    assert sum(node.op == "_contrib_MultiBoxPrior" for node in graph.nodes) == len(HEADS)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_prediction_convolutions_are_1x1_only_after_a_neck(variant):
    graph = loads_symbol(ssd_symbol(6, variant).to_json())
    neck = VARIANTS[variant].get("neck")
    assert (graph.find("stride8_neck") is not None) == bool(neck)
    if neck:  # the neck (3x3 conv-BN-ReLU) feeds every head of the stride-8 map
        assert graph.nodes[graph.find("stride8_neck")].attrs["kernel"] == "(3, 3)"
    for i, ((feature_map, _, ratios), k) in enumerate(zip(HEADS, head_kernels(variant))):
        assert k == (1 if neck and feature_map == 0 else 3)
        for kind, per_anchor in (("loc", 4), ("cls", 7)):
            attrs = graph.nodes[graph.find("feat%d_%s_pred_conv" % (i, kind))].attrs
            assert (attrs["kernel"], attrs["pad"]) == (str((k, k)), str((k // 2, k // 2)))
            assert attrs["num_filter"] == str(len(ratios) * per_anchor)


def test_metrics_markdown_has_every_class():
    report = {"images": 3, "map50": 0.7, "map": 0.4, "score_threshold": 0.5,
              "classes": [{"name": c, "gt": 2, "ap50": 0.5, "precision": None, "recall": 1.0} for c in SYNTH_CLASSES]}
    summary = {"settings": {"eval_seed": 9, "seed": 1, "size": "600x600", "image_shape": 256}, "seconds": 600,
               "training": {"seconds": 300, "iterations": 10, "epochs": 1}, "ir_bytes": 2_000_000}
    text = metrics_markdown(report, summary)
    assert all("| %s | 2 | 0.500 | - | 1.000 |" % c in text for c in SYNTH_CLASSES)
    assert "**mAP@0.5 0.700**" in text
    assert "Drives" not in text
    resolved = dict(report, map50=0.55, classes=[dict(c, gt=1, ap50=0.25 if c["name"] == "D44" else 0.6)
                                                 for c in report["classes"]])
    summary["drives"], summary["settings"]["eval_drive_seconds"] = {"seeds": [7, 8], "all": report,
                                                                     "resolved": resolved}, 20
    text = metrics_markdown(report, summary)
    assert "seeds 7, 8), one frame in 2" in text and "| D44 | 2 | 0.500 | 1 | 0.250 |" in text
    assert "**Drives: mAP@0.5 0.700** over all labelled boxes, **0.550** over those of at least 8 px." in text


# ---------------------------------------------------------------------------
# the whole recipe, --quick


def test_quick_recipe_writes_sagemaker_artifacts_and_a_verified_ir(tmp_path, capsys):
    require_mxnet()
    out = tmp_path / "run"
    assert main(["train", str(out), "--quick", "--drive-images", "8"]) == 0
    tarball = out / "model" / "model.tar.gz"
    with tarfile.open(tarball) as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}
    assert set(members) == SAGEMAKER_FILES
    hyper = json.loads(members["hyperparams.json"])
    assert hyper and all(isinstance(v, str) for v in hyper.values())
    assert hyper["num_classes"] == "6" and hyper["image_shape"] == "256"
    assert json.loads(hyper["class_names"]) == list(SYNTH_CLASSES)
    graph = loads_symbol(members["model_algo_1-symbol.json"].decode("utf-8"))
    assert {"_contrib_MultiBoxTarget", "SoftmaxOutput", "smooth_l1", "MakeLoss"} <= graph.ops()
    assert [graph.nodes[i].name for i, _ in graph.heads] == ["cls_prob", "loc_loss", "cls_label", "det_out"]
    xml = out / "ir" / (MODEL_NAME + ".xml")
    assert xml.is_file() and (out / "ir" / (MODEL_NAME + ".bin")).is_file()
    meta = json.loads((out / "ir" / (MODEL_NAME + ".json")).read_text())
    assert meta["labels"] == list(SYNTH_CLASSES) and meta["preprocessing"]["mean"] == [0.0, 0.0, 0.0]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["metrics"]["ap50"]) == set(SYNTH_CLASSES) and summary["settings"]["quick"] is True
    assert summary["settings"]["drive_images"] == 8
    drives = summary["drives"]  # one unseen 2 s drive (seed 12346), all boxes and those >= 8 px at the input
    assert drives["seeds"] == [12346] and drives["all"]["format"] == "video" and drives["all"]["every"] == 2
    assert drives["all"]["images"] == drives["resolved"]["images"] == 15 and drives["resolved"]["min_size"] == 8
    gt = {key: sum(c["gt"] for c in drives[key]["classes"]) for key in ("all", "resolved")}
    assert gt["all"] > gt["resolved"] and summary["metrics"]["drives_map50"] == drives["all"]["map50"]
    trained = [name for channel in ("train", "validation") for name in os.listdir(str(out / "sagemaker" / channel))]
    drive = [name for name in trained if name.startswith("drive-s1001-")]  # every 5th frame of drive seed 1001
    assert drive and len(trained) == summary["images"]["train"] + summary["images"]["validation"] > len(drive)
    capsys.readouterr()
    assert main(["convert", "verify", str(tarball), str(xml)]) == 0
    assert "OK: the IR matches MXNet" in capsys.readouterr().out


def test_train_refuses_an_eval_seed_equal_to_the_training_seed(tmp_path, capsys):
    assert main(["train", str(tmp_path / "run"), "--quick", "--seed", "5", "--eval-seed", "5"]) == 2
    assert "--eval-seed 5 equals --seed" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------
# the bundled model


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_bundled_model_loads_and_finds_damage_on_unseen_frames():
    import cv2
    import openvino as ov

    from converters.verify import mxnet_input, openvino_rows
    from edge.synth import render_image

    assert os.path.getsize(BUNDLED + ".bin") < 10 * 1024 * 1024
    with open(BUNDLED + ".json", encoding="utf-8") as handle:
        meta = json.load(handle)
    assert meta["labels"] == list(SYNTH_CLASSES)
    height, width = meta["input"]["height"], meta["input"]["width"]
    core = ov.Core()
    compiled = core.compile_model(core.read_model(BUNDLED + ".xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    assert list(compiled.inputs[0].shape) == meta["input"]["shape"]
    found, frames = 0, 0
    for index in range(20):
        frame, objects = render_image(777, index, size=(600, 600))  # seed 777: neither training (1) nor eval (12345)
        objects = [o for o in objects if not o["difficult"]]
        if not objects:
            continue
        frames += 1
        tensor = mxnet_input(cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR), meta["preprocessing"])
        rows = openvino_rows(compiled(tensor)[compiled.outputs[0]], 0.3, meta["output"]["label_offset"])
        truth = [(SYNTH_CLASSES.index(o["name"]), np.asarray(o["bbox"], float) / 600.0) for o in objects]
        if any(int(r[0]) == c and _iou(r[2:], box) >= 0.5 for r in rows for c, box in truth):
            found += 1
    assert frames >= 16
    assert found >= 0.45 * frames, "a correct detection (IoU >= 0.5, score >= 0.3) on only {} of {} frames".format(
        found, frames)


def test_train_refuses_an_out_dir_around_the_models_folder_it_bundles_into(tmp_path, monkeypatch, capsys):
    from training import recipe

    models = tmp_path / "edge" / "models"
    models.mkdir(parents=True)
    (models / "MODEL_CARD.md").write_text("card")
    monkeypatch.setattr(recipe, "MODELS_DIR", str(models))

    def no_work(*args):
        raise AssertionError("work started")

    monkeypatch.setattr(recipe, "_synth", no_work)
    for out in (tmp_path / "edge", tmp_path):
        assert main(["train", str(out), "--bundle", "--overwrite", "--quick"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ["roadedge: error: {}: the output folder contains the input {}; choose an output outside the "
                       "input".format(out, models)]
    assert (models / "MODEL_CARD.md").read_text() == "card"
