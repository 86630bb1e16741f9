"""edge.kvs.mkv and edge.kvs.encoder: what KVS PutMedia will be sent, checked by real parsers.

3 s of moving shapes (640x360, 15 fps, GOP 30, epoch-ms timecodes like a producer's) are encoded with libx264 into
one cluster per GOP; FFmpeg (through PyAV), mkvinfo (mkvtoolnix) and a small EBML reader written here read the file
back. Without av or mkvinfo those tests are skipped, or fail under CI=true (CI must run them).
"""
import os
import re
import shutil
import struct
import subprocess

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.kvs import mkv

WIDTH, HEIGHT, FPS, GOP, SECONDS = 640, 360, 15, 30, 3
BASE_MS = 1764547200000  # 2025-12-01T00:00:00Z: KVS producers send absolute (epoch) timecodes


def require(what, available):
    """Skip when a tool is missing, or fail under CI=true (the pattern of tests/mosquitto.py require_mosquitto)."""
    if available:
        return
    message = "{} is not installed (.ci/run installs it)".format(what)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + "; CI=true: the KVS MKV tests must run, not be skipped", pytrace=False)
    pytest.skip(message)


def require_av():
    try:
        import av
    except ImportError:
        av = None
    require("PyAV (pip install av, the 'kvs' extra)", av is not None)
    return av


# --- a tiny independent EBML reader --------------------------------------------------------------------------------

def read_vint(data, at):
    """(value, length, all value bits set) of the EBML vint at data[at]."""
    first = data[at]
    length = 1
    while not first & (0x80 >> (length - 1)):
        length += 1
        assert length <= 8, "vint longer than 8 bytes"
    value = first & (0xFF >> length)
    for byte in data[at + 1:at + length]:
        value = (value << 8) | byte
    return value, length, value == (1 << (7 * length)) - 1


def read_elements(data, at=0, end=None):
    """[(id with marker, payload start, payload end)], an unknown size running to the end of the data."""
    end = len(data) if end is None else end
    found = []
    while at < end:
        _, id_length, _ = read_vint(data, at)
        ident = int.from_bytes(data[at:at + id_length], "big")
        size, size_length, unknown = read_vint(data, at + id_length)
        start = at + id_length + size_length
        stop = end if unknown else start + size
        assert stop <= end, "element 0x{:X} overruns its parent".format(ident)
        found.append((ident, start, stop))
        at = stop
    return found


def parse_blocks(data):
    """[(cluster timecode, [(relative timecode, flags, payload)])] of the file's clusters; asserts the top level."""
    top = read_elements(data)
    assert [ident for ident, _, _ in top] == [mkv.EBML, mkv.SEGMENT]
    clusters = []
    for ident, start, stop in read_elements(data, top[1][1], top[1][2]):
        if ident != mkv.CLUSTER:
            continue
        children = read_elements(data, start, stop)
        assert children[0][0] == mkv.TIMECODE, "Timecode first in every cluster"
        timecode = int.from_bytes(data[children[0][1]:children[0][2]], "big")
        blocks = []
        for child, begin, finish in children[1:]:
            assert child == mkv.SIMPLE_BLOCK
            track, length, _ = read_vint(data, begin)
            assert track == 1
            relative, flags = struct.unpack(">hB", data[begin + length:begin + length + 3])
            blocks.append((relative, flags, data[begin + length + 3:finish]))
        clusters.append((timecode, blocks))
    return clusters


# --- the encoded stream (one encode for the whole module) -----------------------------------------------------------

