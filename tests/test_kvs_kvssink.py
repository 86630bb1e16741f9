"""The kvssink producer's GStreamer pipeline, run by real GStreamer (Debian's packages) with kvssink replaced by a
Matroska file: frames pushed on stdin come out as valid H.264 in MKV, every frame, key frames a GOP apart."""
import os
import shutil
import subprocess

import numpy as np
import pytest

from edge.kvs.kvssink_producer import GstProducer, kvssink, pipeline


def require_gstreamer():
    if shutil.which("gst-launch-1.0") and subprocess.call(["gst-inspect-1.0", "--exists", "x264enc"]) == 0:
        return
    message = "GStreamer with x264enc is not installed (.ci/run installs it: apt-get install gstreamer1.0-tools ...)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def test_the_kvssink_element_gets_the_stream_settings():
    assert kvssink("rc-car-1", "eu-west-1", retention_hours=48, buffer_mb=64) == [
        "kvssink", "stream-name=rc-car-1", "aws-region=eu-west-1", "retention-period=48", "storage-size=64"]
    argv = pipeline(640, 360, 15, 800, 30, ["fakesink"])
    assert argv[:5] == ["gst-launch-1.0", "-q", "-e", "fdsrc", "fd=0"] and argv[-1] == "fakesink"
    assert "key-int-max=30" in argv and "width=640" in argv and "format=bgr" in argv


def test_frames_become_h264_in_matroska_with_a_key_frame_every_gop(tmp_path):
    require_gstreamer()
    av = pytest.importorskip("av")
    out = tmp_path / "stream.mkv"
    producer = GstProducer(pipeline(320, 180, 15, 400, 15, ["matroskamux", "!", "filesink", "location=" + str(out)]),
                           320, 180)
    producer.start()
    frames = 45
    for index in range(frames):
        image = np.zeros((360, 640, 3), np.uint8)  # another size: resized to the stream's
        image[:, (index * 13) % 600:(index * 13) % 600 + 40] = (30, 180, 240)
        assert producer.push(image)
    assert producer.close() == 0
    assert producer.stats() == {"frames": frames, "skipped": 0, "restarts": 0, "running": False}
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (320, 180)
        packets = [p for p in container.demux(stream) if p.size]
    assert len(packets) == frames
    keys = [index for index, packet in enumerate(packets) if packet.is_keyframe]
    assert keys == [0, 15, 30]


def test_a_pipeline_that_dies_is_counted_and_started_again(tmp_path):
    require_gstreamer()
    now = [0.0]
    producer = GstProducer(["gst-launch-1.0", "-q", "fdsrc", "fd=0", "!", "no-such-element"], 8, 8,
                           clock=lambda: now[0])
    producer.start()
    producer.process.wait(30)  # it cannot build the pipeline
    image = np.zeros((8, 8, 3), np.uint8)
    assert not producer.push(image) and producer.stats()["skipped"] == 1
    now[0] += 5.0
    producer.push(image)
    assert producer.stats()["restarts"] == 1
    producer.close()
