"""`roadedge dataset convert-seg` on tiny Pascal-VOC-style trees built here."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from converters.segmentation import VOC_CLASSES, load_classes
from roadedge.cli import main
from roadedge.core.errors import RoadedgeError

TRAIN = ["2007_000001", "2007_000002", "2007_000003", "2007_000004"]
VAL = ["2008_000001", "2008_000002"]
W, H = 32, 24


def _palette():
    pal = [0] * 768
    for index, rgb in {1: (128, 0, 0), 2: (0, 128, 0), 255: (224, 224, 192)}.items():
        pal[3 * index:3 * index + 3] = rgb
    return pal


def write_mask(path, arr, mode="P"):
    img = Image.fromarray(arr.astype(np.uint8), "L")
    if mode == "P":
        img = img.convert("P")  # keeps the values as palette indices
        img.putpalette(_palette())
    img.save(path)


def make_mask(seed, width=W, height=H, values=(0, 1, 2)):
    rng = np.random.default_rng(seed)
    arr = rng.choice(np.array(values, dtype=np.uint8), size=(height, width))
    arr[0, :] = arr[-1, :] = arr[:, 0] = arr[:, -1] = 255  # ignore border, as in VOC
    return arr


def write_jpeg(path, seed, width=W, height=H):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8), "RGB").save(path, quality=90)


@pytest.fixture
def voc(tmp_path):
    """A VOC tree: 4 train + 2 val ids, 32x24 JPEGs, palette masks with 0, 1, 2 and a 255 border."""
    root = tmp_path / "VOC2012"
    for sub in ("ImageSets/Segmentation", "JPEGImages", "SegmentationClass"):
        (root / sub).mkdir(parents=True)
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(TRAIN) + "\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("\n".join(VAL) + "\n")
    for seed, item in enumerate(TRAIN + VAL):
        write_jpeg(root / "JPEGImages" / (item + ".jpg"), seed)
        write_mask(root / "SegmentationClass" / (item + ".png"), make_mask(seed))
    return root


def run(capsys, *argv):
    code = main(["dataset", "convert-seg"] + [str(a) for a in argv])
    captured = capsys.readouterr()
    run.stderr = captured.err
    return code, captured.out, [line for line in captured.err.splitlines() if line.startswith("roadedge: error: ")]


def test_mask_fixture_is_palette_with_indices(voc):
    with Image.open(voc / "SegmentationClass" / (TRAIN[0] + ".png")) as img:
        assert img.mode == "P"
        assert set(np.unique(np.asarray(img)).tolist()) == {0, 1, 2, 255}


def test_convert_writes_sagemaker_channels(voc, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, errors = run(capsys, voc, out)
    assert (code, errors) == (0, [])
    assert "4 train + 2 validation" in stdout
    listing = {d: sorted(os.listdir(out / d)) for d in os.listdir(out) if (out / d).is_dir()}
    assert listing == {
        "train": [i + ".jpg" for i in TRAIN],
        "validation": [i + ".jpg" for i in VAL],
        "train_annotation": [i + ".png" for i in TRAIN],
        "validation_annotation": [i + ".png" for i in VAL],
        "label_map": ["train_label_map.json"],
    }
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["hyperparameters.json", "summary.json"]
    for ids, images, masks in ((TRAIN, "train", "train_annotation"), (VAL, "validation", "validation_annotation")):
        for item in ids:
            assert (out / masks / (item + ".png")).read_bytes() == (voc / "SegmentationClass" / (item + ".png")).read_bytes()
            assert (out / images / (item + ".jpg")).read_bytes() == (voc / "JPEGImages" / (item + ".jpg")).read_bytes()
    assert json.loads((out / "label_map/train_label_map.json").read_text()) == {"scale": 1}
    assert json.loads((out / "hyperparameters.json").read_text()) == {"num_classes": "21", "num_training_samples": "4"}

    summary = json.loads((out / "summary.json").read_text())
    assert summary["classes"] == list(VOC_CLASSES)
    assert summary["counts"] == {"train": 4, "validation": 2}
    for split, ids, offset in (("train", TRAIN, 0), ("validation", VAL, len(TRAIN))):
        counts = np.zeros(256, dtype=np.int64)
        for seed in range(offset, offset + len(ids)):
            counts += np.bincount(make_mask(seed).ravel(), minlength=256)
        expected = {name: int(counts[i]) for i, name in enumerate(VOC_CLASSES)}
        assert summary["class_pixels"][split] == expected
        assert summary["ignore_pixels"][split] == int(counts[255])
        assert sum(expected.values()) + int(counts[255]) == len(ids) * W * H
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_grayscale_masks_and_class_file(voc, tmp_path, capsys):
    item = TRAIN[1]
    write_mask(voc / "SegmentationClass" / (item + ".png"), make_mask(1), mode="L")
    classes = tmp_path / "classes.txt"
    classes.write_text("background\ncrack\npothole\n")
    out = tmp_path / "out"
    code, _, errors = run(capsys, voc, out, "--classes", classes)
    assert (code, errors) == (0, [])
    assert json.loads((out / "hyperparameters.json").read_text())["num_classes"] == "3"
    assert json.loads((out / "summary.json").read_text())["classes"] == ["background", "crack", "pothole"]
    assert (out / "train_annotation" / (item + ".png")).read_bytes() == (voc / "SegmentationClass" / (item + ".png")).read_bytes()


def test_load_classes():
    assert load_classes(None) == list(VOC_CLASSES) and len(VOC_CLASSES) == 21
    assert load_classes("background, crack,pothole") == ["background", "crack", "pothole"]
    with pytest.raises(RoadedgeError, match="listed twice"):
        load_classes("a,b,a")
    with pytest.raises(RoadedgeError, match="2 to 254"):
        load_classes("background")
    with pytest.raises(RoadedgeError, match="no such file"):
        load_classes("missing/classes.txt")


def test_existing_output_needs_overwrite(voc, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    code, _, errors = run(capsys, voc, out)
    assert code == 2 and "already exists" in errors[0] and (out / "old.txt").exists()
    code, _, errors = run(capsys, voc, out, "--overwrite")
    assert (code, errors) == (0, []) and not (out / "old.txt").exists() and (out / "train").is_dir()


def _remove(path):
    os.remove(path)


def _corrupt_png(voc):
    path = voc / "SegmentationClass" / (TRAIN[2] + ".png")
    data = path.read_bytes()
    path.write_bytes(data[:60])  # header intact, pixel data cut off


def _cut(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 2 // 3])


BROKEN = {
    "missing train.txt": (lambda v: _remove(v / "ImageSets/Segmentation/train.txt"),
                          "ImageSets/Segmentation/train.txt: missing"),
    "missing val.txt": (lambda v: _remove(v / "ImageSets/Segmentation/val.txt"),
                        "ImageSets/Segmentation/val.txt: missing"),
    "missing image": (lambda v: _remove(v / "JPEGImages" / (TRAIN[1] + ".jpg")),
                      "JPEGImages/{}.jpg: missing".format(TRAIN[1])),
    "missing mask": (lambda v: _remove(v / "SegmentationClass" / (VAL[0] + ".png")),
                     "SegmentationClass/{}.png: missing".format(VAL[0])),
    "id in both splits": (lambda v: (v / "ImageSets/Segmentation/val.txt").write_text("\n".join(VAL + [TRAIN[0]])),
                          "id '{}' is in both train.txt and val.txt".format(TRAIN[0])),
    "size mismatch": (lambda v: write_mask(v / "SegmentationClass" / (TRAIN[3] + ".png"), make_mask(3, width=30)),
                      "SegmentationClass/{}.png: mask is 30x24 but its image".format(TRAIN[3])),
    "rgb mask": (lambda v: Image.new("RGB", (W, H), (128, 0, 0)).save(v / "SegmentationClass" / (VAL[1] + ".png")),
                 "SegmentationClass/{}.png: mode RGB (expected a class-index PNG".format(VAL[1])),
    "values out of range": (lambda v: write_mask(v / "SegmentationClass" / (TRAIN[0] + ".png"),
                                                 make_mask(0, values=(0, 1, 21, 40))),
                            "SegmentationClass/{}.png: values 21, 40 are not class indices (expected 0..20".format(TRAIN[0])),
    "corrupt image": (lambda v: (v / "JPEGImages" / (VAL[0] + ".jpg")).write_bytes(b"not a jpeg at all"),
                      "JPEGImages/{}.jpg: unreadable image".format(VAL[0])),
    "corrupt mask": (_corrupt_png, "SegmentationClass/{}.png: unreadable mask".format(TRAIN[2])),
    "truncated image": (lambda v: _cut(v / "JPEGImages" / (TRAIN[1] + ".jpg")),
                        "JPEGImages/{}.jpg: truncated or corrupt image (expected a JPEG): no JPEG end-of-image "
                        "marker".format(TRAIN[1])),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_problem_is_reported_and_nothing_written(voc, tmp_path, capsys, case):
    breaker, expected = BROKEN[case]
    breaker(voc)
    out = tmp_path / "out"
    code, _, errors = run(capsys, voc, out)
    assert code == 2
    assert len(errors) == 1, errors
    assert expected in errors[0]
    assert str(voc) in errors[0]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["VOC2012"]


def test_size_mismatch_names_both_sizes(voc, tmp_path, capsys):
    BROKEN["size mismatch"][0](voc)
    _, _, errors = run(capsys, voc, tmp_path / "out")
    assert errors[0].endswith("is 32x24 (expected the same size)")
    assert "JPEGImages/{}.jpg".format(TRAIN[3]) in errors[0]


def test_all_problems_reported_together(voc, tmp_path, capsys):
    for case in ("missing image", "id in both splits", "rgb mask", "values out of range", "corrupt mask"):
        BROKEN[case][0](voc)
    out = tmp_path / "out"
    code, _, errors = run(capsys, voc, out)
    assert code == 2
    assert len(errors) == 5, errors
    for case in ("missing image", "id in both splits", "rgb mask", "values out of range", "corrupt mask"):
        assert any(BROKEN[case][1] in line for line in errors), case
    assert "roadedge: 5 problems in {}; nothing was written".format(voc) in run.stderr
    assert not out.exists()


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]], ids=["plain", "overwrite"])
@pytest.mark.parametrize("relation", ["is", "contains", "lies inside"])
def test_an_output_overlapping_the_voc_tree_is_refused_and_the_tree_kept(voc, tmp_path, capsys, relation, overwrite):
    out = {"is": voc, "contains": tmp_path, "lies inside": voc / "JPEGImages"}[relation]
    before = _tree(voc)
    code, _, errors = run(capsys, voc, out, *overwrite)
    assert code == 2 and errors == ["roadedge: error: {}: the output folder {} the input {}; choose an output outside "
                                    "the input".format(out, relation, voc)]
    assert _tree(voc) == before and sorted(p.name for p in tmp_path.iterdir()) == ["VOC2012"]
