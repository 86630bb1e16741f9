"""What a model does, picked by its metadata's `task`: one file per task (detection.py; segmentation adds a file).

A task module defines:

    TASK = "detection"                  # the metadata's task
    KIND = "detections"                 # the kind of its per-frame message (its topic and its seq)
    SECTION = "detection"               # the configuration section of its settings
    OPTIONS = {...}                     # those settings (edge.plugins.Option), unless edge/config.py owns the section
    def decoder(model, settings)        # ModelInfo + its section -> decode(raw, resize) -> results
    def annotator(model, settings)      # -> annotate(image, results, fps): the frame with the results drawn (a copy)
    def message(envelope, *, timestamp, frame_index, frame_size, model, latency_ms, results, publish_empty,
                position=None)          # the frame's v1 message (edge.messages.Envelope), or None; `position`: the
                                        # vehicle's fix when the run has GPS
    def geotag(results, geotagger, frame_size, position)
                                        # the results with their places on the road (edge.processing.geotag)
    def tracked(results)                # the detections the damage tracker follows ([] for a task without boxes)

Pure: no cameras, network or files (the import contracts say so).
"""
from edge.plugins import discover
from roadedge.core.errors import RoadedgeError


def tasks():
    """{task name: module}, found among this package's modules."""
    return discover(__name__, "TASK")


def task_for(model):
    """The task module for a ModelInfo; a one-line error naming the model and the tasks known."""
    known = tasks()
    if model.task not in known:
        raise RoadedgeError("model {}: task {!r}; this runtime runs {}".format(model.name, model.task,
                                                                            ", ".join(sorted(known))))
    return known[model.task]
