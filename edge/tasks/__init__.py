"""What a model does, picked by its metadata's `task`: one file per task (detection.py; segmentation adds a file).

A task module defines:

    TASK = "detection"                  # the metadata's task
    def decoder(model, settings)        # ModelInfo + the profile's `detection` section -> decode(raw, resize) -> results
    def annotate(image, results, fps)   # the frame with the results drawn (BGR, a copy)

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
