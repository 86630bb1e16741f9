"""Drawing detections on a frame: boxes, label tags, a legend and an FPS overlay. Pure numpy.

Nothing here imports cv2 (edge/processing imports no camera, file or network
library, and cv2 is all three): rectangles are array slices and text comes
from the built-in 5x7 bitmap font below (5x9 with descenders), scaled by whole pixels so it stays
crisp from 320x180 to 1920x1080. Sizes follow the shorter side of the frame
(`Style`). Colours are BGR, from the label catalogue (roadedge.core.catalog).
"""
from __future__ import division

import numpy as np

from edge.processing.geometry import to_pixels
from roadedge.core.catalog import class_color, class_name

# Printable ASCII 32..126: 9 rows per glyph (7 above the baseline, 2 for descenders),
# one base-32 digit per row (5 bits, the leftmost pixel is 16).
_FONT = (
    "000000000444440400AAA000000AAVAVAA004FKE5U400OP248J300CIK8LID00448000000248884200842"
    "22480004LEL4000044V4400000000CC48000V0000000000CC0001248G000EHJLPHE004C4444E00EH1248"
    "V00V2421HE0026AIV2200VGU11HE0068GUHHE00V12488800EHHEHHE00EHHF12C000CC0CC0000CC0C4800"
    "248G8420000V0V0000842124800EH1240400EH1DLLE00EHHVHHH00UHHUHHU00EHGGGHE00SIHHHIS00VGG"
    "UGGV00VGGUGGG00EHGNHHF00HHHVHHH00E44444E0072222IC00HIKOKIH00GGGGGGV00HRLLHHH00HHPLJH"
    "H00EHHHHHE00UHHUGGG00EHHHLID00UHHUKIH00FGGE11U00V44444400HHHHHHE00HHHHHA400HHHLLLA00"
    "HHA4AHH00HHHA44400V1248GV00E88888E000G8421000E22222E004AH000000000000V0084200000000E"
    "1FHF00GGMPHHU0000EGGHE0011DJHHF0000EHVGE00698S8880000FHHHF1EGGMPHHH0040C444E00206222"
    "2ICGGIKOKI00C44444E0000QLLHH0000MPHHH0000EHHHE0000UHHHUGG00FHHHF1100MPGGG0000EGE1U00"
    "88S88960000HHHJD0000HHHA40000HHLLA0000HA4AH0000HHHHF1E00V248V00244844200444444400844"
    "244800008L20000"
)
GLYPH_WIDTH, GLYPH_HEIGHT = 5, 9
_ROWS = np.array([int(c, 32) for c in _FONT], dtype=np.uint8).reshape(-1, GLYPH_HEIGHT)
_GLYPHS = ((_ROWS[:, :, None] >> np.arange(GLYPH_WIDTH - 1, -1, -1, dtype=np.uint8)) & 1).astype(bool)
_UNKNOWN = ord("?") - 32

WHITE, BLACK = (255, 255, 255), (0, 0, 0)


