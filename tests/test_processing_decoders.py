"""edge/processing: each decoder on hand-made tensors, label offsets, thresholds, and boxes back through resizing."""
import numpy as np
import pytest

from edge.processing.decoders import (
    DetectionFilter,
    decode_awscam_ssd,
    decode_detection_output,
    decode_multibox_detection,
    decode_sagemaker_prediction,
    map_to_frame,
)
from edge.processing.geometry import Resize, to_pixels

LABELS = ["D00", "D10", "D20", "D40", "D43", "D44"]


def test_openvino_detection_output_stops_at_the_terminator_and_sorts_by_score():
    output = np.array([[[[0, 3, 0.60, 0.1, 0.2, 0.3, 0.4],
                         [0, 0, 0.95, 0.5, 0.5, 0.9, 0.9],
                         [0, 5, 0.30, 0.0, 0.0, 1.0, 1.0],   # below the threshold
                         [-1, 0, 0, 0, 0, 0, 0],
                         [0, 1, 0.99, 0.0, 0.0, 1.0, 1.0]]]], np.float32)  # after the end: garbage
    found = decode_detection_output(output, DetectionFilter(LABELS, min_score=0.5))
    assert [(d.label, d.class_index) for d in found] == [("D00", 0), ("D40", 3)]
    assert found[0].score == pytest.approx(0.95) and found[1].box == pytest.approx((0.1, 0.2, 0.3, 0.4))


def test_label_offset_and_out_of_range_labels():
    output = np.array([[[[0, 1, 0.9, 0, 0, 1, 1], [0, 6, 0.8, 0, 0, 1, 1], [0, 0, 0.7, 0, 0, 1, 1]]]])
    found = decode_detection_output(output, DetectionFilter(LABELS, min_score=0.1, label_offset=1))
    assert [(d.label, d.score) for d in found] == [("D00", pytest.approx(0.9)), ("D44", pytest.approx(0.8))]


def test_mxnet_multibox_detection_skips_background_rows():
    output = np.array([[[2, 0.8, 0.1, 0.1, 0.2, 0.2], [-1, 0.99, 0, 0, 1, 1], [4, 0.55, 0.3, 0.3, 0.6, 0.5]]])
    found = decode_multibox_detection(output, DetectionFilter(LABELS, min_score=0.5))
    assert [(d.label, d.box) for d in found] == [("D20", pytest.approx((0.1, 0.1, 0.2, 0.2))),
                                                ("D43", pytest.approx((0.3, 0.3, 0.6, 0.5)))]


def test_sagemaker_endpoint_json_with_per_class_thresholds_and_top_k():
    response = {"prediction": [[3.0, 0.86, 0.30, 0.07, 0.71, 0.93], [0.0, 0.73, 0.57, 0.40, 0.82, 0.97],
                               [3.0, 0.32, 0.36, 0.03, 0.63, 0.59], [5.0, 0.22, 0.61, 0.57, 0.88, 0.89]]}
    keep = DetectionFilter(LABELS, min_score=0.5, class_thresholds={"D44": 0.2})
    assert [d.label for d in decode_sagemaker_prediction(response, keep)] == ["D40", "D00", "D44"]
    keep.top_k = 2
    assert [d.score for d in decode_sagemaker_prediction(response, keep)] == [0.86, 0.73]
    assert decode_sagemaker_prediction({"prediction": []}, keep) == []


def test_awscam_parse_result_in_input_pixels():
    result = {"ssd": [{"label": 4, "prob": 0.9, "xmin": 30, "ymin": 60, "xmax": 150, "ymax": 240},
                      {"label": 1, "prob": 0.4, "xmin": 0, "ymin": 0, "xmax": 300, "ymax": 300}]}
    found = decode_awscam_ssd(result, DetectionFilter(LABELS, min_score=0.5, label_offset=1), (300, 300))
    assert len(found) == 1 and found[0].label == "D40" and found[0].box == pytest.approx((0.1, 0.2, 0.5, 0.8))
    assert decode_awscam_ssd({}, DetectionFilter(LABELS), (300, 300)) == []


def test_stretch_keeps_normalised_boxes_and_letterbox_undoes_the_padding():
    stretch = Resize((1280, 720), (300, 300), "stretch")
    assert stretch.boxes_to_frame([[0.1, 0.2, 0.5, 1.2]]).tolist() == [[0.1, 0.2, 0.5, 1.0]]
    letterbox = Resize((1280, 720), (300, 300), "letterbox")
    # 1280x720 -> 300x168.75, centred: 65.625 px of padding above and below
    assert letterbox.scale == pytest.approx((300 / 1280, 300 / 1280))
    assert letterbox.offset == pytest.approx((0.0, 65.625))
    top_of_content = 65.625 / 300
    bottom_of_content = (65.625 + 168.75) / 300
    mapped = letterbox.boxes_to_frame([[0.25, top_of_content, 0.75, bottom_of_content]])
    np.testing.assert_allclose(mapped, [[0.25, 0.0, 0.75, 1.0]], atol=1e-12)
    found = decode_detection_output(np.array([[0, 0, 0.9, 0.5, 0.5, 0.6, 0.6]]), DetectionFilter(LABELS))
    moved = map_to_frame(found, letterbox)[0]
    assert moved.box[0] == pytest.approx(0.5) and moved.box[1] == pytest.approx((0.5 * 300 - 65.625) / 168.75)
    with pytest.raises(ValueError, match="resize mode 'crop'"):
        Resize((10, 10), (5, 5), "crop")


def test_to_pixels_clips_into_the_frame():
    assert to_pixels((0.0, 0.5, 1.0, 1.5), 641, 481) == (0, 240, 640, 480)


def test_processing_imports_nothing_that_does_io():
    import ast
    import os

    import edge.processing

    allowed = {"__future__", "collections", "math", "numpy", "edge", "roadedge"}
    folder = os.path.dirname(edge.processing.__file__)
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                tree = ast.parse(handle.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    roots = {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom):
                    roots = {(node.module or "").split(".")[0]}
                else:
                    continue
                assert roots <= allowed, (name, roots)
