"""`roadedge eval` for segmentation models: the confusion matrix against a per-class set computation (hypothesis),
and the command end to end with real OpenVINO IRs built here (a 1x1 convolution whose argmax is the nearest VOC
colour), on colour-coded VOC trees and on `roadedge synth --segmentation` data through `dataset convert-seg`."""
import json
import os

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from roadedge.cli import main
from roadedge.core.seglabels import IGNORE, SYNTH_SEG_LABELS, index_png_bytes, read_index_png, voc_palette
from training.evaluate_seg import confusion_matrix, evaluate_segmentation, scores

LABELS = list(SYNTH_SEG_LABELS)
COLOURS = np.array(voc_palette(len(LABELS)), np.float64)  # RGB: class k is drawn in VOC colour k
GLUON_MEAN = [123.675, 116.28, 103.53]
GLUON_SCALE = [1 / (255 * 0.229), 1 / (255 * 0.224), 1 / (255 * 0.225)]


# ---------------------------------------------------------------------------
# metrics against an independent computation


def reference(pairs, num_classes):
    """Per-class IoU, pixel accuracy and counts from sets of pixel indices, one class at a time (no confusion matrix)."""
    gt_sets, pred_sets = [set() for _ in range(num_classes)], [set() for _ in range(num_classes)]
    correct = total = 0
    offset = 0
    for gt, pred in pairs:
        gt, pred = gt.ravel().tolist(), pred.ravel().tolist()
        for i, (g, p) in enumerate(zip(gt, pred)):
            if g == IGNORE:
                continue
            gt_sets[g].add(offset + i)
            pred_sets[p].add(offset + i)
            total += 1
            correct += g == p
        offset += len(gt)
    ious = []
    for k in range(num_classes):
        union = gt_sets[k] | pred_sets[k]
        ious.append(len(gt_sets[k] & pred_sets[k]) / len(union) if union else None)
    return ious, (correct / total if total else None), [len(s) for s in gt_sets], [len(s) for s in pred_sets]


masks = st.integers(1, 4).flatmap(lambda n: st.tuples(
    st.just(n + 1),
    st.lists(st.tuples(st.integers(1, 9), st.integers(1, 9)), min_size=1, max_size=3).flatmap(
        lambda shapes: st.tuples(*[st.tuples(
            hnp.arrays(np.uint8, shape, elements=st.sampled_from(list(range(n + 1)) + [IGNORE])),
            hnp.arrays(np.uint8, shape, elements=st.integers(0, n))) for shape in shapes]))))


@settings(max_examples=300, deadline=None)
@given(masks)
def test_confusion_matrix_scores_match_per_class_pixel_sets(case):
    num_classes, pairs = case
    counts = sum(confusion_matrix(gt, pred, num_classes) for gt, pred in pairs)
    result = scores(counts, ["c%d" % k for k in range(num_classes)])
    ious, accuracy, gt_pixels, pred_pixels = reference(pairs, num_classes)
    for k, entry in enumerate(result["classes"]):
        assert (entry["gt_pixels"], entry["pred_pixels"]) == (gt_pixels[k], pred_pixels[k])
        assert entry["iou"] == (pytest.approx(ious[k]) if ious[k] is not None else None)
    present = [v for v in ious if v is not None]
    assert result["miou"] == (pytest.approx(sum(present) / len(present)) if present else None)
    assert result["miou_classes"] == len(present)
    assert result["pixel_accuracy"] == (pytest.approx(accuracy) if accuracy is not None else None)
    assert result["pixels"] == sum(gt_pixels)
    for gt, pred in pairs:  # cell by cell, too
        cm = confusion_matrix(gt, pred, num_classes)
        for i in range(num_classes):
            for j in range(num_classes):
                assert cm[i, j] == int(((gt == i) & (pred == j)).sum())


