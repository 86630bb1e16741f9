"""`roadedge train --task segmentation --quick` end to end, the bundle step, and the bundled demo segmentation model."""
import io
import json
import os
import tarfile

import numpy as np
import pytest

from roadedge.cli import main
from roadedge.core.mxnet_params import loads_params
from roadedge.core.seglabels import SYNTH_SEG_LABELS
from tests.mxnet_oracle import require_mxnet
from training import seg_card
from training.mx_train_seg import VARIANTS
from training.recipe import CARD_END, CARD_START, MODELS_DIR

BUNDLED = os.path.join(MODELS_DIR, "road-seg")
BN = ("gamma", "beta", "running_mean", "running_var")


def expected_parameters(variant="tiny", classes=15):
    """{name: shape} GluonCV gives an FCN on a deep-stem basic-block ResNetV1b of the variant's widths."""
    v = VARIANTS[variant]
    stem, planes = v["stem"], v["planes"]
    shapes = {"conv1.0.weight": (stem[0], 3, 3, 3), "conv1.3.weight": (stem[1], stem[0], 3, 3),
              "conv1.6.weight": (stem[2], stem[1], 3, 3)}
    for prefix, width in (("conv1.1", stem[0]), ("conv1.4", stem[1]), ("bn1", stem[2])):
        shapes.update({"%s.%s" % (prefix, p): (width,) for p in BN})
    inplanes = stem[2]
    for layer, (width, blocks) in enumerate(zip(planes, v["layers"]), 1):
        for block in range(blocks):
            name = "layer%d.%d." % (layer, block)
            shapes[name + "conv1.weight"] = (width, inplanes if block == 0 else width, 3, 3)
            shapes[name + "conv2.weight"] = (width, width, 3, 3)
            shapes.update({name + "%s.%s" % (bn, p): (width,) for bn in ("bn1", "bn2") for p in BN})
            if block == 0 and (layer == 2 or inplanes != width):
                shapes[name + "downsample.0.weight"] = (width, inplanes, 1, 1)
                shapes.update({name + "downsample.1." + p: (width,) for p in BN})
        inplanes = width
    head = inplanes // 4
    shapes["head.block.0.weight"] = (head, inplanes, 3, 3)
    shapes.update({"head.block.1." + p: (head,) for p in BN})
    shapes.update({"head.block.4.weight": (classes, head, 1, 1), "head.block.4.bias": (classes,)})
    return shapes


def test_quick_segmentation_recipe_writes_sagemakers_artefact_and_a_verified_evaluated_ir(tmp_path, capsys):
    require_mxnet()
    out = tmp_path / "run"
    assert main(["train", str(out), "--task", "segmentation", "--quick"]) == 0
    with tarfile.open(out / "model" / "model.tar.gz") as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}
    assert set(members) == {"hyperparams.json", "model_algo-1"}
    hyper = json.loads(members["hyperparams.json"])
    assert all(isinstance(v, str) for v in hyper.values())
    assert (hyper["algorithm"], hyper["backbone"], hyper["num_classes"], hyper["crop_size"]) == (
        "fcn", "resnet-tiny", str(len(SYNTH_SEG_LABELS)), "64")
    assert json.loads(hyper["class_names"]) == list(SYNTH_SEG_LABELS)
    params = loads_params(io.BytesIO(members["model_algo-1"]).read(), "model_algo-1")
    assert {name: tuple(array.shape) for name, array in params.items()} == expected_parameters()
    assert np.abs(params["head.block.4.weight"]).sum() > 0 and params["bn1.running_var"].min() > 0

    meta = json.loads((out / "ir" / "road-seg.json").read_text())
    assert meta["task"] == "segmentation" and meta["labels"] == list(SYNTH_SEG_LABELS)
    assert (meta["input"]["height"], meta["input"]["width"]) == (64, 96)
    assert meta["segmentation"]["backbone"] == "resnet-tiny" and (out / "ir" / "road-seg.bin").is_file()

    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["quick"] is True and summary["training"]["iterations"] == 3
    assert "argmax agreement" in summary["verify"]
    assert 0.0 <= summary["metrics"]["pixel_accuracy"] <= 1.0
    assert set(summary["metrics"]["iou"]) == set(SYNTH_SEG_LABELS)
    assert [name.split(" ")[0] for name in summary["steps"]] == ["render", "SageMaker", "decode", "train", "OpenVINO",
                                                                 "verify", "evaluate"]
    events = [json.loads(line)["event"] for line in (out / "train-log.jsonl").read_text().splitlines()]
    assert events[0] == "start" and events[-1] == "done" and events.count("iteration") >= 1
    report = json.loads((out / "eval.json").read_text())
    assert report["images"] == 4 and report["split"] == "all"
    assert not (out / "arrays").exists()


