"""The vehicle's position at each frame, from the run's GPS source.

A recorded video with a replayable track (a file replay, the synthetic drive) is placed by media time: frame i of
a video at f frames a second is i / f seconds into the track (plus `offset_s`), however fast the file is read. A
camera, or a live GPS (gpsd, a serial receiver), is placed by wall time: the fix as it stood when the frame was
captured.
"""
from edge.gps.sources import parse_spec

REPLAYABLE = ("file", "synthetic")


class FrameLocator(object):
    """at(frame) -> position dict (lat, lon, heading, speed, fix, age_s); close() stops the GPS source."""

    def __init__(self, gps, media_fps=None, offset_s=0.0):
        self.gps, self.media_fps, self.offset_s = gps, media_fps, float(offset_s)

    def at(self, frame):
        if self.media_fps:
            return self.gps.position(frame.index / float(self.media_fps) + self.offset_s)
        return self.gps.position(frame.timestamp)

    def close(self):
        self.gps.close()


def open_locator(settings, source):
    """The started FrameLocator of the configuration's `gps` section for `source`, or None without GPS."""
    spec = settings.get("source") or ""
    if not spec:
        return None
    from edge.gps.sources import open_source

    kind, _ = parse_spec(spec)
    media_fps = getattr(source, "fps", None) if kind in REPLAYABLE and not getattr(source, "live", False) else None
    options = {}
    if kind == "synthetic":
        options = {"lat": settings["start"][0], "lon": settings["start"][1], "heading": settings["heading"],
                   "speed": settings["speed"]}
    if media_fps:
        options["start"] = 0.0  # track time 0 is the video's first frame
    return FrameLocator(open_source(spec, max_age_s=settings["max_age_s"], **options), media_fps, settings["offset_s"])