class Style(object):
    """Line, font and spacing sizes for one frame size, proportional to its shorter side.

    `dot` is the size of one font pixel (9*dot is the text height), `line` the box thickness:
    320x180 -> dot 1, line 1; 858x480 -> 2, 1; 1280x720 -> 3, 2; 1920x1080 -> 4, 3.
    """

    def __init__(self, width, height):
        short = max(1, min(int(width), int(height)))
        self.dot = max(1, int(round(short / 270.0)))
        self.line = max(1, int(round(short / 360.0)))
        self.pad = self.dot + (self.dot + 1) // 2
        self.margin = 2 * self.pad
        self.text_height = GLYPH_HEIGHT * self.dot
        self.advance = (GLYPH_WIDTH + 1) * self.dot

    def text_width(self, text):
        return max(0, len(text) * self.advance - self.dot)

    def fit(self, text, width):
        """`text` cut to at most `width` pixels."""
        keep = max(0, (int(width) + self.dot) // self.advance)
        return text if len(text) <= keep else text[:keep]


def text_mask(text, dot=1):
    """Boolean mask (9*dot, (6*len-1)*dot) of `text` in the bitmap font; characters outside ASCII print as '?'."""
    codes = [ord(c) - 32 if 32 <= ord(c) < 127 else _UNKNOWN for c in text]
    if not codes:
        return np.zeros((GLYPH_HEIGHT * dot, 0), dtype=bool)
    glyphs = np.zeros((len(codes), GLYPH_HEIGHT, GLYPH_WIDTH + 1), dtype=bool)
    glyphs[:, :, :GLYPH_WIDTH] = _GLYPHS[codes]
    mask = glyphs.transpose(1, 0, 2).reshape(GLYPH_HEIGHT, -1)[:, :-1]
    if dot > 1:
        mask = mask.repeat(dot, axis=0).repeat(dot, axis=1)
    return mask


def _clip(image, x0, y0, x1, y1):
    height, width = image.shape[:2]
    return max(0, int(x0)), max(0, int(y0)), min(width, int(x1)), min(height, int(y1))


def fill_rect(image, x0, y0, x1, y1, color):
    """Fill [x0, x1) x [y0, y1), clipped to the image, in place."""
    x0, y0, x1, y1 = _clip(image, x0, y0, x1, y1)
    if x1 > x0 and y1 > y0:
        image[y0:y1, x0:x1] = color


def darken_rect(image, x0, y0, x1, y1, keep=0.45):
    """Scale [x0, x1) x [y0, y1) towards black (a translucent panel), in place."""
    x0, y0, x1, y1 = _clip(image, x0, y0, x1, y1)
    if x1 > x0 and y1 > y0:
        region = image[y0:y1, x0:x1].astype(np.uint16) * int(round(keep * 256))
        image[y0:y1, x0:x1] = (region >> 8).astype(image.dtype)


def draw_box(image, x0, y0, x1, y1, color, thickness):
    """Outline of the pixel box with corners (x0, y0) and (x1, y1) included, drawn inside the box, in place."""
    t = max(1, int(thickness))
    fill_rect(image, x0, y0, x1 + 1, min(y0 + t, y1 + 1), color)
    fill_rect(image, x0, max(y1 + 1 - t, y0), x1 + 1, y1 + 1, color)
    fill_rect(image, x0, y0, min(x0 + t, x1 + 1), y1 + 1, color)
    fill_rect(image, max(x1 + 1 - t, x0), y0, x1 + 1, y1 + 1, color)


def draw_text(image, x, y, text, color, dot=1):
    """Text with its top-left corner at (x, y), clipped to the image, in place."""
    mask = text_mask(text, dot)
    height, width = image.shape[:2]
    mh, mw = mask.shape
    cx0, cy0 = max(0, -int(x)), max(0, -int(y))
    cx1, cy1 = min(mw, width - int(x)), min(mh, height - int(y))
    if cx1 <= cx0 or cy1 <= cy0:
        return
    region = image[int(y) + cy0:int(y) + cy1, int(x) + cx0:int(x) + cx1]
    region[mask[cy0:cy1, cx0:cx1]] = color


def text_color_on(color):
    """Black or white, whichever reads better on a BGR background colour."""
    blue, green, red = color[:3]
    return BLACK if 0.114 * blue + 0.587 * green + 0.299 * red > 140 else WHITE


def label_text(detection):
    """'D40 pothole / rutting / separation 0.87'."""
    return "{} {} {:.2f}".format(detection.label, class_name(detection.label), float(detection.score))


def label_tag(box, text, style, width, height):
    """Where the label of a pixel box goes: (x0, y0, x1, y1, text), exclusive ends, inside the frame.

    The tag sits on the box's top edge, or just inside the box when there is no room above; it
    moves left to stay in the frame and its text is cut when the frame is narrower than the tag.
    """
    bx0, by0 = box[0], box[1]
    text = style.fit(text, width - 2 * style.pad)
    tag_w = style.text_width(text) + 2 * style.pad
    tag_h = style.text_height + 2 * style.pad
    x0 = max(0, min(bx0, width - tag_w))
    y0 = by0 - tag_h if by0 - tag_h >= 0 else by0
    y0 = max(0, min(y0, height - tag_h))
    return x0, y0, min(width, x0 + tag_w), min(height, y0 + tag_h), text


def legend_entries(detections):
    """The class codes present, sorted, with their human names: [(code, 'D40 pothole / ...'), ...]."""
    codes = sorted(set(d.label for d in detections))
    return [(code, "{} {}".format(code, class_name(code))) for code in codes]


def legend_rect(entries, style, width, height):
    """(x0, y0, x1, y1) of the legend panel in the top-right corner, or None without entries."""
    if not entries:
        return None
    swatch = style.text_height
    text_w = max(style.text_width(text) for _, text in entries)
    panel_w = min(width, style.pad * 3 + swatch + text_w + style.pad)
    panel_h = min(height, style.pad + len(entries) * (swatch + style.pad))
    x1 = max(panel_w, width - style.margin)
    y0 = min(style.margin, max(0, height - panel_h))
    return x1 - panel_w, y0, x1, y0 + panel_h


def draw_legend(image, entries, style):
    """The legend of class codes: [(code, text)] with the catalogue's colours."""
    draw_color_legend(image, [(class_color(code), text) for code, text in entries], style)


def draw_color_legend(image, entries, style):
    """A legend panel top right: [(BGR colour, text)], one swatch and line each."""
    height, width = image.shape[:2]
    rect = legend_rect(entries, style, width, height)
    if rect is None:
        return
    x0, y0, x1, y1 = rect
    darken_rect(image, x0, y0, x1, y1)
    swatch = style.text_height
    y = y0 + style.pad
    for color, text in entries:
        if y + swatch > y1:
            break
        fill_rect(image, x0 + style.pad, y, x0 + style.pad + swatch, y + swatch, color)
        tx = x0 + 2 * style.pad + swatch
        draw_text(image, tx, y, style.fit(text, x1 - tx - style.pad), WHITE, style.dot)
        y += swatch + style.pad


def fps_rect(fps, style, width, height):
    """(x0, y0, x1, y1, text) of the FPS overlay in the top-left corner."""
    text = style.fit("{:.1f} FPS".format(float(fps)), width - 2 * style.pad)
    x0 = y0 = min(style.margin, max(0, min(width, height) // 8))
    return (x0, y0, min(width, x0 + style.text_width(text) + 2 * style.pad),
            min(height, y0 + style.text_height + 2 * style.pad), text)


def annotate(image, detections, fps=None, legend=True):
    """A new BGR image with the detections drawn on it; `image` itself is never modified.

    `detections`: edge.processing.decoders.Detection with boxes normalised to the frame
    (`label` is the class code). Boxes first, then the legend (classes present in this frame,
    top right), then the label tags over both, and the FPS top left when `fps` is given.
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    height, width = out.shape[:2]
    style = Style(width, height)
    placed = []
    for detection in detections:
        box = to_pixels(detection.box, width, height)
        color = class_color(detection.label)
        draw_box(out, box[0], box[1], box[2], box[3], color, style.line)
        placed.append((box, color, label_text(detection)))
    if legend:
        draw_legend(out, legend_entries(detections), style)
    for box, color, text in placed:
        x0, y0, x1, y1, text = label_tag(box, text, style, width, height)
        fill_rect(out, x0, y0, x1, y1, color)
        draw_text(out, x0 + style.pad, y0 + style.pad, text, text_color_on(color), style.dot)
    if fps is not None:
        draw_fps(out, fps, style)
    return out


def draw_fps(image, fps, style):
    height, width = image.shape[:2]
    x0, y0, x1, y1, text = fps_rect(fps, style, width, height)
    darken_rect(image, x0, y0, x1, y1)
    draw_text(image, x0 + style.pad, y0 + style.pad, text, WHITE, style.dot)
