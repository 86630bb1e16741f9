"""Read SageMaker object-detection channels the way SageMaker's algorithm does, into arrays for training.

A channel pair is `train/` (images) + `train_annotation/` (one JSON per image:
`file`, `image_size` [{width, height, depth}], `annotations` [{class_id, left,
top, width, height}] in pixels, `categories`). Labels become MXNet's detection
rows `[class_id, xmin, ymin, xmax, ymax]` normalised to 0..1, class ids 0-based,
padded with rows of -1 (what MultiBoxTarget ignores). Images are decoded here
(OpenCV lives in the main environment, not in the MXNet one), converted to RGB
and stretched to the network's input size, the same resize the runtime does
(`resize: stretch` in the IR metadata), then handed to the MXNet process as
.npy files.
"""
import json
import os

import numpy as np

from roadedge.core.errors import RoadedgeError, ValidationFailed

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def channel_folders(root, channel):
    """(image folder, annotation folder) of a SageMaker channel, e.g. ('root/train', 'root/train_annotation')."""
    images, annotations = os.path.join(root, channel), os.path.join(root, channel + "_annotation")
    for folder in (images, annotations):
        if not os.path.isdir(folder):
            raise RoadedgeError("{}: channel folder not found (expected SageMaker's {}/ and {}_annotation/)".format(
                folder, channel, channel))
    return images, annotations


def parse_annotation(record, where, num_classes=None):
    """One annotation JSON object -> (file name, width, height, [[cls, xmin, ymin, xmax, ymax], ...] normalised)."""
    try:
        size = record["image_size"][0]
        width, height = float(size["width"]), float(size["height"])
        name = record["file"]
        rows = []
        for obj in record["annotations"]:
            left, top = float(obj["left"]), float(obj["top"])
            xmax, ymax = left + float(obj["width"]), top + float(obj["height"])
            rows.append([int(obj["class_id"]), left / width, top / height, xmax / width, ymax / height])
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise RoadedgeError("{}: not a SageMaker object-detection annotation ({}: {})".format(
            where, type(err).__name__, err)) from None
    if width <= 0 or height <= 0:
        raise RoadedgeError("{}: image_size {}x{} is not positive".format(where, width, height))
    for row in rows:
        if row[0] < 0 or (num_classes is not None and row[0] >= num_classes):
            raise RoadedgeError("{}: class_id {} outside 0..{}".format(where, row[0], (num_classes or 1) - 1))
        row[1:] = np.clip(row[1:], 0.0, 1.0).tolist()
    return name, width, height, [row for row in rows if row[3] > row[1] and row[4] > row[2]]


def read_channel(root, channel, num_classes=None):
    """[(image path, labels float32 [K, 5])] for every annotation JSON of a channel, sorted by file name."""
    images, annotations = channel_folders(root, channel)
    samples, problems = [], []
    for json_name in sorted(n for n in os.listdir(annotations) if n.endswith(".json")):
        where = os.path.join(annotations, json_name)
        try:
            with open(where, encoding="utf-8") as handle:
                record = json.load(handle)
            name, _, _, rows = parse_annotation(record, where, num_classes)
        except ValueError as err:
            problems.append("{}: invalid JSON: {}".format(where, err))
            continue
        except RoadedgeError as err:
            problems.append(str(err))
            continue
        path = os.path.join(images, os.path.basename(name))
        if not os.path.isfile(path):
            problems.append("{}: image {} not found in {}".format(where, name, images))
            continue
        samples.append((path, np.asarray(rows, np.float32).reshape(-1, 5)))
    if problems:
        raise ValidationFailed(problems, "channel " + channel)
    if not samples:
        raise RoadedgeError("{}: no annotation JSON files".format(annotations))
    return samples


def input_size(size):
    """(width, height) of a network input given as one side (square) or (width, height)."""
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def decode_resized(path, size):
    """RGB uint8 [height, width, 3]: the image decoded and stretched to `size` (a side, or (width, height)) with
    bilinear interpolation."""
    import cv2

    frame = cv2.imread(path, cv2.IMREAD_COLOR)
    if frame is None:
        raise RoadedgeError("{}: cannot decode image".format(path))
    frame = cv2.resize(frame, input_size(size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(frame[:, :, ::-1])


def pad_labels(label_list, min_rows=1):
    """Stack ragged [K, 5] label arrays into [N, max K, 5], padding with -1 rows."""
    rows = max([min_rows] + [len(labels) for labels in label_list])
    out = np.full((len(label_list), rows, 5), -1.0, np.float32)
    for i, labels in enumerate(label_list):
        out[i, : len(labels)] = labels
    return out


def load_arrays(samples, size, progress=None):
    """(images uint8 [N, height, width, 3] RGB, labels float32 [N, K, 5]) for read_channel's samples; `size` as in
    decode_resized."""
    width, height = input_size(size)
    images = np.empty((len(samples), height, width, 3), np.uint8)
    for i, (path, _) in enumerate(samples):
        images[i] = decode_resized(path, size)
        if progress is not None:
            progress(1)
    return images, pad_labels([labels for _, labels in samples])


def prepare_channel(root, channel, size, out_prefix, num_classes=None, progress=None):
    """Write OUT_PREFIX-images.npy and OUT_PREFIX-labels.npy for a channel; returns the number of images."""
    samples = read_channel(root, channel, num_classes)
    images, labels = load_arrays(samples, size, progress)
    np.save(out_prefix + "-images.npy", images)
    np.save(out_prefix + "-labels.npy", labels)
    return len(samples)
