"""Kinesis Video through GStreamer's kvssink (the element AWS's C++ producer SDK builds), on devices that have it:
the runtime writes raw BGR frames into a `gst-launch-1.0` pipeline's standard input,

    fdsrc ! rawvideoparse (BGR, W x H, fps) ! videoconvert ! x264enc (zerolatency, GOP = fragment) ! h264parse
          ! video/x-h264,stream-format=avc,alignment=au ! kvssink stream-name=... aws-region=...

so no GStreamer Python bindings are needed. kvssink takes its credentials from the environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or its iot-certificate property. A pipeline that dies is started again
(counted); frames written meanwhile are skipped and counted, never blocking the loop for long.
"""
import os
import shutil
import subprocess
import time

from roadedge.core.errors import RoadedgeError

RESTART_S = 2.0


def available():
    """True when gst-launch-1.0 and the kvssink element are installed."""
    inspect = shutil.which("gst-inspect-1.0")
    if not inspect or not shutil.which("gst-launch-1.0"):
        return False
    return subprocess.call([inspect, "--exists", "kvssink"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL) == 0


def kvssink(stream_name, region, retention_hours=24, buffer_mb=128):
    """The kvssink element and its properties, as gst-launch arguments."""
    return ["kvssink", "stream-name=" + stream_name, "aws-region=" + region,
            "retention-period=" + str(int(retention_hours)), "storage-size=" + str(int(buffer_mb))]


def pipeline(width, height, fps, bitrate_kbps, gop_frames, sink):
    """gst-launch-1.0 arguments: BGR frames on stdin -> H.264 (AVC, access units) -> `sink` (a list of arguments)."""
    return ["gst-launch-1.0", "-q", "-e", "fdsrc", "fd=0", "!", "rawvideoparse", "format=bgr",
            "width=%d" % width, "height=%d" % height, "framerate=%d/1" % int(round(fps)), "!", "videoconvert", "!",
            "x264enc", "tune=zerolatency", "speed-preset=veryfast", "bitrate=%d" % int(bitrate_kbps),
            "key-int-max=%d" % int(gop_frames), "bframes=0",
            "option-string=scenecut=0:min-keyint=%d" % int(gop_frames), "!", "h264parse", "!",
            "video/x-h264,stream-format=avc,alignment=au", "!"] + list(sink)


class GstProducer(object):
    """push(frame) writes one BGR frame (resized to width x height) into the pipeline; close() ends the stream (EOS)."""

    def __init__(self, argv, width, height, log=None, clock=time.monotonic):
        self.argv, self.width, self.height, self.log, self.clock = list(argv), int(width), int(height), log, clock
        self.process, self.restarts, self.skipped, self.frames, self.retry_at = None, 0, 0, 0, None

    def start(self):
        if shutil.which(self.argv[0]) is None:
            raise RoadedgeError("kvs sink: producer kvssink needs GStreamer's gst-launch-1.0 (apt install "
                                "gstreamer1.0-tools) and the kvssink element from AWS's C++ producer SDK")
        self.process = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, env=dict(os.environ))

    def push(self, image):
        if self.process is not None and self.process.poll() is not None:
            if self.retry_at is None:
                self._died()  # noticed now: restart after RESTART_S
            elif self.clock() >= self.retry_at:
                self._restart()
        if self.process is None or self.process.poll() is not None:
            self.skipped += 1
            return False
        if image.shape[1] != self.width or image.shape[0] != self.height:
            import cv2

            image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
        try:
            self.process.stdin.write(image.tobytes())
        except (BrokenPipeError, OSError):
            if self.retry_at is None:
                self._died()
            self.skipped += 1
            return False
        self.frames += 1
        return True

    def _died(self):
        reason = ""
        if self.process is not None:
            self.process.wait()
            reason = " ".join(self.process.stderr.read().decode("utf-8", "replace").split())[-300:]
        if self.log is not None:
            self.log.error("kvs kvssink: the GStreamer pipeline ended (%s); restarting in %.0f s", reason or
                           "no message", RESTART_S)
        self.retry_at = self.clock() + RESTART_S

    def _restart(self):
        self.restarts += 1
        self.retry_at = None
        self.start()

    def close(self, timeout=30.0):
        """End of stream: the pipeline finishes its last fragment and exits; returns its exit code."""
        if self.process is None:
            return None
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def stats(self):
        return {"frames": self.frames, "skipped": self.skipped, "restarts": self.restarts,
                "running": self.process is not None and self.process.poll() is None}
