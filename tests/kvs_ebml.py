"""The test KVS server's own MKV reader: just enough EBML to find PutMedia's fragments as the bytes arrive.

Written apart from the project's MKV writer on purpose (a shared misreading of the format would pass its own
tests). It expects what PutMedia takes: an EBML header, one Segment (any size, usually unknown), segment-level
elements (Info, Tracks, ...) of known size, then Clusters (known or unknown size), each starting with its
Timecode and holding SimpleBlocks. Each Cluster is one fragment. Anything else is an MkvError (the server's 4006).
"""

EBML = 0x1A45DFA3
SEGMENT = 0x18538067
INFO = 0x1549A966
TIMECODE_SCALE = 0x2AD7B1
TRACKS = 0x1654AE6B
CLUSTER = 0x1F43B675
TIMECODE = 0xE7
SIMPLE_BLOCK = 0xA3
BLOCK_GROUP = 0xA0
# elements that sit beside Clusters: one of them starting ends a Cluster of unknown size
SEGMENT_LEVEL = frozenset((0x114D9B74, INFO, TRACKS, 0x1043A770, CLUSTER, 0x1C53BB6B, 0x1941A469, 0x1254C367))
MAX_ELEMENT = 16 * 1024 * 1024


class MkvError(Exception):
    """The body is not MKV this reader (and PutMedia) accepts."""


def read_id(buf, pos):
    """(element id, position after it), or None if buf ends first."""
    if pos >= len(buf):
        return None
    first = buf[pos]
    length = 1
    while length <= 4 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 4:
        raise MkvError("bad element id byte 0x{:02x}".format(first))
    if pos + length > len(buf):
        return None
    return int.from_bytes(bytes(buf[pos:pos + length]), "big"), pos + length


def read_size(buf, pos):
    """(size or None for 'unknown', position after it), or None if buf ends first; also reads a block's track."""
    if pos >= len(buf):
        return None
    first = buf[pos]
    if not first:
        raise MkvError("bad element size byte 0x00")
    length = 1
    while not first & (0x80 >> (length - 1)):
        length += 1
    if pos + length > len(buf):
        return None
    value = first & (0xFF >> length)
    for byte in buf[pos + 1:pos + length]:
        value = (value << 8) | byte
    unknown = value == (1 << (7 * length)) - 1
    return (None if unknown else value), pos + length


class Fragment(object):
    """One Cluster as received: timecode (ms, as written, scaled by TimecodeScale), its blocks' keyframe flags,
    raw bytes; the server adds number, producer_ms (RELATIVE's start added) and status ('PERSISTED' or an error id)."""

    def __init__(self):
        self.timecode = None
        self.keyframes = []
        self.raw = bytearray()
        self.producer_ms = None
        self.status = None
        self.number = None
        self.late = False

    @property
    def blocks(self):
        return len(self.keyframes)

    @property
    def keyframe(self):
        """Whether the first block is a key frame (a fragment must start with one)."""
        return bool(self.keyframes) and self.keyframes[0]

    @property
    def size(self):
        return len(self.raw)

    def __repr__(self):
        return "Fragment(timecode={}, blocks={}, keyframe={}, size={}, status={})".format(
            self.timecode, self.blocks, self.keyframe, self.size, self.status)


