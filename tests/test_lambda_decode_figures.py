"""The decoding Lambda's figures on generated masks with known answers: connected components against a plain flood
fill (hypothesis), shares, drivable share and free distance equal to the runtime's, obstacles' boxes, order and
bearings."""
import math
from collections import deque

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cloud.lambda_decode.components import label_components
from cloud.lambda_decode.figures import DEFAULT_SETTINGS, MaskError, bearing_deg, decode_mask
from edge.processing.segmentation import MaskAnalysis
from roadedge.core.seglabels import DRIVABLE_LABELS, SYNTH_SEG_LABELS

LABELS = list(SYNTH_SEG_LABELS)
ROAD = [name for name in LABELS if name in DRIVABLE_LABELS]
R, BG, POLE, SIDEWALK, POTHOLE = (LABELS.index(n) for n in ("road", "background", "pole", "sidewalk", "D40"))


def flood_fill(values, valid, connectivity):
    """Reference labelling: breadth-first search from each unlabelled valid pixel in raster order."""
    height, width = values.shape
    labels = np.full(values.shape, -1, np.int64)
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    count = 0
    for y in range(height):
        for x in range(width):
            if not valid[y, x] or labels[y, x] >= 0:
                continue
            labels[y, x] = count
            queue = deque([(y, x)])
            while queue:
                cy, cx = queue.popleft()
                for dy, dx in steps:
                    ny, nx = cy + dy, cx + dx
                    if (0 <= ny < height and 0 <= nx < width and valid[ny, nx] and labels[ny, nx] < 0
                            and values[ny, nx] == values[cy, cx]):
                        labels[ny, nx] = count
                        queue.append((ny, nx))
            count += 1
    return labels, count


@given(values=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, max_side=14), elements=st.integers(0, 3)),
       connectivity=st.sampled_from([4, 8]))
def test_components_match_a_flood_fill(values, connectivity):
    valid = values != 0
    found = label_components(values, valid, connectivity)
    expected, count = flood_fill(values, valid, connectivity)
    assert found.count == count
    assert np.array_equal(found.label_image(), expected)  # both number components in raster order of their first pixel
    for k in range(count):
        ys, xs = np.nonzero(expected == k)
        assert found.pixels[k] == ys.size
        assert found.value[k] == values[ys[0], xs[0]]
        assert (found.x0[k], found.y0[k], found.x1[k], found.y1[k]) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert found.cx[k] == pytest.approx(xs.mean()) and found.cy[k] == pytest.approx(ys.mean())


def test_components_of_a_diagonal_and_a_spiral():
    diagonal = np.eye(6, dtype=np.uint8)
    assert label_components(diagonal, diagonal > 0, 8).count == 1
    assert label_components(diagonal, diagonal > 0, 4).count == 6
    spiral = np.zeros((15, 15), np.uint8)  # one path whose runs join from both ends: several rounds of merging
    y, x, dy, dx, left = 0, 0, 0, 1, 15 * 15
    for length in [14, 14, 14, 12, 12, 10, 10, 8, 8, 6, 6, 4, 4, 2, 2]:
        for _ in range(length):
            spiral[y, x] = 1
            y, x = y + dy, x + dx
        dy, dx = dx, -dy
        left -= length
    spiral = spiral[:, ::-1].copy()
    found = label_components(spiral, spiral > 0, 4)
    assert found.count == 1 and found.pixels[0] == spiral.sum()
    assert label_components(spiral, np.zeros_like(spiral, bool), 8).count == 0
    with pytest.raises(ValueError, match="connectivity 6"):
        label_components(spiral, spiral > 0, 6)


def scene(height=80, width=120):
    """Background above, road below, a pole ahead-left, a pothole straight ahead, a sidewalk strip on the right."""
    mask = np.full((height, width), R, np.uint8)
    mask[:30] = BG
    mask[50:60, 20:30] = POLE       # 100 px, lowest row 59: 20 rows above the bottom
    mask[66:70, 50:70] = POTHOLE    # 80 px, centred: 10 rows above the bottom
    mask[40:, 110:] = SIDEWALK      # straddles the middle (row 40): counted from row 40 on, touches the bottom
    mask[45, 5] = POLE              # 1 px: below the minimum size
    return mask


