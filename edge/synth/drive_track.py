"""Where a synthetic drive is on the map: its GPS track, its camera's mounting and where each damage lies.

The renderer's world has X to the right of the road's centre line and Z forward along it; the road's centre line
starts at `start` (lat, lon) at world Z = 0 and runs along `heading`. A world point (X, Z) is Z metres along the
heading and X metres to its right. The GPS antenna is the camera's resting place: the lane the pass drives in (x0,
without its sway), so two passes over one road share the damages' places and may differ in their tracks.
"""
import math

from edge.gps import geo
from edge.gps.sources import synthetic_track_nmea
from edge.synth.damage import ground_points

DRIVE_EPOCH = 1780300800.0  # 2026-06-01T08:00:00Z: when every synthetic drive starts (the output depends on the seed only)
DEFAULT_START, DEFAULT_HEADING = (52.5163, 13.3777), 90.0


def camera_section(renderer):
    """The `camera:` profile section of the drive's resting camera (roadedge run --config drive.yaml). Its pitch is
    what a user measures: the horizon's row against the image centre's (the settings know no principal point)."""
    base = renderer.base
    horizon = base["cy"] - base["focal"] * math.tan(base["pitch"])
    pitch = math.atan((base["height"] / 2.0 - horizon) / base["focal"])
    return {"height_m": round(base["height_m"], 4), "pitch_deg": round(math.degrees(pitch), 4),
            "hfov_deg": round(math.degrees(2 * math.atan(base["width"] / 2.0 / base["focal"])), 4)}


def world_to_geo(start, heading, x, z):
    return geo.ground_position(start[0], start[1], heading, float(z), float(x))


def gps_start(renderer, start, heading):
    """Where the car's track starts: its lane, x0 metres right of the centre line."""
    lat, lon = world_to_geo(start, heading, renderer.base["x0"], 0.0)
    return [round(lat, 8), round(lon, 8)]


def damage_truth(renderer, track_id, start, heading):
    """Where the damage lies: its outline's centre and the point of it nearest the car's path (lat, lon), its
    size across (width_m) and along the road (length_m)."""
    damage = renderer.damage(track_id)
    points = ground_points(damage)
    (x0, z0), (x1, z1) = points.min(axis=0), points.max(axis=0)
    lat, lon = world_to_geo(start, heading, (x0 + x1) / 2.0, (z0 + z1) / 2.0)
    near_lat, near_lon = world_to_geo(start, heading, (x0 + x1) / 2.0, z0)
    return {"track_id": int(track_id), "label": damage.name, "lat": round(lat, 7), "lon": round(lon, 7),
            "near_lat": round(near_lat, 7), "near_lon": round(near_lon, 7),
            "width_m": round(float(x1 - x0), 3), "length_m": round(float(z1 - z0), 3)}


def drive_description(renderer, fps, frames, start, heading, track_ids):
    """drive.json: how the drive was made and where its damages are (`start`: the road's, `gps_start`: the car's)."""
    return {"seed": renderer.seed, "road_seed": renderer.road_seed, "fps": fps, "frames": frames,
            "width": renderer.width, "height": renderer.height, "speed": renderer.speed,
            "start": [float(start[0]), float(start[1])], "gps_start": gps_start(renderer, start, heading),
            "heading": float(heading), "start_time": DRIVE_EPOCH,
            "camera": camera_section(renderer),
            "damages": [damage_truth(renderer, t, start, heading) for t in sorted(track_ids)]}


def drive_settings_yaml(description):
    """drive.yaml: the settings that place this drive (`roadedge run --config drive.yaml --source drive.mp4`)."""
    camera = description["camera"]
    return ("# roadedge run --config drive.yaml --source drive.mp4: the synthetic drive's GPS and camera mounting\n"
            "gps:\n  source: synthetic\n  start: [{start[0]!r}, {start[1]!r}]\n  heading: {heading!r}\n  speed: {speed!r}\n"
            "camera:\n  height_m: {c[height_m]!r}\n  pitch_deg: {c[pitch_deg]!r}\n  hfov_deg: {c[hfov_deg]!r}\n").format(
        start=description["gps_start"], heading=float(description["heading"]), speed=float(description["speed"]), c=camera)


def drive_nmea(description):
    """drive.nmea: the drive's track as a GPS receiver logs it (RMC, GGA, VTG once a second)."""
    duration = description["frames"] / float(description["fps"])
    lines = synthetic_track_nmea(description["gps_start"][0], description["gps_start"][1], description["heading"],
                                 description["speed"], math.ceil(duration), DRIVE_EPOCH)
    return "\r\n".join(lines) + "\r\n"
