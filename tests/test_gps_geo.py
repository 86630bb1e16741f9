"""WGS-84 geodesy against published answers, and the flat-road projection against the pinhole geometry it encodes."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.gps import geo

# Vincenty (1975) / Geoscience Australia's worked example on GRS80 (= WGS-84 to well under a millimetre here)
FLINDERS_PEAK = (-(37 + 57 / 60 + 3.72030 / 3600), 144 + 25 / 60 + 29.52440 / 3600)
BUNINYONG = (-(37 + 39 / 60 + 10.15610 / 3600), 143 + 55 / 60 + 35.38390 / 3600)
FLINDERS_BUNINYONG_M = 54972.271
AZIMUTH = 306 + 52 / 60 + 5.37 / 3600
REVERSE_AZIMUTH = 127 + 10 / 60 + 25.07 / 3600


def test_vincenty_inverse_published_example():
    distance, initial, final = geo.inverse(*FLINDERS_PEAK, *BUNINYONG)
    assert distance == pytest.approx(FLINDERS_BUNINYONG_M, abs=0.001)
    assert initial == pytest.approx(AZIMUTH, abs=0.01 / 3600)
    assert (final + 180.0) % 360.0 == pytest.approx(REVERSE_AZIMUTH, abs=0.01 / 3600)


def test_vincenty_direct_published_example():
    # 1e-4 arc seconds is 3 mm: the published azimuth is rounded to 0.01", 2.7 mm across 55 km
    lat, lon = geo.destination(*FLINDERS_PEAK, AZIMUTH, FLINDERS_BUNINYONG_M)
    assert lat == pytest.approx(BUNINYONG[0], abs=1e-4 / 3600) and lon == pytest.approx(BUNINYONG[1], abs=1e-4 / 3600)


def test_degree_lengths_on_the_ellipsoid():
    # one degree of longitude on the equator is a * pi / 180; one degree of latitude from the equator is 110574.389 m
    assert geo.distance(0, 0, 0, 1) == pytest.approx(6378137 * math.pi / 180, abs=0.001)
    assert geo.distance(0, 0, 1, 0) == pytest.approx(110574.389, abs=0.01)
    # a sphere gets the metre-scale answer wrong by more than the ellipsoid's error budget over a kilometre
    assert abs(geo.haversine(0, 0, 1, 0) - 110574.389) > 500


def test_same_point_and_round_trip_short_distances():
    assert geo.distance(52.5, 13.4, 52.5, 13.4) == 0.0
    for bearing in (0, 45, 90, 180, 271.5):
        lat, lon = geo.destination(52.5163, 13.3777, bearing, 25.0)
        distance, initial, _ = geo.inverse(52.5163, 13.3777, lat, lon)
        assert distance == pytest.approx(25.0, abs=1e-6) and initial == pytest.approx(bearing % 360.0, abs=1e-6)


def test_destination_wraps_the_antimeridian():
    lat, lon = geo.destination(0.0, 179.9999, 90.0, 100.0)
    assert lon == pytest.approx(179.9999 + 100 / (6378137 * math.pi / 180) - 360.0, abs=1e-9)
    assert lat == pytest.approx(0.0, abs=1e-9)


CAMERA = {"height_m": 1.5, "pitch_deg": 10.0, "hfov_deg": 60.0}
SIZE = (640, 360)
FOCAL = 320 / math.tan(math.radians(30))


def test_image_centre_lands_where_the_optical_axis_meets_the_road():
    forward, right = geo.ground_offset(320, 180, SIZE, 1.5, 10.0, 60.0)
    assert forward == pytest.approx(1.5 / math.tan(math.radians(10))) and right == 0.0


def test_straight_ahead_at_and_above_the_horizon_is_none():
    horizon = 180 - FOCAL * math.tan(math.radians(10))
    assert geo.ground_offset(320, horizon, SIZE, 1.5, 10.0, 60.0) is None
    assert geo.ground_offset(320, horizon - 5, SIZE, 1.5, 10.0, 60.0) is None
    near = geo.ground_offset(320, horizon + 0.5, SIZE, 1.5, 10.0, 60.0)
    far = geo.ground_offset(320, horizon + 0.05, SIZE, 1.5, 10.0, 60.0)
    assert far[0] > near[0] > 100  # just below the horizon: far away, and farther the closer to it


def test_left_and_right_are_mirror_images():
    left = geo.ground_offset(320 - 200, 300, SIZE, 1.5, 10.0, 60.0)
    right = geo.ground_offset(320 + 200, 300, SIZE, 1.5, 10.0, 60.0)
    assert left[0] == pytest.approx(right[0]) and left[1] == pytest.approx(-right[1]) and right[1] > 0


def test_level_camera_bottom_row_by_similar_triangles():
    # pitch 0: a ray 180 px below the centre drops 180/f per metre forward, so it meets the road at h * f / 180
    forward, right = geo.ground_offset(320, 360, SIZE, 1.2, 0.0, 60.0)
    assert forward == pytest.approx(1.2 * FOCAL / 180) and right == 0.0


def test_projected_box_lies_at_that_distance_and_bearing_from_the_fix():
    fix = (52.5163, 13.3777)
    box = (420, 250, 520, 330)  # bottom centre (470, 330): right of centre, below it
    forward, right = geo.ground_offset(470, 330, SIZE, 1.5, 10.0, 60.0)
    lat, lon = geo.project_box(box, SIZE, CAMERA, fix[0], fix[1], 90.0)
    distance, bearing, _ = geo.inverse(fix[0], fix[1], lat, lon)
    assert distance == pytest.approx(math.hypot(forward, right), abs=1e-6)
    assert bearing == pytest.approx(90.0 + math.degrees(math.atan2(right, forward)), abs=1e-6)
    assert lat < fix[0] and lon > fix[1]  # heading east, a point ahead and to the right is east and south
    assert geo.project_box((300, 10, 340, 40), SIZE, CAMERA, fix[0], fix[1], 90.0) is None  # sky


@given(lat=st.floats(-80, 80), lon=st.floats(-180, 180), bearing=st.floats(0, 359.999), distance=st.floats(0.5, 5000))
def test_destination_and_inverse_agree(lat, lon, bearing, distance):
    lat2, lon2 = geo.destination(lat, lon, bearing, distance)
    back, initial, _ = geo.inverse(lat, lon, lat2, lon2)
    assert back == pytest.approx(distance, abs=1e-6)
    # the bearing error as a sideways offset at the far point: float rounding of lat/lon, well under a micrometre
    assert math.radians(abs((initial - bearing + 180.0) % 360.0 - 180.0)) * distance < 1e-6


@given(du=st.floats(0, 320), v=st.floats(0, 360), pitch=st.floats(-5, 30), height=st.floats(0.5, 3.0))
def test_projection_is_mirror_symmetric_and_scales_with_height(du, v, pitch, height):
    left = geo.ground_offset(320 - du, v, SIZE, height, pitch, 60.0)
    right = geo.ground_offset(320 + du, v, SIZE, height, pitch, 60.0)
    assert (left is None) == (right is None)
    if right is not None:
        assert left[0] == pytest.approx(right[0]) and left[1] == pytest.approx(-right[1]) and right[0] > 0
        double = geo.ground_offset(320 + du, v, SIZE, 2 * height, pitch, 60.0)
        assert double[0] == pytest.approx(2 * right[0]) and double[1] == pytest.approx(2 * right[1])


def test_nearly_antipodal_points_fall_back_to_the_sphere():
    distance, initial, _ = geo.inverse(0, 0, 0.5, 179.7)  # Vincenty's iteration does not converge here
    assert distance == geo.haversine(0, 0, 0.5, 179.7) and 0 <= initial < 360
