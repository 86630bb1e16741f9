"""Frames from a folder of images: .jpg, .jpeg and .png (any case), in name order.

Not live. read() returns None after the last image, or starts again with
`loop` (indices keep counting). An image that cannot be decoded is a
SourceError naming the file, not a silent skip: a folder of test images
should be all there.
"""
import os
import threading
import time

import cv2
import numpy as np

from edge.plugins import Option, at_least
from edge.sources.base import Frame, Source, SourceError
from edge.sources.live import Pacer, as_bgr, context_stop

TYPE = "images"
EXTENSIONS = (".jpg", ".jpeg", ".png")

OPTIONS = {
    "path": Option(str, None, "folder of .jpg/.jpeg/.png images, read in name order"),
    "loop": Option(bool, False, "start again with the first image after the last"),
    "max_fps": Option(float, 0.0, "read at most this many images per second; 0 = as fast as the pipeline takes them",
                      check=at_least(0)),
}


def list_images(folder):
    """The image files of `folder` in name order; SourceError when it is not a folder or has none."""
    if not folder:
        raise SourceError("images: path is required (a folder of .jpg/.jpeg/.png images)")
    if not os.path.isdir(folder):
        raise SourceError("{}: no such folder".format(folder))
    names = sorted(name for name in os.listdir(folder)
                   if name.lower().endswith(EXTENSIONS) and os.path.isfile(os.path.join(folder, name)))
    if not names:
        raise SourceError("{}: no .jpg, .jpeg or .png images in the folder".format(folder))
    return [os.path.join(folder, name) for name in names]


def read_image(path):
    """BGR uint8 image of a file; SourceError naming the file when it cannot be read or decoded."""
    try:
        data = np.fromfile(path, dtype=np.uint8)  # not cv2.imread: works with any path encoding, and errors are ours
    except OSError as err:
        raise SourceError("{}: cannot read image: {}".format(path, err.strerror or err)) from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise SourceError("{}: cannot read image (not a valid JPEG or PNG)".format(path))
    return as_bgr(image)


class ImageFolderSource(Source):
    live = False

    def __init__(self, files, options, context):
        self.files = list(files)
        self.loop = bool(options.get("loop"))
        max_fps = float(options.get("max_fps") or 0.0)
        self.fps = max_fps or None
        self.index = 0
        self.closed = threading.Event()
        self.pacer = Pacer(max_fps, context_stop(context), self.closed)

    def read(self):
        if self.closed.is_set():
            return None
        position = self.index % len(self.files) if self.loop else self.index
        if position >= len(self.files):
            return None
        self.pacer.wait()
        frame = Frame(self.index, read_image(self.files[position]), time.time())
        self.index += 1
        return frame

    def close(self):
        self.closed.set()


def open(options, context):
    return ImageFolderSource(list_images(options.get("path")), options, context)
