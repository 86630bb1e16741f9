"""Procedural dashcam road frames with road-damage ground truth (`roadedge synth`).

`render_image(seed, index)` gives one labelled still (`render_labelled` adds
its per-pixel class mask); `DriveRenderer(seed)`
gives the frames of an endless drive with stable damage track ids. Only numpy
and cv2 are needed here (the CLI lives in `edge.synth.command`).
"""
from edge.synth.api import DriveRenderer, check_classes, render_image, render_labelled
from roadedge.core.catalog import SYNTH_CLASSES

__all__ = ["SYNTH_CLASSES", "DriveRenderer", "check_classes", "render_image", "render_labelled"]
