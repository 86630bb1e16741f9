"""Segmentation training augmentation in plain numpy (runs in the MXNet environment: numpy 1.23, no OpenCV).

GluonCV's segmentation recipe: a random rescale, a random crop of the crop size
(padding with the mean colour and the ignore label where the rescaled frame
is smaller), a horizontal flip, then its normalisation RGB / 255 - mean over
std. Added: brightness / contrast / saturation jitter (the synthetic frames'
lighting varies). Images are RGB uint8 [H, W, 3], masks uint8 [H, W] class
indices with 255 = ignore; batches come out float32 NCHW and float32 [N, H, W].
"""
import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # GluonCV / ImageNet, RGB 0..1
STD = np.array([0.229, 0.224, 0.225], np.float32)
IGNORE = 255
PAD_RGB = np.round(MEAN * 255).astype(np.uint8)  # pads become ~0 after normalisation


def _axis(out_size, in_size):
    """(index0, index1, weight1) of half-pixel-centre linear interpolation along one axis (OpenCV's convention)."""
    src = (np.arange(out_size, dtype=np.float32) + 0.5) * (in_size / float(out_size)) - 0.5
    src = np.clip(src, 0, in_size - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, (src - i0).astype(np.float32)


def resize_bilinear(image, height, width):
    """uint8 [H, W, C] -> uint8 [height, width, C], bilinear with half-pixel centres."""
    y0, y1, wy = _axis(height, image.shape[0])
    x0, x1, wx = _axis(width, image.shape[1])
    img = image.astype(np.float32)
    top = img[y0][:, x0] * (1 - wx)[None, :, None] + img[y0][:, x1] * wx[None, :, None]
    bottom = img[y1][:, x0] * (1 - wx)[None, :, None] + img[y1][:, x1] * wx[None, :, None]
    out = top * (1 - wy)[:, None, None] + bottom * wy[:, None, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def resize_nearest(mask, height, width):
    """[H, W] -> [height, width] by nearest neighbour (class indices stay class indices)."""
    rows = np.minimum((np.arange(height) + 0.5) * mask.shape[0] / float(height), mask.shape[0] - 1).astype(np.int64)
    cols = np.minimum((np.arange(width) + 0.5) * mask.shape[1] / float(width), mask.shape[1] - 1).astype(np.int64)
    return mask[rows][:, cols]


def _crop_axis(out_size, in_size, scale, rng):
    """Source coordinates of a random out_size window of an axis rescaled by `scale`, and which outputs fall inside
    the rescaled frame (the rest is padding when the frame is smaller than the window)."""
    scaled = max(1, int(round(in_size * scale)))
    offset = int(rng.integers(0, scaled - out_size + 1)) if scaled > out_size else 0
    position = offset + np.arange(out_size)
    inside = position < scaled
    factor = in_size / float(scaled)
    linear = np.clip((position + 0.5) * factor - 0.5, 0, in_size - 1).astype(np.float32)
    nearest = np.minimum(((position + 0.5) * factor).astype(np.int64), in_size - 1)
    i0 = np.floor(linear).astype(np.int64)
    return i0, np.minimum(i0 + 1, in_size - 1), linear - i0, nearest, inside


def scale_crop(image, mask, rng, crop, scale_range=(0.75, 1.5)):
    """Rescale by a random factor and take a random crop x crop window (padded with the mean colour and the ignore
    label where the rescaled frame is smaller); only the window is interpolated (bilinear image, nearest mask)."""
    scale = rng.uniform(*scale_range)
    y0, y1, wy, ny, rows = _crop_axis(crop, image.shape[0], scale, rng)
    x0, x1, wx, nx, cols = _crop_axis(crop, image.shape[1], scale, rng)
    wx, wy = wx[None, :, None], wy[:, None, None]
    top = image[np.ix_(y0, x0)] * (1 - wx) + image[np.ix_(y0, x1)] * wx
    bottom = image[np.ix_(y1, x0)] * (1 - wx) + image[np.ix_(y1, x1)] * wx
    out_image = np.clip(np.round(top * (1 - wy) + bottom * wy), 0, 255).astype(np.uint8)
    out_mask = mask[np.ix_(ny, nx)]
    outside = ~(rows[:, None] & cols[None, :])
    out_image[outside] = PAD_RGB
    out_mask[outside] = IGNORE
    return out_image, out_mask


def photometric(image, rng, strength=1.0):
    """Brightness, contrast and saturation jitter; float32 0..255 out."""
    img = image.astype(np.float32)
    if strength <= 0:
        return img
    img *= 1.0 + strength * rng.uniform(-0.25, 0.25)  # brightness
    mean = img.mean()
    img = (img - mean) * (1.0 + strength * rng.uniform(-0.25, 0.25)) + mean  # contrast
    grey = img.mean(axis=2, keepdims=True)
    img = (img - grey) * (1.0 + strength * rng.uniform(-0.3, 0.3)) + grey  # saturation
    return np.clip(img, 0, 255)


def normalise(images):
    """uint8 / float RGB 0..255 [N, H, W, 3] -> float32 NCHW, GluonCV's (x / 255 - mean) / std."""
    x = np.asarray(images, np.float32) / 255.0
    return np.ascontiguousarray(((x - MEAN) / STD).transpose(0, 3, 1, 2))


def augment_batch(images, masks, rng, crop, scale_range=(0.75, 1.5), flip_p=0.5, strength=1.0):
    """(data float32 [N, 3, crop, crop] normalised, labels float32 [N, crop, crop]) for uint8 images and masks."""
    out_images = np.empty((len(images), crop, crop, 3), np.float32)
    out_masks = np.empty((len(images), crop, crop), np.float32)
    for i, (image, mask) in enumerate(zip(images, masks)):
        image, mask = scale_crop(image, mask, rng, crop, scale_range)
        if rng.uniform() < flip_p:
            image, mask = image[:, ::-1], mask[:, ::-1]
        out_images[i] = photometric(image, rng, strength)
        out_masks[i] = mask
    return normalise(out_images), out_masks


def plain_batch(images):
    """Evaluation input: the frames as they are (already at the network's size), normalised."""
    return normalise(images)


def class_weights(masks, num_classes, power=0.5, low=0.25, high=5.0):
    """Per-class loss weights (inverse pixel frequency to `power`, normalised to a pixel mean of 1, clipped);
    classes absent from the masks get weight 1."""
    counts = np.bincount(np.asarray(masks).ravel(), minlength=256)[:num_classes].astype(np.float64)
    present = counts > 0
    weights = np.ones(num_classes)
    if present.any():
        freq = counts[present] / counts[present].sum()
        raw = freq ** -power
        weights[present] = raw / float((raw * freq).sum())
    return np.clip(weights, low, high).astype(np.float32)
