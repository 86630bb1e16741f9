"""Per-pixel ground truth of `roadedge synth`: the mask agrees with the picture and the scene; the VOC 2012 tree."""
import json
import math
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from edge.synth import DriveRenderer, render_image, render_labelled
from edge.synth.api import build_scene, render_scene
from roadedge import cli
from roadedge.core.catalog import SYNTH_CLASSES
from roadedge.core.seglabels import IGNORE, SYNTH_SEG_LABELS, index_png_bytes, read_index_png, voc_palette
from roadedge.core.voc import read_voc_xml

L = {name: i for i, name in enumerate(SYNTH_SEG_LABELS)}
DAMAGE = [L[c] for c in SYNTH_CLASSES]
ON_ROAD = [L["road"], L["lane_marking"], L["crosswalk"]] + DAMAGE
ABOVE = [L["sky"], L["building"], L["vegetation"], L["pole"]]  # what a pixel above the horizon may show
SIZE = (400, 300)


def test_label_list_and_voc_palette():
    assert SYNTH_SEG_LABELS[0] == "background" and len(set(SYNTH_SEG_LABELS)) == len(SYNTH_SEG_LABELS) == 15
    assert SYNTH_SEG_LABELS[4:10] == tuple(SYNTH_CLASSES)
    palette = voc_palette()
    # the published VOC 2012 colours: background, aeroplane, bicycle, ..., person (15), void (255)
    assert palette[:4] == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert palette[15] == [192, 128, 128] and palette[20] == [0, 64, 128] and palette[IGNORE] == [224, 224, 192]
    assert len({tuple(c) for c in palette}) == 256


def test_palette_png_round_trip(tmp_path):
    mask = np.random.default_rng(3).integers(0, len(SYNTH_SEG_LABELS), (37, 53)).astype(np.uint8)
    mask[5:9, 7:20] = IGNORE
    path = tmp_path / "m.png"
    path.write_bytes(index_png_bytes(mask))
    with Image.open(path) as image:
        assert image.mode == "P" and image.size == (53, 37)
        assert image.getpalette()[:3 * 256] == [v for c in voc_palette() for v in c]
        assert np.array_equal(np.array(image), mask)
        rgb = np.array(image.convert("RGB"))
    assert rgb[6, 8].tolist() == [224, 224, 192] and rgb[0, 0].tolist() == voc_palette()[mask[0, 0]]
    assert np.array_equal(read_index_png(path), mask)
    with pytest.raises(ValueError):
        index_png_bytes(mask.astype(np.int32))


@pytest.mark.parametrize("seed", [2, 5])
def test_mask_does_not_change_the_picture_and_ignores_the_camera_passes(seed):
    for index in range(4):
        image, objects = render_image(seed, index, SIZE)
        image_l, objects_l, mask = render_labelled(seed, index, SIZE)
        assert np.array_equal(image, image_l) and objects == objects_l
        assert mask.shape == SIZE[::-1] and mask.dtype == np.uint8 and mask.max() < len(SYNTH_SEG_LABELS)
        raw, _, mask_raw = render_scene(seed, index, SIZE, jpeg=False, labels=True)  # no JPEG pass: same mask
        assert np.array_equal(mask, mask_raw)


def _horizon_row(seed, index, size):
    _, cam, _, _ = build_scene(seed, index, size)
    return cam, min(size[1], max(0, int(math.floor(cam.horizon)) + 1))


@pytest.mark.parametrize("seed", [1, 6])
def test_sky_above_the_horizon_and_the_ground_below_it(seed):
    sky_share = []
    for index in range(8):
        _, _, mask = render_labelled(seed, index, SIZE)
        cam, y_g = _horizon_row(seed, index, SIZE)
        assert 0 < y_g < SIZE[1]
        assert np.isin(mask[:y_g], ABOVE).all()  # nothing of the ground above the horizon
        sky_share.append((mask[:y_g] == L["sky"]).mean())
        assert not (mask[y_g:] == L["sky"]).any()  # and no sky below it
        sky_rows = np.nonzero((mask == L["sky"]).any(axis=1))[0]
        assert sky_rows.max() < cam.horizon + 1
    assert min(sky_share) > 0.05 and np.mean(sky_share) > 0.3


