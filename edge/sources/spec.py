"""`roadedge run --source TEXT` -> a profile `source:` section ({"type": ..., options}).

    sample                  the bundled sample drive (opencv)
    0, 1, ...               a USB camera by index (opencv)
    rtsp://, rtmp://, http(s)://, udp://, tcp://...   a network stream (opencv, FFmpeg)
    gst:PIPELINE, or text with " ! "                   a GStreamer pipeline (opencv, api gstreamer)
    synthetic[:SEED]        an endless rendered drive
    awscam                  the DeepLens camera
    picamera2               the Raspberry Pi camera
    an existing folder      its .jpg/.jpeg/.png images in name order
    an existing file        a video file (opencv); /dev/videoN too

Keywords win over files of the same name (use ./synthetic for a file called so).
"""
import os

from edge.sources.base import SourceError

SAMPLE_VIDEO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "sample-drive.mp4")

URL_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://", "http://", "https://", "udp://", "tcp://", "rtp://", "srt://")
EXPECTED = ("expected a video file, image folder, camera index, URL, gst:PIPELINE, synthetic[:SEED], awscam or "
            "picamera2")


def source_section(text):
    """The profile section for --source TEXT; SourceError naming TEXT when it is none of the forms above."""
    raw = "" if text is None else str(text)
    text = raw.strip()
    lower = text.lower()
    if lower == "sample":
        return {"type": "opencv", "uri": SAMPLE_VIDEO}
    if text.isdigit():
        return {"type": "opencv", "uri": str(int(text))}
    if lower.startswith(URL_PREFIXES):
        return {"type": "opencv", "uri": text}
    if lower.startswith("gst:"):
        pipeline = text[4:].strip()
        if not pipeline:
            raise SourceError("--source {}: gst: needs a pipeline after it, e.g. gst:v4l2src ! videoconvert ! "
                              "appsink".format(raw))
        return {"type": "opencv", "uri": pipeline, "api": "gstreamer"}
    if " ! " in text:
        return {"type": "opencv", "uri": text, "api": "gstreamer"}
    if lower == "synthetic" or lower.startswith("synthetic:"):
        section = {"type": "synthetic"}
        if ":" in text:
            seed = text.split(":", 1)[1].strip()
            try:
                section["seed"] = int(seed)
            except ValueError:
                raise SourceError("--source {}: the seed after synthetic: must be an integer".format(raw)) from None
        return section
    if lower in ("awscam", "picamera2"):
        return {"type": lower}
    if text and os.path.isdir(text):
        return {"type": "images", "path": text}
    if text and os.path.exists(text):  # a file, or a device node such as /dev/video0
        return {"type": "opencv", "uri": text}
    raise SourceError("--source {}: no such file or folder; {}".format(raw, EXPECTED))
