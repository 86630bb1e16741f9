"""Where a frame goes when it is resized to the model input, and how boxes come back.

`stretch` scales each axis on its own (what SageMaker's SSD and the DeepLens
samples do); `letterbox` keeps the aspect ratio and pads. Boxes are
normalised [xmin, ymin, xmax, ymax]: relative to the model input on the way
in, relative to the frame on the way out.
"""
from __future__ import division

import numpy as np


class Resize(object):
    __slots__ = ("mode", "frame_size", "input_size", "scale", "offset")

    def __init__(self, frame_size, input_size, mode="stretch"):
        """`frame_size`, `input_size`: (width, height)."""
        if mode not in ("stretch", "letterbox"):
            raise ValueError("resize mode %r: expected 'stretch' or 'letterbox'" % (mode,))
        self.mode = mode
        self.frame_size = tuple(int(v) for v in frame_size)
        self.input_size = tuple(int(v) for v in input_size)
        fw, fh = self.frame_size
        iw, ih = self.input_size
        if mode == "stretch":
            self.scale = (iw / fw, ih / fh)
            self.offset = (0.0, 0.0)
        else:
            s = min(iw / fw, ih / fh)
            self.scale = (s, s)
            self.offset = ((iw - fw * s) / 2.0, (ih - fh * s) / 2.0)

    def content_size(self):
        """(width, height) of the resized frame inside the input (equal to the input for stretch)."""
        return (int(round(self.frame_size[0] * self.scale[0])), int(round(self.frame_size[1] * self.scale[1])))

    def boxes_to_frame(self, boxes):
        """Normalised input boxes [N, 4] -> normalised frame boxes, clipped to the frame."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if self.mode == "stretch":
            return np.clip(boxes, 0.0, 1.0)
        iw, ih = self.input_size
        fw, fh = self.frame_size
        px = boxes * np.array([iw, ih, iw, ih], dtype=np.float64)
        px -= np.array([self.offset[0], self.offset[1], self.offset[0], self.offset[1]])
        px /= np.array([self.scale[0], self.scale[1], self.scale[0], self.scale[1]])
        return np.clip(px / np.array([fw, fh, fw, fh], dtype=np.float64), 0.0, 1.0)


def to_pixels(box, width, height):
    """Normalised box -> integer pixel corners (xmin, ymin, xmax, ymax) inside a width x height frame."""
    x0, y0, x1, y1 = box
    return (int(round(min(max(x0, 0.0), 1.0) * (width - 1))), int(round(min(max(y0, 0.0), 1.0) * (height - 1))),
            int(round(min(max(x1, 0.0), 1.0) * (width - 1))), int(round(min(max(y1, 0.0), 1.0) * (height - 1))))
