"""SageMaker semantic-segmentation channels -> numpy arrays for the MXNet training process.

A channel is `train/` (JPEG images) + `train_annotation/` (class-index PNGs of
the same stem, 255 = ignore), what `roadedge dataset convert-seg` writes,
listed by training.seg_data (as `roadedge eval` lists it). Images are decoded
here (OpenCV lives in the main environment, not in the MXNet one), converted
to RGB and stretched to the network's input size with the runtime's resize (`resize: stretch`, bilinear); masks are resized by
nearest neighbour. Written as PREFIX-images.npy (uint8 [N, H, W, 3]) and
PREFIX-masks.npy (uint8 [N, H, W]).
"""

import numpy as np

from roadedge.core.errors import RoadedgeError


def decode_pair(image_path, mask_path, size, num_classes):
    """(RGB uint8 [H, W, 3] stretched bilinearly, uint8 [H, W] class indices by nearest neighbour); size (W, H)."""
    import cv2

    from roadedge.core.seglabels import read_index_png

    frame = cv2.imread(image_path, cv2.IMREAD_COLOR)
    if frame is None:
        raise RoadedgeError("{}: cannot decode image".format(image_path))
    mask = read_index_png(mask_path)
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
    from training.seg_data import load_seg_data

    pairs = [(item.image, item.mask) for item in load_seg_data(root, channel)[2]]
    images = np.empty((len(pairs), size[1], size[0], 3), np.uint8)
    masks = np.empty((len(pairs), size[1], size[0]), np.uint8)
    for i, (image_path, mask_path) in enumerate(pairs):
        images[i], masks[i] = decode_pair(image_path, mask_path, size, num_classes)
        if progress is not None:
            progress(1)
    np.save(out_prefix + "-images.npy", images)
    np.save(out_prefix + "-masks.npy", masks)
    return len(pairs)
