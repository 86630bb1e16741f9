"""What one class-index mask says to a remote driver: pure numpy, no S3.

  shares          per class present, the share of the frame's pixels (the runtime's class_shares)
  drivable share  the share of road-class pixels
  free distance   rows of road ahead from the bottom, in the centre band (the runtime's free_rows), and as a share
                  of the height
  obstacles       connected components (8-connectivity, same class) of non-drivable classes in the lower half of
                  the frame (rows height // 2 .. height - 1: where the road ahead is), nearest first, each with its
                  class, size, box, centroid and bearing from the camera axis

The figures are the runtime's own (edge/processing/segmentation.py, carried in the Lambda zip), so a mask gives
the same drivable share and free distance on the vehicle and in the cloud.
"""
import math
from collections import namedtuple

import numpy as np

from cloud.lambda_decode.components import label_components
from edge.processing.segmentation import class_shares, free_rows

VOID = 255  # VOC's "not scored" index: no class, never an obstacle
# The Raspberry Pi Camera Module 2's horizontal field of view, 62.2 degrees (the camera hardware page of the
# Raspberry Pi documentation: 62.2 x 48.8 degrees); the RC car's camera.
DEFAULT_HFOV_DEG = 62.2
CONNECTIVITY = 8

Settings = namedtuple("Settings", "hfov_deg min_obstacle_share max_obstacles free_band free_min_fill")
DEFAULT_SETTINGS = Settings(hfov_deg=DEFAULT_HFOV_DEG, min_obstacle_share=0.001, max_obstacles=32, free_band=0.2,
                            free_min_fill=0.5)  # free_band, free_min_fill: the runtime's segmentation defaults


class MaskError(ValueError):
    """The mask does not fit its labels (a class index without a label): decoding it again cannot help."""


def decode_mask(mask, labels, road_classes, settings=DEFAULT_SETTINGS):
    """The figures of a (H, W) uint8 class-index mask as a JSON-ready dict; `road_classes`: names among `labels`."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != np.uint8 or mask.size == 0:
        raise MaskError("a class-index mask is a non-empty 2-D uint8 array, got {} {}".format(mask.dtype, list(mask.shape)))
    labels = list(labels)
    height, width = mask.shape
    counts = np.bincount(mask.ravel(), minlength=256)
    unknown = [int(i) for i in np.flatnonzero(counts) if i >= len(labels) and i != VOID]
    if unknown:
        raise MaskError("class {} {} in the mask, but there are {} labels ({})".format(
            "index" if len(unknown) == 1 else "indices", ", ".join(map(str, unknown)), len(labels), ", ".join(labels)))
    road = np.zeros(256, bool)
    road[[labels.index(name) for name in road_classes]] = True
    shares = class_shares(mask, len(labels))
    present = sorted((i for i in range(len(labels)) if counts[i]), key=lambda i: (-counts[i], i))
    result = {"frame": {"width": int(width), "height": int(height)},
              "shares": {labels[i]: float(shares[i]) for i in present},
              "void_share": float(counts[VOID] / mask.size),
              "drivable_share": None, "free_rows": None, "free_share": None}
    if road.any():
        drivable = road[mask]
        result["drivable_share"] = float(drivable.mean())
        result["free_rows"] = free_rows(drivable, settings.free_band, settings.free_min_fill)
        result["free_share"] = result["free_rows"] / float(height)
    obstacle = ~road
    obstacle[len(labels):] = False  # VOID and anything past the labels
    result.update(find_obstacles(mask, obstacle, labels, settings))
    return result


def bearing_deg(x, width, hfov_deg):
    """Degrees from the camera axis of image column position `x` (0 = left edge, width = right edge; a pixel's centre is
    at index + 0.5) in a pinhole camera of horizontal field of view `hfov_deg`; right is positive."""
    focal = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return math.degrees(math.atan((x - width / 2.0) / focal))


def find_obstacles(mask, obstacle_lut, labels, settings):
    """{"obstacles": [...], "obstacle_count": n, "small_components": m} for the lower half of `mask`.

    Components smaller than settings.min_obstacle_share of the frame are only counted (small_components); the others
    are listed nearest first (the fewest rows between their lowest pixel and the bottom of the frame), then largest,
    at most settings.max_obstacles of them (obstacle_count says how many there were)."""
    height, width = mask.shape
    top = height // 2
    lower = mask[top:]
    found = label_components(lower, obstacle_lut[lower], CONNECTIVITY)
    share = found.pixels / float(mask.size)
    keep = np.flatnonzero(share >= settings.min_obstacle_share)
    rows_below = height - (found.y1[keep] + top)
    order = keep[np.lexsort((found.x0[keep], -found.pixels[keep], rows_below))]
    obstacles = []
    for k in order[:settings.max_obstacles]:
        x0, x1 = int(found.x0[k]), int(found.x1[k])
        y0, y1 = int(found.y0[k]) + top, int(found.y1[k]) + top
        cx, cy = float(found.cx[k]), float(found.cy[k]) + top
        obstacles.append({
            "class": labels[found.value[k]], "class_index": int(found.value[k]),
            "pixels": int(found.pixels[k]), "share": float(share[k]),
            "box": [x0, y0, x1, y1], "centroid": [cx, cy],
            "rows_below": int(height - y1),
            "bearing_deg": bearing_deg(cx + 0.5, width, settings.hfov_deg),
            "bearing_left_deg": bearing_deg(x0, width, settings.hfov_deg),
            "bearing_right_deg": bearing_deg(x1, width, settings.hfov_deg),
        })
    return {"obstacles": obstacles, "obstacle_count": int(keep.size), "small_components": int(found.count - keep.size)}
