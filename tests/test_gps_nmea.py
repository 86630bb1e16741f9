"""NMEA 0183 parsing: published example sentences, round trips through the writer, and garbage that must give None."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.gps import nmea

# the classic examples (gpsd's NMEA documentation, NovAtel's manual), checksums as published
GGA = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"
RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
VTG = "$GPVTG,054.7,T,034.4,M,005.5,N,010.2,K*48"


def test_published_gga():
    fix = nmea.parse(GGA)
    assert fix.kind == "GGA" and fix.quality == 1 and fix.altitude == 545.4
    assert fix.lat == pytest.approx(48 + 7.038 / 60) and fix.lon == pytest.approx(11 + 31.0 / 60)
    assert fix.time == 12 * 3600 + 35 * 60 + 19 and fix.heading is None and fix.speed is None


def test_published_rmc():
    fix = nmea.parse(RMC)
    assert fix.kind == "RMC" and fix.quality == 1 and fix.date == (1994, 3, 23)
    assert fix.heading == pytest.approx(84.4) and fix.speed == pytest.approx(22.4 * 1852 / 3600)
    assert fix.lat == pytest.approx(48.1173) and fix.lon == pytest.approx(11.516666667)


def test_published_vtg_prefers_kmh():
    fix = nmea.parse(VTG)
    assert fix.kind == "VTG" and fix.heading == pytest.approx(54.7) and fix.speed == pytest.approx(10.2 / 3.6)
    assert fix.lat is None and fix.quality is None


def test_bytes_and_line_endings():
    assert nmea.parse((GGA + "\r\n").encode()) == nmea.parse(GGA)


def test_south_west_and_other_talkers():
    body = "GNRMC,000000.00,A,3356.000,S,15112.000,W,0.0,,010120,,,A"
    fix = nmea.parse(nmea.sentence(body.split(",")[0], body.split(",")[1:]))
    assert fix.lat == pytest.approx(-(33 + 56 / 60)) and fix.lon == pytest.approx(-(151 + 12 / 60))
    assert fix.heading is None and fix.speed == 0.0 and fix.date == (2020, 1, 1)


def test_no_fix_sentences_parse_with_empty_fields():
    gga = nmea.parse(nmea.sentence("GPGGA", ["", "", "", "", "", "0", "00", "", "", "M", "", "M", "", ""]))
    assert gga.kind == "GGA" and gga.quality == 0 and gga.lat is None and gga.lon is None and gga.time is None
    rmc = nmea.parse(nmea.sentence("GLRMC", ["", "V", "", "", "", "", "", "", "", "", "", "N"]))
    assert rmc.kind == "RMC" and rmc.quality == 0 and rmc.lat is None and rmc.speed is None


@pytest.mark.parametrize("bad", [
    GGA[:-2] + "48",                         # checksum off by one
    GGA.replace("4807.038", "4807.039"),      # a changed field under the old checksum
    GGA[1:],                                  # no '$'
    GGA.split("*")[0],                        # no checksum
    "$GPGSV,3,1,11,03,03,111,00*74",          # a type this parser does not read
    nmea.sentence("GPGGA", ["123519", "4860.000", "N", "01131.000", "E", "1", "08"]),  # 60 minutes, too short
    nmea.sentence("GPGGA", ["123519", "9100.000", "N", "01131.000", "E", "1", "08", "0.9", "1", "M"]),  # lat > 90
    nmea.sentence("GPRMC", ["123519", "X", "4807.038", "N", "01131.000", "E", "1", "2", "230394"]),  # status X
    nmea.sentence("GPRMC", ["123519", "A", "4807.038", "N", "01131.000", "E", "nan", "2", "230394"]),  # NaN speed
    nmea.sentence("GPRMC", ["256119", "A", "4807.038", "N", "01131.000", "E", "1", "2", "230394"]),  # hour 25
    "", "$", "$*00", None, 42,
])
def test_bad_sentences_give_none(bad):
    assert nmea.parse(bad) is None


talkers = st.sampled_from(["GP", "GN", "GL", "GA", "GB"])


@given(lat=st.floats(-89.999999, 89.999999), lon=st.floats(-179.999999, 179.999999), heading=st.floats(0, 359.99),
       speed=st.floats(0, 90), millis=st.integers(0, 86399999), talker=talkers,
       date=st.tuples(st.integers(1980, 2079), st.integers(1, 12), st.integers(1, 28)))
def test_written_sentences_round_trip(lat, lon, heading, speed, millis, talker, date):
    seconds = millis / 1000.0
    rmc = nmea.parse(nmea.write_rmc(lat, lon, heading, speed, seconds, date, talker=talker))
    gga = nmea.parse(nmea.write_gga(lat, lon, seconds, quality=2, talker=talker))
    vtg = nmea.parse(nmea.write_vtg(heading, speed, talker=talker))
    for fix in (rmc, gga):
        assert fix.lat == pytest.approx(lat, abs=2e-8) and fix.lon == pytest.approx(lon, abs=2e-8)
        assert fix.time == pytest.approx(seconds, abs=1e-6)
    assert rmc.date == date and rmc.quality == 1 and gga.quality == 2
    assert abs((rmc.heading - heading + 180.0) % 360.0 - 180.0) <= 0.0051 and 0.0 <= rmc.heading < 360.0
    assert abs((vtg.heading - heading + 180.0) % 360.0 - 180.0) <= 0.0051
    assert rmc.speed == pytest.approx(speed, abs=3e-4) and vtg.speed == pytest.approx(speed, abs=2e-4)


@given(st.binary(max_size=120))
def test_random_bytes_never_raise(data):
    assert nmea.parse(data) is None or isinstance(nmea.parse(data), nmea.Fix)


@given(st.lists(st.sampled_from(list("$GPNRMCVTA,.*0123456789-EWSNK")), max_size=90).map("".join))
def test_sentence_like_text_never_raises(text):
    fix = nmea.parse(text)
    assert fix is None or fix.kind in ("GGA", "RMC", "VTG")


@given(fields=st.lists(st.text(alphabet="0123456789.-NSEWAVKT", max_size=12), max_size=14),
       kind=st.sampled_from(["GPGGA", "GNRMC", "GPVTG"]))
def test_valid_checksum_with_random_fields_never_raises(fields, kind):
    fix = nmea.parse(nmea.sentence(kind, fields))
    assert fix is None or fix.kind == kind[2:]
