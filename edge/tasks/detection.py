"""Detection: raw SSD outputs -> Detection list with boxes normalised to the frame; boxes drawn for the preview.

The raw output's reader comes from the model's output format; the one filter (labels, label offset, global and
per-class thresholds, top-k) is built here from the model metadata and the profile's `detection` section.
"""
from functools import partial

from edge.processing.annotate import annotate
from edge.processing.decoders import (
    DetectionFilter,
    decode_awscam_ssd,
    decode_detection_output,
    decode_multibox_detection,
    decode_sagemaker_prediction,
    map_to_frame,
)
from roadedge.core.errors import RoadedgeError

TASK = "detection"
KIND = "detections"  # its messages' kind: roadedge.detections/1 on <prefix>/detections
SECTION = "detection"  # its settings: the configuration's `detection` section (edge/config.py DETECTION)
READERS = {"detection_output": decode_detection_output, "multibox_detection": decode_multibox_detection,
           "sagemaker_json": decode_sagemaker_prediction, "awscam_ssd": decode_awscam_ssd}


class DetectionDecoder(object):
    """decode(raw, resize) -> [Detection] sorted by score, boxes normalised to the frame."""

    def __init__(self, model, settings):
        if model.output_format not in READERS:
            raise RoadedgeError("model {}: output.format {!r}; the detection task reads {}".format(
                model.name, model.output_format, ", ".join(sorted(READERS))))
        self.read = READERS[model.output_format]
        if model.output_format == "awscam_ssd":  # parseResult's boxes are in model-input pixels
            self.read = partial(decode_awscam_ssd, input_size=model.input_size)
        unknown = sorted(set(settings["class_thresholds"]) - set(model.labels))
        if unknown:
            raise RoadedgeError("detection.class_thresholds: {}: not a class of model {} (its classes: {})".format(
                ", ".join(unknown), model.name, ", ".join(model.labels)))
        self.keep = DetectionFilter(model.labels, settings["min_score"], settings["class_thresholds"],
                                    settings["top_k"] or None, model.label_offset)

    def __call__(self, raw, resize):
        found = self.read(raw, self.keep)
        return map_to_frame(found, resize) if resize.mode == "letterbox" else found


def decoder(model, settings):
    return DetectionDecoder(model, settings)


def annotator(model, settings):
    """(image, detections, fps) -> the frame with boxes, tags, legend and FPS drawn."""
    return annotate


def message(envelope, *, timestamp, frame_index, frame_size, model, latency_ms, results, publish_empty, position=None):
    """roadedge.detections/1 for a frame with detections (or every frame with `publish_empty`), else None."""
    if not results and not publish_empty:
        return None
    return envelope.detections(timestamp=timestamp, frame_index=frame_index, frame_size=frame_size,
                               model_name=model.name, model_sha256=model.sha256, latency_ms=latency_ms,
                               detections=results, position=position)


def geotag(results, geotagger, frame_size, position):
    """Each detection with its estimated place on the road (edge.processing.geotag)."""
    return geotagger.tag(results, frame_size, position)


def tracked(results):
    """The detections are what the damage tracker follows."""
    return results
