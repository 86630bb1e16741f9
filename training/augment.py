"""SSD training augmentation in plain numpy (runs in the MXNet environment: numpy 1.23, no OpenCV).

As SSD (Liu et al. 2016) and MXNet's example/ssd augment: a random crop that
keeps objects either well inside or out of the patch (min_object_covered style
constraints: cracks are thin, so a box-IoU constraint with the patch would
reject almost every crop), resized back to the input size; a horizontal flip;
photometric jitter (brightness, contrast, saturation, per-channel colour cast).
Images are RGB uint8 [H, W, 3] in, float32 NCHW 0-255 out; labels are rows
[class_id, xmin, ymin, xmax, ymax] normalised, -1 padded.
"""
import numpy as np

from training.data import input_size

CROP_TRIALS = 30


def box_coverage(boxes, crop):
    """Fraction of each box's area inside crop (x0, y0, x1, y1); boxes [K, 4] normalised."""
    ix = np.clip(np.minimum(boxes[:, 2], crop[2]) - np.maximum(boxes[:, 0], crop[0]), 0, None)
    iy = np.clip(np.minimum(boxes[:, 3], crop[3]) - np.maximum(boxes[:, 1], crop[1]), 0, None)
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-12)
    return ix * iy / area


def sample_crop(labels, rng, min_scale=0.35, max_aspect=1.5, keep=0.7, drop=0.05):
    """A crop (x0, y0, x1, y1) in normalised coordinates and the labels it keeps, or None when no trial fits.

    A trial is accepted when every object is either mostly inside (coverage >= keep; clipped to the crop) or
    barely touched (coverage <= drop; left out), and at least one object stays.
    """
    valid = labels[labels[:, 0] >= 0]
    if not len(valid):
        return None
    for _ in range(CROP_TRIALS):
        scale = rng.uniform(min_scale, 1.0)
        aspect = np.exp(rng.uniform(-np.log(max_aspect), np.log(max_aspect)))
        w, h = min(1.0, np.sqrt(scale * aspect)), min(1.0, np.sqrt(scale / aspect))
        x0, y0 = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
        crop = np.array([x0, y0, x0 + w, y0 + h])
        coverage = box_coverage(valid[:, 1:], crop)
        inside = coverage >= keep
        if not inside.any() or np.any((coverage > drop) & ~inside):
            continue
        kept = valid[inside].copy()
        kept[:, 1:] = np.clip(kept[:, 1:], crop[[0, 1, 0, 1]], crop[[2, 3, 2, 3]])
        kept[:, [1, 3]] = (kept[:, [1, 3]] - x0) / w
        kept[:, [2, 4]] = (kept[:, [2, 4]] - y0) / h
        return crop, kept
    return None


def resize_crop(image, crop, size):
    """Bilinear resample of the normalised crop (x0, y0, x1, y1) of image [H, W, 3] to float32 [h, w, 3] for `size`
    one side (square) or (w, h)."""
    height, width = image.shape[:2]
    out_w, out_h = input_size(size)

    def taps(start, stop, extent, size):
        centres = (start + (np.arange(size) + 0.5) * (stop - start) / size) * extent - 0.5
        centres = np.clip(centres, 0, extent - 1)
        low = np.floor(centres).astype(np.int64)
        return low, np.minimum(low + 1, extent - 1), (centres - low).astype(np.float32)

    y0, y1, wy = taps(crop[1], crop[3], height, out_h)
    x0, x1, wx = taps(crop[0], crop[2], width, out_w)
    rows = image[y0].astype(np.float32)  # separable: rows first, then columns
    rows += (image[y1] - rows) * wy[:, None, None]
    left = rows[:, x0]
    left += (rows[:, x1] - left) * wx[None, :, None]
    return left


def photometric(batch, rng, strength=1.0):
    """In place on float32 NCHW [B, 3, H, W] 0-255: saturation, contrast, brightness and a colour cast, each with
    probability 0.5, folded into one per-image affine map of each pixel and its grey value."""
    n = len(batch)

    def factor(spread):
        on = rng.random(n) < 0.5
        return np.where(on, rng.uniform(1 - spread * strength, 1 + spread * strength, n), 1.0).astype(np.float32)

    saturation, contrast = factor(0.5), factor(0.4)
    brightness = np.where(rng.random(n) < 0.5, rng.uniform(-32, 32, n) * strength, 0.0).astype(np.float32)
    cast = np.where(rng.random((n, 1)) < 0.5, rng.uniform(-12, 12, (n, 3)) * strength, 0.0).astype(np.float32)
    grey = batch.mean(axis=1, keepdims=True)
    mean = grey.mean(axis=(1, 2, 3))
    # saturation: x -> grey + s (x - grey); then contrast about the mean grey, brightness and cast
    batch *= (contrast * saturation)[:, None, None, None]
    grey *= (contrast * (1 - saturation))[:, None, None, None]
    batch += grey
    batch += ((1 - contrast) * mean + brightness)[:, None, None, None] + cast[:, :, None, None]
    np.clip(batch, 0, 255, out=batch)
    return batch


def augment_batch(images, labels, rng, size, crop_p=0.5, flip_p=0.5, strength=1.0, max_rows=None):
    """(float32 NCHW [B, 3, h, w] raw RGB, float32 [B, rows, 5]) from uint8 images and padded labels; `size` one side
    (square) or (w, h)."""
    n = len(images)
    out_w, out_h = input_size(size)
    out = np.empty((n, 3, out_h, out_w), np.float32)
    rows = max_rows or labels.shape[1]
    out_labels = np.full((n, rows, 5), -1.0, np.float32)
    for i in range(n):
        image, lab = images[i], labels[i][labels[i][:, 0] >= 0]
        sampled = sample_crop(lab, rng) if rng.random() < crop_p else None
        if sampled is not None:
            image, lab = resize_crop(image, sampled[0], size), sampled[1]
        elif image.shape[:2] != (out_h, out_w):
            image = resize_crop(image, (0.0, 0.0, 1.0, 1.0), size)
        if rng.random() < flip_p:
            image = image[:, ::-1]
            lab = lab.copy()
            lab[:, [1, 3]] = 1.0 - lab[:, [3, 1]]
        out[i] = image.transpose(2, 0, 1)
        out_labels[i, : min(rows, len(lab))] = lab[:rows]
    photometric(out, rng, strength)
    return out, out_labels


def plain_batch(images):
    """Evaluation input: float32 NCHW raw RGB, no augmentation."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).astype(np.float32))
