"""GetMedia's MKV, read as it arrives: fragments (one Cluster each) with their frames and AWS_KINESISVIDEO tags.

Pure (bytes in, objects out). GetMedia sends a sequence of MKV files, one per fragment (AWS's GetMedia reference):
an EBML header, a Segment (usually of unknown size, ended by the next EBML header) with Info, Tracks, Tags holding
AWS_KINESISVIDEO_FRAGMENT_NUMBER, _SERVER_TIMESTAMP and _PRODUCER_TIMESTAMP (decimal seconds), the Cluster, then
Tags holding AWS_KINESISVIDEO_MILLIS_BEHIND_NOW and AWS_KINESISVIDEO_CONTINUATION_TOKEN (or _ERROR_CODE/_ERROR_ID).
Written apart from tests/kvs_ebml.py (the test server's reader), from the Matroska specification (RFC 9559).

    reader = GetMediaReader()
    for fragment in reader.feed(data): ...     # each Fragment once its Cluster is complete; nothing for a partial one
    reader.end()                               # MkvError if the bytes stopped inside an element
"""
from decimal import Decimal, InvalidOperation

EBML = 0x1A45DFA3
SEGMENT = 0x18538067
INFO = 0x1549A966
TIMECODE_SCALE = 0x2AD7B1
TRACKS = 0x1654AE6B
TRACK_ENTRY = 0xAE
TRACK_NUMBER = 0xD7
CODEC_ID = 0x86
CODEC_PRIVATE = 0x63A2
VIDEO = 0xE0
PIXEL_WIDTH = 0xB0
PIXEL_HEIGHT = 0xBA
TAGS = 0x1254C367
TAG = 0x7373
SIMPLE_TAG = 0x67C8
TAG_NAME = 0x45A3
TAG_STRING = 0x4487
CLUSTER = 0x1F43B675
TIMECODE = 0xE7
SIMPLE_BLOCK = 0xA3
BLOCK_GROUP = 0xA0
BLOCK = 0xA1
REFERENCE_BLOCK = 0xFB
# Segment children: one of them (or an EBML header) starting ends a Cluster of unknown size
SEGMENT_CHILDREN = frozenset((0x114D9B74, INFO, TRACKS, 0x1043A770, CLUSTER, 0x1C53BB6B, 0x1941A469, TAGS))
MAX_ELEMENT = 64 * 1024 * 1024
PREFIX = "AWS_KINESISVIDEO_"


class MkvError(ValueError):
    """Bytes that are not GetMedia's MKV."""


class Track(object):
    __slots__ = ("number", "codec_id", "codec_private", "width", "height")

    def __init__(self):
        self.number, self.codec_id, self.codec_private, self.width, self.height = None, "", b"", 0, 0


class Frame(object):
    """One block: track, timecode relative to the Cluster's (as written), key frame flag, the codec's bytes."""

    __slots__ = ("track", "relative", "keyframe", "data")

    def __init__(self, track, relative, keyframe, data):
        self.track, self.relative, self.keyframe, self.data = track, relative, keyframe, data


class Fragment(object):
    """A complete Cluster: its tags (names without AWS_KINESISVIDEO_), the video track, the frames in order."""

    def __init__(self, tags, track, scale_ns, timecode):
        self.tags, self.track, self.scale_ns, self.timecode = dict(tags), track, scale_ns, timecode
        self.frames = []
        self.trailing = {}  # the tags after the Cluster (MILLIS_BEHIND_NOW, CONTINUATION_TOKEN), once read

    @property
    def number(self):
        return self.tags.get("FRAGMENT_NUMBER")

    @property
    def producer_ms(self):
        return timestamp_ms(self.tags.get("PRODUCER_TIMESTAMP"))

    @property
    def server_ms(self):
        return timestamp_ms(self.tags.get("SERVER_TIMESTAMP"))

    def frame_ms(self, frame):
        """A frame's producer timestamp (ms): the fragment's plus the block's offset in the Cluster."""
        base = self.producer_ms
        if base is None:
            base = self.timecode * self.scale_ns // 1000000
        return base + frame.relative * self.scale_ns // 1000000

    def video_frames(self):
        return [frame for frame in self.frames if self.track is None or frame.track == self.track.number]


