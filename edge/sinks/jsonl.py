"""JSON lines: one compact detections message per line, to a file or to stdout.

Each line is flushed as soon as it is written, so `roadedge run | jq .` sees a
frame the moment it is processed. Frames without a message (no detections and
publish_empty off) write nothing. A file is opened in append mode (its folder
is created); stdout is looked up at every write, so redirections made after
open() are honoured. When stdout is a pipe whose reader has gone (`| head`),
the sink asks the pipeline to stop, as a Unix filter would.
"""
import io
import json
import os
import sys

from edge.plugins import Option, checked
from edge.sinks.base import Sink, require_folder
from roadedge.core.errors import RoadedgeError, os_reason

TYPE = "jsonl"
OPTIONS = {
    "path": Option(str, "-", "file to append JSON lines to; '-' for stdout"),
}


class JsonlSink(Sink):
    TYPE = TYPE
    needs_image = False

    def __init__(self, stream=None, name="-", log=None, stop=None):
        """`stream`: an open text file, or None for sys.stdout (looked up at each write)."""
        self._stream = stream
        self.name = name
        self.log = log
        self.stop = stop
        self.lines = 0
        self._broken = False

    def _target(self):
        return self._stream if self._stream is not None else sys.stdout

    def write(self, result):
        message = result.message
        if message is None or self._broken:
            return
        line = json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n"
        stream = self._target()
        try:
            stream.write(line)
            stream.flush()
        except BrokenPipeError:
            if self._stream is not None:
                raise
            self._stdout_gone()
            return
        self.lines += 1

    def _stdout_gone(self):
        """The reader of stdout left: stop writing, keep Python's exit flush quiet, ask the pipeline to stop."""
        self._broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
            pass
        if self.log is not None:
            self.log.warning("jsonl: stdout was closed by its reader; stopping")
        if self.stop is not None:
            self.stop.set()

    def close(self):
        if self._stream is not None:
            stream, self._stream = self._stream, None
            self._broken = True
            stream.close()
        elif not self._broken:
            try:
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):
                pass



def open(options, context):
    options = checked(OPTIONS, options, "jsonl sink")
    context = context or {}
    path = options["path"]
    if not path:
        raise RoadedgeError("jsonl sink: path is empty (use '-' for stdout)")
    if path == "-":
        return JsonlSink(None, "-", context.get("log"), context.get("stop"))
    path = os.path.expanduser(path)
    require_folder(path, "jsonl sink")
    try:
        stream = io.open(path, "a", encoding="utf-8", newline="\n")
    except OSError as err:
        raise RoadedgeError("jsonl sink: {}: cannot write ({})".format(path, os_reason(err))) from None
    return JsonlSink(stream, path, context.get("log"), context.get("stop"))
