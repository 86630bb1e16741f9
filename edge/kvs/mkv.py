"""MKV for Kinesis Video PutMedia: EBML writing, the stream header, one Cluster per fragment, H.264 Annex-B -> AVCC.

Pure (bytes in, bytes out; no I/O, no av): PutMedia streams one EBML header and one Segment of unknown size, so the
header is written once and each fragment (a Cluster starting with a key frame) is appended as it is encoded.
Element ids: the Matroska specification (RFC 9559) and EBML (RFC 8794).
"""
import struct
from collections import namedtuple

# EBML header
EBML = 0x1A45DFA3
EBML_VERSION = 0x4286
EBML_READ_VERSION = 0x42F7
EBML_MAX_ID_LENGTH = 0x42F2
EBML_MAX_SIZE_LENGTH = 0x42F3
DOC_TYPE = 0x4282
DOC_TYPE_VERSION = 0x4287
DOC_TYPE_READ_VERSION = 0x4285
# Segment and its children
SEGMENT = 0x18538067
INFO = 0x1549A966
TIMECODE_SCALE = 0x2AD7B1
MUXING_APP = 0x4D80
WRITING_APP = 0x5741
TRACKS = 0x1654AE6B
TRACK_ENTRY = 0xAE
TRACK_NUMBER = 0xD7
TRACK_UID = 0x73C5
TRACK_TYPE = 0x83
FLAG_LACING = 0x9C
NAME = 0x536E
CODEC_ID = 0x86
CODEC_PRIVATE = 0x63A2
VIDEO = 0xE0
PIXEL_WIDTH = 0xB0
PIXEL_HEIGHT = 0xBA
CLUSTER = 0x1F43B675
TIMECODE = 0xE7
SIMPLE_BLOCK = 0xA3

VINT_MAX = (1 << 56) - 2  # 8-byte sizes; all value bits set is reserved (it means "unknown size")
UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"
TIMECODE_SCALE_NS = 1000000  # block and cluster timecodes in milliseconds
TRACK = 1
TRACK_TYPE_VIDEO = 1
CODEC_AVC = "V_MPEG4/ISO/AVC"
KEYFRAME_FLAG = 0x80
APP = "roadedge"

NAL_SPS, NAL_PPS = 7, 8
HIGH_PROFILES = (100, 110, 122, 144)  # ISO 14496-15: their AVCC record carries chroma format and bit depths
CHROMA_PROFILES = (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135)  # H.264 7.3.2.1.1: SPS has them

Frame = namedtuple("Frame", "timecode_ms keyframe avcc_data")
Frame.__doc__ = "One encoded picture: absolute timecode (ms), key frame or not, AVCC (4-byte length-prefixed) NAL units."


def vint(value):
    """EBML variable-length integer: the shortest length whose value bits can hold value without being all ones."""
    if not 0 <= value <= VINT_MAX:
        raise ValueError("EBML vint out of range 0..2^56-2: {}".format(value))
    length = 1
    while value >= (1 << (7 * length)) - 1:
        length += 1
    return ((1 << (7 * length)) | value).to_bytes(length, "big")


