"""The GetMedia MKV reader (cloud.segment.mkv) on generated GetMedia bodies: the project's MKV writer for the
fragments, the service's tags around them. Any split of the bytes gives the same fragments; a body cut anywhere
gives the complete fragments before the cut and waits for more, never a wrong one; bad bytes are an MkvError."""
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.segment.mkv import GetMediaReader, MkvError, timestamp_ms
from edge.kvs import mkv
from tests.kvs_getmedia import seconds, tags

CODEC_PRIVATE = bytes([1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0, 4, 0x67, 0x42, 0xC0, 0x1E, 1, 0, 2, 0x68, 0xCE])


def body(fragments, width=320, height=180, unknown_cluster=False):
    """A GetMedia body: per fragment (number, producer ms, [(relative ms, key frame, data)]) one MKV, tags around."""
    out = b""
    for number, producer_ms, frames in fragments:
        cluster = mkv.cluster([(producer_ms + relative, key, data) for relative, key, data in frames])
        if unknown_cluster:  # the Cluster's size as 'unknown': the Tags after it end it
            size_length = 9 - cluster[4].bit_length()  # the Cluster id is 4 bytes, its size a vint after it
            cluster = cluster[:4] + mkv.UNKNOWN_SIZE + cluster[4 + size_length:]
        out += (mkv.segment_header(width, height, CODEC_PRIVATE)
                + tags([("AWS_KINESISVIDEO_FRAGMENT_NUMBER", number),
                        ("AWS_KINESISVIDEO_SERVER_TIMESTAMP", seconds(producer_ms + 250)),
                        ("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", seconds(producer_ms))])
                + cluster + tags([("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", "40"),
                                  ("AWS_KINESISVIDEO_CONTINUATION_TOKEN", number)]))
    return out


def summary(fragment):
    return (fragment.number, fragment.producer_ms, fragment.server_ms, fragment.timecode, fragment.track.codec_private,
            fragment.track.width, fragment.track.height,
            [(f.track, f.relative, f.keyframe, f.data, fragment.frame_ms(f)) for f in fragment.video_frames()])


def expected(fragments):
    return [(number, ms, ms + 250, ms, CODEC_PRIVATE, 320, 180,
             [(1, relative, key, data, ms + relative) for relative, key, data in frames])
            for number, ms, frames in fragments]


frame_lists = st.lists(st.tuples(st.integers(0, 2000), st.binary(min_size=1, max_size=40)), min_size=1, max_size=5).map(
    lambda items: sorted(items, key=lambda item: item[0])).map(  # the Cluster's timecode is its first frame's
    lambda items: [(relative - items[0][0], index == 0, data) for index, (relative, data) in enumerate(items)])
fragment_lists = st.lists(st.tuples(st.integers(1, 10 ** 50), st.integers(0, 2 ** 41), frame_lists),
                          min_size=1, max_size=3).map(
    lambda items: [(str(number), ms, frames) for number, ms, frames in items])


@given(fragment_lists, st.lists(st.integers(0, 4000), max_size=6), st.booleans())
def test_any_split_of_the_body_gives_every_fragment_with_its_tags_and_frames(fragments, cuts, unknown_cluster):
    data = body(fragments, unknown_cluster=unknown_cluster)
    reader, got, last = GetMediaReader(), [], 0
    for cut in sorted(min(cut, len(data)) for cut in cuts) + [len(data)]:
        got += reader.feed(data[last:cut])
        last = cut
    got += reader.end()
    assert [summary(f) for f in got] == expected(fragments)
    assert [f.trailing for f in got] == [{"MILLIS_BEHIND_NOW": "40", "CONTINUATION_TOKEN": number}
                                         for number, _, _ in fragments]


