"""SageMaker semantic-segmentation channels -> numpy arrays for the MXNet training process.

A channel is `train/` (JPEG images) + `train_annotation/` (class-index PNGs of
the same stem, 255 = ignore), what `roadedge dataset convert-seg` writes.
Images are decoded here (OpenCV lives in the main environment, not in the
MXNet one), converted to RGB and stretched to the network's input size with
the runtime's resize (`resize: stretch`, bilinear); masks are resized by
nearest neighbour. Written as PREFIX-images.npy (uint8 [N, H, W, 3]) and
PREFIX-masks.npy (uint8 [N, H, W]).
"""
import os

import numpy as np

from roadedge.core.errors import RoadedgeError, ValidationFailed

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_seg_channel(root, channel):
    """[(image path, mask path)] of a SageMaker segmentation channel, sorted by name; every problem reported."""
    images, masks = os.path.join(root, channel), os.path.join(root, channel + "_annotation")
    for folder in (images, masks):
        if not os.path.isdir(folder):
            raise RoadedgeError("{}: channel folder not found (expected SageMaker's {}/ and {}_annotation/)".format(
                folder, channel, channel))
    pairs, problems = [], []
    for name in sorted(os.listdir(images)):
        stem, suffix = os.path.splitext(name)
        if suffix.lower() not in IMAGE_SUFFIXES:
            continue
        mask = os.path.join(masks, stem + ".png")
        if not os.path.isfile(mask):
            problems.append("{}: no mask {} for it".format(os.path.join(images, name), mask))
            continue
        pairs.append((os.path.join(images, name), mask))
    if problems:
        raise ValidationFailed(problems, "channel " + channel)
    return pairs


def decode_pair(image_path, mask_path, size, num_classes):
    """(RGB uint8 [H, W, 3] stretched bilinearly, uint8 [H, W] class indices by nearest neighbour); size (W, H)."""
    import cv2
    from PIL import Image

    frame = cv2.imread(image_path, cv2.IMREAD_COLOR)
    if frame is None:
        raise RoadedgeError("{}: cannot decode image".format(image_path))
    with Image.open(mask_path) as png:
        if png.mode not in ("P", "L"):
            raise RoadedgeError("{}: mode {} (expected a class-index PNG: palette 'P' or grayscale 'L')".format(
                mask_path, png.mode))
        mask = np.array(png, dtype=np.uint8)
    if mask.shape != frame.shape[:2]:
        raise RoadedgeError("{}: mask is {}x{}, its image {}x{}".format(mask_path, mask.shape[1], mask.shape[0],
                                                                         frame.shape[1], frame.shape[0]))
    bad = (mask >= num_classes) & (mask != 255)
    if bad.any():
        raise RoadedgeError("{}: pixel value {} (expected class ids 0..{} or 255)".format(
            mask_path, int(mask[bad].max()), num_classes - 1))
    frame = cv2.resize(frame, tuple(size), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(mask, tuple(size), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(frame[:, :, ::-1]), mask


def prepare_seg_channel(root, channel, size, out_prefix, num_classes, progress=None):
    """Write OUT_PREFIX-images.npy and OUT_PREFIX-masks.npy for a channel at size (W, H); returns the image count."""
    pairs = read_seg_channel(root, channel)
    images = np.empty((len(pairs), size[1], size[0], 3), np.uint8)
    masks = np.empty((len(pairs), size[1], size[0]), np.uint8)
    for i, (image_path, mask_path) in enumerate(pairs):
        images[i], masks[i] = decode_pair(image_path, mask_path, size, num_classes)
        if progress is not None:
            progress(1)
    np.save(out_prefix + "-images.npy", images)
    np.save(out_prefix + "-masks.npy", masks)
    return len(pairs)
