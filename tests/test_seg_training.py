"""`roadedge train --task segmentation`: the pure parts (augmentation, weights, scores, data, card, settings)."""
import argparse
import json

import numpy as np
import pytest

from roadedge.core.errors import RoadedgeError
from tests.seg_tree import write_voc_seg_tree
from training import mx_train_seg, seg_arrays, seg_augment, seg_card, seg_recipe
from training.seg_network import check_structure

# ---------------------------------------------------------------------------
# augmentation


def test_bilinear_resize_of_the_same_size_is_the_identity_and_halving_averages():
    image = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(seg_augment.resize_bilinear(image, 20, 30), image)
    flat = np.zeros((4, 4, 1), np.uint8)
    flat[:, 1::2] = 200  # columns 0, 200, 0, 200: each pair averages to 100 at half the width
    half = seg_augment.resize_bilinear(flat, 4, 2)
    assert half.shape == (4, 2, 1) and (half == 100).all()


def test_nearest_resize_keeps_class_indices():
    mask = np.array([[1, 2], [3, 255]], np.uint8)
    big = seg_augment.resize_nearest(mask, 4, 6)
    assert set(np.unique(big)) == {1, 2, 3, 255}
    np.testing.assert_array_equal(big[:2, :3], 1)
    np.testing.assert_array_equal(big[2:, 3:], 255)


def test_scale_crop_pads_with_the_ignore_label_when_the_frame_shrinks_below_the_crop():
    image = np.full((40, 40, 3), 7, np.uint8)
    mask = np.full((40, 40), 4, np.uint8)
    rng = np.random.default_rng(1)
    crop_image, crop_mask = seg_augment.scale_crop(image, mask, rng, 48, scale_range=(0.5, 0.5))
    assert crop_image.shape == (48, 48, 3) and crop_mask.shape == (48, 48)
    assert (crop_mask == 4).sum() == 20 * 20 and (crop_mask == 255).sum() == 48 * 48 - 400
    assert (crop_image[crop_mask == 255] == seg_augment.PAD_RGB).all()
    assert (crop_image[crop_mask == 4] == 7).all()


def test_augment_batch_flips_the_mask_with_the_image_and_normalises_like_gluoncv():
    image = np.zeros((16, 16, 3), np.uint8)
    image[:, :4] = 255
    mask = np.zeros((16, 16), np.uint8)
    mask[:, :4] = 3
    data, labels = seg_augment.augment_batch(image[None], mask[None], np.random.default_rng(2), 16, (1.0, 1.0),
                                             flip_p=1.0, strength=0.0)
    assert data.shape == (1, 3, 16, 16) and labels.shape == (1, 16, 16)
    assert (labels[0, :, 12:] == 3).all() and (labels[0, :, :12] == 0).all()
    white = (1.0 - seg_augment.MEAN) / seg_augment.STD
    black = -seg_augment.MEAN / seg_augment.STD
    np.testing.assert_allclose(data[0, :, 5, 15], white, rtol=1e-5)
    np.testing.assert_allclose(data[0, :, 5, 0], black, rtol=1e-5)


def test_class_weights_favour_rare_classes_and_leave_absent_ones_at_one():
    masks = np.zeros((1, 10, 10), np.uint8)
    masks[0, 0, :4] = 2  # 4 pixels of class 2, 96 of class 0
    masks[0, 9, 9] = 255
    weights = seg_augment.class_weights(masks, 4, power=0.5, low=0.0, high=100.0)
    freq = np.array([95, 4]) / 99.0  # the 255 pixel is not counted
    raw = freq ** -0.5
    expected = raw / (raw * freq).sum()
    np.testing.assert_allclose(weights[[0, 2]], expected, rtol=1e-5)
    assert weights[1] == 1.0 and weights[3] == 1.0 and weights[2] > 4 * weights[0]


# ---------------------------------------------------------------------------
# training process parts that need no MXNet


def test_schedule_warms_up_decays_poly_and_follows_the_deadline():
    schedule = mx_train_seg.Schedule(0.01, total=100, warmup=10, deadline=0)
    assert schedule(0) == pytest.approx(0.0005)
    assert schedule(10) == pytest.approx(0.01 * 0.9 ** 0.9)
    assert schedule(100) == pytest.approx(0.0001)
    timed = mx_train_seg.Schedule(0.01, total=100, warmup=1, deadline=100.0, started=1000.0)
    assert timed.progress(10, now=1050.0) == pytest.approx(0.5)
    assert timed.progress(80, now=1050.0) == pytest.approx(0.8)
    assert timed.progress(1, now=1200.0) == 1.0


def test_hyperparams_are_strings_with_the_backbone_of_its_own():
    args = mx_train_seg.parse_args(["--train", "t", "--output", "o", "--class-names", "a,b,c", "--crop-size", "96"])
    hyper = mx_train_seg.hyperparams(args, 3, 10, 2)
    assert all(isinstance(v, str) for v in hyper.values())
    assert (hyper["algorithm"], hyper["backbone"], hyper["num_classes"], hyper["crop_size"]) == (
        "fcn", "resnet-tiny", "3", "96")
    assert json.loads(hyper["class_names"]) == ["a", "b", "c"]
    assert json.loads(hyper["structure"]) == mx_train_seg.structure("tiny", 3)