def test_a_body_cut_at_every_byte_gives_only_complete_fragments_and_then_the_rest():
    fragments = [("7", 1764547200000, [(0, True, b"key"), (66, False, b"p1"), (133, False, b"p2")]),
                 ("8", 1764547201000, [(0, True, b"key2")]), ("9", 1764547202000, [(0, True, b"k3"), (5, False, b"x")])]
    data = body(fragments)
    ends = [len(body(fragments[:n + 1])) - len(tags([("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", "40"),
                                                     ("AWS_KINESISVIDEO_CONTINUATION_TOKEN", fragments[n][0])]))
            for n in range(len(fragments))]  # where each Cluster ends
    sizes = [len(mkv.cluster([(ms + relative, key, data) for relative, key, data in frames])) for _, ms, frames in fragments]
    want = expected(fragments)
    for cut in range(len(data) + 1):
        reader = GetMediaReader()
        first = [summary(f) for f in reader.feed(data[:cut])]
        assert first == want[:sum(1 for end in ends if end <= cut)], cut
        rest = [summary(f) for f in reader.feed(data[cut:]) + reader.end()]
        assert first + rest == want, cut
        if any(end - size < cut < end for end, size in zip(ends, sizes)):
            with pytest.raises(MkvError):
                cut_reader = GetMediaReader()
                cut_reader.feed(data[:cut])
                cut_reader.end()  # the body stopping inside a Cluster is an error, not a short fragment


@pytest.mark.parametrize("bad, message", [
    (b"\x00\x00\x00\x00", "bad EBML id"),
    (mkv.element(mkv.CLUSTER, b""), "out of place"),
    (mkv.ebml_header() + mkv.element(mkv.INFO, b""), "out of place"),
    (mkv.ebml_header() + mkv.element_id(mkv.SEGMENT) + mkv.UNKNOWN_SIZE + mkv.element(mkv.CLUSTER, mkv.uint_element(
        mkv.TIMECODE, 5) + mkv.element(mkv.SIMPLE_BLOCK, b"\x81\x00")), "a block too short"),
    (mkv.ebml_header() + mkv.element_id(mkv.SEGMENT) + mkv.UNKNOWN_SIZE + mkv.element(mkv.CLUSTER, mkv.element(
        mkv.SIMPLE_BLOCK, b"\x81\x00\x00\x80x")), "a Cluster without a Timecode"),
    (mkv.ebml_header() + mkv.element_id(mkv.SEGMENT) + mkv.vint(3) + mkv.element(mkv.INFO, b"abcd"), "runs past"),
])
def test_bad_bytes_are_an_mkv_error(bad, message):
    reader = GetMediaReader()
    with pytest.raises(MkvError, match=message):
        reader.feed(bad)
        reader.end()


def test_timestamps_are_read_exactly():
    assert timestamp_ms("1764547200.067") == 1764547200067 and timestamp_ms("1764547200") == 1764547200000
    assert timestamp_ms("0.0015") == 2 and timestamp_ms("soon") is None and timestamp_ms(None) is None


def test_tags_inside_a_cluster_of_known_size_are_read_too():
    frames = mkv.uint_element(mkv.TIMECODE, 500) + mkv.simple_block(0, True, b"key")
    cluster = mkv.element(mkv.CLUSTER, tags([("AWS_KINESISVIDEO_FRAGMENT_NUMBER", "42"),
                                             ("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", "1.5")]) + frames
                          + tags([("AWS_KINESISVIDEO_CONTINUATION_TOKEN", "42")]))
    reader = GetMediaReader()
    got = reader.feed(mkv.segment_header(64, 48, CODEC_PRIVATE) + cluster) + reader.end()
    assert [(f.number, f.producer_ms, f.trailing, [b.data for b in f.frames]) for f in got] == [
        ("42", 1500, {"CONTINUATION_TOKEN": "42"}, [b"key"])]


def test_the_reader_is_pure():
    """Bytes in, objects out: no sockets, files or clocks to test around."""
    with open(sys.modules[GetMediaReader.__module__].__file__) as source:
        imports = {line.split()[1] for line in source if line.startswith(("import ", "from "))}
    assert imports == {"decimal"}
