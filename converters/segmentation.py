"""`roadedge dataset convert-seg`: Pascal VOC 2012 segmentation tree -> SageMaker semantic segmentation.

Input: ImageSets/Segmentation/{train,val}.txt, JPEGImages/<id>.jpg and
SegmentationClass/<id>.png, whose pixel values are class indices (palette "P"
or grayscale "L" PNGs; 255 = ignore, the VOC object borders). The class list
is --classes, else VOC_ROOT/labels.txt (one name per line, as `roadedge synth
--segmentation` writes it), else the 21 VOC classes.

Output, written atomically (all or nothing):

    train/<id>.jpg  validation/<id>.jpg            the images, copied
    train_annotation/<id>.png  validation_annotation/<id>.png
                                                   the masks, copied byte for byte:
                                                   SageMaker reads a palette PNG's
                                                   indices, not its colours
    label_map/train_label_map.json                 {"scale": 1}: pixel value = class id
    hyperparameters.json                           num_classes, num_training_samples (strings)
    summary.json                                   counts and per-class pixel counts per split

Every problem in the tree is collected first and reported together.
"""
import json
import os
import shutil
import sys

import numpy as np

from converters.classmap import read_name_list
from converters.image_files import inspect_image
from roadedge.core.errors import RoadedgeError, ValidationFailed
from roadedge.core.fsutil import atomic_dir, check_output

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
IGNORE = 255
LABELS_FILE = "labels.txt"  # VOC_ROOT/labels.txt: the class list when --classes is not given
MIN_CLASSES, MAX_CLASSES = 2, 254  # SageMaker's valid num_classes
SPLITS = (("train", "train.txt", "train", "train_annotation"),
          ("validation", "val.txt", "validation", "validation_annotation"))


def load_classes(spec=None):
    """Class names in index order: None -> the 21 VOC classes; a file (one per line) or 'a,b,c'."""
    if spec is None:
        return list(VOC_CLASSES)
    names = read_name_list(spec)
    if not MIN_CLASSES <= len(names) <= MAX_CLASSES:
        raise RoadedgeError("{}: {} classes given, SageMaker semantic segmentation needs {} to {} "
                            "(background included)".format(spec, len(names), MIN_CLASSES, MAX_CLASSES))
    return names


def _read_ids(path, problems):
    ids = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            item = line.strip()
            if not item:
                continue
            if "/" in item or "\\" in item or item.startswith("."):
                problems.append("{}:{}: '{}' is not an image id (expected a bare file name without extension)".format(
                    path, lineno, item))
            elif item in ids:
                problems.append("{}:{}: id '{}' is listed twice".format(path, lineno, item))
            else:
                ids.append(item)
    if not ids:
        problems.append("{}: lists no image ids (expected one id per line)".format(path))
    return ids


def read_splits(voc_root, problems):
    """{split: [ids]} from train.txt / val.txt; an id in both is a problem (kept in train only)."""
    lists = os.path.join("ImageSets", "Segmentation")
    splits = {}
    for split, list_name, _, _ in SPLITS:
        path = os.path.join(voc_root, lists, list_name)
        if not os.path.isfile(path):
            problems.append("{}: missing (expected one image id per line)".format(path))
            splits[split] = []
        else:
            splits[split] = _read_ids(path, problems)
    both = set(splits["train"]) & set(splits["validation"])
    for item in sorted(both):
        problems.append("{}: id '{}' is in both train.txt and val.txt (expected each image in one split)".format(
            os.path.join(voc_root, lists, "val.txt"), item))
    splits["validation"] = [i for i in splits["validation"] if i not in both]
    return splits


def check_pair(image_path, mask_path, num_classes, problems, listed_in="the split file"):
    """Check one image/mask pair; return the mask's value histogram (256 bins) or None."""
    image_size = None
    if not os.path.isfile(image_path):
        problems.append("{}: missing (listed in {})".format(image_path, listed_in))
    else:
        image_size = _image_size(image_path, problems)
    if not os.path.isfile(mask_path):
        problems.append("{}: missing (listed in {})".format(mask_path, listed_in))
        return None
    mask = _read_mask(mask_path, problems)
    if mask is None:
        return None
    height, width = mask.shape
    if image_size is not None and image_size != (width, height):
        problems.append("{}: mask is {}x{} but its image {} is {}x{} (expected the same size)".format(
            mask_path, width, height, image_path, image_size[0], image_size[1]))
    counts = np.bincount(mask.ravel(), minlength=256)
    bad = (np.flatnonzero(counts[num_classes:IGNORE]) + num_classes).tolist()
    if bad:
        shown = ", ".join(str(v) for v in bad[:10]) + (", ..." if len(bad) > 10 else "")
        problems.append("{}: value{} {} {} not class indices (expected 0..{}, or 255 for ignore)".format(
            mask_path, "" if len(bad) == 1 else "s", shown, "is" if len(bad) == 1 else "are", num_classes - 1))
        return None
    return counts


