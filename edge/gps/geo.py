"""Geodesy on the WGS-84 ellipsoid and the flat-road ground projection of an image point.

Distances use Vincenty's inverse formula on the ellipsoid (millimetre accuracy) rather than haversine: a sphere is off by
up to 0.5 % (5 m per km), too much for a defect registry that must match positions within 8 m. Vincenty does not converge
for nearly antipodal points; there (irrelevant for a vehicle) it falls back to haversine on the mean radius.
"""
import math

WGS84_A = 6378137.0
WGS84_F = 1 / 298.257223563
WGS84_B = WGS84_A * (1 - WGS84_F)
MEAN_RADIUS = 6371008.8


def haversine(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * MEAN_RADIUS * math.asin(min(1.0, math.sqrt(h)))


def inverse(lat1, lon1, lat2, lon2):
    """Vincenty inverse: (distance m, initial bearing deg, forward bearing at the second point deg)."""
    f, a, b = WGS84_F, WGS84_A, WGS84_B
    L = math.radians(lon2 - lon1)
    U1 = math.atan((1 - f) * math.tan(math.radians(lat1)))
    U2 = math.atan((1 - f) * math.tan(math.radians(lat2)))
    sinU1, cosU1, sinU2, cosU2 = math.sin(U1), math.cos(U1), math.sin(U2), math.cos(U2)
    lam = L
    for _ in range(200):
        sinl, cosl = math.sin(lam), math.cos(lam)
        sin_sigma = math.hypot(cosU2 * sinl, cosU1 * sinU2 - sinU1 * cosU2 * cosl)
        if sin_sigma == 0:
            return 0.0, 0.0, 0.0
        cos_sigma = sinU1 * sinU2 + cosU1 * cosU2 * cosl
        sigma = math.atan2(sin_sigma, cos_sigma)
        sin_alpha = cosU1 * cosU2 * sinl / sin_sigma
        cos2_alpha = 1 - sin_alpha ** 2
        cos2sm = cos_sigma - 2 * sinU1 * sinU2 / cos2_alpha if cos2_alpha != 0 else 0.0
        C = f / 16 * cos2_alpha * (4 + f * (4 - 3 * cos2_alpha))
        previous = lam
        lam = L + (1 - C) * f * sin_alpha * (sigma + C * sin_sigma * (cos2sm + C * cos_sigma * (-1 + 2 * cos2sm ** 2)))
        if abs(lam - previous) < 1e-15:  # radians: 1e-12 would still be 6 um on the ground
            break
    if abs(lam - previous) > 1e-12:  # not converging: nearly antipodal points
        distance = haversine(lat1, lon1, lat2, lon2)
        return distance, _spherical_bearing(lat1, lon1, lat2, lon2), (_spherical_bearing(lat2, lon2, lat1, lon1) + 180.0) % 360.0
    u2 = cos2_alpha * (a * a - b * b) / (b * b)
    A = 1 + u2 / 16384 * (4096 + u2 * (-768 + u2 * (320 - 175 * u2)))
    B = u2 / 1024 * (256 + u2 * (-128 + u2 * (74 - 47 * u2)))
    delta = B * sin_sigma * (cos2sm + B / 4 * (cos_sigma * (-1 + 2 * cos2sm ** 2)
                                               - B / 6 * cos2sm * (-3 + 4 * sin_sigma ** 2) * (-3 + 4 * cos2sm ** 2)))
    distance = b * A * (sigma - delta)
    initial = math.degrees(math.atan2(cosU2 * sinl, cosU1 * sinU2 - sinU1 * cosU2 * cosl)) % 360.0
    final = math.degrees(math.atan2(cosU1 * sinl, -sinU1 * cosU2 + cosU1 * sinU2 * cosl)) % 360.0
    return distance, initial, final


def _spherical_bearing(lat1, lon1, lat2, lon2):
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def distance(lat1, lon1, lat2, lon2):
    """Metres between two WGS-84 points (Vincenty)."""
    return inverse(lat1, lon1, lat2, lon2)[0]


def destination(lat, lon, bearing, distance_m):
    """Vincenty direct: the point distance_m from (lat, lon) along the initial bearing (degrees true) -> (lat, lon)."""
    f, a, b = WGS84_F, WGS84_A, WGS84_B
    alpha1 = math.radians(bearing)
    sin_a1, cos_a1 = math.sin(alpha1), math.cos(alpha1)
    tanU1 = (1 - f) * math.tan(math.radians(lat))
    cosU1 = 1 / math.sqrt(1 + tanU1 ** 2)
    sinU1 = tanU1 * cosU1
    sigma1 = math.atan2(tanU1, cos_a1)
    sin_alpha = cosU1 * sin_a1
    cos2_alpha = 1 - sin_alpha ** 2
    u2 = cos2_alpha * (a * a - b * b) / (b * b)
    A = 1 + u2 / 16384 * (4096 + u2 * (-768 + u2 * (320 - 175 * u2)))
    B = u2 / 1024 * (256 + u2 * (-128 + u2 * (74 - 47 * u2)))
    sigma = distance_m / (b * A)
    for _ in range(200):
        cos2sm = math.cos(2 * sigma1 + sigma)
        sin_s, cos_s = math.sin(sigma), math.cos(sigma)
        delta = B * sin_s * (cos2sm + B / 4 * (cos_s * (-1 + 2 * cos2sm ** 2)
                                               - B / 6 * cos2sm * (-3 + 4 * sin_s ** 2) * (-3 + 4 * cos2sm ** 2)))
        previous = sigma
        sigma = distance_m / (b * A) + delta
        if abs(sigma - previous) < 1e-15:
            break
    sin_s, cos_s = math.sin(sigma), math.cos(sigma)
    cos2sm = math.cos(2 * sigma1 + sigma)
    x = sinU1 * sin_s - cosU1 * cos_s * cos_a1
    lat2 = math.atan2(sinU1 * cos_s + cosU1 * sin_s * cos_a1, (1 - f) * math.hypot(sin_alpha, x))
    lam = math.atan2(sin_s * sin_a1, cosU1 * cos_s - sinU1 * sin_s * cos_a1)
    C = f / 16 * cos2_alpha * (4 + f * (4 - 3 * cos2_alpha))
    L = lam - (1 - C) * f * sin_alpha * (sigma + C * sin_s * (cos2sm + C * cos_s * (-1 + 2 * cos2sm ** 2)))
    lon2 = (lon + math.degrees(L) + 540.0) % 360.0 - 180.0
    return math.degrees(lat2), lon2


def ground_offset(u, v, image_size, height_m, pitch_deg, hfov_deg):
    """Image point (u, v) in pixels -> (forward m, right m) on a flat road, or None at/above the horizon.

    Pinhole camera with square pixels and the principal point at the image centre, mounted height_m above the road,
    tilted down by pitch_deg, with horizontal field of view hfov_deg; image_size is (width, height).
    """
    width, height = image_size
    focal = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    x = (u - width / 2.0) / focal      # right
    y = (v - height / 2.0) / focal     # down
    pitch = math.radians(pitch_deg)
    down = y * math.cos(pitch) + math.sin(pitch)
    forward = math.cos(pitch) - y * math.sin(pitch)
    if down <= 1e-9:
        return None
    scale = height_m / down
    return forward * scale, x * scale


def ground_position(fix_lat, fix_lon, heading_deg, forward_m, right_m):
    """(forward, right) metres from the vehicle at fix_lat/fix_lon heading heading_deg -> (lat, lon)."""
    rng = math.hypot(forward_m, right_m)
    if rng == 0:
        return fix_lat, fix_lon
    bearing = (heading_deg + math.degrees(math.atan2(right_m, forward_m))) % 360.0
    return destination(fix_lat, fix_lon, bearing, rng)


def project_box(box, image_size, camera, fix_lat, fix_lon, heading_deg):
    """A detection box (x1, y1, x2, y2 pixels) -> ground (lat, lon) of its bottom centre, or None above the horizon.

    camera: mapping with height_m, pitch_deg, hfov_deg (the profile's camera mounting).
    """
    x1, _, x2, y2 = box
    offset = ground_offset((x1 + x2) / 2.0, y2, image_size, camera["height_m"], camera["pitch_deg"], camera["hfov_deg"])
    if offset is None:
        return None
    return ground_position(fix_lat, fix_lon, heading_deg, offset[0], offset[1])
