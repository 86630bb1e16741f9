"""The DeepLens project stream: annotated JPEGs written back to back into a FIFO.

On a DeepLens the project stream viewer reads `/tmp/results.mjpeg`, a named
pipe holding JPEG after JPEG (the AWS samples resize to 858x480 first). The
pipeline must never wait for that reader, so the FIFO is opened and written
without blocking:

- no reader yet (ENXIO on open): the frame is skipped; opening is retried on a
  later frame, at most every REOPEN_INTERVAL seconds;
- reader too slow (pipe full, EAGAIN): a frame nothing of which was written is
  skipped; a frame written in part is finished on the following frames before
  a new one starts (each of those is skipped), so the reader always gets whole
  JPEGs in order;
- reader gone (EPIPE): the FIFO is closed and we wait for a new reader.

`frames_written` counts frames delivered whole, `frames_skipped` the others;
after close() they add up to the number of write() calls.
"""
import errno
import fcntl
import os
import select
import stat
import time

import cv2

from edge.plugins import Option, at_least, between, checked
from edge.sinks.base import Sink, require_folder
from roadedge.core.errors import RoadedgeError

TYPE = "fifo"
OPTIONS = {
    "path": Option(str, "/tmp/results.mjpeg", "the FIFO the project stream reads (created when missing)"),
    "quality": Option(int, 80, "JPEG quality, 1-100", check=between(1, 100)),
    "width": Option(int, 0, "resize to this width (0: the frame's; the DeepLens samples use 858)", check=at_least(0)),
    "height": Option(int, 0, "resize to this height (0: the frame's; the DeepLens samples use 480)", check=at_least(0)),
}

REOPEN_INTERVAL = 0.5
PIPE_SIZE = 1 << 20  # ask for a 1 MiB pipe buffer so a whole frame usually fits (Linux default: 64 KiB)
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # the constant is in fcntl from Python 3.10
_DONE, _PARTIAL, _BLOCKED, _GONE = "done", "partial", "blocked", "gone"


def make_fifo(path):
    """Create the FIFO unless it exists (its folder must); RoadedgeError when something else is there."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        require_folder(path, "fifo sink")
        try:
            os.mkfifo(path, 0o666)
        except FileExistsError:
            pass
        except OSError as err:
            raise RoadedgeError("fifo sink: {}: cannot create the FIFO: {}".format(path, err.strerror or err)) from None
        info = os.stat(path)
    if not stat.S_ISFIFO(info.st_mode):
        raise RoadedgeError("fifo sink: {}: exists and is not a FIFO (remove it or set another path)".format(path))


class FifoSink(Sink):
    TYPE = TYPE
    needs_image = True

    def __init__(self, path, quality=80, size=(0, 0), log=None):
        self.path, self.quality, self.size, self.log = path, int(quality), tuple(int(v) for v in size), log
        self.fd = None
        self.frames_written = self.frames_skipped = self.connections = 0
        self._frame, self._offset = None, 0  # the frame being written and how much of it is out
        self._next_open = 0.0
        self._poll = None
        self._warned = set()

    @property
    def connected(self):
        return self.fd is not None

    @property
    def pending(self):
        """Bytes of a partly written frame still to go (finished before any new frame)."""
        return 0 if self._frame is None else len(self._frame) - self._offset

    def write(self, result):
        if result.final:  # the closing result carries events and stats, not a new picture
            return
        if self.fd is None and not self._connect(time.monotonic()):
            self.frames_skipped += 1
            return
        if self._frame is not None and self._send() != _DONE:
            self.frames_skipped += 1  # still finishing an earlier frame (or the reader left)
            return
        if self.fd is None or not self._writable():
            self.frames_skipped += 1
            return
        self._frame, self._offset = memoryview(self._encode(result)), 0
        if self._send() == _BLOCKED:
            self._frame = None
            self.frames_skipped += 1

    def close(self):
        if self.fd is not None and self._frame is not None:
            self._send()
        if self._frame is not None:
            self._frame = None
            self.frames_skipped += 1
        self._disconnect(None)

    # -- internals

    def _warn_once(self, key, message, *args):
        if key not in self._warned:
            self._warned.add(key)
            if self.log is not None:
                self.log.warning(message, *args)

    def _connect(self, now):
        if now < self._next_open:
            return False
        self._next_open = now + REOPEN_INTERVAL
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:
            if err.errno == errno.ENXIO:
                return False  # no reader yet
            if err.errno == errno.ENOENT:
                self._warn_once("enoent", "project stream: %s was removed; creating it again", self.path)
                try:
                    make_fifo(self.path)
                except RoadedgeError as problem:
                    self._warn_once("recreate", "project stream: %s", problem)
                return False
            self._warn_once(err.errno, "project stream: cannot open %s: %s", self.path, err.strerror or err)
            return False
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            self._warn_once("notfifo", "project stream: %s is no longer a FIFO; not writing to it", self.path)
            return False
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # above /proc/sys/fs/pipe-max-size: frames larger than the buffer are written in parts
        self.fd = fd
        self._poll = select.poll()
        self._poll.register(fd, select.POLLOUT)
        self.connections += 1
        if self.log is not None:
            self.log.info("project stream: reader connected to %s", self.path)
        return True

    def _disconnect(self, reason):
        if self._frame is not None:
            self._frame = None
            self.frames_skipped += 1
        if self.fd is not None:
            fd, self.fd, self._poll = self.fd, None, None
            try:
                os.close(fd)
            except OSError:
                pass
            self._next_open = 0.0
            if reason and self.log is not None:
                self.log.info("project stream: %s; waiting for a new reader", reason)

    def _writable(self):
        """True when the pipe has room: no point encoding a frame otherwise. Notices a reader that left."""
        events = self._poll.poll(0)
        if events and events[0][1] & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
            self._disconnect("the reader left")
            return False
        return bool(events)

    def _send(self):
        """Write what is left of the current frame without blocking."""
        while self._offset < len(self._frame):
            try:
                self._offset += os.write(self.fd, self._frame[self._offset:])
            except BlockingIOError:
                return _PARTIAL if self._offset else _BLOCKED
            except BrokenPipeError:
                self._disconnect("the reader left")
                return _GONE
            except OSError as err:
                self._disconnect("write failed: {}".format(err.strerror or err))
                return _GONE
        self._frame = None
        self.frames_written += 1
        return _DONE

    def _target_size(self, width, height):
        want_w, want_h = self.size
        if want_w > 0 and want_h > 0:
            return want_w, want_h
        if want_w > 0:
            return want_w, max(1, int(round(height * want_w / float(width))))
        if want_h > 0:
            return max(1, int(round(width * want_h / float(height)))), want_h
        return width, height

    def _encode(self, result):
        image = result.annotated if result.annotated is not None else result.frame.image
        height, width = image.shape[:2]
        size = self._target_size(width, height)
        if size == (width, height):
            return result.jpeg(self.quality)
        shrink = size[0] < width or size[1] < height
        resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        ok, data = cv2.imencode(".jpg", resized, [int(cv2.IMWRITE_JPEG_QUALITY), self.quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return data.tobytes()



def open(options, context):
    options = checked(OPTIONS, options, "fifo sink")
    context = context or {}
    path = os.path.expanduser(options["path"] or "")
    if not path:
        raise RoadedgeError("fifo sink: path is empty")
    make_fifo(path)
    return FifoSink(path, options["quality"], (options["width"], options["height"]), context.get("log"))