def _image_size(path, problems):
    """(width, height) from the JPEG header, without decoding the pixels; a JPEG cut short is a problem."""
    info = inspect_image(path, problems, formats=("JPEG",), what="image", expected="a JPEG")
    return (info.width, info.height) if info else None


def _read_mask(path, problems):
    """The mask's class indices as a 2-D uint8 array (palette indices, not colours), or None."""
    expected = "a class-index PNG"
    info = inspect_image(path, problems, formats=("PNG",), pixels=True, what="mask", expected=expected)
    if info is None:
        return None
    if info.mode not in ("P", "L"):
        problems.append("{}: mode {} (expected {}: palette 'P' or grayscale 'L' whose pixel values are class ids, "
                        "not a colour-coded mask)".format(path, info.mode, expected))
        return None
    return info.pixels.astype(np.uint8, copy=False)


def convert_segmentation(voc_root, out_dir, classes=None, overwrite=False, progress=True):
    """Check the whole VOC tree, then write the SageMaker channels to OUT_DIR; return the summary dict.

    Raises ValidationFailed listing every problem (nothing written) or
    RoadedgeError for a missing VOC_ROOT / existing OUT_DIR.
    """
    from tqdm import tqdm

    voc_root = os.fspath(voc_root)
    out_dir = os.fspath(out_dir)
    classes = list(classes) if classes is not None else list(VOC_CLASSES)
    if not os.path.isdir(voc_root):
        raise RoadedgeError("{}: no such folder (expected a Pascal VOC tree with ImageSets/Segmentation, "
                            "JPEGImages and SegmentationClass)".format(voc_root))
    check_output(out_dir, [voc_root], overwrite)

    problems = []
    splits = read_splits(voc_root, problems)
    pixels = {split: np.zeros(256, dtype=np.int64) for split in splits}
    jobs = [(split, item) for split, _, _, _ in SPLITS for item in splits[split]]
    list_names = {split: list_name for split, list_name, _, _ in SPLITS}
    for split, item in tqdm(jobs, desc="check", unit="img", file=sys.stderr, disable=None if progress else True):
        counts = check_pair(_image_path(voc_root, item), _mask_path(voc_root, item), len(classes), problems,
                            listed_in=list_names[split])
        if counts is not None:
            pixels[split] += counts
    if problems:
        raise ValidationFailed(problems, voc_root)

    summary = {
        "format": "sagemaker-semantic-segmentation",
        "classes": classes,
        "num_classes": len(classes),
        "counts": {split: len(splits[split]) for split in splits},
        "class_pixels": {split: {name: int(pixels[split][i]) for i, name in enumerate(classes)} for split in splits},
        "ignore_pixels": {split: int(pixels[split][IGNORE]) for split in splits},
    }
    hyperparameters = {"num_classes": str(len(classes)), "num_training_samples": str(len(splits["train"]))}
    channels = {split: (image_channel, mask_channel) for split, _, image_channel, mask_channel in SPLITS}
    with atomic_dir(out_dir, overwrite=overwrite, inputs=[voc_root]) as tmp:
        for image_channel, mask_channel in channels.values():
            os.makedirs(os.path.join(tmp, image_channel))
            os.makedirs(os.path.join(tmp, mask_channel))
        for split, item in tqdm(jobs, desc="copy", unit="img", file=sys.stderr, disable=None if progress else True):
            image_channel, mask_channel = channels[split]
            shutil.copyfile(_image_path(voc_root, item), os.path.join(tmp, image_channel, item + ".jpg"))
            shutil.copyfile(_mask_path(voc_root, item), os.path.join(tmp, mask_channel, item + ".png"))
        os.makedirs(os.path.join(tmp, "label_map"))
        _write_json(os.path.join(tmp, "label_map", "train_label_map.json"), {"scale": 1}, indent=None)
        _write_json(os.path.join(tmp, "hyperparameters.json"), hyperparameters)
        _write_json(os.path.join(tmp, "summary.json"), summary)
    return summary


def _image_path(voc_root, item):
    return os.path.join(voc_root, "JPEGImages", item + ".jpg")


def _mask_path(voc_root, item):
    return os.path.join(voc_root, "SegmentationClass", item + ".png")


def _write_json(path, data, indent=2):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=indent, allow_nan=False)
        handle.write("\n")


def convert_seg_command(args):
    spec = args.classes
    if spec is None and os.path.isfile(os.path.join(args.voc_root, LABELS_FILE)):
        spec = os.path.join(args.voc_root, LABELS_FILE)  # the tree names its classes (roadedge synth --segmentation)
    classes = load_classes(spec)
    summary = convert_segmentation(args.voc_root, args.out_dir, classes, overwrite=args.overwrite)
    print("converted {} train + {} validation images ({} classes) to {}".format(
        summary["counts"]["train"], summary["counts"]["validation"], summary["num_classes"], args.out_dir))
    return 0
