"""Segmentation: raw masks or logits -> a class-index mask at the frame's size with its shares, drivable share and free
distance ahead; one roadedge.segmentation/1 message per frame (never the mask itself); a colour overlay with a legend.

The road classes (what counts as drivable) come from the profile's `segmentation` section; by default the
synthetic set's road surface, markings and cracks (a pothole is not drivable). A model without any of them (a
Pascal VOC model) gets no drivable share and no free distance.
"""
from edge.plugins import Option, between, list_of
from edge.processing.overlay import annotate_mask
from edge.processing.segmentation import MASK_FORMATS, MaskAnalysis
from roadedge.core.errors import RoadedgeError
from roadedge.core.seglabels import DRIVABLE_LABELS, voc_palette

TASK = "segmentation"
KIND = "segmentation"
SECTION = "segmentation"
OPTIONS = {
    "road_classes": Option(list, [], "class names that count as drivable road (empty: road, lane_marking, crosswalk "
                           "and the crack and marking damage classes the model has)", check=list_of(str)),
    "free_band": Option(float, 0.2, "width of the centre band the free distance ahead is measured in (share of the "
                        "frame's width)", check=between(0.01, 1.0)),
    "free_min_fill": Option(float, 0.5, "a row is free when at least this share of its centre band is road",
                            check=between(0.01, 1.0)),
    "overlay_alpha": Option(float, 0.45, "opacity of the class colours over the frame in the preview and recording",
                            check=between(0.0, 1.0)),
}
VOC_PALETTE_SIZE = 256
DEFAULT_ROAD_CLASSES = DRIVABLE_LABELS  # the synthetic set's road surface, markings and cracks: not potholes


def model_palette(model):
    """The metadata's palette ([[r, g, b]] per label), else VOC's colour map; checked."""
    palette = model.metadata.get("palette")
    if palette is None:
        return [tuple(colour) for colour in voc_palette(len(model.labels))]
    if not isinstance(palette, list) or len(palette) != len(model.labels) or not all(
            isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in palette):
        raise RoadedgeError("model {}: palette: expected one [r, g, b] (0-255) per label ({} labels)".format(
            model.name, len(model.labels)))
    return [tuple(color) for color in palette]


def road_indices(model, settings):
    """Class indices of the road classes: the ones asked for (each must be a class of the model), else the defaults
    the model has."""
    asked = list(settings.get("road_classes") or [])
    if asked:
        unknown = [name for name in asked if name not in model.labels]
        if unknown:
            raise RoadedgeError("segmentation.road_classes: {}: not a class of model {} (its classes: {})".format(
                ", ".join(unknown), model.name, ", ".join(model.labels)))
        return sorted(model.labels.index(name) for name in asked)
    return [index for index, name in enumerate(model.labels) if name in DEFAULT_ROAD_CLASSES]


class SegmentationDecoder(object):
    """decode(raw, resize) -> SegmentationResult at the frame's size (resize.frame_size)."""

    def __init__(self, model, settings):
        if model.output_format not in MASK_FORMATS:
            raise RoadedgeError("model {}: output.format {!r}; the segmentation task reads {}".format(
                model.name, model.output_format, " or ".join(MASK_FORMATS)))
        if len(model.labels) > VOC_PALETTE_SIZE - 1:
            raise RoadedgeError("model {}: {} labels; a class-index mask holds at most {}".format(
                model.name, len(model.labels), VOC_PALETTE_SIZE - 1))
        self.analyse = MaskAnalysis(model.labels, model_palette(model), model.output_format,
                                    road_indices(model, settings), settings["free_band"], settings["free_min_fill"])

    def __call__(self, raw, resize):
        return self.analyse(raw, resize.frame_size)


def decoder(model, settings):
    return SegmentationDecoder(model, settings)


def message(envelope, *, timestamp, frame_index, frame_size, model, latency_ms, results, publish_empty, position=None):
    """Every frame has a mask: one message per frame."""
    return envelope.segmentation(timestamp=timestamp, frame_index=frame_index, frame_size=frame_size,
                                 model_name=model.name, model_sha256=model.sha256, latency_ms=latency_ms,
                                 segmentation=results, position=position)


def geotag(results, geotagger, frame_size, position):
    """A mask has no boxes to place: the message carries the vehicle's position only."""
    return results


def tracked(results):
    """No boxes for the damage tracker."""
    return []


def annotator(model, settings):
    """(image, results, fps) -> the frame with the class colours blended in and a legend of the classes present."""
    alpha = settings["overlay_alpha"]

    def annotate(image, results, fps=None):
        return annotate_mask(image, results, fps=fps, alpha=alpha)

    return annotate
