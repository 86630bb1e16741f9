"""GetMedia for the test KVS server (tests/kvs_server.py): what PutMedia persisted, served as the service serves it.

Each fragment goes out as its own MKV, in one HTTP chunk: an EBML header, a Segment of unknown size holding the
Info and Tracks PutMedia sent, a Tags element (AWS_KINESISVIDEO_FRAGMENT_NUMBER, _SERVER_TIMESTAMP,
_PRODUCER_TIMESTAMP: timestamps as decimal seconds with milliseconds), the Cluster as received, and a second Tags
element (AWS_KINESISVIDEO_MILLIS_BEHIND_NOW, AWS_KINESISVIDEO_CONTINUATION_TOKEN). The next fragment's EBML header
ends the Segment. Content-Type video/webm, chunked; after the stored fragments the response waits for new ones and
ends (final chunk) once `server.get_media_idle_s` passes without one, or when the client goes away.

StartSelector (AWS's GetMedia reference): EARLIEST, NOW (only fragments persisted after the request),
FRAGMENT_NUMBER (starting with AfterFragmentNumber's fragment), PRODUCER_TIMESTAMP / SERVER_TIMESTAMP (the first
fragment at or after StartTimestamp, epoch seconds), CONTINUATION_TOKEN (the fragment after the one whose token it
is; a token here is the fragment number). An unknown fragment number or token: 404 ResourceNotFoundException.
"""
import time

from tests.kvs_ebml import EBML, INFO, SEGMENT, TRACKS, read_id, read_size

TAGS = 0x1254C367
TAG = 0x7373
TARGETS = 0x63C0
SIMPLE_TAG = 0x67C8
TAG_NAME = 0x45A3
TAG_STRING = 0x4487
SELECTORS = ("NOW", "EARLIEST", "FRAGMENT_NUMBER", "PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP", "CONTINUATION_TOKEN")


def _element(ident, payload):
    head = ident.to_bytes((ident.bit_length() + 7) // 8, "big")
    return head + (0x01 << 56 | len(payload)).to_bytes(8, "big") + payload  # 8-byte sizes: simple, and valid EBML


def tags(pairs):
    """A Tags element: one Tag with an empty Targets and a SimpleTag (TagName, TagString) per pair."""
    simple = b"".join(_element(SIMPLE_TAG, _element(TAG_NAME, name.encode()) + _element(TAG_STRING, value.encode()))
                      for name, value in pairs)
    return _element(TAGS, _element(TAG, _element(TARGETS, b"") + simple))


def split_header(header):
    """(EBML header element, [segment-level elements before the first Cluster]) of what a PutMedia session began with."""
    ident, pos = read_id(header, 0)
    size, pos = read_size(header, pos)
    assert ident == EBML, "a PutMedia header starts with the EBML header"
    ebml = bytes(header[:pos + size])
    ident, pos = read_id(header, pos + size)
    assert ident == SEGMENT
    pos = read_size(header, pos)[1]
    children = []
    while pos < len(header):
        ident, at = read_id(header, pos)
        size, at = read_size(header, at)
        children.append((ident, bytes(header[pos:at + size])))
        pos = at + size
    return ebml, [raw for ident, raw in children if ident in (INFO, TRACKS)]


def seconds(ms):
    return "%d.%03d" % divmod(int(ms), 1000)


def fragment_mkv(fragment, millis_behind_now):
    """One GetMedia chunk for a stored fragment (see the module docstring)."""
    ebml, children = split_header(fragment.header)
    before = tags([("AWS_KINESISVIDEO_FRAGMENT_NUMBER", fragment.number),
                   ("AWS_KINESISVIDEO_SERVER_TIMESTAMP", seconds(fragment.server_ms)),
                   ("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", seconds(fragment.producer_ms))])
    after = tags([("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", str(int(millis_behind_now))),
                  ("AWS_KINESISVIDEO_CONTINUATION_TOKEN", fragment.number)])
    return (ebml + SEGMENT.to_bytes(4, "big") + b"\x01\xff\xff\xff\xff\xff\xff\xff" + b"".join(children) + before
            + bytes(fragment.raw) + after)


def start_index(stream, selector):
    """Index into stream.persisted() of the first fragment to send, or an (status, error type, message) tuple."""
    kind = selector.get("StartSelectorType")
    kept = stream.persisted()
    numbers = [f.number for f in kept]
    if kind == "EARLIEST":
        return 0
    if kind == "NOW":
        return len(kept)
    if kind in ("FRAGMENT_NUMBER", "CONTINUATION_TOKEN"):
        number = selector.get("AfterFragmentNumber" if kind == "FRAGMENT_NUMBER" else "ContinuationToken")
        if not number:
            return 400, "InvalidArgumentException", "{} needs its fragment number or token".format(kind)
        if number not in numbers:
            return 404, "ResourceNotFoundException", "no fragment {} on stream {}".format(number, stream.name)
        return numbers.index(number) + (kind == "CONTINUATION_TOKEN")
    if kind in ("PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"):
        try:
            start_ms = float(selector["StartTimestamp"]) * 1000.0
        except (KeyError, TypeError, ValueError):
            return 400, "InvalidArgumentException", "{} needs StartTimestamp".format(kind)
        field = "producer_ms" if kind == "PRODUCER_TIMESTAMP" else "server_ms"
        return next((i for i, f in enumerate(kept) if getattr(f, field) >= start_ms - 0.5), len(kept))
    return 400, "InvalidArgumentException", "StartSelectorType {!r}; expected one of {}".format(kind, ", ".join(SELECTORS))


def serve_get_media(handler, request):
    """The /getMedia answer on a _Handler whose request body (JSON) was read and signature checked."""
    server = handler.server
    with server.lock:
        server.get_media_requests = getattr(server, "get_media_requests", []) + [request]
        server.changed.notify_all()
        stream = server.streams.get(request.get("StreamName"))
        if stream is None and request.get("StreamARN"):
            stream = next((s for s in server.streams.values() if s.arn == request["StreamARN"]), None)
    if stream is None:
        name = request.get("StreamName") or request.get("StreamARN")
        return handler._error(404, "ResourceNotFoundException", "no stream {}".format(name))
    with server.lock:
        start = start_index(stream, request.get("StartSelector") or {})
    if isinstance(start, tuple):
        return handler._error(*start)
    handler.close_connection = True
    handler.send_response(200)
    handler.send_header("Content-Type", "video/webm")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.send_header("x-amzn-RequestId", "test-request")
    handler.end_headers()
    server.requests.append((handler.path, 200))
    sent = start
    try:
        while True:
            with server.lock:
                deadline = time.monotonic() + server.get_media_idle_s
                while len(stream.persisted()) <= sent and time.monotonic() < deadline:
                    server.changed.wait(max(0.0, min(0.2, deadline - time.monotonic())))
                kept = stream.persisted()
            if len(kept) <= sent:
                break
            newest = kept[-1].server_ms
            for fragment in kept[sent:]:
                data = fragment_mkv(fragment, max(0, newest - fragment.server_ms))
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                handler.wfile.flush()
            sent = len(kept)
        handler.wfile.write(b"0\r\n\r\n")
    except OSError:
        pass  # the client closed the connection: the session is over