def test_every_variant_is_a_valid_structure():
    for variant in mx_train_seg.VARIANTS:
        s = check_structure(mx_train_seg.structure(variant, 15))
        assert s["head_channels"] * 4 == s["planes"][3]
    with pytest.raises(RoadedgeError, match="planes \\[4\\]"):
        check_structure(dict(mx_train_seg.structure("tiny", 15), planes=[8, 8, 8]))


# ---------------------------------------------------------------------------
# data


def test_channel_arrays_match_the_masks(tmp_path):
    from converters.segmentation import convert_segmentation

    write_voc_seg_tree(tmp_path / "voc", count=6, size=(48, 32), seed=3)
    names = ["c%d" % i for i in range(15)]
    convert_segmentation(tmp_path / "voc", tmp_path / "sm", names, progress=False)
    assert seg_arrays.prepare_seg_channel(str(tmp_path / "sm"), "train", (40, 24), str(tmp_path / "train"), 15) == 4
    images, masks = np.load(tmp_path / "train-images.npy"), np.load(tmp_path / "train-masks.npy")
    assert images.shape == (4, 24, 40, 3) and masks.shape == (4, 24, 40) and images.dtype == np.uint8
    sky = masks == 13
    assert sky.any() and images[sky][:, 2].mean() > images[sky][:, 0].mean() + 80  # sky is painted blue (RGB order)


def test_a_mask_with_a_class_beyond_the_list_names_the_file(tmp_path):
    write_voc_seg_tree(tmp_path, count=2, size=(32, 32), seed=4)
    item = tmp_path / "SegmentationClass" / "000000.png"
    with pytest.raises(RoadedgeError, match="000000.png: pixel value 13 \\(expected class ids 0..9 or 255\\)"):
        seg_arrays.decode_pair(str(tmp_path / "JPEGImages" / "000000.jpg"), str(item), (16, 16), 10)


# ---------------------------------------------------------------------------
# recipe settings and the card


def _args(**over):
    values = dict(quick=False, images=None, epochs=None, eval_images=None, batch_size=None, network=None,
                  crop_size=None, size=None, input_size=None, seed=1, eval_seed=12345, learning_rate=None, name=None,
                  time_budget=25.0)
    values.update(over)
    return argparse.Namespace(**values)


def test_settings_take_segmentation_defaults_and_explicit_options():
    s = seg_recipe.settings(_args())
    assert (s["name"], s["crop_size"], s["size"], s["images"], s["learning_rate"]) == ("road-seg", 160, "640x360", 1500,
                                                                                     0.003)
    assert (s["input_width"], s["input_height"]) == (448, 256)
    s = seg_recipe.settings(_args(quick=True, crop_size=96, name="x"))
    assert (s["name"], s["crop_size"], s["max_iterations"], s["quick"]) == ("x", 96, 3, True)
    with pytest.raises(RoadedgeError, match="--crop-size 100"):
        seg_recipe.settings(_args(crop_size=100))
    with pytest.raises(RoadedgeError, match="--input-size 450x256: expected WxH, multiples of 8"):
        seg_recipe.settings(_args(input_size="450x256"))
    with pytest.raises(RoadedgeError, match="--eval-seed 1 equals --seed"):
        seg_recipe.settings(_args(eval_seed=1))


def test_card_metrics_list_every_class_and_the_figures():
    report = {"images": 5, "pixel_accuracy": 0.93, "miou_gt": 0.71, "miou_gt_classes": 1, "miou": 0.6, "miou_classes": 2,
              "classes": [{"name": "road", "gt_pixels": 100, "iou": 0.9}, {"name": "pole", "gt_pixels": 0, "iou": None}]}
    summary = {"settings": {"eval_seed": 9, "seed": 1, "size": "640x360", "crop_size": 192, "batch_size": 16,
                            "input_size": "448x256"},
               "training": {"seconds": 600, "iterations": 900, "epochs": 10,
                            "validation": {"pixel_accuracy": 0.95, "miou": 0.8}},
               "seconds": 1500, "ir_bytes": 1_500_000, "verify": "OK: 100.000 % of pixels agree"}
    text = seg_card.metrics_markdown(report, summary)
    assert "| road | 100 | 0.900 |" in text and "| pole | 0 | - |" in text
    assert "**Pixel accuracy 0.930, mIoU 0.710** (mean over the 1 classes present in the ground truth; 0.600 over" in text
    assert "640x360 stretched to 448x256" in text and "crops 192x192" in text and "100.000 % of pixels agree" in text
    assert text.startswith(seg_card.CARD_START) and text.endswith(seg_card.CARD_END)
