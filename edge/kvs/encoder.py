"""H.264 for Kinesis Video: BGR frames -> AVCC access units with PyAV's libx264, regular GOPs so fragments are regular.

Every GOP is exactly gop_frames long (keyint = min-keyint, no scene-cut key frames) and has no B-frames, so each
cluster (fragment) is one GOP and a packet comes out for every frame that goes in (tune zerolatency: no lookahead).
av is imported inside the class: `edge.kvs.mkv` and this module stay importable on a DeepLens without it.
"""
from fractions import Fraction

import cv2

from edge.kvs import mkv


class H264Encoder(object):
    """libx264, preset veryfast, tune zerolatency. encode(bgr, timecode_ms) -> [(timecode_ms, keyframe, avcc)].

    global_header=True: the SPS/PPS go to the codec's extradata (codec_private is known before the first frame) and
    not into the stream; False: x264 repeats them in-band before every key frame and codec_private comes from the
    first key frame."""

    def __init__(self, width, height, fps, gop_frames, bitrate, global_header=True, preset="veryfast"):
        import av
        from av.codec.context import Flags

        if width % 2 or height % 2:
            raise ValueError("H.264 4:2:0 needs an even width and height, got {}x{}".format(width, height))
        self.width, self.height, self.gop_frames = int(width), int(height), int(gop_frames)
        self._av = av
        context = av.CodecContext.create("libx264", "w")
        context.width, context.height = self.width, self.height
        context.pix_fmt = "yuv420p"
        context.time_base = Fraction(1, 1000)  # pts are the timecodes in ms
        context.framerate = Fraction(fps).limit_denominator(1001)
        context.bit_rate = int(bitrate)
        context.gop_size = self.gop_frames
        context.max_b_frames = 0
        if global_header:
            context.flags = context.flags | Flags.global_header  # an int from PyAV 13 on, an EnumFlag before
        context.options = {"preset": preset, "tune": "zerolatency",
                           "x264-params": "keyint={0}:min-keyint={0}:scenecut=0:bframes=0".format(self.gop_frames)}
        context.open()
        self.context = context
        self._codec_private = None
        if global_header:
            self._codec_private = mkv.avcc_private_from_annexb(bytes(context.extradata))

    @property
    def codec_private(self):
        """The AVCC record (Matroska CodecPrivate); None until the first key frame when there is no global header."""
        return self._codec_private

    def encode(self, bgr_frame, timecode_ms):
        """One BGR uint8 picture (resized when not width x height) at timecode_ms -> the packets it completes."""
        if bgr_frame.shape[1] != self.width or bgr_frame.shape[0] != self.height:
            bgr_frame = cv2.resize(bgr_frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        frame = self._av.VideoFrame.from_ndarray(bgr_frame, format="bgr24").reformat(format="yuv420p")
        frame.pts = int(timecode_ms)
        frame.time_base = self.context.time_base
        return self._packets(self.context.encode(frame))

    def flush(self):
        """The packets still inside the encoder (none with zerolatency and no B-frames, but the API asks for it)."""
        return self._packets(self.context.encode(None))

    def _packets(self, packets):
        out = []
        for packet in packets:
            annexb = bytes(packet)
            if packet.is_keyframe and self._codec_private is None:
                self._codec_private = mkv.avcc_private_from_annexb(annexb)
            out.append((int(packet.pts), bool(packet.is_keyframe), mkv.annexb_to_avcc(annexb)))
        return out
