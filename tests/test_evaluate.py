"""`roadedge eval` and training.metrics: hand-computed cases, pycocotools as the oracle, the command end to end."""
import contextlib
import io
import json
import os
import re
import shutil

import numpy as np
import pytest

from roadedge.cli import main
from tests.mxnet_oracle import require_mxnet
from tests.ssd_models import write_random_model
from training.evaluate import collect, evaluate_model, load_data, map_classes
from training.metrics import box_iou, evaluate

LABELS = ["D40", "D20"]


# ---------------------------------------------------------------------------
# metrics, by hand


def box(x, y, w, h):
    return [x, y, x + w, y + h]


def test_perfect_detections_give_ap_one():
    gt = [[(0, box(10, 10, 50, 40), False), (1, box(100, 50, 30, 30), False)], [(0, box(5, 5, 20, 20), False)]]
    dets = [[(c, 0.9, b) for c, b, _ in image] for image in gt]
    result = evaluate(gt, dets, 2)
    assert result["map50"] == pytest.approx(1.0) and result["map"] == pytest.approx(1.0)
    for entry in result["classes"]:
        assert entry["ap50"] == pytest.approx(1.0) and entry["ap"] == pytest.approx(1.0)
        assert entry["precision"] == 1.0 and entry["recall"] == 1.0 and entry["fp"] == 0
    assert [entry["gt"] for entry in result["classes"]] == [2, 1]


def test_false_positive_ranked_between_two_true_positives():
    # ranked: TP (0.9), FP (0.8), TP (0.7) for 2 objects: recall .5 .5 1, precision 1 .5 2/3 -> envelope 1, 2/3, 2/3.
    # 101 recall points: 0 .. 0.50 (51 points) read precision 1, 0.51 .. 1.00 (50 points) read 2/3.
    gt = [[(0, box(0, 0, 10, 10), False), (0, box(50, 50, 10, 10), False)]]
    dets = [[(0, 0.9, box(0, 0, 10, 10)), (0, 0.8, box(200, 200, 10, 10)), (0, 0.7, box(50, 50, 10, 10))]]
    result = evaluate(gt, dets, 1, score_threshold=0.75)
    expected = (51 * 1.0 + 50 * 2.0 / 3.0) / 101
    entry = result["classes"][0]
    assert entry["ap50"] == pytest.approx(expected, abs=1e-9) and entry["ap"] == pytest.approx(expected, abs=1e-9)
    assert (entry["tp"], entry["fp"], entry["precision"], entry["recall"]) == (1, 1, 0.5, 0.5)
    # a box shifted to IoU 0.575 counts at .50 and .55 only: AP@[.5:.95] drops, AP@0.5 does not
    dets[0][2] = (0, 0.7, box(50 + 2.7, 50, 10, 10))  # IoU 73 / (200 - 73) = 0.575
    entry = evaluate(gt, dets, 1)["classes"][0]
    assert entry["ap50"] == pytest.approx(expected, abs=1e-9)
    only_first = 51 / 101  # from IoU .60 on the shifted box misses: precision 1 up to recall .5, then nothing
    assert entry["ap"] == pytest.approx((2 * expected + 8 * only_first) / 10, abs=1e-9)


def test_detection_on_a_difficult_box_is_ignored():
    gt = [[(0, box(0, 0, 20, 20), False), (0, box(100, 100, 100, 100), True)]]
    # the top detection lies inside the difficult box (plain IoU 0.04, crowd IoU 1.0): neither TP nor FP
    dets = [[(0, 0.95, box(110, 110, 20, 20)), (0, 0.9, box(0, 0, 20, 20))]]
    entry = evaluate(gt, dets, 1)["classes"][0]
    assert entry["ap50"] == pytest.approx(1.0) and entry["ap"] == pytest.approx(1.0)
    assert (entry["gt"], entry["difficult"], entry["tp"], entry["fp"], entry["precision"]) == (1, 1, 1, 0, 1.0)
    # a difficult box absorbs any number of detections
    dets[0].append((0, 0.97, box(150, 150, 40, 40)))
    assert evaluate(gt, dets, 1)["classes"][0]["fp"] == 0
    # the same detection is a false positive when the object is not difficult (and that object a miss)
    entry = evaluate([[gt[0][0], (0, gt[0][1][1], False)]], dets, 1)["classes"][0]
    assert (entry["tp"], entry["fp"], entry["recall"]) == (1, 2, 0.5)
    ious = box_iou([box(110, 110, 20, 20)], [box(100, 100, 100, 100)] * 2, crowd=[True, False])
    assert ious.tolist() == [[1.0, pytest.approx(0.04)]]


