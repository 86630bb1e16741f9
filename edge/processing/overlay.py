"""Drawing a segmentation on a frame: the class colours blended over it, a legend of the classes present with their
shares, the free distance ahead and the FPS. Pure numpy, like annotate.py (whose font and panels it uses)."""
from __future__ import division

import numpy as np

from edge.processing.annotate import WHITE, Style, draw_color_legend, draw_fps, draw_text, fill_rect

LEGEND_ROWS = 8  # the largest classes; the rest are in the message


def blend(image, mask, palette_bgr, alpha):
    """`image` (H, W, 3) uint8 with each pixel's class colour blended in at `alpha` (integer arithmetic: a 720p
    frame costs a few milliseconds)."""
    weight = int(round(alpha * 256))
    colours = palette_bgr[mask].astype(np.uint16)
    mixed = (image.astype(np.uint16) * (256 - weight) + colours * weight) >> 8
    return mixed.astype(np.uint8)


def legend(results):
    """[(BGR colour, 'road 41%')] for the largest classes present."""
    entries = []
    for index, share in results.present()[:LEGEND_ROWS]:
        r, g, b = results.palette[index]
        entries.append(((b, g, r), "{} {:.0f}%".format(results.labels[index], 100.0 * share)))
    return entries


def draw_free_distance(image, results, style):
    """A white tick at the height the free road reaches, in the bottom centre, and its rows."""
    if results.free_rows is None:
        return
    height, width = image.shape[:2]
    y = max(0, height - results.free_rows - style.line)
    half = max(2, width // 10)
    fill_rect(image, width // 2 - half, y, width // 2 + half, y + 2 * style.line, WHITE)
    text = "free {} px".format(results.free_rows)
    draw_text(image, width // 2 - style.text_width(text) // 2, max(0, y - style.text_height - style.pad), text, WHITE,
              style.dot)


def annotate_mask(image, results, fps=None, alpha=0.45):
    """A new BGR image: the frame with the segmentation drawn on it; `image` itself is never modified."""
    out = np.array(image, dtype=np.uint8, copy=True)
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    palette_bgr = np.zeros((256, 3), np.uint8)
    palette_bgr[:len(results.palette)] = [(b, g, r) for r, g, b in results.palette]
    if alpha > 0:
        out = blend(out, results.mask, palette_bgr, alpha)
    style = Style(out.shape[1], out.shape[0])
    draw_free_distance(out, results, style)
    draw_color_legend(out, legend(results), style)
    if fps is not None:
        draw_fps(out, fps, style)
    return out
