"""Frames from a Raspberry Pi camera through Picamera2 (libcamera).

Picamera2 comes from Raspberry Pi OS's apt package python3-picamera2 (it
needs the system libcamera bindings; a pip install does not work), so it is
imported inside open(); a virtualenv sees it only when made with
--system-site-packages.

Colour order. Picamera2 takes its format names from libcamera, which uses the
DRM fourcc convention: a name lists the components from the most significant
byte of a little-endian pixel word, so the bytes in memory come in the reverse
order. "RGB888" therefore gives a numpy array whose pixels are [B, G, R] --
what OpenCV wants -- and "BGR888" gives [R, G, B]. Picamera2's maintainer
explains it in raspberrypi/picamera2 issue #191 (XRGB8888 arrives as [B, G, R,
X], which is why its OpenCV example converts with COLOR_BGR2GRAY) and suggests
'BGR888' to someone who wants RGB in issue #843; ideasonboard's pixutils
(DRM/libcamera pixel formats) flips RGB888 buffers to get RGB. So the main
stream is configured as RGB888 and its array is handed on unchanged. `swap_rb`
is there for the odd camera stack that gets it wrong (some IMX296 kernels
report the wrong Bayer order, so RGB888 arrives as RGB).
"""
import threading
import time

from edge.plugins import Option, above, at_least
from edge.sources.base import Frame, Source, SourceError
from edge.sources.live import Pacer, as_bgr, context_log, context_stop

TYPE = "picamera2"
FORMAT = "RGB888"  # [B, G, R] bytes per pixel in the array: BGR for OpenCV (see above)

OPTIONS = {
    "camera": Option(int, 0, "camera number, for boards with more than one", check=at_least(0)),
    "width": Option(int, 1280, "frame width of the main stream", check=above(0)),
    "height": Option(int, 720, "frame height of the main stream", check=above(0)),
    "fps": Option(float, 0.0, "camera frame rate (fixed frame duration); 0 = the camera's default", check=at_least(0)),
    "max_fps": Option(float, 0.0, "hand on at most this many frames per second; 0 = no cap", check=at_least(0)),
    "swap_rb": Option(bool, False, "swap red and blue, for a camera stack whose RGB888 arrives in RGB order"),
}


class Picamera2Source(Source):
    live = True

    def __init__(self, camera, options, context):
        """`camera`: a started Picamera2."""
        self.camera = camera
        self.fps = float(options.get("fps") or 0.0) or None
        self.swap_rb = bool(options.get("swap_rb"))
        self.index = 0
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.pacer = Pacer(float(options.get("max_fps") or 0.0), context_stop(context), self.closed)

    def read(self):
        if self.closed.is_set():
            return None
        self.pacer.wait()
        with self.lock:
            if self.closed.is_set():
                return None
            try:
                image = self.camera.capture_array("main")
            except Exception as err:  # libcamera errors are RuntimeErrors with multi-line text
                raise SourceError("picamera2: capture failed: {}".format(" ".join(str(err).split()))) from None
        if self.swap_rb and image.ndim == 3 and image.shape[2] >= 3:
            image = image[:, :, [2, 1, 0] + list(range(3, image.shape[2]))]
        frame = Frame(self.index, as_bgr(image), time.time())
        self.index += 1
        return frame

    def close(self):
        self.closed.set()
        with self.lock:
            try:
                self.camera.stop()
            finally:
                self.camera.close()


def open(options, context):
    try:
        from picamera2 import Picamera2
    except ImportError as err:
        raise SourceError("source picamera2: cannot import picamera2 ({}); on Raspberry Pi OS install it with "
                          "`sudo apt install python3-picamera2` (not pip; a virtualenv needs "
                          "--system-site-packages)".format(err)) from None
    width, height = int(options.get("width") or 1280), int(options.get("height") or 720)
    fps = float(options.get("fps") or 0.0)
    controls = {"FrameDurationLimits": (int(1e6 / fps), int(1e6 / fps))} if fps > 0 else {}
    try:
        camera = Picamera2(int(options.get("camera") or 0))
    except Exception as err:  # no camera: IndexError; camera busy or missing driver: RuntimeError
        reason = " ".join(str(err).split()) or type(err).__name__
        raise SourceError("picamera2: cannot open camera {}: {}".format(options.get("camera") or 0, reason)) from None
    try:
        config = camera.create_video_configuration(main={"size": (width, height), "format": FORMAT}, controls=controls)
        camera.configure(config)
        camera.start()
    except Exception as err:
        camera.close()
        raise SourceError("picamera2: cannot start {}x{} {}: {}".format(width, height, FORMAT,
                                                                        " ".join(str(err).split()))) from None
    context_log(context).info("picamera2: camera %s started, %dx%d %s", options.get("camera") or 0, width, height, FORMAT)
    return Picamera2Source(camera, options, context)