def picture(index):
    """Moving shapes; every 7th picture comes at twice the size (the encoder resizes it)."""
    image = np.full((HEIGHT, WIDTH, 3), (40, 90, 40), np.uint8)
    x = (index * 12) % (WIDTH - 80)
    image[100:180, x:x + 80] = (0, 200, 255)
    image[HEIGHT - 60 - (index * 5) % 200:HEIGHT - (index * 5) % 200, 300:360] = (255, 60, 0)
    if index % 7 == 3:
        image = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    return image


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    """{'frames': encoded (timecode, key, avcc), 'clusters': frames grouped per GOP, 'path': the .mkv, 'encoder'}."""
    require_av()
    from edge.kvs.encoder import H264Encoder

    encoder = H264Encoder(WIDTH, HEIGHT, FPS, GOP, 800000)
    frames = []
    for index in range(FPS * SECONDS):
        frames += encoder.encode(picture(index), BASE_MS + index * 1000 // FPS)
    frames += encoder.flush()
    groups = []
    for frame in frames:
        if frame[1]:
            groups.append([])
        groups[-1].append(frame)
    path = tmp_path_factory.mktemp("kvs") / "stream.mkv"
    path.write_bytes(mkv.segment_header(WIDTH, HEIGHT, encoder.codec_private, track_name="road")
                     + b"".join(mkv.cluster(group) for group in groups))
    return {"frames": frames, "clusters": groups, "path": path, "encoder": encoder}


def test_encoder_makes_regular_gops_without_b_frames(stream):
    frames = stream["frames"]
    assert [frame[0] for frame in frames] == [BASE_MS + index * 1000 // FPS for index in range(FPS * SECONDS)]
    assert [index for index, frame in enumerate(frames) if frame[1]] == [0, GOP]
    assert [len(group) for group in stream["clusters"]] == [GOP, FPS * SECONDS - GOP]
    assert all(avcc_nal_types(frame[2]) for frame in frames)
    assert all(5 in avcc_nal_types(frame[2]) for frame in frames if frame[1]), "key frames are IDR pictures"


def test_pyav_decodes_every_frame_at_the_written_timecodes(stream):
    av = require_av()
    with av.open(str(stream["path"])) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264"
        assert (video.codec_context.width, video.codec_context.height) == (WIDTH, HEIGHT)
        pts_ms, decoded = [], 0
        for packet in container.demux(video):
            if packet.size == 0:
                continue  # the demuxer's end-of-stream packet
            pts_ms.append(int(round(float(packet.pts * video.time_base) * 1000)))
            for frame in packet.decode():
                assert (frame.width, frame.height) == (WIDTH, HEIGHT)
                decoded += 1
        decoded += sum(1 for _ in video.codec_context.decode(None))
    assert decoded == len(stream["frames"])
    assert pts_ms == [frame[0] for frame in stream["frames"]]


def mkvinfo_ms(text):
    hours, minutes, seconds = text.split(":")
    return (int(hours) * 3600 + int(minutes) * 60) * 1000 + int(round(float(seconds) * 1000))


def test_mkvinfo_lists_the_track_and_the_clusters(stream):
    require("mkvinfo (Debian: apt-get install mkvtoolnix)", shutil.which("mkvinfo") is not None)
    output = subprocess.run(["mkvinfo", "-v", str(stream["path"])], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, timeout=30, check=True).stdout
    assert "Document type: matroska" in output and "Segment: size unknown" in output
    assert "Timestamp scale: 1000000" in output
    assert "Codec ID: V_MPEG4/ISO/AVC" in output and "Name: road" in output
    assert "Pixel width: {}".format(WIDTH) in output and "Pixel height: {}".format(HEIGHT) in output
    assert "Codec's private data: size {}".format(len(stream["encoder"].codec_private)) in output
    assert "(H.264 profile: High" in output
    clusters = [mkvinfo_ms(value) for value in re.findall(r"Cluster timestamp: (\S+)", output)]
    assert clusters == [group[0][0] for group in stream["clusters"]]
    blocks = re.findall(r"Simple block: (key, )?track number 1, 1 frame\(s\), timestamp (\S+)", output)
    assert [(mkvinfo_ms(stamp), bool(key)) for key, stamp in blocks] == [frame[:2] for frame in stream["frames"]]
    assert [int(size) for size in re.findall(r"Frame with size (\d+)", output)] == [len(f[2]) for f in stream["frames"]]
    assert "rror" not in output and "arning" not in output


def test_own_reader_every_cluster_starts_with_a_key_frame(stream):
    clusters = parse_blocks(stream["path"].read_bytes())
    assert [timecode for timecode, _ in clusters] == [group[0][0] for group in stream["clusters"]]
    for (timecode, blocks), group in zip(clusters, stream["clusters"]):
        assert blocks[0][1] & 0x80, "first block of the cluster at {} is not a key frame".format(timecode)
        assert [(timecode + relative, bool(flags & 0x80), payload) for relative, flags, payload in blocks] == group
        assert all(flags & 0x7F == 0 for _, flags, _ in blocks), "no lacing, no other flags"


def test_codec_private_matches_ffmpegs_own_avcc_record(stream):
    """The oracle: FFmpeg's Matroska muxer turns an encoder's Annex-B extradata into the AVCC record itself."""
    av = require_av()
    path = stream["path"].parent / "ffmpeg.mkv"
    with av.open(str(path), "w", format="matroska") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.codec_context.options = {"tune": "zerolatency", "preset": "veryfast"}
        for index in range(3):
            container.mux(video.encode(av.VideoFrame.from_ndarray(picture(index)[:HEIGHT, :WIDTH], format="bgr24")))
        container.mux(video.encode(None))
        extradata = bytes(video.codec_context.extradata)
    assert extradata.startswith(b"\x00\x00\x00\x01")  # libx264 hands out Annex-B
    with av.open(str(path)) as container:
        ffmpeg_record = bytes(container.streams.video[0].codec_context.extradata)
    assert ffmpeg_record[0] == 1
    assert mkv.avcc_private_from_annexb(extradata) == ffmpeg_record
    sps, pps = [unit for unit in mkv.split_nal_units(extradata) if mkv.nal_type(unit) in (7, 8)]
    assert mkv.avcc_private(sps, pps) == ffmpeg_record


def test_codec_private_from_the_first_key_frame_without_global_header(stream):
    require_av()
    from edge.kvs.encoder import H264Encoder

    encoder = H264Encoder(WIDTH, HEIGHT, FPS, GOP, 800000, global_header=False)
    assert encoder.codec_private is None
    frames = encoder.encode(picture(0), BASE_MS)
    assert frames[0][1] and encoder.codec_private == stream["encoder"].codec_private
    assert {mkv.NAL_SPS, mkv.NAL_PPS} <= set(avcc_nal_types(frames[0][2])), "x264 repeats SPS/PPS in-band"
    assert mkv.NAL_SPS not in avcc_nal_types(stream["frames"][0][2]), "global header: SPS/PPS only in CodecPrivate"


def avcc_nal_types(data):
    """The NAL unit types of AVCC data, walking its 4-byte lengths (which must add up exactly)."""
    types, at = [], 0
    while at < len(data):
        length = struct.unpack(">I", data[at:at + 4])[0]
        types.append(data[at + 4] & 0x1F)
        at += 4 + length
    assert at == len(data)
    return types


# --- pure unit tests (no av, no mkvinfo) -----------------------------------------------------------------------------

@given(st.integers(min_value=0, max_value=(1 << 56) - 2))
def test_vint_round_trips_in_the_shortest_length(value):
    encoded = mkv.vint(value)
    decoded, length, all_ones = read_vint(encoded, 0)
    assert (decoded, length) == (value, len(encoded)) and not all_ones
    assert len(encoded) == 1 or value >= (1 << (7 * (len(encoded) - 1))) - 1, "not the shortest length"


def test_vint_edges():
    assert mkv.vint(0) == b"\x80" and mkv.vint(126) == b"\xfe"
    assert mkv.vint(127) == b"\x40\x7f"  # 0xFF would be the reserved 1-byte all-ones value
    assert mkv.vint((1 << 56) - 2) == b"\x01" + b"\xff" * 6 + b"\xfe"
    for bad in (-1, (1 << 56) - 1):
        with pytest.raises(ValueError):
            mkv.vint(bad)
    assert read_vint(mkv.UNKNOWN_SIZE, 0)[2]


def test_annexb_to_avcc_splits_both_start_codes():
    sps, pps, idr = b"\x67\x64\x00\x16\xac", b"\x68\xef\x3c", b"\x65\x88\x84\x00\x03\x01"
    annexb = b"\x00\x00\x00\x01" + sps + b"\x00\x00\x01" + pps + b"\x00\x00\x00\x01" + idr + b"\x00\x00"
    assert mkv.split_nal_units(annexb) == [sps, pps, idr]
    assert mkv.annexb_to_avcc(annexb) == b"".join(struct.pack(">I", len(unit)) + unit for unit in (sps, pps, idr))
    with pytest.raises(ValueError):
        mkv.annexb_to_avcc(b"\x65\x88\x84")
    with pytest.raises(ValueError):
        mkv.annexb_to_avcc(b"")


def test_avcc_private_layout_for_a_baseline_sps():
    sps, pps = b"\x67\x42\xc0\x1e\xda\x02", b"\x68\xce\x3c\x80"
    assert mkv.avcc_private(sps, pps) == (b"\x01\x42\xc0\x1e\xff\xe1\x00\x06" + sps + b"\x01\x00\x04" + pps)


def test_cluster_refusals():
    with pytest.raises(ValueError, match="at least one"):
        mkv.cluster([])
    with pytest.raises(ValueError, match="key frame"):
        mkv.cluster([(1000, False, b"x")])
    with pytest.raises(ValueError, match="32767"):
        mkv.cluster([(1000, True, b"x"), (1000 + 32768, False, b"y")])
    with pytest.raises(ValueError, match="32767"):
        mkv.cluster([(1000, True, b"x"), (999, False, b"y")])
    last = mkv.cluster([mkv.Frame(1000, True, b"x"), (1000 + 32767, False, b"y")])
    assert parse_blocks(mkv.ebml_header() + mkv.element_id(mkv.SEGMENT) + mkv.UNKNOWN_SIZE + last) == [
        (1000, [(0, 0x80, b"x"), (32767, 0, b"y")])]
