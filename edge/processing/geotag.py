"""Where a detection lies on the road: its box projected onto a flat road from the vehicle's fix. Pure, no I/O.

The camera's mounting (height above the road, pitch down, horizontal field of view) comes from the profile's
`camera` section. A box's place is its bottom centre (the near edge of the damage, where it meets the road); its
footprint is the bottom edge's width and the depth from the bottom to the top edge (None when the top is at or
above the horizon). Only a fresh fix gives a place: with no fix or a stale one, `ground` is None, never guessed. Nor
does a box whose bottom lies beyond `max_range_m` (near the horizon a pixel spans tens of metres of road), or one cut
by the frame's bottom edge (its bottom is the frame's, not the damage's).
"""
import math

from edge.gps.geo import ground_offset, ground_position

NO_PLACE_FIXES = ("none", "stale")
CUT_AT = 0.995  # a box whose bottom reaches this far down the frame is cut by the frame's edge


def fresh(position):
    """True when `position` (edge.gps.sources position dict) can place things: a fix with lat, lon and heading."""
    return bool(position) and position.get("fix") not in NO_PLACE_FIXES and position.get("lat") is not None \
        and position.get("lon") is not None and position.get("heading") is not None


class Geotagger(object):
    """`camera`: {height_m, pitch_deg, hfov_deg, max_range_m}; tag(detections, frame_size, position) -> detections
    with ground."""

    def __init__(self, camera):
        self.height_m, self.pitch_deg, self.hfov_deg = (float(camera[k]) for k in ("height_m", "pitch_deg", "hfov_deg"))
        self.max_range_m = float(camera.get("max_range_m") or 0.0) or float("inf")

    def _offset(self, u, v, size):
        return ground_offset(u, v, size, self.height_m, self.pitch_deg, self.hfov_deg)

    def ground(self, box, frame_size, position):
        """A normalised xyxy box -> {lat, lon, range_m (from the camera), width_m, length_m}, or None (no fresh fix, box
        above the horizon or beyond max_range_m)."""
        if not fresh(position) or box[3] >= CUT_AT:
            return None
        width, height = frame_size
        x1, y1, x2, y2 = (box[0] * width, box[1] * height, box[2] * width, box[3] * height)
        near = self._offset((x1 + x2) / 2.0, y2, frame_size)
        if near is None or near[0] > self.max_range_m:
            return None
        left, right = self._offset(x1, y2, frame_size), self._offset(x2, y2, frame_size)
        far = self._offset((x1 + x2) / 2.0, y1, frame_size)
        lat, lon = ground_position(position["lat"], position["lon"], position["heading"], near[0], near[1])
        return {"lat": round(lat, 7), "lon": round(lon, 7), "range_m": round(math.hypot(near[0], near[1]), 2),
                "width_m": round(abs(right[1] - left[1]), 3) if left and right else None,
                "length_m": round(max(far[0] - near[0], 0.0), 3) if far is not None else None}

    def tag(self, detections, frame_size, position):
        return [d._replace(ground=self.ground(d.box, frame_size, position)) for d in detections]