def test_confusion_matrix_refuses_classes_out_of_range():
    with pytest.raises(ValueError, match="prediction holds class 3"):
        confusion_matrix(np.zeros(4, np.uint8), np.array([0, 1, 3, 0], np.uint8), 3)
    with pytest.raises(ValueError, match="ground truth holds class 7"):
        confusion_matrix(np.array([0, 7, IGNORE, 0], np.uint8), np.zeros(4, np.uint8), 3)
    assert confusion_matrix(np.array([IGNORE, 2], np.uint8), np.array([9, 2], np.uint8), 3)[2, 2] == 1  # ignored: any


# ---------------------------------------------------------------------------
# a real IR: logits_k = 2 c_k . x - |c_k|^2 on raw RGB x, i.e. the nearest colour wins


def make_colour_ir(folder, size, argmax=False, mean=None, scale=None, embed=False, name="colour-seg"):
    """Write NAME.xml/.bin/.json (roadedge.model/1, task segmentation) taking (x - mean) * scale, NCHW RGB."""
    import openvino as ov
    import openvino.opset13 as ops

    width, height = size
    mean = np.zeros(3) if mean is None else np.asarray(mean, np.float64)
    scale = np.ones(3) if scale is None else np.asarray(scale, np.float64)
    weights = 2 * COLOURS / scale[None, :]  # the network sees (x - mean) * scale: undo it in the weights
    biases = -(COLOURS ** 2).sum(axis=1) + 2 * COLOURS @ mean
    data = ops.parameter([1, 3, height, width], ov.Type.f32, name="data")
    conv = ops.convolution(data, ops.constant(weights.reshape(len(LABELS), 3, 1, 1).astype(np.float32)),
                           [1, 1], [0, 0], [0, 0], [1, 1])
    output = ops.add(conv, ops.constant(biases.reshape(1, -1, 1, 1).astype(np.float32)))
    if argmax:
        output = ops.topk(output, ops.constant(np.int64(1)), 1, "max", "none", "i32").output(1)
    result = ops.result(output)
    result.output(0).get_tensor().set_names({"mask" if argmax else "logits"})
    model = ov.Model([result], [data], name)
    preprocessing = {"color_order": "RGB", "mean": mean.tolist(), "scale": scale.tolist(), "resize": "stretch",
                     "embedded": embed}
    shape = [1, 3, height, width]
    if embed:
        from roadedge.core.openvino_preprocessing import add_preprocessing

        model, shape = add_preprocessing(model, preprocessing), [1, -1, -1, 3]
    os.makedirs(folder, exist_ok=True)
    xml = os.path.join(folder, name + ".xml")
    ov.save_model(model, xml, compress_to_fp16=False)
    meta = {
        "schema": "roadedge.model/1", "name": name, "task": "segmentation", "labels": LABELS, "num_classes": len(LABELS),
        "palette": COLOURS.astype(int).tolist(),
        "input": {"name": "data", "height": height, "width": width, "shape": shape,
                  "layout": "NHWC" if embed else "NCHW", "dtype": "uint8" if embed else "float32", "color_order": "RGB"},
        "preprocessing": preprocessing,
        "output": {"name": "mask" if argmax else "logits",
                   "format": "segmentation_mask" if argmax else "segmentation_logits", "label_offset": 0},
        "segmentation": {"algorithm": "colour", "backbone": "none", "crop_size": width},
    }
    with open(os.path.join(folder, name + ".json"), "w", encoding="utf-8") as handle:
        json.dump(meta, handle)
    return xml


def nearest_colour(rgb):
    """What the colour IR predicts, in numpy: argmax of 2 c.x - |c|^2 (first wins; exact in integers)."""
    x = rgb.reshape(-1, 3).astype(np.int64)
    logits = 2 * x @ COLOURS.astype(np.int64).T - (COLOURS.astype(np.int64) ** 2).sum(axis=1)
    return logits.argmax(axis=1).reshape(rgb.shape[:2]).astype(np.uint8)


