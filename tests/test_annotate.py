"""The annotator: boxes in class colours, label tags inside the frame, legend, FPS; the input is never touched."""
import numpy as np
import pytest

from edge.processing.annotate import (
    Style,
    annotate,
    fps_rect,
    label_tag,
    label_text,
    legend_entries,
    legend_rect,
    text_color_on,
    text_mask,
)
from edge.processing.decoders import Detection
from edge.processing.geometry import to_pixels
from roadedge.core.catalog import class_color, class_name

SIZES = [(320, 180), (858, 480), (1920, 1080)]


def grey(width, height, value=90):
    return np.full((height, width, 3), value, dtype=np.uint8)


def noise(width, height, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def colour_mask(image, color):
    return np.all(image == np.array(color, dtype=np.uint8), axis=2)


def pothole(box, score=0.87):
    return Detection(5, "D40", score, box)


def test_label_text_has_code_name_and_score():
    assert label_text(pothole((0, 0, 1, 1))) == "D40 pothole / rutting / separation 0.87"
    assert label_text(Detection(0, "X99", 0.5, (0, 0, 1, 1))) == "X99 X99 0.50"  # unknown code: the code itself


@pytest.mark.parametrize("size", SIZES)
def test_box_edges_are_drawn_in_the_class_colour_with_a_thickness_that_follows_the_frame(size):
    width, height = size
    detection = pothole((0.3, 0.4, 0.7, 0.9))
    out = annotate(grey(width, height), [detection], legend=False)
    x0, y0, x1, y1 = to_pixels(detection.box, width, height)
    red = colour_mask(out, class_color("D40"))
    mid_x, mid_y = (x0 + x1) // 2, (y0 + y1) // 2
    assert red[mid_y, x0] and red[mid_y, x1] and red[y0, mid_x] and red[y1, mid_x]
    assert not red[mid_y, mid_x]  # an outline, not a filled box
    line = Style(width, height).line
    assert red[mid_y, x0:x0 + line].all() and not red[mid_y, x0 + line]
    assert red[mid_y, x1 - line + 1:x1 + 1].all() and not red[mid_y, x1 - line]
    assert line == {320: 1, 858: 1, 1920: 3}[width]


def test_sizes_are_proportional_to_the_frame():
    small, large = Style(320, 180), Style(1920, 1080)
    assert (small.dot, small.line) == (1, 1)
    assert (large.dot, large.line) == (4, 3)
    assert text_mask("D40", small.dot).shape == (9, 17)
    assert text_mask("D40", large.dot).shape == (36, 68)
    assert np.array_equal(text_mask("\u00e9"), text_mask("?"))  # outside ASCII: a question mark
    assert text_mask("").shape == (9, 0)


def test_the_input_image_is_never_modified():
    image = noise(640, 360)
    before = image.copy()
    detections = [pothole((0.1, 0.1, 0.5, 0.5)), Detection(0, "D00", 0.6, (0.4, 0.5, 0.9, 0.95))]
    out = annotate(image, detections, fps=12.5)
    assert np.array_equal(image, before)
    assert out is not image and out.shape == image.shape and out.dtype == np.uint8
    image.setflags(write=False)  # a read-only frame (e.g. from a shared buffer) works too
    assert np.array_equal(annotate(image, detections, fps=12.5), out)


@pytest.mark.parametrize("size", SIZES + [(120, 80)])
@pytest.mark.parametrize("box", [(0.0, 0.0, 0.2, 0.2), (0.8, 0.0, 1.0, 0.3), (0.9, 0.9, 1.0, 1.0),
                                 (0.0, 0.0, 1.0, 1.0), (0.98, 0.5, 1.0, 0.52)])
def test_label_tags_stay_inside_the_frame_for_boxes_at_the_edges(size, box):
    width, height = size
    style = Style(width, height)
    detection = pothole(box)
    full = label_text(detection)
    x0, y0, x1, y1, text = label_tag(to_pixels(box, width, height), full, style, width, height)
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    assert full.startswith(text) and len(text) >= 3
    if width >= 320:
        assert text == full  # the whole label fits a frame of 320 pixels and more
    assert x1 - x0 == style.text_width(text) + 2 * style.pad  # not cut by the frame edge
    assert y1 - y0 == style.text_height + 2 * style.pad
    out = annotate(grey(width, height), [detection], legend=False)
    tag = out[y0:y1, x0:x1]
    color = class_color("D40")
    assert colour_mask(tag, color).mean() > 0.5  # the filled tag
    assert colour_mask(tag, text_color_on(color)).sum() > 10  # with its text on it


def test_a_tag_sits_above_its_box_when_there_is_room():
    width, height = 858, 480
    style = Style(width, height)
    px = to_pixels((0.3, 0.5, 0.6, 0.8), width, height)
    x0, y0, x1, y1, _ = label_tag(px, "D40 pothole 0.87", style, width, height)
    assert (x0, y1) == (px[0], px[1])


def test_the_legend_lists_each_class_present_once():
    width, height = 858, 480
    detections = [pothole((0.05, 0.6, 0.3, 0.9)), Detection(0, "D00", 0.7, (0.35, 0.6, 0.5, 0.95)),
                  pothole((0.1, 0.7, 0.2, 0.8), 0.55)]
    entries = legend_entries(detections)
    assert entries == [("D00", "D00 " + class_name("D00")), ("D40", "D40 " + class_name("D40"))]
    style = Style(width, height)
    x0, y0, x1, y1 = legend_rect(entries, style, width, height)
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height and x1 > width // 2  # top right
    image = grey(width, height)
    with_legend = annotate(image, detections)[y0:y1, x0:x1]
    without = annotate(image, detections, legend=False)[y0:y1, x0:x1]
    assert np.array_equal(without, image[y0:y1, x0:x1])  # nothing else drawn there
    swatch = style.text_height ** 2
    for code in ("D00", "D40"):
        assert colour_mask(with_legend, class_color(code)).sum() >= swatch
    assert colour_mask(with_legend, class_color("D20")).sum() == 0  # absent classes are not listed
    assert colour_mask(with_legend, (255, 255, 255)).sum() > 50  # the names
    assert legend_rect([], style, width, height) is None


@pytest.mark.parametrize("size", SIZES)
def test_a_frame_without_detections_changes_only_under_the_fps_overlay(size):
    width, height = size
    image = noise(width, height, seed=3)
    plain = annotate(image, [])
    assert np.array_equal(plain, image) and plain is not image
    out = annotate(image, [], fps=29.97)
    changed = np.any(out != image, axis=2)
    style = Style(width, height)
    x0, y0, x1, y1, text = fps_rect(29.97, style, width, height)
    assert text == "30.0 FPS"
    assert changed[y0:y1, x0:x1].mean() > 0.5
    changed[y0:y1, x0:x1] = False
    assert not changed.any()
    assert x1 <= width // 4 and y1 <= height // 4  # a corner, not the middle of the road
