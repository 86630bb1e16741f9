"""A downloaded version is checked before it may run; any failure is one RoadedgeError saying why.

1. the .bin's sha256 is the metadata's `sha256` (a download cut short, a version published half-way);
2. it loads and compiles through the running backend's own open() (the same options: device, precision, ...);
3. it is the running model's task (a detector is not swapped for a segmentation model);
4. a smoke inference on a black frame of the model's input size is decoded by the task's decoder;
5. optional `expected` in the metadata: the detections (or segmentation classes) on a described input, e.g.
   {"input": {"fill": [B, G, R], "width": 256, "height": 256}, "detections": [{"label": "D40", "box": [...],
   "score": 0.9}], "tolerance": 0.05} (boxes and scores within the tolerance, labels equal; "classes": [...] for
   segmentation: the labels present, largest share first).
"""
import os

import numpy as np

from edge.processing.geometry import Resize
from edge.tasks import task_for
from roadedge.core.errors import RoadedgeError
from roadedge.core.fsutil import sha256_file


class NotReady(RoadedgeError):
    """The files do not match their metadata (yet): a half-published version is tried again at the next check."""


def check_files(xml_path, candidate):
    bin_path = os.path.splitext(xml_path)[0] + ".bin"
    digest = sha256_file(bin_path)
    if digest != candidate["sha256"]:
        raise NotReady("{}: the .bin's sha256 is {}, but its metadata says {} (published half-way, or another "
                       "model's metadata)".format(candidate["where"], digest[:16] + "...", candidate["sha256"][:16] + "..."))


def smoke_frame(size, fill=(0, 0, 0)):
    width, height = size
    frame = np.empty((int(height), int(width), 3), np.uint8)
    frame[:] = np.asarray(fill, np.uint8).reshape(1, 1, 3)
    return frame


def _compare_detections(found, expected, tolerance, where):
    if len(found) != len(expected):
        raise RoadedgeError("{}: expected: {} detections on the test input, the model gives {}".format(
            where, len(expected), len(found)))
    for index, (got, want) in enumerate(zip(found, expected)):
        if got.label != want["label"] or abs(got.score - float(want.get("score", got.score))) > tolerance or any(
                abs(a - float(b)) > tolerance for a, b in zip(got.box, want.get("box", got.box))):
            raise RoadedgeError("{}: expected detection {}: {} {} at {}; the model gives {} {:.3f} at {}".format(
                where, index, want["label"], want.get("score"), want.get("box"), got.label, got.score,
                [round(v, 3) for v in got.box]))


def check_expected(model, decoder, backend, where):
    expected = model.metadata.get("expected")
    if not expected:
        return
    if not isinstance(expected, dict):
        raise RoadedgeError("{}: expected: a JSON object with input and detections (or classes)".format(where))
    described = expected.get("input") or {}
    size = (described.get("width", model.input_size[0]), described.get("height", model.input_size[1]))
    image = smoke_frame(size, described.get("fill", (0, 0, 0)))
    found = decoder(backend.infer(image), Resize(size, model.input_size, "stretch"))
    tolerance = float(expected.get("tolerance", 0.02))
    if "detections" in expected:
        _compare_detections(found, expected["detections"], tolerance, where)
    if "classes" in expected:
        labels = [found.labels[index] for index, _ in found.present()]
        if labels != list(expected["classes"]):
            raise RoadedgeError("{}: expected classes {} on the test input; the model gives {}".format(
                where, expected["classes"], labels))


def verify(xml_path, candidate, open_backend, running, settings):
    """The opened, compiled, smoke-tested backend of a downloaded version; RoadedgeError (NotReady) otherwise.

    `open_backend(path)`: the running backend's plugin open() with its options; `running`: the running ModelInfo;
    `settings`: the task's configuration section (its thresholds build the decoder).
    """
    check_files(xml_path, candidate)
    backend = open_backend(xml_path)
    try:
        model = backend.model
        if model.task != running.task:
            raise RoadedgeError("{}: a {} model; the running model is a {} model (a task change needs a restart with "
                                "another configuration)".format(candidate["where"], model.task, running.task))
        decoder = task_for(model).decoder(model, settings)
        image = smoke_frame(model.input_size)
        try:
            decoder(backend.infer(image), Resize(model.input_size, model.input_size, "stretch"))
        except RoadedgeError:
            raise
        except Exception as err:  # whatever the model or its decoder throws: the version is refused
            raise RoadedgeError("{}: the smoke inference failed: {}".format(candidate["where"], err)) from None
        check_expected(model, decoder, backend, candidate["where"])
    except BaseException:
        backend.close()
        raise
    return backend