def element_id(ident):
    """An element id as written: its bytes, length marker included (ids are stored with it, as the spec lists them)."""
    return ident.to_bytes((ident.bit_length() + 7) // 8, "big")


def element(ident, payload):
    """id + size + payload."""
    return element_id(ident) + vint(len(payload)) + payload


def uint_element(ident, value):
    """An unsigned integer element, big-endian in as few bytes as hold it (at least one)."""
    return element(ident, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def string_element(ident, text):
    return element(ident, text.encode("utf-8"))


def ebml_header():
    """DocType matroska, version 2 (the first with SimpleBlock)."""
    return element(EBML, b"".join([
        uint_element(EBML_VERSION, 1), uint_element(EBML_READ_VERSION, 1),
        uint_element(EBML_MAX_ID_LENGTH, 4), uint_element(EBML_MAX_SIZE_LENGTH, 8),
        string_element(DOC_TYPE, "matroska"), uint_element(DOC_TYPE_VERSION, 2), uint_element(DOC_TYPE_READ_VERSION, 2)]))


def segment_header(width, height, codec_private, track_name="roadedge"):
    """The start of a PutMedia stream: EBML header, a Segment of unknown size (clusters follow for as long as the
    connection lives), Info (1 ms timecodes) and Tracks (track 1: H.264 video, CodecPrivate = the AVCC record)."""
    info = element(INFO, uint_element(TIMECODE_SCALE, TIMECODE_SCALE_NS) + string_element(MUXING_APP, APP)
                   + string_element(WRITING_APP, APP))
    video = element(VIDEO, uint_element(PIXEL_WIDTH, int(width)) + uint_element(PIXEL_HEIGHT, int(height)))
    track = element(TRACK_ENTRY, b"".join([
        uint_element(TRACK_NUMBER, TRACK), uint_element(TRACK_UID, TRACK), uint_element(TRACK_TYPE, TRACK_TYPE_VIDEO),
        uint_element(FLAG_LACING, 0), string_element(NAME, track_name), string_element(CODEC_ID, CODEC_AVC),
        element(CODEC_PRIVATE, bytes(codec_private)), video]))
    return ebml_header() + element_id(SEGMENT) + UNKNOWN_SIZE + info + element(TRACKS, track)


def _frame(item):
    """A Frame from a Frame, a (timecode_ms, keyframe, avcc_data) tuple or an object with those attributes."""
    if hasattr(item, "timecode_ms"):
        return Frame(item.timecode_ms, item.keyframe, item.avcc_data)
    return Frame(*item)


def simple_block(relative_ms, keyframe, data):
    """Track 1, signed 16-bit timecode relative to the cluster's, flags (key frame bit), no lacing."""
    return element(SIMPLE_BLOCK, vint(TRACK) + struct.pack(">hB", relative_ms, KEYFRAME_FLAG if keyframe else 0)
                   + bytes(data))


def cluster(frames):
    """One fragment: a Cluster whose Timecode is the first frame's (absolute ms) and one SimpleBlock per frame.

    Refused (ValueError): no frames, a first frame that is not a key frame (a fragment must be decodable on its own),
    a frame before the first or more than 32767 ms after it (the block's int16 relative timecode cannot say it)."""
    frames = [_frame(item) for item in frames]
    if not frames:
        raise ValueError("a cluster needs at least one frame")
    if not frames[0].keyframe:
        raise ValueError("a cluster must start with a key frame")
    start = int(frames[0].timecode_ms)
    if start < 0:
        raise ValueError("cluster timecode must not be negative: {}".format(start))
    blocks = []
    for frame in frames:
        relative = int(frame.timecode_ms) - start
        if not 0 <= relative <= 32767:
            raise ValueError("frame at {} ms is {} ms from the cluster start {} ms (allowed 0..32767)".format(
                frame.timecode_ms, relative, start))
        blocks.append(simple_block(relative, frame.keyframe, frame.avcc_data))
    return element(CLUSTER, uint_element(TIMECODE, start) + b"".join(blocks))


def split_nal_units(data):
    """The NAL units of an Annex-B byte stream (start codes 00 00 01 or 00 00 00 01; trailing zero bytes dropped)."""
    data = bytes(data)
    begins = []
    at = data.find(b"\x00\x00\x01")
    while at >= 0:
        begins.append(at + 3)
        at = data.find(b"\x00\x00\x01", at + 3)
    if not begins or data[:begins[0] - 3].strip(b"\x00"):
        raise ValueError("not an Annex-B stream: no start code before the data")
    units = []
    for index, begin in enumerate(begins):
        end = begins[index + 1] - 3 if index + 1 < len(begins) else len(data)
        unit = data[begin:end].rstrip(b"\x00")
        if unit:
            units.append(unit)
    return units


def annexb_to_avcc(data):
    """Annex-B -> AVCC: every NAL unit prefixed with its 4-byte big-endian length (lengthSizeMinusOne 3)."""
    return b"".join(struct.pack(">I", len(unit)) + unit for unit in split_nal_units(data))


def nal_type(unit):
    return unit[0] & 0x1F


class _Bits(object):
    """Reads an SPS's RBSP (emulation-prevention bytes removed) bit by bit, for the fields AVCC needs."""

    def __init__(self, unit):
        self.data = bytes(unit).replace(b"\x00\x00\x03", b"\x00\x00")
        self.position = 0

    def bit(self):
        byte = self.data[self.position >> 3]
        self.position += 1
        return (byte >> (7 - ((self.position - 1) & 7))) & 1

    def bits(self, count):
        value = 0
        for _ in range(count):
            value = (value << 1) | self.bit()
        return value

    def ue(self):
        zeros = 0
        while self.bit() == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.bits(zeros)


def _chroma_fields(sps):
    """(chroma_format_idc, bit_depth_luma_minus8, bit_depth_chroma_minus8) of an SPS; 4:2:0 8-bit when absent."""
    reader = _Bits(sps)
    reader.position = 32  # NAL header, profile_idc, constraint flags, level_idc
    reader.ue()  # seq_parameter_set_id
    if sps[1] not in CHROMA_PROFILES:
        return 1, 0, 0
    chroma = reader.ue()
    if chroma == 3:
        reader.bit()  # separate_colour_plane_flag
    return chroma, reader.ue(), reader.ue()


def _units(value):
    return [bytes(value)] if isinstance(value, (bytes, bytearray)) else [bytes(unit) for unit in value]


def avcc_private(sps, pps):
    """The AVCDecoderConfigurationRecord (ISO 14496-15 5.3.3.1), Matroska's CodecPrivate for V_MPEG4/ISO/AVC.

    sps, pps: one NAL unit (bytes, without start code) or a list of them. Version 1, profile/compatibility/level from
    the first SPS's bytes 1..3, 4-byte NAL lengths; High profiles add chroma format and bit depths from the SPS."""
    sps, pps = _units(sps), _units(pps)
    if not sps or not pps or any(len(unit) < 4 for unit in sps):
        raise ValueError("avcc_private needs at least one SPS (4+ bytes) and one PPS")
    first = sps[0]
    record = bytearray([1, first[1], first[2], first[3], 0xFC | 3, 0xE0 | len(sps)])
    for unit in sps:
        record += struct.pack(">H", len(unit)) + unit
    record.append(len(pps))
    for unit in pps:
        record += struct.pack(">H", len(unit)) + unit
    if first[1] in HIGH_PROFILES:
        chroma, luma_depth, chroma_depth = _chroma_fields(first)
        record += bytes([0xFC | chroma, 0xF8 | luma_depth, 0xF8 | chroma_depth, 0])
    return bytes(record)


def avcc_private_from_annexb(data):
    """avcc_private from an Annex-B stream holding the SPS and PPS (an encoder's extradata or its first key frame)."""
    units = split_nal_units(data)
    sps = [unit for unit in units if nal_type(unit) == NAL_SPS]
    pps = [unit for unit in units if nal_type(unit) == NAL_PPS]
    if not sps or not pps:
        raise ValueError("no SPS and PPS in the Annex-B data")
    return avcc_private(sps, pps)
