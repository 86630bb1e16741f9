"""Every model output roadedge meets, decoded to one Detection type with labels from the model metadata.

- OpenVINO DetectionOutput [1, 1, N, 7]: [image_id, label, conf, x1, y1, x2, y2], ends at image_id -1.
- MXNet MultiBoxDetection [1, N, 6]: [class_id, score, xmin, ymin, xmax, ymax], class_id -1 = none.
- SageMaker endpoint JSON: {"prediction": [[class, score, xmin, ymin, xmax, ymax], ...]}.
- awscam `parseResult('ssd', ...)`: {'ssd': [{'label', 'prob', 'xmin', 'ymin', 'xmax', 'ymax'}]} in model-input pixels.

`label_offset` is what the source's label minus the 0-based class index is
(0 for IRs with MXNet-style DetectionOutput; recorded in the metadata).
"""
from __future__ import division

from collections import namedtuple

import numpy as np

# class_index: position in the model's labels (0-based); label: the class code (D40), as in the messages; box: xyxy
# normalised to the model input (decoders) or the frame (after map_to_frame); ground: its estimated place on the road
# ({lat, lon, width_m, length_m}, edge.processing.geotag) when the run has GPS and a fresh fix, else None
Detection = namedtuple("Detection", "class_index label score box ground", defaults=(None,))


class DetectionFilter(object):
    """Score thresholds (global and per class name), top-k, and the label catalogue."""

    def __init__(self, labels, min_score=0.5, class_thresholds=None, top_k=None, label_offset=0):
        self.labels = list(labels)
        self.min_score = float(min_score)
        self.class_thresholds = dict(class_thresholds or {})
        self.top_k = top_k
        self.label_offset = int(label_offset)

    def apply(self, class_ids, scores, boxes):
        """Arrays of raw labels, scores and normalised boxes -> sorted list of Detection."""
        found = []
        for raw, score, box in zip(np.asarray(class_ids).reshape(-1), np.asarray(scores).reshape(-1),
                                   np.asarray(boxes).reshape(-1, 4)):
            index = int(round(float(raw))) - self.label_offset
            if not 0 <= index < len(self.labels):
                continue
            code = self.labels[index]
            if float(score) < self.class_thresholds.get(code, self.min_score):
                continue
            found.append(Detection(index, code, float(score), tuple(float(v) for v in box)))
        found.sort(key=lambda d: -d.score)
        return found[: self.top_k] if self.top_k else found


def decode_detection_output(output, keep):
    rows = np.asarray(output, dtype=np.float64).reshape(-1, 7)
    end = np.flatnonzero(rows[:, 0] < 0)
    if len(end):
        rows = rows[: end[0]]
    return keep.apply(rows[:, 1], rows[:, 2], rows[:, 3:7])


def decode_multibox_detection(output, keep):
    rows = np.asarray(output, dtype=np.float64).reshape(-1, 6)
    rows = rows[rows[:, 0] >= 0]
    return keep.apply(rows[:, 0], rows[:, 1], rows[:, 2:6])


def decode_sagemaker_prediction(response, keep):
    """The endpoint's JSON (already parsed) -> detections."""
    rows = np.asarray(response.get("prediction", []), dtype=np.float64).reshape(-1, 6)
    rows = rows[rows[:, 0] >= 0]
    return keep.apply(rows[:, 0], rows[:, 1], rows[:, 2:6])


def decode_awscam_ssd(result, keep, input_size):
    """awscam's parseResult dict; boxes are in model-input pixels of `input_size` (width, height)."""
    items = result.get("ssd", []) if isinstance(result, dict) else []
    if not items:
        return []
    width, height = input_size
    labels = np.array([item["label"] for item in items], dtype=np.float64)
    scores = np.array([item["prob"] for item in items], dtype=np.float64)
    boxes = np.array([[item["xmin"] / width, item["ymin"] / height, item["xmax"] / width, item["ymax"] / height]
                      for item in items], dtype=np.float64)
    return keep.apply(labels, scores, boxes)


def map_to_frame(detections, resize):
    """Detections with boxes relative to the model input -> boxes relative to the frame (geometry.Resize)."""
    if not detections:
        return []
    boxes = resize.boxes_to_frame([d.box for d in detections])
    return [d._replace(box=tuple(float(v) for v in box)) for d, box in zip(detections, boxes)]
