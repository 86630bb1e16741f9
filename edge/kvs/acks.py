"""PutMedia acknowledgements: the newline-separated JSON the service streams back while the upload goes on.

Pure (no sockets, no clocks), so the producer can feed it whatever its connection hands over, in any pieces:

    reader = AckReader()
    for ack in reader.feed(data):   # bytes, split anywhere
        ...

Tolerated, never fatal (the service and proxies do all of these): a line split across chunks, blank lines and
whitespace-only keep-alives, CRLF, unknown fields, numbers sent as strings (FragmentNumber is a decimal string
longer than any int64), the `{"Acknowledgement": {...}}` wrapper of the API reference's example. A line that is no
acknowledgement (not UTF-8, not JSON, not an object, no or unknown EventType, a field of the wrong type) is
counted in `malformed` and skipped: one bad line must not end a session whose other acks are good.

Fatal, an AckProtocolError (a RoadedgeError): a line longer than `max_line` bytes (64 KiB; real acks are ~150
bytes). That is no ack stream (an HTML page from a proxy, a misdirected binary body), and buffering it would
grow without bound. The acks parsed before it in the same feed() are on the error (`err.acks`), so splitting
the input differently never changes what the caller sees; the reader then refuses further input.
"""
import json

from roadedge.core.errors import RoadedgeError

EVENT_TYPES = ("BUFFERING", "RECEIVED", "PERSISTED", "ERROR", "IDLE")

# from the PutMedia API reference ("ErrorId and ErrorCode")
ERROR_IDS = {
    4000: "error reading the data stream",
    4001: "fragment larger than 50 MB",
    4002: "fragment duration longer than 10 s",
    4003: "connection open longer than allowed",
    4004: "fragment timecode lower than the previous one",
    4005: "more than one track in the MKV (deprecated)",
    4006: "not valid MKV",
    4007: "invalid producer timestamp",
    4008: "stream no longer exists (deleted)",
    4009: "fragment metadata limit reached",
    4010: "a frame's track number is not in the MKV header",
    4011: "a track of the MKV header has no frame in the fragment",
    4012: "more tracks than allowed in the MKV",
    4500: "KMS key access denied",
    4501: "KMS key disabled",
    4502: "KMS key failed validation",
    4503: "KMS key unavailable",
    4504: "invalid use of the KMS key",
    4505: "KMS key in an invalid state",
    4506: "KMS key not found",
    5000: "internal service error",
    5001: "failed to persist the fragment",
}

# worth sending again on a new connection: the service or the connection failed, not the fragment's content
_RETRYABLE = frozenset((4000, 4003, 5000, 5001))

MAX_LINE = 64 * 1024


def is_retryable(error_id):
    """True when the same fragment may succeed if sent again (a new PutMedia connection): reading errors, the
    connection's age limit, the service's internal errors (any 5xxx). False for the fragment's own faults (size,
    duration, timecode order, MKV, tracks), a deleted stream and KMS problems, which the same bytes would hit again."""
    if isinstance(error_id, bool) or not isinstance(error_id, int):
        return False
    return error_id in _RETRYABLE or 5000 <= error_id <= 5999


class AckProtocolError(RoadedgeError):
    """The acknowledgement stream is no ack stream (see the module docstring); `acks` were parsed before it."""

    def __init__(self, message, acks=()):
        super().__init__(message)
        self.acks = list(acks)


class Ack(object):
    """One acknowledgement. fragment_timecode (ms) and fragment_number (digits, a str) are None for IDLE;
    error_id (int) and error_text (ERROR_IDS' meaning, or None if unknown) are None unless EventType is ERROR."""

    __slots__ = ("event_type", "fragment_timecode", "fragment_number", "error_id", "error_text")

    def __init__(self, event_type, fragment_timecode=None, fragment_number=None, error_id=None, error_text=None):
        self.event_type = event_type
        self.fragment_timecode = fragment_timecode
        self.fragment_number = fragment_number
        self.error_id = error_id
        self.error_text = error_text

    def _key(self):
        return (self.event_type, self.fragment_timecode, self.fragment_number, self.error_id, self.error_text)

    def __eq__(self, other):
        return isinstance(other, Ack) and self._key() == other._key()

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return "Ack({!r}, fragment_timecode={!r}, fragment_number={!r}, error_id={!r})".format(
            self.event_type, self.fragment_timecode, self.fragment_number, self.error_id)


def _whole_number(value):
    """An int from an int or a decimal string ('123'), else ValueError; JSON true/false and floats are refused."""
    if isinstance(value, bool):
        raise ValueError("boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value and all("0" <= c <= "9" for c in value):
        return int(value)
    raise ValueError("not a whole number")


def parse_line(line):
    """The Ack in one line (bytes, without its newline), or None for a blank keep-alive; ValueError if malformed."""
    line = line.strip()
    if not line:
        return None
    try:
        obj = json.loads(line.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if isinstance(obj, dict) and isinstance(obj.get("Acknowledgement"), dict) and "EventType" not in obj:
        obj = obj["Acknowledgement"]
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    event_type = obj.get("EventType")
    if not isinstance(event_type, str) or event_type.upper() not in EVENT_TYPES:
        raise ValueError("no known EventType")
    event_type = event_type.upper()
    timecode = obj.get("FragmentTimecode")
    number = obj.get("FragmentNumber")
    timecode = None if timecode is None else _whole_number(timecode)
    number = None if number is None else str(_whole_number(number))
    error_id = error_text = None
    if event_type == "ERROR":
        error_id = obj.get("ErrorId", obj.get("ErrorCode"))
        error_id = None if error_id is None else _whole_number(error_id)
        error_text = ERROR_IDS.get(error_id)
    return Ack(event_type, timecode, number, error_id, error_text)


class AckReader(object):
    """Turns the response body's bytes, in whatever pieces they arrive, into Acks (see the module docstring).

    `malformed` counts skipped lines, `keepalives` blank ones, `acks` all parsed acks."""

    def __init__(self, max_line=MAX_LINE):
        self.max_line = max_line
        self.malformed = 0
        self.keepalives = 0
        self.acks = 0
        self._buffer = b""
        self._failed = None

    def feed(self, data):
        """The acks completed by `data` (bytes), in order; AckProtocolError on a line longer than max_line."""
        if self._failed is not None:
            raise AckProtocolError(self._failed)
        self._buffer += bytes(data)
        acks = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self.max_line:
                    self._fail(acks)
                return acks
            line, self._buffer = self._buffer[:end], self._buffer[end + 1:]
            if len(line) > self.max_line:
                self._fail(acks)
            self._take(line, acks)

    def close(self):
        """The ack on a last line without its newline (the connection ended after it), if any."""
        if self._failed is not None:
            return []
        acks = []
        line, self._buffer = self._buffer, b""
        if line:
            self._take(line, acks)
        return acks

    def _take(self, line, acks):
        try:
            ack = parse_line(line)
        except ValueError:
            self.malformed += 1
            return
        if ack is None:
            self.keepalives += 1
            return
        self.acks += 1
        acks.append(ack)

    def _fail(self, acks):
        self._failed = "PutMedia response: a line longer than {} bytes, not an acknowledgement stream".format(
            self.max_line)
        self._buffer = b""
        raise AckProtocolError(self._failed, acks)
