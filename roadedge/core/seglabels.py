"""Semantic segmentation labels: the synthetic road scene's classes, the VOC 2012 palette, class-index PNGs.

The one place that defines the class list of `roadedge synth --segmentation`
(index = pixel value of its masks) and the colours masks are drawn in. The
runtime looks its default road classes up here by name, training writes the
list into the model's metadata.
"""
import io

import numpy as np

from roadedge.core.catalog import SYNTH_CLASSES
from roadedge.core.errors import RoadedgeError

IGNORE = 255  # VOC: void / "do not score" pixels in SegmentationClass PNGs

SYNTH_SEG_LABELS = ("background", "road", "lane_marking", "crosswalk") + tuple(SYNTH_CLASSES) + (
    "sidewalk", "building", "vegetation", "sky", "pole")

# the road surface: the road and everything painted or broken on it
ROAD_SURFACE_LABELS = ("road", "lane_marking", "crosswalk") + tuple(SYNTH_CLASSES)
# what a car may drive on (the runtime's default road classes): the surface, except potholes
DRIVABLE_LABELS = tuple(label for label in ROAD_SURFACE_LABELS if label != "D40")


def label_index(name, labels=SYNTH_SEG_LABELS):
    """Class index of a label name; RoadedgeError naming the known labels otherwise."""
    try:
        return list(labels).index(name)
    except ValueError:
        raise RoadedgeError("unknown segmentation label %r; known: %s" % (name, ", ".join(labels))) from None


def voc_palette(count=256):
    """The Pascal VOC 2012 colour map: `count` RGB triples (list of lists); index 255 is (224, 224, 192)."""
    colours = []
    for index in range(count):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        colours.append([r, g, b])
    return colours


def _flat_palette(palette):
    flat = [int(v) for colour in palette for v in colour][:768]
    if len(palette) < 256:
        flat += [int(v) for colour in voc_palette(256)[len(palette):] for v in colour]
    return flat


def index_png_bytes(mask, palette=None, compress_level=6):
    """PNG bytes of a 2-D uint8 class-index mask as a palette ('P') image; palette default: VOC (255 stays void)."""
    from PIL import Image

    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError("a class-index mask is a 2-D uint8 array, got %s %s" % (mask.dtype, mask.shape))
    image = Image.frombytes("P", (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask).tobytes())
    image.putpalette(_flat_palette(palette or voc_palette(256)))
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=compress_level)
    return buf.getvalue()


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_index_png(data):
    """The class indices of a palette ('P') or grayscale ('L') PNG's bytes as a 2-D uint8 array (not its colours); a
    ValueError saying what the bytes are instead (not a PNG, unreadable, another mode)."""
    from PIL import Image

    if not bytes(data[:8]) == PNG_SIGNATURE:
        raise ValueError("not a PNG file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.mode not in ("P", "L"):
                raise ValueError("PNG of mode {}; expected a class-index mask (palette 'P' or grayscale 'L')".format(
                    image.mode))
            return np.array(image, dtype=np.uint8)
    except (OSError, SyntaxError) as err:  # truncated or corrupt data
        raise ValueError("unreadable PNG ({})".format(" ".join(str(err).split()) or type(err).__name__)) from None


def read_index_png(path):
    """The class indices of a palette ('P') or grayscale ('L') PNG as a 2-D uint8 array (not its colours)."""
    from PIL import Image

    with Image.open(path) as image:
        if image.mode not in ("P", "L"):
            raise RoadedgeError("%s: mode %s (expected a class-index PNG: palette 'P' or grayscale 'L')" % (path, image.mode))
        return np.array(image, dtype=np.uint8)