def timestamp_ms(text):
    """'1764547200.067' (seconds) -> 1764547200067; None for None or an unreadable value."""
    if text is None:
        return None
    try:
        return int((Decimal(text) * 1000).to_integral_value())
    except (InvalidOperation, ValueError):
        return None


def vint(buf, pos, is_id=False):
    """(value, position after) of the EBML variable-length number at pos, or None if buf ends first; sizes with all
    value bits set come back as -1 (unknown). Ids keep their length marker."""
    if pos >= len(buf):
        return None
    first = buf[pos]
    length = 9 - first.bit_length() if first else 9
    if length > (4 if is_id else 8):
        raise MkvError("bad EBML {} byte 0x{:02x} at {}".format("id" if is_id else "size", first, pos))
    if pos + length > len(buf):
        return None
    value = int.from_bytes(bytes(buf[pos:pos + length]), "big")
    if is_id:
        return value, pos + length
    value &= (1 << (7 * length)) - 1
    return (-1 if value == (1 << (7 * length)) - 1 else value), pos + length


def children(body):
    """[(id, payload)] of a complete master element's payload."""
    out, pos = [], 0
    while pos < len(body):
        got = vint(body, pos, True)
        size = got and vint(body, got[1])
        if not size or size[0] < 0 or size[1] + size[0] > len(body):
            raise MkvError("a child element runs past its parent")
        out.append((got[0], bytes(body[size[1]:size[1] + size[0]])))
        pos = size[1] + size[0]
    return out


def uint(payload):
    return int.from_bytes(payload, "big") if payload else 0


def read_tags(body):
    """{name without AWS_KINESISVIDEO_ (others kept whole): value} of a Tags element's payload."""
    found = {}
    for ident, tag in children(body):
        for child, simple in (children(tag) if ident == TAG else ()):
            if child == SIMPLE_TAG:
                fields = dict(children(simple))
                name = fields.get(TAG_NAME, b"").decode("utf-8", "replace")
                found[name[len(PREFIX):] if name.startswith(PREFIX) else name] = \
                    fields.get(TAG_STRING, b"").decode("utf-8", "replace")
    return found


def read_video_track(body):
    """The first video (V_...) TrackEntry of a Tracks element's payload, or None."""
    for ident, entry in children(body):
        if ident != TRACK_ENTRY:
            continue
        track, fields = Track(), children(entry)
        for child, payload in fields:
            if child == TRACK_NUMBER:
                track.number = uint(payload)
            elif child == CODEC_ID:
                track.codec_id = payload.decode("ascii", "replace")
            elif child == CODEC_PRIVATE:
                track.codec_private = payload
            elif child == VIDEO:
                video = dict(children(payload))
                track.width, track.height = uint(video.get(PIXEL_WIDTH)), uint(video.get(PIXEL_HEIGHT))
        if track.codec_id.startswith("V_"):
            return track
    return None


def read_block(payload, group=False):
    """Frame of a SimpleBlock payload (or a BlockGroup's Block: the key frame flag comes from its group)."""
    got = vint(payload, 0)
    if got is None or got[0] < 0 or got[1] + 3 > len(payload):
        raise MkvError("a block too short")
    track, pos = got
    relative = int.from_bytes(payload[pos:pos + 2], "big", signed=True)
    flags = payload[pos + 2]
    if flags & 0x06:
        raise MkvError("a laced block (GetMedia video has none)")
    return Frame(track, relative, bool(flags & 0x80) and not group, bytes(payload[pos + 3:]))


