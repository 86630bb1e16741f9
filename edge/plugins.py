"""One file per source, backend and sink, selected by the `type:` key of its profile section.

A plugin module defines:

    TYPE = "opencv"                         # the value of `type:`
    OPTIONS = {"uri": Option(str, "sample", "what it means"), ...}
    def open(options, context): ...         # options: validated dict (defaults filled in) -> the object

`edge.config` validates a section against OPTIONS (unknown keys, wrong types)
before anything is opened, so a bad profile is one line naming the key.
Plugins import their device or network libraries inside `open`, never at
module level: the registry must import on a DeepLens (Python 3.7, numpy and
cv2 only).
"""
import copy
import importlib
from collections import namedtuple

Option = namedtuple("Option", "type default help")

KINDS = {
    "source": {"opencv": "edge.sources.opencv", "images": "edge.sources.images", "synthetic": "edge.sources.synthetic",
               "awscam": "edge.sources.awscam", "picamera2": "edge.sources.picamera2"},
    "backend": {"openvino": "edge.backends.openvino", "awscam": "edge.backends.awscam", "mxnet": "edge.backends.mxnet"},
    "sink": {"jsonl": "edge.sinks.jsonl", "mjpeg": "edge.sinks.mjpeg", "fifo": "edge.sinks.fifo",
             "record": "edge.sinks.record", "mqtt": "edge.sinks.mqtt", "greengrass": "edge.sinks.greengrass",
             "s3": "edge.sinks.s3"},
}


def plugin(kind, type_name):
    """The module implementing `type_name` of `kind` ('source', 'backend', 'sink'); KeyError if unknown."""
    return importlib.import_module(KINDS[kind][type_name])


def register(kind, type_name, module_name):
    """Add a plugin (issue-6 sinks register themselves here, tests may add stand-ins)."""
    KINDS[kind][type_name] = module_name


def with_defaults(options_spec, options):
    """`options` with every key of the plugin's OPTIONS filled in from its defaults (plugins opened directly)."""
    merged = dict((key, copy.deepcopy(option.default)) for key, option in options_spec.items())
    merged.update(copy.deepcopy(options or {}))
    return merged
