"""The detection matcher behind `convert verify` and the oracle tests, and the metadata helpers."""
import numpy as np
import pytest

from converters.verify import match_detections, mxnet_rows, openvino_rows
from roadedge.core.errors import RoadedgeError
from roadedge.core.model_metadata import default_preprocessing, labels_for
from tests import ssd_models


def rows(*items):
    return np.array(items, dtype=np.float64).reshape(-1, 6)


def test_layouts_are_read_into_one_row_format():
    mx = np.array([[[1, 0.9, 0.1, 0.2, 0.3, 0.4], [-1, 0.8, 0, 0, 1, 1], [0, 0.02, 0, 0, 1, 1]]], np.float32)
    np.testing.assert_allclose(mxnet_rows(mx, 0.05), [[1, 0.9, 0.1, 0.2, 0.3, 0.4]], rtol=1e-6)
    ov = np.array([[[[0, 2, 0.9, 0.1, 0.2, 0.3, 0.4], [0, 1, 0.5, 0, 0, 1, 1], [-1, 0, 0, 0, 0, 0, 0],
                     [0, 3, 0.99, 0, 0, 1, 1]]]], np.float32)
    got = openvino_rows(ov, 0.05, label_offset=1)  # rows after the image_id -1 terminator are ignored
    np.testing.assert_allclose(got, [[1, 0.9, 0.1, 0.2, 0.3, 0.4], [0, 0.5, 0, 0, 1, 1]], rtol=1e-6)


def test_match_requires_same_class_and_values_within_tolerance():
    reference = rows([0, 0.9, 0.1, 0.1, 0.5, 0.5], [1, 0.6, 0.2, 0.2, 0.4, 0.4])
    assert match_detections(reference, reference + [0, 5e-4, 5e-4, 0, 0, 0])["ok"]
    shifted = match_detections(reference, reference + [0, 0, 2e-3, 0, 0, 0])
    assert not shifted["ok"] and len(shifted["missing"]) == 2 and len(shifted["extra"]) == 2
    relabelled = match_detections(reference, rows([0, 0.9, 0.1, 0.1, 0.5, 0.5], [2, 0.6, 0.2, 0.2, 0.4, 0.4]))
    assert relabelled["matched"] == 1 and relabelled["missing"] == [[1, 0.6, 0.2, 0.2, 0.4, 0.4]]
    extra = match_detections(reference, np.vstack([reference, rows([0, 0.3, 0, 0, 1, 1])]))
    assert extra["extra"] == [[0, 0.3, 0, 0, 1, 1]] and not extra["ok"]


def test_scores_at_the_threshold_edge_are_not_mismatches():
    reference = rows([0, 0.0505, 0.1, 0.1, 0.5, 0.5])
    assert match_detections(reference, rows(), tolerance=1e-3, min_score=0.05)["ok"]
    assert not match_detections(rows([0, 0.06, 0.1, 0.1, 0.5, 0.5]), rows(), tolerance=1e-3, min_score=0.05)["ok"]


@pytest.mark.parametrize("tolerance", [float("nan"), float("inf"), -1.0, 1.0, 5.0])
def test_a_tolerance_that_is_not_a_finite_difference_below_1_is_refused(tolerance):
    reference = rows([0, 0.9, 0.1, 0.1, 0.5, 0.5])
    other = rows([1, 0.8, 0.6, 0.6, 0.9, 0.9])  # another model's detections: nothing in common
    with pytest.raises(RoadedgeError, match=r"^--tolerance {}: expected a largest allowed difference in \[0, 1\)$".format(
            tolerance)):
        match_detections(reference, other, tolerance=tolerance)
    with pytest.raises(RoadedgeError, match=r"^--min-score nan: expected a score in \[0, 1\]$"):
        match_detections(reference, other, min_score=float("nan"))


@pytest.mark.parametrize("column", range(6))
def test_nan_or_inf_in_either_output_is_a_mismatch_never_a_pass(column):
    reference = rows([0, 0.9, 0.1, 0.1, 0.5, 0.5], [1, 0.6, 0.2, 0.2, 0.4, 0.4])
    for bad in (np.nan, np.inf):
        broken = reference.copy()
        broken[1, column] = bad
        report = match_detections(reference, broken)
        assert not report["ok"] and report["matched"] == 1 and len(report["extra"]) == 1
        report = match_detections(broken, reference)
        assert not report["ok"] and report["matched"] == 1 and len(report["missing"]) == 1
    # and the readers keep such rows instead of dropping them as "below the threshold"
    assert len(mxnet_rows(np.array([[[0, np.nan, 0, 0, 1, 1]]]), 0.05)) == 1
    assert len(openvino_rows(np.array([[[[0, 1, np.nan, 0, 0, 1, 1]]]]), 0.05)) == 1


def test_preprocessing_follows_the_graph_and_labels_have_a_source():
    assert default_preprocessing(ssd_models.resnet())["mean"] == [0.0, 0.0, 0.0]  # bn_data normalises raw RGB
    assert default_preprocessing(ssd_models.vgg())["mean"] == [123.68, 116.779, 103.939]
    assert labels_for(2) == ["class0", "class1"]
    assert labels_for(2, hyperparams={"num_classes": "2", "class_names": '["D00", "D40"]'}) == ["D00", "D40"]
    assert labels_for(2, ["a", "b"], {"class_names": "x,y"}) == ["a", "b"]
