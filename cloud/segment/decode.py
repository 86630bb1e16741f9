"""H.264 (or H.265) fragments -> BGR pictures with PyAV, and which frames are taken.

Every fragment starts with a key frame, so each is decoded with a fresh decoder whose extradata is the track's
CodecPrivate (the avcC record): no state crosses fragments, and a new PutMedia session's new SPS/PPS just works.
All of a fragment's frames go through the decoder (P-frames need their references); only the taken ones are
converted to pictures.
"""
import numpy as np

from roadedge.core.errors import RoadedgeError

CODECS = {"V_MPEG4/ISO/AVC": "h264", "V_MPEGH/ISO/HEVC": "hevc"}


def taken(frames_before, count, every):
    """Indices (in the fragment) of the frames taken: frame k of the stream, counted from 0 where the consumer began
    and across its restarts, is taken when k % every == 0. frames_before: frames of the stream before the fragment."""
    return [index for index in range(count) if (frames_before + index) % every == 0]


def decode_fragment(fragment, wanted):
    """Yield (index in the fragment, BGR uint8 picture) for the wanted indices, in order, decoding every frame."""
    import av

    track = fragment.track
    if track is None or track.codec_id not in CODECS:
        raise RoadedgeError("fragment {}: video track {!r}; expected {}".format(
            fragment.number, track and track.codec_id, " or ".join(CODECS)))
    if not track.codec_private:
        raise RoadedgeError("fragment {}: the video track has no CodecPrivate (avcC record)".format(fragment.number))
    wanted = set(wanted)
    if not wanted:
        return
    context = av.CodecContext.create(CODECS[track.codec_id], "r")
    context.extradata = bytes(track.codec_private)
    context.thread_count = 1  # frames come out as packets go in: no frame-threading delay to reorder around
    frames = fragment.video_frames()
    last = max(wanted)
    try:
        for index, block in enumerate(frames[:last + 1]):
            packet = av.Packet(block.data)
            packet.pts = packet.dts = index
            for picture in _decode(context, packet, fragment.number):
                if picture.pts in wanted:
                    yield int(picture.pts), np.ascontiguousarray(picture.to_ndarray(format="bgr24"))
        for picture in _decode(context, None, fragment.number):
            if picture.pts in wanted:
                yield int(picture.pts), np.ascontiguousarray(picture.to_ndarray(format="bgr24"))
    finally:
        if hasattr(context, "close"):
            context.close()


def _decode(context, packet, number):
    import av

    try:
        return context.decode(packet)
    except av.error.FFmpegError as err:
        raise RoadedgeError("fragment {}: the video does not decode ({})".format(number, err)) from None
