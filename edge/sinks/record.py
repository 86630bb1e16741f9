"""Recording the annotated frames to an MP4 file (cv2.VideoWriter, fourcc mp4v).

The size is taken from the first frame (later frames of another size are
resized to it). The video is written to a hidden temporary file beside the
target (same extension, so OpenCV picks the same container) and renamed over
the target on close(), the way roadedge/core/fsutil.py's atomic helpers work: nothing
half-written ever sits under the final name. A run that recorded no frame
leaves no file.
"""
import io
import os
import tempfile

import cv2

from edge.plugins import Option, at_least, checked
from edge.sinks.base import Sink, require_folder
from roadedge.core.errors import RoadedgeError

TYPE = "record"
OPTIONS = {
    "path": Option(str, "", "the MP4 file to write (required); replaced when the recording is complete"),
    "fps": Option(float, 0.0, "frame rate written in the file (0: the source's, or 15 when unknown)", check=at_least(0)),
}
DEFAULT_FPS = 15.0


class RecordSink(Sink):
    TYPE = TYPE
    needs_image = True

    def __init__(self, path, fps, log=None):
        self.path, self.fps, self.log = path, float(fps), log
        self.size = None
        self.frames = 0
        self.tmp_path = None
        self._writer = None
        self._closed = False

    def _start(self, width, height):
        folder = os.path.dirname(os.path.abspath(self.path))
        base, ext = os.path.splitext(os.path.basename(self.path))
        fd, tmp = tempfile.mkstemp(prefix="." + base + ".", suffix=".partial" + (ext or ".mp4"), dir=folder)
        os.close(fd)
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
        if not writer.isOpened():
            writer.release()
            _remove(tmp)
            raise RoadedgeError("record sink: {}: OpenCV cannot write mp4v video here (no FFmpeg backend?)".format(
                self.path))
        self._writer, self.tmp_path, self.size = writer, tmp, (width, height)
        if self.log is not None:
            self.log.info("recording %dx%d at %.3g fps to %s", width, height, self.fps, self.path)

    def write(self, result):
        if result.final:  # the closing result carries events and stats, not a new picture
            return
        if self._closed:
            return
        image = result.annotated if result.annotated is not None else result.frame.image
        height, width = image.shape[:2]
        if self._writer is None:
            self._start(width, height)
        if (width, height) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        self._writer.write(image)
        self.frames += 1

    def close(self):
        if self._closed:
            return
        self._closed = True
        if self._writer is None:
            if self.log is not None:
                self.log.info("record sink: no frame recorded; %s not written", self.path)
            return
        writer, self._writer = self._writer, None
        tmp, self.tmp_path = self.tmp_path, None
        try:
            writer.release()
            with io.open(tmp, "rb") as handle:  # this module's open() is the plugin entry point
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            _remove(tmp)
            raise
        if self.log is not None:
            self.log.info("recorded %d frames to %s", self.frames, self.path)


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass



def open(options, context):
    options = checked(OPTIONS, options, "record sink")
    context = context or {}
    path = os.path.expanduser(options["path"] or "")
    if not path:
        raise RoadedgeError("record sink: path is required (the MP4 file to write)")
    if os.path.isdir(path):
        raise RoadedgeError("record sink: {}: is a folder; expected a file name".format(path))
    fps = float(options["fps"] or 0.0)
    if fps == 0:
        fps = float(context.get("source_fps") or 0.0) or DEFAULT_FPS
    require_folder(path, "record sink")
    return RecordSink(path, fps, context.get("log"))