@pytest.mark.parametrize("seed", [3, 8])
def test_ground_classes_match_the_road_cross_section(seed):
    """Pixels labelled road (and markings, damages) see the ground inside the carriageway, sidewalk just beside it."""
    for index in range(6):
        world, cam, _, _ = build_scene(seed, index, SIZE)
        _, _, mask = render_labelled(seed, index, SIZE)
        _, y_g = _horizon_row(seed, index, SIZE)
        X, _ = cam.ground_coords(y_g, SIZE[1])
        ground = mask[y_g:]
        half = world.road.half
        on_road = np.isin(ground, ON_ROAD)
        # a marking owns a pixel it covers half of: near the horizon the pixel centre may lie beyond the road edge
        reach = np.minimum(cam.row_footprint(np.arange(y_g, SIZE[1], dtype=float)), 50.0)[:, None] * np.ones_like(X)
        assert (np.abs(X[on_road]) < half + 1e-3 + reach[on_road]).all()
        assert (np.abs(X[ground == L["road"]]) < half + 1e-3).all()  # the asphalt itself: exact at the centre
        road = ground == L["road"]
        assert road.mean() > 0.2
        inside = np.abs(X) < half - 1e-3
        # inside the carriageway: road, markings, damages, or a roadside object standing in front of it
        assert np.isin(ground[inside], ON_ROAD + ABOVE).all()
        assert np.isin(ground[inside], ON_ROAD).mean() > 0.95
        walk = ground == L["sidewalk"]
        if world.road.urban:
            assert walk.any() and (np.abs(X[walk]) >= half - 1e-3).all() and (np.abs(X[walk]) < half + 4.3).all()
        else:
            assert not walk.any()
        # the bottom centre sees the road surface under the car
        assert mask[-1, SIZE[0] // 2] in ON_ROAD


def _union(objects, shape, name=None):
    inside = np.zeros(shape, bool)
    for obj in objects:
        if name is None or obj["name"] == name:
            x0, y0, x1, y1 = obj["bbox"]
            inside[y0:y1, x0:x1] = True
    return inside


@pytest.mark.parametrize("seed", [1, 4])
def test_damage_pixels_lie_in_their_boxes_and_nothing_else_changes_without_damages(seed):
    found = {c: 0 for c in SYNTH_CLASSES}
    for index in range(12):
        image, objects, mask = render_scene(seed, index, SIZE, draw_damages=True, jpeg=False, labels=True)
        image_n, objects_n, mask_n = render_scene(seed, index, SIZE, draw_damages=False, jpeg=False, labels=True)
        assert objects == objects_n
        damaged = np.isin(mask, DAMAGE)
        assert not np.isin(mask_n, DAMAGE).any()
        assert np.array_equal(mask[~damaged], mask_n[~damaged])  # the same other pixels
        under = mask_n[damaged]  # what the damage is drawn over: the ground (a crack's halo may reach the curb)
        assert not np.isin(under, ABOVE).any()
        assert np.isin(under, [L["road"], L["lane_marking"], L["crosswalk"]]).mean() > 0.9 if under.size > 100 else True
        for name in SYNTH_CLASSES:
            pixels = mask == L[name]
            assert not (pixels & ~_union(objects, mask.shape, name)).any(), (index, name)
        for obj in objects:
            x0, y0, x1, y1 = obj["bbox"]
            box = mask[y0:y1, x0:x1] == L[obj["name"]]
            if not obj["difficult"]:
                assert box.mean() > 0.04, obj  # each labelled damage owns a fair part of its box
                found[obj["name"]] += 1
            # and the picture changed where the mask says damage (the camera blur spills a little)
            changed = np.abs(image.astype(int) - image_n.astype(int)).max(axis=2)[y0:y1, x0:x1] > 2
            if box.sum() > 30:
                assert changed[box].mean() > 0.5, obj
    assert sum(found.values()) >= 8


def test_roadside_objects_label_exactly_the_pixels_they_paint():
    """Each building, tree and pole drawn alone: the pixels its colour lands on are the pixels its class lands on."""
    from edge.synth.roadside import Building, Pole, Tree

    kinds = {Building: L["building"], Tree: L["vegetation"], Pole: L["pole"]}
    seen = set()
    for index in range(6):
        world, cam, look, _ = build_scene(12, index, SIZE)
        for item in world.part.roadside:
            img = np.full(SIZE[::-1] + (3,), -1.0, np.float32)
            lab = np.full(SIZE[::-1], IGNORE, np.uint8)
            item.draw(img, cam, look, lab)
            painted = (img != -1.0).any(axis=2)
            assert np.array_equal(painted, lab != IGNORE)
            assert (lab[painted] == kinds[type(item)]).all()
            if painted.any():
                seen.add(type(item))
    assert seen == set(kinds)


def test_every_class_appears_over_a_few_seeds():
    seen = np.zeros(len(SYNTH_SEG_LABELS), np.int64)
    for seed in range(4):
        for index in range(8):
            seen += np.bincount(render_labelled(seed, index, SIZE)[2].ravel(), minlength=len(SYNTH_SEG_LABELS))
    missing = [SYNTH_SEG_LABELS[i] for i in np.nonzero(seen == 0)[0]]
    assert not missing
    assert seen.argmax() == L["road"]


def test_marked_pixels_look_like_their_class():
    """Markings are brighter than the road around them, sky brighter than the road; damages darken (cracks,
    potholes) or whiten (faded paint) the very pixels the mask gives them."""
    checked = {}
    for index in range(10):
        image, _, mask = render_scene(9, index, SIZE, jpeg=False, labels=True)
        plain, _ = render_scene(9, index, SIZE, jpeg=False, draw_damages=False)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(float)
        gray_plain = cv2.cvtColor(plain, cv2.COLOR_BGR2GRAY).astype(float)
        road = mask == L["road"]
        for name in ("lane_marking", "crosswalk", "sky") + tuple(SYNTH_CLASSES):
            pixels = mask == L[name]
            if pixels.sum() < 40:
                continue
            if name in SYNTH_CLASSES:
                diff = gray[pixels].mean() - gray_plain[pixels].mean()
                sign = 1 if name in ("D43", "D44") else -1
            else:
                near = cv2.dilate(pixels.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & road
                diff, sign = gray[pixels].mean() - gray[near if name != "sky" else road].mean(), 1
            assert sign * diff > 3, (index, name, diff)
            checked[name] = checked.get(name, 0) + 1
    assert len(checked) >= 7 and sum(checked.values()) >= 20, checked


def test_drive_frames_have_masks_too():
    drive = DriveRenderer(5, size=(320, 180))
    for i in (0, 30):
        image, objects = drive.frame(i)
        image_l, objects_l, mask = drive.frame(i, labels=True)
        assert np.array_equal(image, image_l) and objects == objects_l
        assert (mask == L["road"]).mean() > 0.2 and (mask == L["sky"]).mean() > 0.05


def _synth(*argv):
    return cli.main(["synth"] + [str(a) for a in argv])


def _files(folder):
    out = {}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, folder)] = handle.read()
    return out