def test_classes_without_ground_truth_or_detections():
    # class 0 found perfectly, class 1 has objects but no detections, class 2 only detections, class 3 only difficult
    gt = [[(0, box(0, 0, 10, 10), False), (1, box(30, 30, 10, 10), False), (3, box(60, 60, 10, 10), True)]]
    dets = [[(0, 0.9, box(0, 0, 10, 10)), (2, 0.8, box(30, 30, 10, 10)), (3, 0.7, box(60, 60, 10, 10))]]
    result = evaluate(gt, dets, 4, class_names=["a", "b", "c", "d"])
    a, b, c, d = result["classes"]
    assert a["ap50"] == pytest.approx(1.0) and b["ap50"] == 0.0 and c["ap50"] is None and d["ap50"] is None
    assert b["precision"] is None and b["recall"] == 0.0
    assert c["precision"] == 0.0 and c["recall"] is None and d["precision"] is None and d["difficult"] == 1
    assert result["map50"] == pytest.approx(0.5) and result["map"] == pytest.approx(0.5)
    assert [entry["name"] for entry in result["classes"]] == ["a", "b", "c", "d"]
    assert evaluate([[]], [[]], 2)["map50"] is None


# ---------------------------------------------------------------------------
# pycocotools as the oracle


def coco_numbers(ground_truth, detections, num_classes):
    """(per-class AP@0.5 or None, mAP@0.5, mAP@[.5:.95]) from pycocotools, difficult as iscrowd."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    annotations = []
    for image_id, objects in enumerate(ground_truth, start=1):
        for class_id, (x1, y1, x2, y2), difficult in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": class_id + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": int(difficult)})
    results = [{"image_id": image_id, "category_id": class_id + 1, "score": score, "bbox": [x1, y1, x2 - x1, y2 - y1]}
               for image_id, dets in enumerate(detections, start=1) for class_id, score, (x1, y1, x2, y2) in dets]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": [{"id": i + 1} for i in range(len(ground_truth))], "annotations": annotations,
                        "categories": [{"id": k + 1, "name": str(k)} for k in range(num_classes)]}
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # [T, R, K], area 'all', maxDets 100
    per_class = [None if (precision[0, :, k] == -1).all() else float(precision[0, :, k].mean()) for k in range(num_classes)]
    return per_class, float(evaluator.stats[1]), float(evaluator.stats[0])


def assert_agrees(ground_truth, detections, num_classes, tolerance=1e-6):
    ours = evaluate(ground_truth, detections, num_classes)
    per_class, map50, map_ = coco_numbers(ground_truth, detections, num_classes)
    for entry, theirs in zip(ours["classes"], per_class):
        if theirs is None:
            assert entry["ap50"] is None
        else:
            assert entry["ap50"] == pytest.approx(theirs, abs=tolerance)
    assert ours["map50"] == pytest.approx(map50, abs=tolerance) and ours["map"] == pytest.approx(map_, abs=tolerance)
    return ours


@pytest.fixture(scope="module")
def voc_dir(tmp_path_factory):
    """12 synthetic road images with potholes and alligator cracks; a few objects made difficult."""
    root = tmp_path_factory.mktemp("eval") / "voc"
    assert main(["synth", str(root), "--count", "12", "--seed", "3", "--size", "256x192", "--classes", "D40,D20"]) == 0
    for name in sorted(os.listdir(root / "Annotations"))[::3]:
        path = root / "Annotations" / name
        path.write_text(path.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>", 1))
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """(MXNet training prefix, IR) of a seeded random-weight SSD whose classes are D40, D20."""
    require_mxnet()
    folder = tmp_path_factory.mktemp("model")
    prefix = write_random_model(str(folder), "vgg", (1, 3, 96, 96), seed=1,
                                hyperparams={"num_classes": "2", "image_shape": "96", "class_names": '["D40", "D20"]'})
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["convert", "optimize", prefix, "--input-shape", "96", "96", "--output", str(folder / "ir"),
                     "--engine", "native"]) == 0
    return prefix, str(folder / "ir" / "model_algo_1.xml")


def noisy_detections(ground_truth, seed, width=256, height=192):
    """Detections made from the ground truth: jittered boxes, random scores, misses, duplicates, false positives."""
    rng = np.random.default_rng(seed)
    detections = []
    for objects in ground_truth:
        dets = []
        for class_id, (x1, y1, x2, y2), _ in objects:
            w, h = x2 - x1, y2 - y1
            for _ in range(int(rng.random() < 0.8) + int(rng.random() < 0.15)):  # miss one in five, duplicate some
                jitter = rng.normal(0.0, 0.12, 4) * [w, h, w, h]
                dets.append((class_id if rng.random() < 0.9 else 1 - class_id, float(rng.random()),
                             [x1 + jitter[0], y1 + jitter[1], x2 + jitter[2], y2 + jitter[3]]))
        for _ in range(int(rng.integers(0, 4))):
            x, y = rng.uniform(0, width - 20), rng.uniform(0, height - 20)
            dets.append((int(rng.integers(0, 2)), float(np.round(rng.random(), 2)),
                         [x, y, x + rng.uniform(8, 80), y + rng.uniform(8, 60)]))
        detections.append(dets)
    return detections


def test_noisy_detections_agree_with_pycocotools(voc_dir):
    data = load_data(str(voc_dir))
    ground_truth, unknown = map_classes(LABELS, data)
    assert unknown == {} and sum(d for objects in ground_truth for _, _, d in objects) >= 3
    for seed in range(4):
        result = assert_agrees(ground_truth, noisy_detections(ground_truth, seed), 2)
        assert 0.05 < result["map"] < result["map50"] and 0.2 < result["map50"] < 0.95, result


def test_model_output_agrees_with_pycocotools(model, voc_dir):
    _, ir = model
    labels, data, ground_truth, detections, _ = collect(ir, str(voc_dir), min_score=0.01)
    assert labels == LABELS and len(data.images) == len(detections) == 12
    assert max(len(dets) for dets in detections) > 200  # more than 100 per class in an image: the top-100 cut matters
    for dets, image in zip(detections, data.images):
        for _, score, (x1, y1, x2, y2) in dets:
            assert 0.01 <= score <= 1 and 0 <= x1 <= x2 <= 256 and 0 <= y1 <= y2 <= 192, image.path
    assert_agrees(ground_truth, detections, 2)
    # the model's detections mixed with noisy ones: mid-range numbers through the same ranking
    mixed = [a + b for a, b in zip(detections, noisy_detections(ground_truth, 7))]
    result = assert_agrees(ground_truth, mixed, 2)
    assert 0.1 < result["map50"] < 0.9


def test_mxnet_model_gives_the_numbers_of_its_ir(model, voc_dir):
    prefix, ir = model
    from_ir = evaluate_model(ir, str(voc_dir))
    from_mxnet = evaluate_model(prefix, str(voc_dir))  # input size from hyperparams.json's image_shape
    for a, b in zip(from_ir["classes"], from_mxnet["classes"]):
        assert abs(a["detections"] - b["detections"]) <= 2
        assert a["ap50"] == pytest.approx(b["ap50"], abs=1e-3) and a["ap"] == pytest.approx(b["ap"], abs=1e-3)


def test_ir_with_embedded_preprocessing_takes_bgr_frames(model, tmp_path):
    prefix, ir = model
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["convert", "optimize", prefix, "--input-shape", "96", "96", "--output", str(tmp_path / "ir"),
                     "--engine", "native", "--embed-preprocessing"]) == 0
        assert main(["synth", str(tmp_path / "voc"), "--count", "3", "--seed", "5", "--size", "96x96",
                     "--classes", "D40,D20"]) == 0
    # frames of the model's size: no resizing on either path, so the same input after colour order and mean
    _, _, _, embedded, _ = collect(str(tmp_path / "ir" / "model_algo_1.xml"), str(tmp_path / "voc"), min_score=0.2)
    _, _, _, plain, _ = collect(ir, str(tmp_path / "voc"), min_score=0.2)
    assert [len(dets) for dets in embedded] == [len(dets) for dets in plain] and sum(map(len, plain)) > 10
    for a, b in zip(embedded, plain):
        for (class_a, score_a, box_a), (class_b, score_b, box_b) in zip(a, b):
            assert class_a == class_b and abs(score_a - score_b) < 1e-3 and np.abs(np.subtract(box_a, box_b)).max() < 0.1


# ---------------------------------------------------------------------------
# the command


def test_eval_command_on_voc_prints_the_table(model, voc_dir, capsys):
    _, ir = model
    assert main(["eval", ir, str(voc_dir)]) == 0
    out = capsys.readouterr().out
    report = evaluate_model(ir, str(voc_dir))
    lines = out.splitlines()
    assert re.match(r"class\s+GT\s+diff\s+AP@0.5\s+precision\s+recall$", lines[1])
    for entry, line in zip(report["classes"], lines[2:4]):
        assert line.split()[:4] == [entry["name"], str(entry["gt"]), str(entry["difficult"]), "{:.3f}".format(entry["ap50"])]
    assert "mAP@0.5       {:.3f}".format(report["map50"]) in out and "mAP@[.5:.95]  {:.3f}".format(report["map"]) in out


def test_eval_command_on_a_sagemaker_folder_with_json(model, voc_dir, tmp_path, capsys):
    _, ir = model
    sagemaker = tmp_path / "sm"
    assert main(["dataset", "convert", str(voc_dir), str(sagemaker), "--classes", "D40,D20", "--validation-fraction", "0.5"]) == 0
    summary = json.loads((sagemaker / "summary.json").read_text())["splits"]
    capsys.readouterr()
    for split in ("validation", "train"):
        chosen = ["--split", split] if split == "train" else []  # validation is the default
        assert main(["eval", ir, str(sagemaker), "--json", "--score-threshold", "0.3"] + chosen) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["schema"] == "roadedge.eval/1" and report["format"] == "sagemaker" and report["split"] == split
        assert report["images"] == summary[split]["images"] and report["score_threshold"] == 0.3
        assert [c["name"] for c in report["classes"]] == LABELS
        assert [c["gt"] for c in report["classes"]] == [summary[split]["per_class"][name] for name in LABELS]
        assert set(report["classes"][0]) == {"class_id", "name", "gt", "difficult", "detections", "ap50", "ap", "tp", "fp",
                                             "precision", "recall"}
        assert set(report) >= {"map50", "map", "min_score", "iou_thresholds", "model", "data", "seconds"}
    assert main(["eval", ir, str(voc_dir), "--json", "--limit", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 2


def one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("roadedge: error: "), captured.err
    return lines[0]


def test_eval_errors_are_one_line(model, voc_dir, tmp_path, capsys):
    _, ir = model
    bare = tmp_path / "bare"
    bare.mkdir()
    for ext in (".xml", ".bin"):
        shutil.copy(ir[:-4] + ext, bare / ("model" + ext))
    assert main(["eval", str(bare / "model.xml"), str(voc_dir)]) == 2
    assert "model.json: metadata JSON not found next to the IR" in one_error_line(capsys)

    full = tmp_path / "full"
    assert main(["synth", str(full), "--count", "4", "--seed", "1", "--size", "128x96"]) == 0
    capsys.readouterr()
    assert main(["eval", ir, str(full)]) == 2
    line = one_error_line(capsys)
    assert "not among the model's labels D40,D20" in line and "--ignore-unknown" in line and "D00" in line
    assert main(["eval", ir, str(full), "--ignore-unknown", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unknown_objects_left_out"]

    (tmp_path / "empty").mkdir()
    assert main(["eval", ir, str(tmp_path / "empty")]) == 2
    assert "no .xml annotation files found" in one_error_line(capsys)
    assert main(["eval", ir, str(voc_dir), "--labels", "a,b,c"]) == 2
    assert "--labels: 3 names given, the model predicts 2 classes" in one_error_line(capsys)
    assert main(["eval", str(tmp_path / "nothing.xml"), str(voc_dir)]) == 2
    assert "nothing.xml: IR not found" in one_error_line(capsys)
    assert main(["eval", ir, str(voc_dir), "--split", "train"]) == 0  # --split only concerns SageMaker folders
    capsys.readouterr()
    assert main(["eval", ir, str(voc_dir), "--labels", "D20,D40", "--json"]) == 0  # renamed classes: still all known


def test_bundled_model_output_agrees_with_pycocotools(tmp_path):
    """The trained demo model's real detections on frames of a seed it never saw, through both evaluators."""
    from training.recipe import MODEL_NAME, MODELS_DIR

    root = tmp_path / "voc"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["synth", str(root), "--count", "16", "--seed", "777"]) == 0
    labels, data, ground_truth, detections, _ = collect(os.path.join(MODELS_DIR, MODEL_NAME + ".xml"), str(root), min_score=0.01)
    assert labels == ["D00", "D10", "D20", "D40", "D43", "D44"] and len(detections) == 16
    result = assert_agrees(ground_truth, detections, 6)
    assert result["map50"] > 0.3, result  # a trained model, not noise