def test_bundle_copies_the_ir_and_rewrites_only_the_cards_metrics(tmp_path):
    ir, models = tmp_path / "ir", tmp_path / "models"
    ir.mkdir()
    for suffix, data in ((".xml", b"<net/>"), (".bin", b"\0" * 10), (".json", b"{}")):
        (ir / ("road-seg" + suffix)).write_bytes(data)
    models.mkdir()
    (models / seg_card.CARD).write_text("# card\n\nintro\n\n" + CARD_START + "\nold\n" + CARD_END + "\n\nfooter\n")
    report = {"images": 2, "pixel_accuracy": 0.95, "miou_gt": 0.7, "miou_gt_classes": 1, "miou": 0.7, "miou_classes": 1,
              "classes": [{"name": "road", "gt_pixels": 10, "iou": 0.7}]}
    summary = {"settings": {"eval_seed": 9, "seed": 1, "size": "640x360", "crop_size": 192, "batch_size": 16,
                            "input_size": "448x256"},
               "training": {"seconds": 60, "iterations": 9, "epochs": 1}, "seconds": 120, "ir_bytes": 10}
    seg_card.bundle(str(ir), "road-seg", report, summary, str(models))
    assert (models / "road-seg.bin").read_bytes() == b"\0" * 10 and (models / "road-seg.xml").read_bytes() == b"<net/>"
    card = (models / seg_card.CARD).read_text()
    assert card.startswith("# card\n\nintro\n\n") and card.endswith("\n\nfooter\n") and "old" not in card
    assert "| road | 10 | 0.700 |" in card


# ---------------------------------------------------------------------------
# the bundled model


@pytest.mark.skipif(not os.path.isfile(BUNDLED + ".xml"), reason="no bundled segmentation model yet")
def test_bundled_segmentation_model_segments_unseen_frames():
    from edge.synth import render_labelled
    from training.evaluate_seg import OpenVinoSegmenter, confusion_matrix, scores

    assert os.path.getsize(BUNDLED + ".bin") < 5 * 1024 * 1024
    with open(BUNDLED + ".json", encoding="utf-8") as handle:
        meta = json.load(handle)
    assert meta["task"] == "segmentation" and meta["labels"] == list(SYNTH_SEG_LABELS)
    model = OpenVinoSegmenter(BUNDLED + ".xml")
    n = len(SYNTH_SEG_LABELS)
    counts = np.zeros((n, n), np.int64)
    for index in range(12):  # seed 777: neither the training set's (1) nor the card's evaluation set's (12345)
        frame, _, mask = render_labelled(777, index, (640, 360))
        counts += confusion_matrix(mask, model.predict(frame), n)
    result = scores(counts, SYNTH_SEG_LABELS)
    iou = {c["name"]: c["iou"] for c in result["classes"]}
    assert result["pixel_accuracy"] >= 0.88, result["pixel_accuracy"]
    assert min(iou["road"], iou["sky"], iou["vegetation"]) >= 0.8, iou