def test_voc_segmentation_tree_end_to_end_through_convert_seg(tmp_path, capsys):
    seg, det, again, channels = tmp_path / "seg", tmp_path / "det", tmp_path / "again", tmp_path / "channels"
    assert _synth(seg, "--count", 6, "--seed", 4, "--size", "192x144", "--segmentation", "--workers", 1) == 0
    assert "segmentation: 5 train + 1 val, 15 classes" in capsys.readouterr().out
    assert _synth(again, "--count", 6, "--seed", 4, "--size", "192x144", "--segmentation", "--workers", 2) == 0
    assert _synth(det, "--count", 6, "--seed", 4, "--size", "192x144") == 0
    files, files_det = _files(seg), _files(det)
    assert files == _files(again)  # deterministic, whatever the worker count
    stems = ["synth-s4-%05d" % i for i in range(6)]
    assert sorted(files) == sorted(
        ["JPEGImages/%s.jpg" % s for s in stems] + ["Annotations/%s.xml" % s for s in stems]
        + ["SegmentationClass/%s.png" % s for s in stems]
        + ["ImageSets/Segmentation/%s.txt" % n for n in ("train", "val", "trainval")] + ["labels.txt"])
    assert all(files[k] == v for k, v in files_det.items())  # the detection set is unchanged, byte for byte
    lists = {n: files["ImageSets/Segmentation/%s.txt" % n].decode().split() for n in ("train", "val", "trainval")}
    assert lists == {"train": stems[:5], "val": stems[5:], "trainval": stems}
    assert files["labels.txt"].decode().splitlines() == list(SYNTH_SEG_LABELS)
    for i, stem in enumerate(stems):
        mask = read_index_png(seg / "SegmentationClass" / (stem + ".png"))
        assert np.array_equal(mask, render_labelled(4, i, (192, 144))[2])
        record, problems = read_voc_xml(str(seg / "Annotations" / (stem + ".xml")))
        assert not problems and (record.size[0], record.size[1]) == (192, 144)

    # convert-seg takes the tree as it is: the class list comes from labels.txt
    assert cli.main(["dataset", "convert-seg", str(seg), str(channels)]) == 0
    summary = json.loads((channels / "summary.json").read_text())
    assert summary["classes"] == list(SYNTH_SEG_LABELS) and summary["counts"] == {"train": 5, "validation": 1}
    hyper = json.loads((channels / "hyperparameters.json").read_text())
    assert hyper == {"num_classes": "15", "num_training_samples": "5"}
    expected = np.zeros(len(SYNTH_SEG_LABELS), np.int64)
    for stem in stems[:5]:
        expected += np.bincount(read_index_png(seg / "SegmentationClass" / (stem + ".png")).ravel(),
                                minlength=len(SYNTH_SEG_LABELS))
        assert (channels / "train_annotation" / (stem + ".png")).read_bytes() == files["SegmentationClass/%s.png" % stem]
        assert (channels / "train" / (stem + ".jpg")).read_bytes() == files["JPEGImages/%s.jpg" % stem]
    assert [summary["class_pixels"]["train"][n] for n in SYNTH_SEG_LABELS] == expected.tolist()
    assert os.listdir(channels / "validation") == [stems[5] + ".jpg"]


@pytest.mark.parametrize("argv, words", [
    (["--segmentation", "--flat"], ["--segmentation", "--flat"]),
    (["--segmentation", "--video"], ["--segmentation", "--video"]),
    (["--val-fraction", "0.3"], ["--val-fraction", "--segmentation"]),
    (["--segmentation", "--val-fraction", "1"], ["--val-fraction", "0 and 1"]),
    (["--segmentation", "--count", "1"], ["--count", "2"]),
])
def test_bad_segmentation_options_exit_2_with_one_line(tmp_path, capsys, argv, words):
    out = tmp_path / "out"
    assert _synth(out, *argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("roadedge: error: ")
    assert all(w in err[0] for w in words), err
    assert not out.exists()
