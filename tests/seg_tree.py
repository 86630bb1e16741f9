"""A small stand-in Pascal VOC 2012 segmentation tree: road scenes of flat shapes whose masks are exact."""
import os

import numpy as np
from PIL import Image

# class index -> RGB it is painted in (noise added); indices beyond the list are not drawn
# (the synth segmentation labels: 0 background, 1 road, 2 lane_marking, 10 sidewalk, 11 building, 12 vegetation, 13 sky)
COLOURS = {0: (90, 90, 90), 1: (70, 70, 75), 2: (235, 235, 235), 10: (150, 150, 140), 11: (160, 100, 80),
           12: (40, 120, 40), 13: (110, 200, 255)}
SKY, BUILDING, VEGETATION, SIDEWALK, ROAD, LANE = 13, 11, 12, 10, 1, 2


def scene(rng, width, height):
    """(RGB uint8 [H, W, 3], class-index mask uint8 [H, W]): sky, buildings or trees, sidewalk, road, a lane line."""
    mask = np.zeros((height, width), np.uint8)
    horizon = int(height * rng.uniform(0.35, 0.5))
    mask[:horizon] = SKY
    x = 0
    while x < width:  # roadside: buildings and vegetation of random widths up to a random height
        w = int(rng.integers(width // 8, width // 3))
        top = int(horizon * rng.uniform(0.2, 0.8))
        mask[top:horizon, x:x + w] = BUILDING if rng.uniform() < 0.5 else VEGETATION
        x += w
    rows = np.arange(horizon, height)
    spread = (rows - horizon) / max(1, height - horizon)
    centre = width * rng.uniform(0.4, 0.6)
    for row, s in zip(rows, spread):
        half_side, half_road = int(width * (0.05 + 0.7 * s)), int(width * (0.04 + 0.55 * s))
        mask[row, max(0, int(centre - half_side)):int(centre + half_side)] = SIDEWALK
        mask[row, max(0, int(centre - half_road)):int(centre + half_road)] = ROAD
        line = max(1, int(width * 0.012 * (0.3 + s)))
        mask[row, max(0, int(centre - line)):int(centre + line)] = LANE
    mask[horizon:][mask[horizon:] == SKY] = 0  # what is below the horizon and not drawn is background
    image = np.zeros((height, width, 3), np.float32)
    for index, colour in COLOURS.items():
        image[mask == index] = colour
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_voc_seg_tree(root, count=12, size=(96, 96), seed=0, val_fraction=0.25):
    """JPEGImages/, SegmentationClass/ (palette PNGs), ImageSets/Segmentation/{train,val}.txt; returns the ids."""
    rng = np.random.default_rng(seed)
    for folder in ("JPEGImages", "SegmentationClass", os.path.join("ImageSets", "Segmentation")):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    ids = ["%06d" % i for i in range(count)]
    palette = [v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 151) % 256)]
    for item in ids:
        image, mask = scene(rng, *size)
        Image.fromarray(image).save(os.path.join(root, "JPEGImages", item + ".jpg"), quality=95)
        png = Image.fromarray(mask, "L").convert("P")
        png.putpalette(palette)
        png.save(os.path.join(root, "SegmentationClass", item + ".png"))
    split = max(1, int(round(count * val_fraction)))
    sets = os.path.join(root, "ImageSets", "Segmentation")
    with open(os.path.join(sets, "train.txt"), "w") as handle:
        handle.write("\n".join(ids[split:]) + "\n")
    with open(os.path.join(sets, "val.txt"), "w") as handle:
        handle.write("\n".join(ids[:split]) + "\n")
    return ids