class MkvReader(object):
    """Push parser: feed(bytes) -> events [("start", Fragment) once its Timecode is read, ("end", Fragment) once the
    Cluster is complete]. On bad input it stops and sets `error` (a message); the events before it are returned."""

    def __init__(self):
        self.error = None
        self.header = bytearray()  # EBML header, Segment header, Info, Tracks: what comes before the first Cluster
        self._buf = bytearray()
        self._state = "ebml"
        self._scale = 1000000
        self._fragment = None
        self._left = None  # bytes left in a Cluster of known size

    def feed(self, data):
        events = []
        if self.error is None:
            self._buf += data
            try:
                while self._step(events):
                    pass
            except MkvError as err:
                self.error = str(err)
        return events

    def end(self):
        """Events for the body's end (it ends a Cluster of unknown size); sets `error` if it was cut short."""
        events = []
        if self.error is not None:
            return events
        if self._state == "cluster" and self._left is None and not self._buf:
            try:
                self._finish(events)
            except MkvError as err:
                self.error = str(err)
        elif self._buf or self._state == "cluster" or self._state == "segment":
            self.error = "the body ends inside an element"
        return events

    def current(self):
        """The Cluster being read, if any."""
        return self._fragment

    def _element(self):
        """(id, size, header length) of the element at the buffer's start, or None if incomplete."""
        got = read_id(self._buf, 0)
        if got is None:
            return None
        element, pos = got
        got = read_size(self._buf, pos)
        if got is None:
            return None
        return element, got[0], got[1]

    def _whole(self, size, header):
        """Whether the element (known size) is all in the buffer."""
        if size is None:
            raise MkvError("an element of unknown size where only Segment and Cluster may have one")
        if size > MAX_ELEMENT:
            raise MkvError("an element of {} bytes".format(size))
        return len(self._buf) >= header + size

    def _take(self, n, into):
        into += self._buf[:n]
        del self._buf[:n]

    def _step(self, events):
        if self._state == "cluster" and self._left == 0:
            self._finish(events)
            return True
        got = self._element()
        if got is None:
            return False
        element, size, header = got
        if self._state == "ebml":
            if element != EBML:
                raise MkvError("no EBML header")
            if not self._whole(size, header):
                return False
            self._take(header + size, self.header)
            self._state = "segment"
        elif self._state == "segment":
            if element != SEGMENT:
                raise MkvError("no Segment after the EBML header")
            self._take(header, self.header)
            self._state = "body"
        elif self._state == "body":
            return self._segment_child(element, size, header, events)
        elif self._left is None and element in SEGMENT_LEVEL:
            self._finish(events)
        else:
            return self._cluster_child(element, size, header, events)
        return True

    def _segment_child(self, element, size, header, events):
        if element in (EBML, SEGMENT):
            raise MkvError("a second EBML header or Segment")
        if element == CLUSTER:
            self._fragment = Fragment()
            self._left = size
            self._take(header, self._fragment.raw)
            self._state = "cluster"
            return True
        if not self._whole(size, header):
            return False
        body = bytes(self._buf[header:header + size])
        self._take(header + size, self.header if self._fragment is None else bytearray())
        if element == INFO:
            pos = 0
            while pos < len(body):
                child, at = read_id(body, pos) or (None, len(body))
                length, at = read_size(body, at) or (None, len(body))
                if length is None or at + length > len(body):
                    raise MkvError("a bad Info element")
                if child == TIMECODE_SCALE:
                    self._scale = int.from_bytes(body[at:at + length], "big") or 1000000
                pos = at + length
        return True

    def _cluster_child(self, element, size, header, events):
        if size is None:
            raise MkvError("an element of unknown size inside a Cluster")
        if self._left is not None and header + size > self._left:
            raise MkvError("an element longer than its Cluster")
        if not self._whole(size, header):
            return False
        fragment = self._fragment
        body = bytes(self._buf[header:header + size])
        if element == TIMECODE:
            if fragment.timecode is not None or size > 8:
                raise MkvError("a second or oversized Cluster Timecode")
            fragment.timecode = int.from_bytes(body, "big") * self._scale // 1000000
            events.append(("start", fragment))
        elif element in (SIMPLE_BLOCK, BLOCK_GROUP):
            if fragment.timecode is None:
                raise MkvError("a block before the Cluster's Timecode")
            if element == SIMPLE_BLOCK:
                track = read_size(body, 0)
                if track is None or track[0] is None or track[1] + 3 > len(body):
                    raise MkvError("a SimpleBlock too short")
                fragment.keyframes.append(bool(body[track[1] + 2] & 0x80))
            else:
                fragment.keyframes.append(False)
        self._take(header + size, fragment.raw)
        if self._left is not None:
            self._left -= header + size
        return True

    def _finish(self, events):
        fragment, self._fragment = self._fragment, None
        self._state, self._left = "body", None
        if fragment.timecode is None:
            raise MkvError("a Cluster without a Timecode")
        events.append(("end", fragment))