class GetMediaReader(object):
    """Push parser for GetMedia's response body (see the module docstring)."""

    def __init__(self):
        self._buf = bytearray()
        self._offset = 0  # bytes consumed so far (for messages)
        self._state = "top"  # top, segment, cluster
        self._segment_left = self._cluster_left = None  # bytes left in a known-size Segment / Cluster
        self._scale, self._track, self._tags, self._fragment, self._last = 1000000, None, {}, None, None
        self.trailing = {}  # the last tags after a Cluster: MILLIS_BEHIND_NOW, CONTINUATION_TOKEN, ERROR_...

    def feed(self, data):
        """Fragments completed by data (possibly none: the rest is kept until more comes)."""
        self._buf += data
        done = []
        while self._step(done):
            pass
        return done

    def end(self):
        """At the end of the body: the last Cluster of unknown size completes; MkvError if cut inside an element."""
        done = []
        if self._state == "cluster" and self._cluster_left is None and not self._buf:
            self._close_cluster(done)
        elif self._buf or self._state == "cluster" or (self._state == "segment" and self._segment_left):
            raise MkvError("the media ended inside an element, {} bytes in".format(self._offset + len(self._buf)))
        return done

    def _header(self):
        got = vint(self._buf, 0, True)
        size = got and vint(self._buf, got[1])
        if not size:
            return None
        if size[0] > MAX_ELEMENT:
            raise MkvError("an element of {} bytes at {}".format(size[0], self._offset))
        return got[0], size[0], size[1]

    def _consume(self, count):
        for name in ("_segment_left", "_cluster_left"):
            left = getattr(self, name)
            if left is not None:
                if count > left:
                    raise MkvError("an element runs past its parent at {}".format(self._offset))
                setattr(self, name, left - count)
        del self._buf[:count]
        self._offset += count

    def _step(self, done):
        if self._state == "cluster" and self._cluster_left == 0:
            self._close_cluster(done)
            return True
        if self._state == "segment" and self._segment_left == 0:
            self._state, self._segment_left = "top", None
            return True
        got = self._header()
        if got is None:
            return False
        ident, size, head = got
        if self._state == "cluster" and self._cluster_left is None and (ident in SEGMENT_CHILDREN or ident == EBML):
            self._close_cluster(done)
            return True
        if self._state == "segment" and ident == EBML and self._segment_left is None:
            self._state = "top"
            return True
        if self._state != "top" and ident in (EBML, SEGMENT) or self._state == "top" and ident not in (EBML, SEGMENT):
            raise MkvError("element 0x{:X} out of place at {}".format(ident, self._offset))
        if ident == SEGMENT:
            self._consume(head)
            self._state, self._segment_left = "segment", (None if size < 0 else size)
            self._track, self._tags, self._scale = None, {}, 1000000
            return True
        if ident == CLUSTER:
            self._consume(head)
            self._state, self._cluster_left = "cluster", (None if size < 0 else size)
            self._fragment = Fragment(self._tags, self._track, self._scale, None)
            return True
        if size < 0:
            raise MkvError("element 0x{:X} of unknown size at {}".format(ident, self._offset))
        if len(self._buf) < head + size:
            return False
        payload = bytes(self._buf[head:head + size])
        self._consume(head + size)
        if self._state == "cluster":
            self._cluster_child(ident, payload)
        else:
            self._segment_child(ident, payload)
        return True

    def _segment_child(self, ident, payload):
        if ident == INFO:
            self._scale = uint(dict(children(payload)).get(TIMECODE_SCALE)) or 1000000
        elif ident == TRACKS:
            self._track = read_video_track(payload)
        elif ident == TAGS:
            tags = read_tags(payload)
            if "FRAGMENT_NUMBER" in tags or "PRODUCER_TIMESTAMP" in tags:
                self._tags = tags
            else:
                self.trailing = tags
                if self._last is not None:
                    self._last.trailing.update(tags)

    def _cluster_child(self, ident, payload):
        fragment = self._fragment
        if ident == TAGS:  # inside a Cluster of known size: not where Matroska puts them, but read them there too
            tags = read_tags(payload)
            if "FRAGMENT_NUMBER" in tags or "PRODUCER_TIMESTAMP" in tags:
                fragment.tags.update(tags)
            else:
                self.trailing = tags
                fragment.trailing.update(tags)
        elif ident == TIMECODE:
            fragment.timecode = uint(payload)
        elif ident == SIMPLE_BLOCK:
            fragment.frames.append(read_block(payload))
        elif ident == BLOCK_GROUP:
            fields = children(payload)
            blocks = [read_block(data, group=True) for child, data in fields if child == BLOCK]
            if len(blocks) != 1:
                raise MkvError("a BlockGroup without one Block at {}".format(self._offset))
            blocks[0].keyframe = not any(child == REFERENCE_BLOCK for child, _ in fields)
            fragment.frames.append(blocks[0])

    def _close_cluster(self, done):
        fragment, self._fragment = self._fragment, None
        self._state, self._cluster_left = "segment", None
        if fragment.timecode is None:
            raise MkvError("a Cluster without a Timecode before {}".format(self._offset))
        self._last = fragment
        done.append(fragment)