def test_figures_of_a_known_scene():
    mask = scene()
    result = decode_mask(mask, LABELS, ROAD)
    counts = {BG: 30 * 120, POLE: 101, POTHOLE: 80, SIDEWALK: 400}
    counts[R] = mask.size - sum(counts.values())
    assert result["frame"] == {"width": 120, "height": 80}
    assert result["shares"] == {LABELS[k]: pytest.approx(n / mask.size) for k, n in counts.items()}
    assert list(result["shares"]) == ["road", "background", "sidewalk", "pole", "D40"]  # largest first
    assert result["drivable_share"] == pytest.approx(counts[R] / mask.size)
    assert result["free_rows"] == 10 and result["free_share"] == pytest.approx(10 / 80)  # the pothole blocks the band
    assert result["void_share"] == 0.0
    obstacles = result["obstacles"]
    assert [(o["class"], o["box"], o["pixels"], o["rows_below"]) for o in obstacles] == [
        ("sidewalk", [110, 40, 120, 80], 400, 0), ("D40", [50, 66, 70, 70], 80, 10), ("pole", [20, 50, 30, 60], 100, 20)]
    assert result["obstacle_count"] == 3 and result["small_components"] == 1
    pothole, pole = obstacles[1], obstacles[2]
    assert pothole["centroid"] == [59.5, 67.5] and pothole["bearing_deg"] == pytest.approx(0.0)
    assert pothole["bearing_left_deg"] == pytest.approx(-pothole["bearing_right_deg"])
    focal = 60 / math.tan(math.radians(62.2 / 2))
    assert pole["bearing_deg"] == pytest.approx(math.degrees(math.atan((25 - 60) / focal)))
    assert pole["share"] == pytest.approx(100 / mask.size)


def test_bearing_spans_the_field_of_view():
    assert bearing_deg(0, 640, 62.2) == pytest.approx(-31.1)
    assert bearing_deg(640, 640, 62.2) == pytest.approx(31.1)
    assert bearing_deg(320, 640, 90.0) == 0.0
    assert bearing_deg(480, 640, 90.0) == pytest.approx(math.degrees(math.atan(0.5)))


def test_size_limit_count_limit_and_field_of_view_settings():
    mask = scene()
    result = decode_mask(mask, LABELS, ROAD, DEFAULT_SETTINGS._replace(min_obstacle_share=90 / mask.size, max_obstacles=1,
                                                                       hfov_deg=90.0))
    assert [o["class"] for o in result["obstacles"]] == ["sidewalk"]
    assert result["obstacle_count"] == 2 and result["small_components"] == 2  # the pothole (80 px) and the 1-px pole
    assert result["obstacles"][0]["bearing_right_deg"] == pytest.approx(45.0)
    everything = decode_mask(mask, LABELS, ROAD, DEFAULT_SETTINGS._replace(min_obstacle_share=0.0))
    assert everything["obstacle_count"] == 4 and everything["small_components"] == 0
    assert everything["obstacles"][-1]["box"] == [5, 45, 6, 46]  # farthest from the bottom: last


def test_road_classes_void_and_labels_that_do_not_fit():
    mask = scene()
    mask[70:, :10] = 255  # VOC's void: no class, no obstacle
    result = decode_mask(mask, LABELS, ROAD)
    assert result["void_share"] == pytest.approx(100 / mask.size) and "255" not in result["shares"]
    assert all(o["box"][0] >= 10 or o["box"][3] <= 70 for o in result["obstacles"])
    no_road = decode_mask(mask, LABELS, [])
    assert (no_road["drivable_share"], no_road["free_rows"], no_road["free_share"]) == (None, None, None)
    assert "road" in [o["class"] for o in no_road["obstacles"]]
    with pytest.raises(MaskError, match="class indices 7, 10, 14 in the mask, but there are 3 labels"):
        decode_mask(mask, ["background", "road", "lane_marking"], ["road"])
    with pytest.raises(MaskError, match="2-D uint8"):
        decode_mask(mask.astype(np.int32), LABELS, ROAD)


def test_drivable_share_and_free_distance_are_the_runtimes():
    rng = np.random.default_rng(7)
    mask = scene(90, 160)
    mask[rng.random(mask.shape) < 0.05] = POTHOLE
    runtime = MaskAnalysis(LABELS, None, "segmentation_mask", [LABELS.index(n) for n in ROAD])(mask[None, None], (160, 90))
    result = decode_mask(mask, LABELS, ROAD)
    assert result["drivable_share"] == runtime.drivable and result["free_rows"] == runtime.free_rows
    assert result["shares"] == {LABELS[i]: s for i, s in runtime.present()}
