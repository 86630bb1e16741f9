"""Times as the registry and `roadedge report --since` take them: ISO 8601 text, dates, datetimes -> epoch seconds.

Python 3.7 has no datetime.fromisoformat for '...Z' (3.11 has), hence this small parser."""
import datetime
import re

_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}:?\d{2})?$")


def epoch_seconds(value):
    """A datetime, a date, seconds since the epoch or ISO 8601 text ('2026-11-21', '2026-11-21T08:15:02.123Z',
    '...+01:00') -> seconds since the epoch; a time without a zone is UTC. ValueError for anything else."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.timezone.utc).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _ISO.match(str(value).strip())
    if match is None:
        raise ValueError("{!r}: expected a date (YYYY-MM-DD) or an ISO 8601 time (YYYY-MM-DDTHH:MM:SSZ)".format(value))
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    offset = datetime.timedelta(0)
    if zone and zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        offset = -offset if zone[0] == "-" else offset
    try:
        moment = datetime.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                                   tzinfo=datetime.timezone(offset))
    except ValueError as err:
        raise ValueError("{!r}: {}".format(value, err)) from None
    return moment.timestamp() + (float("0." + fraction) if fraction else 0.0)
