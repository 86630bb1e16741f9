"""Segmentation masks as PNG files: one class-index palette PNG per frame, the frame's size, `DIR/frame-NNNNNN.png`.

Pixel value = class index in the model's labels; the PNG's palette is the
model's (VOC's colour map by default), so any image viewer shows the classes
in colour and VOC tools read the indices. Each file is written under a hidden
temporary name and renamed, so a file under its final name is always whole.
PNG encoding runs on the sink's own thread behind a short queue: the loop
waits only when the disk falls behind, and no mask is dropped. The folder is
created if its parent exists; one that already holds masks is refused (a
second run never overwrites the first one's files).
"""
import glob
import os
import queue
import tempfile
import threading

import numpy as np

from edge.plugins import Option, checked
from edge.sinks.base import Sink, require_folder
from roadedge.core.errors import RoadedgeError, os_reason
from roadedge.core.seglabels import index_png_bytes, voc_palette

TYPE = "masks"
OPTIONS = {
    "path": Option(str, "", "folder for the masks (created if its parent exists; must not hold masks already)"),
}
QUEUE = 8
_DONE = object()


def write_mask_png(path, mask, palette):
    """`mask` (H, W) uint8 as a palette PNG at `path`, atomically (fast compression: masks compress well anyway)."""
    data = index_png_bytes(np.ascontiguousarray(mask, np.uint8), palette, compress_level=1)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".partial", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class MasksSink(Sink):
    TYPE = TYPE
    needs_image = False

    def __init__(self, folder, palette, log=None):
        self.folder, self.palette, self.log = folder, palette, log
        self.written = 0
        self.error = None
        self._queue = queue.Queue(maxsize=QUEUE)
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="roadedge-masks", daemon=True)
        self._thread.start()

    def _work(self):
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            index, mask = item
            path = os.path.join(self.folder, "frame-%06d.png" % index)
            try:
                write_mask_png(path, mask, self.palette)
                self.written += 1
            except Exception as err:  # reported by the next write() (the pipeline counts it) and by close()
                self.error = "masks sink: {}: {}".format(path, os_reason(err) if isinstance(err, OSError) else err)

    def write(self, result):
        if result.final or self._closed:
            return
        if self.error is not None:
            error, self.error = self.error, None
            raise RoadedgeError(error)
        self._queue.put((result.frame.index, result.output.mask))  # waits only when the disk falls behind

    def stats(self):
        return {"written": self.written, "queued": self._queue.qsize()}

    def close(self):
        if self._closed:
            return
        self._closed = True
        self._queue.put(_DONE)
        self._thread.join()
        if self.error is not None and self.log is not None:
            self.log.error("%s", self.error)
        if self.log is not None:
            self.log.info("masks sink: %d masks in %s", self.written, self.folder)


def open(options, context=None):  # noqa: A001 - the plugin entry point's name
    options = checked(OPTIONS, options, "masks sink")
    context = context or {}
    model = context.get("model")
    if model is not None and model.task != "segmentation":
        raise RoadedgeError("masks sink: model {} is a {} model; masks need a segmentation model".format(
            model.name, model.task))
    if not options["path"]:
        raise RoadedgeError("masks sink: path is empty; expected a folder for the PNG masks")
    folder = os.path.abspath(os.path.expanduser(options["path"]))
    require_folder(folder, "masks sink")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise RoadedgeError("masks sink: {}: exists and is not a folder".format(options["path"]))
    existing = sorted(glob.glob(os.path.join(folder, "frame-*.png")))
    if existing:
        raise RoadedgeError("masks sink: {}: already holds {} masks ({} ...); choose an empty folder".format(
            options["path"], len(existing), os.path.basename(existing[0])))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise RoadedgeError("masks sink: {}: cannot create the folder ({})".format(options["path"], os_reason(err))) from None
    from edge.tasks.segmentation import model_palette

    palette = model_palette(model) if model is not None else voc_palette(256)
    return MasksSink(folder, palette, context.get("log"))
