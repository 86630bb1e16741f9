"""NMEA 0183 parsing (GGA, RMC, VTG) into a Fix, and a small writer for the synthetic track and tests.

Parsing never raises: a sentence with a bad checksum, an unknown type or malformed fields gives None.
"""
import collections
import functools
import math
import operator

KNOT_MS = 1852.0 / 3600.0
KMH_MS = 1000.0 / 3600.0

# lat/lon in degrees, heading in degrees true, speed in m/s, quality: GGA fix quality (0 none, 1 GPS, 2 DGPS...)
# or for RMC 1 when status A else 0, time: seconds since midnight UTC, date: (year, month, day) from RMC.
Fix = collections.namedtuple("Fix", "kind lat lon heading speed quality time date altitude")
Fix.__new__.__defaults__ = (None,) * 9


def checksum(body):
    """XOR of the characters between '$' and '*'."""
    return functools.reduce(operator.xor, (ord(c) for c in body), 0)


def _split(sentence):
    if isinstance(sentence, (bytes, bytearray)):
        try:
            sentence = bytes(sentence).decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(sentence, str):
        return None
    sentence = sentence.strip()
    if not sentence.startswith("$") or "*" not in sentence:
        return None
    body, _, given = sentence[1:].rpartition("*")
    if len(given) != 2:
        return None
    try:
        if int(given, 16) != checksum(body):
            return None
    except ValueError:
        return None
    fields = body.split(",")
    if len(fields[0]) != 5 or not fields[0].isalpha():
        return None
    return fields[0][2:], fields[1:]


def _angle(value, hemisphere, degree_digits, positive, negative, limit):
    """ddmm.mmmm / dddmm.mmmm plus N/S or E/W -> signed degrees; None when empty, ValueError when malformed."""
    if not value and not hemisphere:
        return None
    if hemisphere not in (positive, negative):
        raise ValueError(hemisphere)
    head, _, _ = value.partition(".")
    if len(head) != degree_digits + 2 or not head.isdigit():
        raise ValueError(value)
    minutes = float(value[degree_digits:])
    result = int(head[:degree_digits]) + minutes / 60.0
    if minutes >= 60.0 or result > limit:
        raise ValueError(value)
    return -result if hemisphere == negative else result


def _float(value):
    if not value:
        return None
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(value)
    return result


def _time(value):
    """hhmmss[.sss] -> seconds since midnight."""
    if not value:
        return None
    head, _, _ = value.partition(".")
    if len(head) != 6 or not head.isdigit():
        raise ValueError(value)
    hours, minutes, seconds = int(head[:2]), int(head[2:4]), float(value[4:])
    if hours > 23 or minutes > 59 or seconds >= 61:
        raise ValueError(value)
    return hours * 3600 + minutes * 60 + seconds


def _date(value):
    if not value:
        return None
    if len(value) != 6 or not value.isdigit():
        raise ValueError(value)
    day, month, yy = int(value[:2]), int(value[2:4]), int(value[4:])
    year = 1900 + yy if yy >= 80 else 2000 + yy  # NMEA has two-digit years; GPS did not exist before 1980
    if not (1 <= day <= 31 and 1 <= month <= 12):
        raise ValueError(value)
    return (year, month, day)


def _gga(f):
    if len(f) < 9:
        return None
    quality = int(f[5]) if f[5] else 0
    return Fix("GGA", _angle(f[1], f[2], 2, "N", "S", 90.0), _angle(f[3], f[4], 3, "E", "W", 180.0), None, None,
               quality, _time(f[0]), None, _float(f[8]) if len(f) > 8 else None)


def _rmc(f):
    if len(f) < 9:
        return None
    if f[1] not in ("A", "V"):
        return None
    knots = _float(f[6])
    heading = _float(f[7])
    return Fix("RMC", _angle(f[2], f[3], 2, "N", "S", 90.0), _angle(f[4], f[5], 3, "E", "W", 180.0),
               heading % 360.0 if heading is not None else None, knots * KNOT_MS if knots is not None else None,
               1 if f[1] == "A" else 0, _time(f[0]), _date(f[8]), None)


def _vtg(f):
    if len(f) < 7:
        return None
    heading = _float(f[0])
    knots, kmh = _float(f[4]), _float(f[6])
    speed = kmh * KMH_MS if kmh is not None else (knots * KNOT_MS if knots is not None else None)
    return Fix("VTG", None, None, heading % 360.0 if heading is not None else None, speed, None, None, None, None)


_PARSERS = {"GGA": _gga, "RMC": _rmc, "VTG": _vtg}


def parse(sentence):
    """One NMEA sentence (str or bytes) -> Fix, or None when it is not a valid GGA/RMC/VTG."""
    split = _split(sentence)
    if split is None:
        return None
    kind, fields = split
    parser = _PARSERS.get(kind)
    if parser is None:
        return None
    try:
        return parser(fields)
    except (ValueError, IndexError, OverflowError):
        return None


# ---- writer -----------------------------------------------------------------------------------------------------------

def sentence(talker_and_type, fields):
    body = ",".join([talker_and_type] + [str(f) for f in fields])
    return "$%s*%02X" % (body, checksum(body))


def _format_angle(value, degree_digits, positive, negative):
    hemisphere = positive if value >= 0 else negative
    value = abs(value)
    degrees = int(value)
    minutes = round((value - degrees) * 60.0, 6)
    if minutes >= 60.0:
        degrees, minutes = degrees + 1, 0.0
    return "%0*d%09.6f" % (degree_digits, degrees, minutes), hemisphere


def _format_time(seconds):
    seconds = seconds % 86400.0
    hours, rest = divmod(seconds, 3600.0)
    minutes, secs = divmod(rest, 60.0)
    return "%02d%02d%06.3f" % (hours, minutes, secs)


def write_gga(lat, lon, time_s, quality=1, satellites=8, altitude=0.0, talker="GP"):
    la, ns = _format_angle(lat, 2, "N", "S")
    lo, ew = _format_angle(lon, 3, "E", "W")
    return sentence(talker + "GGA", [_format_time(time_s), la, ns, lo, ew, quality, "%02d" % satellites, "0.9",
                                     "%.1f" % altitude, "M", "0.0", "M", "", ""])


def write_rmc(lat, lon, heading, speed_ms, time_s, date, valid=True, talker="GP"):
    la, ns = _format_angle(lat, 2, "N", "S")
    lo, ew = _format_angle(lon, 3, "E", "W")
    year, month, day = date
    return sentence(talker + "RMC", [_format_time(time_s), "A" if valid else "V", la, ns, lo, ew,
                                     "%.3f" % (speed_ms / KNOT_MS), "%.2f" % heading,
                                     "%02d%02d%02d" % (day, month, year % 100), "", "", "A"])


def write_vtg(heading, speed_ms, talker="GP"):
    return sentence(talker + "VTG", ["%.2f" % heading, "T", "", "M", "%.3f" % (speed_ms / KNOT_MS), "N",
                                     "%.3f" % (speed_ms / KMH_MS), "K", "A"])
