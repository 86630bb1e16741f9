"""The data `roadedge eval` scores segmentation on: a VOC 2012 segmentation tree or a SageMaker segmentation folder.

VOC: ImageSets/Segmentation/SPLIT.txt (or every SegmentationClass/*.png with
--split all), JPEGImages/<id>.jpg, SegmentationClass/<id>.png; class names
from labels.txt when the tree has one (`roadedge synth --segmentation`).
SageMaker (`roadedge dataset convert-seg`): SPLIT/<id>.jpg with
SPLIT_annotation/<id>.png; class names from summary.json when there is one.
"""
import json
import os

import numpy as np

from roadedge.core.errors import RoadedgeError, ValidationFailed

IGNORE = 255
VOC_SPLITS = ("val", "train", "trainval", "all")
SAGEMAKER_SPLITS = {"validation": "validation", "val": "validation", "train": "train"}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class SegItem:
    __slots__ = ("stem", "image", "mask")

    def __init__(self, stem, image, mask):
        self.stem, self.image, self.mask = stem, image, mask


def load_seg_data(root, split=None, limit=None):
    """(kind, split, [SegItem], class names the data gives or None) of a VOC segmentation tree or SageMaker folder."""
    if not os.path.isdir(root):
        raise RoadedgeError("{}: not a folder; expected a VOC 2012 segmentation tree or a SageMaker segmentation "
                            "folder".format(root))
    if limit is not None and limit <= 0:
        raise RoadedgeError("--limit {}: expected a positive number of images".format(limit))
    channels = [name for name in ("train", "validation") if os.path.isdir(os.path.join(root, name + "_annotation"))]
    if channels:
        kind, labels = "sagemaker", _summary_classes(root)
        channel = SAGEMAKER_SPLITS.get(split or "validation")
        if channel not in channels:
            raise RoadedgeError("{}: no {}_annotation/ folder (this SageMaker folder has {}); see --split".format(
                root, channel or split, ", ".join(c + "_annotation" for c in channels)))
        split, items = channel, _sagemaker_items(root, channel)
    elif os.path.isdir(os.path.join(root, "SegmentationClass")):
        kind, labels = "voc", _labels_file(root)
        lists = os.path.join(root, "ImageSets", "Segmentation")
        if split is None:
            split = "val" if os.path.isfile(os.path.join(lists, "val.txt")) else "all"
        if split not in VOC_SPLITS:
            raise RoadedgeError("--split {}: a VOC tree's splits are {}".format(split, ", ".join(VOC_SPLITS)))
        items = _voc_items(root, split)
    else:
        raise RoadedgeError("{}: neither a VOC 2012 segmentation tree (SegmentationClass/) nor a SageMaker segmentation "
                            "folder (train_annotation/ or validation_annotation/)".format(root))
    items = items[:limit]
    if not items:
        raise RoadedgeError("{}: no images to evaluate{}".format(root, " in split " + split if split else ""))
    return kind, split, items, labels


def _voc_items(root, split):
    masks = os.path.join(root, "SegmentationClass")
    if split == "all":
        stems = sorted(os.path.splitext(n)[0] for n in os.listdir(masks) if n.lower().endswith(".png"))
    else:
        path = os.path.join(root, "ImageSets", "Segmentation", split + ".txt")
        if not os.path.isfile(path):
            raise RoadedgeError("{}: missing (expected one image id per line; or pass --split all)".format(path))
        with open(path, encoding="utf-8") as handle:
            stems = [line.strip() for line in handle if line.strip()]
    problems, items = [], []
    for stem in stems:
        image = _find_image(os.path.join(root, "JPEGImages"), stem)
        mask = os.path.join(masks, stem + ".png")
        if image is None:
            problems.append("{}: no image {}.jpg for mask {}".format(os.path.join(root, "JPEGImages"), stem, mask))
        elif not os.path.isfile(mask):
            problems.append("{}: missing (the mask of {})".format(mask, image))
        else:
            items.append(SegItem(stem, image, mask))
    if problems:
        raise ValidationFailed(problems, root)
    return items


def _sagemaker_items(root, channel):
    folder = os.path.join(root, channel + "_annotation")
    problems, items = [], []
    for name in sorted(n for n in os.listdir(folder) if n.lower().endswith(".png")):
        stem = os.path.splitext(name)[0]
        image = _find_image(os.path.join(root, channel), stem)
        if image is None:
            problems.append("{}: no image {}.jpg in {}/".format(os.path.join(folder, name), stem, channel))
        else:
            items.append(SegItem(stem, image, os.path.join(folder, name)))
    if problems:
        raise ValidationFailed(problems, root)
    return items


def _find_image(folder, stem):
    for ext in IMAGE_EXTENSIONS:
        path = os.path.join(folder, stem + ext)
        if os.path.isfile(path):
            return path
    return None


def _labels_file(root):
    path = os.path.join(root, "labels.txt")
    if not os.path.isfile(path):
        return None
    from converters.classmap import read_name_list

    return read_name_list(path)


def _summary_classes(root):
    path = os.path.join(root, "summary.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            classes = json.load(handle).get("classes")
    except (ValueError, AttributeError, OSError) as err:
        raise RoadedgeError("{}: not the summary convert-seg writes ({})".format(path, err)) from None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise RoadedgeError("{}: classes: expected a list of class names".format(path))
    return classes


def class_lut(data_labels, model_labels, where, ignore_unknown=False):
    """A 256-entry table taking the data's class indices to the model's (by name); identity when the data names none.

    Classes the model does not know are an error, or with ignore_unknown go to IGNORE (left out).
    """
    lut = np.arange(256, dtype=np.uint8)
    if data_labels is None or list(data_labels) == list(model_labels):
        return lut, []
    index = {name: i for i, name in enumerate(model_labels)}
    unknown = [name for name in data_labels if name not in index]
    if unknown and not ignore_unknown:
        raise RoadedgeError("{}: class{} {} not among the model's labels {} (pass --ignore-unknown to leave {} pixels "
                            "out, or --labels to name the model's classes)".format(
                                where, "es" if len(unknown) > 1 else "", ", ".join(unknown), ",".join(model_labels),
                                "their" if len(unknown) > 1 else "its"))
    for i, name in enumerate(data_labels):
        lut[i] = index.get(name, IGNORE)
    return lut, unknown