def colour_tree(root, count=4, size=(64, 48), seed=0):
    """A VOC tree of colour-coded PNG images (blocks of 8x8 in VOC colours) whose masks say the block's class,
    except a relabelled block (a known error) and a 255 border; returns [(gt, colour class)] per image."""
    rng = np.random.default_rng(seed)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    width, height = size
    pairs, stems = [], []
    for index in range(count):
        blocks = rng.integers(0, len(LABELS), (height // 8, width // 8)).astype(np.uint8)
        classes = np.kron(blocks, np.ones((8, 8), np.uint8))
        gt = classes.copy()
        gt[8:16, 8:16] = (gt[8:16, 8:16] + 1) % len(LABELS)  # the model "misses" this block
        gt[0, :] = IGNORE
        stem = "img%02d" % index
        cv2.imwrite(os.path.join(root, "JPEGImages", stem + ".png"), COLOURS[classes][:, :, ::-1].astype(np.uint8))
        with open(os.path.join(root, "SegmentationClass", stem + ".png"), "wb") as handle:
            handle.write(index_png_bytes(gt))
        pairs.append((gt, classes))
        stems.append(stem)
    with open(os.path.join(root, "ImageSets", "Segmentation", "val.txt"), "w") as handle:
        handle.write("\n".join(stems[count // 2:]) + "\n")
    with open(os.path.join(root, "ImageSets", "Segmentation", "train.txt"), "w") as handle:
        handle.write("\n".join(stems[:count // 2]) + "\n")
    return pairs


def check_report(report, pairs):
    ious, accuracy, gt_pixels, pred_pixels = reference(pairs, len(LABELS))
    assert report["pixel_accuracy"] == pytest.approx(accuracy)
    assert [c["iou"] for c in report["classes"]] == [pytest.approx(v) if v is not None else None for v in ious]
    assert [c["gt_pixels"] for c in report["classes"]] == gt_pixels
    assert [c["pred_pixels"] for c in report["classes"]] == pred_pixels
    assert report["ignored_pixels"] == sum(int((gt == IGNORE).sum()) for gt, _ in pairs)


@pytest.mark.parametrize("variant", ["logits", "argmax", "gluon-scale", "embedded", "half-size-input"])
def test_colour_coded_tree_scores_what_the_masks_say(tmp_path, variant):
    pairs = colour_tree(str(tmp_path / "voc"), count=4)
    options = {"argmax": variant == "argmax", "embed": variant == "embedded"}
    if variant in ("gluon-scale", "embedded"):
        options.update(mean=GLUON_MEAN, scale=GLUON_SCALE)  # per-channel scale, as GluonCV's std gives it
    size = (32, 24) if variant == "half-size-input" else (64, 48)  # 8-px blocks survive /2 and nearest x2 exactly
    xml = make_colour_ir(str(tmp_path / "model"), size, **options)
    report = evaluate_segmentation(xml, str(tmp_path / "voc"))  # default split: val.txt (images 2, 3)
    assert report["split"] == "val" and report["images"] == 2 and report["format"] == "voc"
    check_report(report, pairs[2:])
    assert 0.7 < report["pixel_accuracy"] < 1.0 and report["miou"] < 1.0
    everything = evaluate_segmentation(xml, str(tmp_path / "voc"), split="all")
    assert everything["images"] == 4
    check_report(everything, pairs)


def test_cli_on_synth_data_through_convert_seg(tmp_path, capsys):
    voc, channels = tmp_path / "voc", tmp_path / "channels"
    assert main(["synth", str(voc), "--segmentation", "--count", "5", "--seed", "3", "--size", "96x72"]) == 0
    assert main(["dataset", "convert-seg", str(voc), str(channels)]) == 0
    xml = make_colour_ir(str(tmp_path / "model"), (96, 72))
    capsys.readouterr()
    # SageMaker folder, validation channel (default), report into a file and the table on stdout
    assert main(["eval", xml, str(channels), "--json", str(tmp_path / "r.json")]) == 0
    table = capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    val = [s.strip() for s in open(voc / "ImageSets" / "Segmentation" / "val.txt")]
    pairs = []
    for stem in val:  # the prediction numpy computes from the very JPEG
        rgb = cv2.imread(str(channels / "validation" / (stem + ".jpg")))[:, :, ::-1]
        pairs.append((read_index_png(channels / "validation_annotation" / (stem + ".png")), nearest_colour(rgb)))
    assert report["schema"] == "roadedge.eval-seg/1" and report["format"] == "sagemaker" and report["split"] == "validation"
    assert report["images"] == 1 and report["labels"] == LABELS
    check_report(report, pairs)
    assert "mIoU" in table and "pixel accuracy" in table and "present in the ground truth or the prediction" in table
    assert "{:.3f}".format(report["miou"]) in table
    # the VOC tree itself, train split: the same numbers as the train channel
    assert main(["eval", xml, str(voc), "--split", "train", "--json"]) == 0
    from_voc = json.loads(capsys.readouterr().out)
    assert main(["eval", xml, str(channels), "--split", "train", "--json"]) == 0
    from_channels = json.loads(capsys.readouterr().out)
    assert from_voc["images"] == from_channels["images"] == 4
    assert from_voc["confusion"] == from_channels["confusion"]


def test_data_classes_are_matched_by_name(tmp_path):
    pairs = colour_tree(str(tmp_path / "voc"), count=2)
    xml = make_colour_ir(str(tmp_path / "model"), (64, 48))
    plain = evaluate_segmentation(xml, str(tmp_path / "voc"), split="all")
    # the same tree with its classes numbered the other way round, and a labels.txt saying so
    order = LABELS[::-1]
    for index, (gt, _) in enumerate(pairs):
        renumbered = np.where(gt == IGNORE, IGNORE, len(LABELS) - 1 - gt.astype(int)).astype(np.uint8)
        (tmp_path / "voc" / "SegmentationClass" / ("img%02d.png" % index)).write_bytes(index_png_bytes(renumbered))
    (tmp_path / "voc" / "labels.txt").write_text("\n".join(order) + "\n")
    assert evaluate_segmentation(xml, str(tmp_path / "voc"), split="all")["confusion"] == plain["confusion"]
    # a class the model does not know: an error, or its pixels left out with --ignore-unknown
    (tmp_path / "voc" / "labels.txt").write_text("\n".join(order[:-1] + ["puddle"]) + "\n")
    assert main(["eval", xml, str(tmp_path / "voc"), "--split", "all"]) == 2
    report = evaluate_segmentation(xml, str(tmp_path / "voc"), split="all", ignore_unknown=True)
    assert report["unknown_classes_left_out"] == ["puddle"]
    puddle = sum(int((gt == 0).sum()) for gt, _ in pairs)  # class 0 (background) became "puddle"
    assert report["ignored_pixels"] == plain["ignored_pixels"] + puddle


@pytest.mark.parametrize("argv, words", [
    (["--min-score", "0.2"], ["--min-score", "segmentation"]),
    (["--split", "trainval"], ["ImageSets/Segmentation/trainval.txt", "missing"]),
    (["--labels", "a,b"], ["--labels", "2 names"]),
])
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, argv, words):
    colour_tree(str(tmp_path / "voc"), count=2)
    xml = make_colour_ir(str(tmp_path / "model"), (64, 48))
    assert main(["eval", xml, str(tmp_path / "voc")] + argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("roadedge: error: ") and all(w in err[0] for w in words), err


def test_bad_masks_are_reported_with_their_file(tmp_path, capsys):
    colour_tree(str(tmp_path / "voc"), count=2)
    xml = make_colour_ir(str(tmp_path / "model"), (64, 48))
    bad = np.full((48, 64), 40, np.uint8)
    (tmp_path / "voc" / "SegmentationClass" / "img01.png").write_bytes(index_png_bytes(bad))
    assert main(["eval", xml, str(tmp_path / "voc")]) == 2
    err = capsys.readouterr().err
    assert "img01.png: value 40 not class indices" in err
    os.remove(tmp_path / "voc" / "SegmentationClass" / "img01.png")
    assert main(["eval", xml, str(tmp_path / "voc")]) == 2
    assert "img01.png: missing" in capsys.readouterr().err
