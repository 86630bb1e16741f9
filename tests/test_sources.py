"""Frame sources on real files and a real local stream: an MP4 written here, image folders, the synthetic drive,
--source parsing, and reconnects of an HTTP MJPEG stream that drops (FFmpeg reads multipart/x-mixed-replace)."""
import http.server
import logging
import os
import re
import socketserver
import sys
import threading
import time
import types

import cv2
import numpy as np
import pytest

from edge import plugins
from edge.sources import images, opencv, picamera2, spec, synthetic
from edge.sources.base import SourceError

W, H = 96, 64
BITS = 8


# ---- helpers -------------------------------------------------------------------------------------------------------

def numbered(i, width=W, height=H):
    """A BGR frame carrying i as 8 black/white blocks along the top (survives JPEG and MPEG-4), plus the digits."""
    image = np.full((height, width, 3), 60, np.uint8)
    block = width // BITS
    for bit in range(BITS):
        image[:16, bit * block:(bit + 1) * block] = 255 * ((i >> bit) & 1)
    cv2.putText(image, str(i), (4, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 200, 255), 2)
    return image


def number_of(image):
    block = image.shape[1] // BITS
    return sum(1 << bit for bit in range(BITS) if image[2:14, bit * block + 2:(bit + 1) * block - 2].mean() > 127)


def write_video(path, count, fps=20.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    assert writer.isOpened(), "this OpenCV cannot write mp4v"
    for i in range(count):
        writer.write(numbered(i))
    writer.release()
    return str(path)


def options(module, **values):
    """The module's OPTIONS defaults with `values` over them, as edge.config hands them to open()."""
    merged = {name: option.default for name, option in module.OPTIONS.items()}
    unknown = set(values) - set(merged)
    assert not unknown, unknown
    merged.update(values)
    return merged


def make_context(name):
    """{"log": a logger whose messages land in context["lines"], "stop": an Event}, as `roadedge run` passes."""
    lines, log = [], logging.getLogger("test.%s.%d" % (name, id(object())))
    log.setLevel(logging.DEBUG)
    log.propagate = False
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    log.addHandler(handler)
    return {"log": log, "stop": threading.Event(), "lines": lines}


@pytest.fixture
def context():
    return make_context("sources")


def read_all(source, limit=1000):
    frames = [source.read() for _ in range(limit)]
    return frames[:frames.index(None)] if None in frames else frames


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "drive.mp4", 12)


# ---- the plugin modules --------------------------------------------------------------------------------------------

def test_every_source_module_is_a_plugin():
    found = plugins.plugins("source")
    assert set(found) == {"opencv", "images", "synthetic", "awscam", "picamera2"}
    for type_name, module in found.items():
        module_name = module.__name__
        assert module.TYPE == type_name and callable(module.open), module_name
        for name, option in module.OPTIONS.items():
            assert isinstance(option, plugins.Option) and option.help, (type_name, name)
            assert option.default is None or isinstance(option.default, option.type), (type_name, name)


# ---- video files ---------------------------------------------------------------------------------------------------

def test_video_file_reads_every_frame_in_order_then_none(video, context):
    source = opencv.open(options(opencv, uri=video), context)
    assert source.live is False and source.fps == pytest.approx(20.0)
    frames = read_all(source)
    assert [number_of(f.image) for f in frames] == list(range(12))
    assert [f.index for f in frames] == list(range(12))
    assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(a.timestamp <= b.timestamp for a, b in zip(frames, frames[1:]))
    assert source.read() is None and source.read() is None
    source.close()
    assert source.read() is None


def test_video_file_loops_and_indices_keep_counting(video, context):
    source = opencv.open(options(opencv, uri=video, loop=True), context)
    frames = [source.read() for _ in range(30)]
    assert [number_of(f.image) for f in frames] == [i % 12 for i in range(30)] and [f.index for f in frames] == list(range(30))
    source.close()


def test_realtime_paces_a_file_at_its_fps_and_max_fps_caps(video, context):
    source = opencv.open(options(opencv, uri=video, realtime=True), context)
    started = time.monotonic()
    read_all(source, limit=6)
    assert time.monotonic() - started >= 5 / 20.0 * 0.9
    source.close()
    source = opencv.open(options(opencv, uri=video, max_fps=50.0), context)
    started = time.monotonic()
    read_all(source, limit=6)
    assert 5 / 50.0 * 0.9 <= time.monotonic() - started < 5 / 20.0
    source.close()


def test_file_errors_name_the_file(tmp_path, context):
    missing = str(tmp_path / "nope.mp4")
    with pytest.raises(SourceError, match="^" + missing + ": no such video file$"):
        opencv.open(options(opencv, uri=missing), context)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video\n" * 20)
    with pytest.raises(SourceError) as info:
        opencv.open(options(opencv, uri=str(junk)), context)
    assert str(info.value).startswith(str(junk) + ": cannot open")
    with pytest.raises(SourceError, match="^" + re.escape(str(tmp_path)) + ": is a folder, not a video file"):
        opencv.open(options(opencv, uri=str(tmp_path)), context)


def test_sample_uri_is_the_bundled_video(context):
    edge_dir = os.path.dirname(os.path.dirname(os.path.abspath(opencv.__file__)))
    assert spec.SAMPLE_VIDEO == os.path.join(edge_dir, "data", "sample-drive.mp4")
    if os.path.isfile(spec.SAMPLE_VIDEO):
        source = opencv.open(options(opencv), context)
        assert source.live is False and source.read() is not None
        source.close()
    else:
        with pytest.raises(SourceError, match="sample video .*sample-drive.mp4 is missing"):
            opencv.open(options(opencv), context)


def test_capture_option_errors(context):
    with pytest.raises(SourceError, match="^api: 'directshow' is not one of auto, ffmpeg, gstreamer, v4l2$"):
        opencv.open(options(opencv, uri="0", api="directshow"), context)
    if not cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):  # this machine's OpenCV: FFmpeg, no GStreamer
        for section in (dict(uri="videotestsrc ! videoconvert ! appsink", api="auto"), dict(uri="videotestsrc ! appsink",
                                                                                            api="gstreamer")):
            with pytest.raises(SourceError, match="built without GStreamer") as info:
                opencv.open(options(opencv, **section), context)
            assert "\n" not in str(info.value)
    with pytest.raises(SourceError, match="^cannot open camera 97 "):
        opencv.open(options(opencv, uri="97"), context)
    with pytest.raises(SourceError, match=r"^cannot open http://cam:\*\*\*@127.0.0.1:9/x.mjpg "):
        opencv.open(options(opencv, uri="http://cam:secret@127.0.0.1:9/x.mjpg", timeout=2.0), context)


def test_redact_hides_url_passwords():
    assert opencv.redact("rtsp://admin:hunter2@10.0.0.2:554/live") == "rtsp://admin:***@10.0.0.2:554/live"
    assert opencv.redact("rtsp://10.0.0.2/live?a=b:c@d") == "rtsp://10.0.0.2/live?a=b:c@d"
    assert opencv.redact("/videos/a:b@c.mp4") == "/videos/a:b@c.mp4"


# ---- image folders -------------------------------------------------------------------------------------------------

def test_image_folder_in_name_order_then_loop(tmp_path, context):
    for i, name in enumerate(["a.jpg", "b.PNG", "c.JPEG", "d.png"]):
        (tmp_path / name).write_bytes(cv2.imencode(os.path.splitext(name)[1].lower(), numbered(i))[1].tobytes())
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "e.jpg").mkdir()  # a folder named like an image is not one
    source = images.open(options(images, path=str(tmp_path)), context)
    assert source.live is False and source.fps is None
    assert [number_of(f.image) for f in read_all(source)] == [0, 1, 2, 3]
    assert source.read() is None
    source = images.open(options(images, path=str(tmp_path), loop=True, max_fps=100.0), context)
    started = time.monotonic()
    frames = [source.read() for _ in range(10)]
    assert time.monotonic() - started >= 9 / 100.0 * 0.9
    assert [number_of(f.image) for f in frames] == [i % 4 for i in range(10)] and [f.index for f in frames] == list(range(10))
    assert source.fps == 100.0
    source.close()
    assert source.read() is None


def test_image_folder_errors(tmp_path, context):
    with pytest.raises(SourceError, match="no such folder"):
        images.open(options(images, path=str(tmp_path / "missing")), context)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    with pytest.raises(SourceError, match="empty: no .jpg, .jpeg or .png images in the folder$"):
        images.open(options(images, path=str(tmp_path / "empty")), context)
    with pytest.raises(SourceError, match="path is required"):
        images.open(options(images), context)
    folder = tmp_path / "some"
    folder.mkdir()
    cv2.imwrite(str(folder / "1.png"), numbered(1))
    (folder / "2.jpg").write_bytes(b"\xff\xd8 truncated")
    source = images.open(options(images, path=str(folder)), context)
    assert number_of(source.read().image) == 1
    with pytest.raises(SourceError) as info:
        source.read()
    assert str(info.value) == "{}: cannot read image (not a valid JPEG or PNG)".format(folder / "2.jpg")


# ---- synthetic -----------------------------------------------------------------------------------------------------

def test_synthetic_frames_shape_determinism_and_end(context):
    def frames(seed):
        source = synthetic.open(options(synthetic, seed=seed, width=160, height=96, realtime=False, frames=3), context)
        assert source.live is True and source.fps == 15.0
        return read_all(source)

    first, again, other = frames(5), frames(5), frames(6)
    assert [f.index for f in first] == [0, 1, 2]
    assert all(f.image.shape == (96, 160, 3) and f.image.dtype == np.uint8 for f in first)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again))
    assert not np.array_equal(first[0].image, other[0].image)
    assert not np.array_equal(first[0].image, first[2].image)  # the car moves


def test_synthetic_realtime_paces_and_stops_promptly(context):
    source = synthetic.open(options(synthetic, width=64, height=48, fps=20.0), context)
    started = time.monotonic()
    read_all(source, limit=5)
    assert time.monotonic() - started >= 4 / 20.0 * 0.9
    source.close()
    assert source.read() is None
    source = synthetic.open(options(synthetic, width=64, height=48, realtime=False, max_fps=40.0), context)
    started = time.monotonic()
    read_all(source, limit=5)
    assert time.monotonic() - started >= 4 / 40.0 * 0.9
    with pytest.raises(SourceError, match="unknown synth class 'D99'"):
        synthetic.open(options(synthetic, classes="D00,D99"), context)


# ---- --source TEXT -------------------------------------------------------------------------------------------------

FORMS = [("sample", {"type": "opencv", "uri": spec.SAMPLE_VIDEO}), ("0", {"type": "opencv", "uri": "0"}),
         (" 2 ", {"type": "opencv", "uri": "2"}), ("frames", {"type": "images", "path": "frames"}),
         ("gst:v4l2src ! appsink", {"type": "opencv", "uri": "v4l2src ! appsink", "api": "gstreamer"}),
         ("libcamerasrc ! appsink", {"type": "opencv", "uri": "libcamerasrc ! appsink", "api": "gstreamer"}),
         ("synthetic", {"type": "synthetic"}), ("synthetic:42", {"type": "synthetic", "seed": 42}),
         ("awscam", {"type": "awscam"}), ("picamera2", {"type": "picamera2"}),
         ("clip.mp4", {"type": "opencv", "uri": "clip.mp4"})]
FORMS += [(url, {"type": "opencv", "uri": url}) for url in ("rtsp://user:pw@cam/stream", "rtmp://host/live",
                                                             "http://host:8080/video.mjpg", "https://h/s.m3u8", "udp://@:5000",
                                                             "tcp://10.0.0.3:9000")]


def test_source_section_every_form(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "frames").mkdir()
    (tmp_path / "clip.mp4").write_bytes(b"x")
    for text, expected in FORMS:
        assert spec.source_section(text) == expected, text
        assert set(expected) - {"type"} <= set(plugins.plugin("source", expected["type"]).OPTIONS), text
    assert spec.source_section(str(tmp_path / "frames")) == {"type": "images", "path": str(tmp_path / "frames")}
    unknown = ("--source {}: no such file or folder; expected a video file, image folder, camera index, URL, "
               "gst:PIPELINE, synthetic[:SEED], awscam or picamera2")
    for text, start in [("missing.mp4", unknown.format("missing.mp4") + "$"), ("webcam", unknown.format("webcam") + "$"),
                        ("", unknown.format("") + "$"), ("synthetic:abc", "--source synthetic:abc: the seed after synthetic:"),
                        ("gst:", "--source gst:: gst: needs a pipeline after it")]:
        with pytest.raises(SourceError, match="^" + re.escape(start.rstrip("$")) + ("$" if start.endswith("$") else "")):
            spec.source_section(text)


# ---- a live stream that drops: HTTP MJPEG --------------------------------------------------------------------------

class MjpegServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """multipart/x-mixed-replace JPEG frames numbered by a global counter; `per_connection` frames and the connection
    is dropped; `refuse` answers the next requests with 503; `down` answers all with 503."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, per_connection=5):
        super().__init__(("127.0.0.1", 0), MjpegHandler)
        self.per_connection, self.refuse, self.down = per_connection, 0, False
        self.counter, self.connections = 0, 0
        self.lock = threading.Lock()

    @property
    def url(self):
        return "http://127.0.0.1:%d/stream.mjpg" % self.server_address[1]


class MjpegHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        server = self.server
        with server.lock:
            refused = server.down or server.refuse > 0
            if server.refuse > 0:
                server.refuse -= 1
            if not refused:
                server.connections += 1
        if refused:
            self.send_error(503, "camera rebooting")
            return
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for _ in range(server.per_connection):
                with server.lock:
                    number = server.counter
                    server.counter += 1
                jpeg = cv2.imencode(".jpg", numbered(number))[1].tobytes()
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg))
                self.wfile.write(jpeg + b"\r\n")
                self.wfile.flush()
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


@pytest.fixture
def mjpeg():
    server = MjpegServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def stream_options(url, **values):
    values.setdefault("reconnect_initial", 0.05)
    values.setdefault("reconnect_max", 0.2)
    return options(opencv, uri=url, timeout=3.0, **values)


def test_mjpeg_stream_reconnects_and_indices_keep_counting(mjpeg, context):
    source = opencv.open(stream_options(mjpeg.url), context)
    assert source.live is True
    first = [source.read() for _ in range(5)]
    mjpeg.refuse = 1  # the first reconnect attempt gets a 503, the second a stream again
    rest = [source.read() for _ in range(8)]
    frames = first + rest
    numbers = [number_of(f.image) for f in frames]
    assert [f.index for f in frames] == list(range(13))
    assert numbers[:5] == [0, 1, 2, 3, 4] and numbers == sorted(set(numbers)), numbers  # newer frames, never repeats
    assert mjpeg.connections >= 3
    lines = context["lines"]
    assert "{}: no frame (stream ended or failed); reconnecting".format(mjpeg.url) in lines, lines
    attempts = [line for line in lines if "reconnect attempt" in line]
    assert attempts[:2] == [mjpeg.url + ": reconnect attempt 1 in 0.05 s",
                            mjpeg.url + ": reconnect attempt 2 in 0.10 s (attempt 1: cannot open it)"], lines
    assert any(line.endswith("reconnected after 2 attempts") for line in lines), lines
    source.close()
    assert source.read() is None


def test_stop_event_ends_a_backoff_sleep_promptly(mjpeg, context):
    source = opencv.open(stream_options(mjpeg.url, reconnect_initial=30.0, reconnect_max=30.0), context)
    assert [number_of(source.read().image) for _ in range(5)] == [0, 1, 2, 3, 4]
    mjpeg.down = True
    threading.Timer(0.3, context["stop"].set).start()
    started = time.monotonic()
    assert source.read() is None and time.monotonic() - started < 2.0
    assert any("reconnect attempt 1 in 30.00 s" in line for line in context["lines"])
    source.close()


def test_close_from_another_thread_ends_a_backoff_sleep(mjpeg, context):
    source = opencv.open(stream_options(mjpeg.url, reconnect_initial=30.0, reconnect_max=30.0), context)
    read_all(source, limit=5)
    mjpeg.down = True
    threading.Timer(0.3, source.close).start()
    started = time.monotonic()
    assert source.read() is None and time.monotonic() - started < 2.0


def test_live_source_gives_up_after_its_attempts(mjpeg, context):
    source = opencv.open(stream_options(mjpeg.url, reconnect_initial=0.01, reconnect_attempts=2), context)
    read_all(source, limit=5)
    mjpeg.down = True
    with pytest.raises(SourceError) as info:
        source.read()
    assert str(info.value) == mjpeg.url + ": gave up after 2 reconnect attempts (last: cannot open it)"
    assert len([line for line in context["lines"] if "reconnect attempt" in line]) == 2
    source.close()


# ---- picamera2 (no camera here: the import error, and the configuration against a small fake Picamera2) ----------

def test_picamera2_missing_points_to_apt(monkeypatch, context):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # `import picamera2` raises ImportError
    with pytest.raises(SourceError) as info:
        picamera2.open(options(picamera2), context)
    message = str(info.value)
    assert "sudo apt install python3-picamera2" in message and "\n" not in message


def test_picamera2_configures_rgb888_and_hands_its_array_on_as_bgr(monkeypatch, context):
    made = []

    class FakePicamera2(object):  # the calls Picamera2 documents; the array is what RGB888 gives: [B, G, R] pixels
        def __init__(self, camera_num=0):
            self.camera_num, self.calls = camera_num, []
            made.append(self)

        def create_video_configuration(self, main=None, controls=None):
            return {"main": dict(main), "controls": dict(controls or {})}

        def configure(self, config):
            self.config = config

        def capture_array(self, name="main"):
            width, height = self.config["main"]["size"]
            return np.dstack([np.full((height, width), 200, np.uint8)] + [np.zeros((height, width), np.uint8)] * 2)

        def __getattr__(self, name):  # start, stop, close: recorded
            return lambda: self.calls.append(name)

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    source = picamera2.open(options(picamera2, width=64, height=48, fps=30.0), context)
    camera = made[0]
    assert camera.config == {"main": {"size": (64, 48), "format": "RGB888"},
                             "controls": {"FrameDurationLimits": (33333, 33333)}}
    frame = source.read()
    assert frame.index == 0 and frame.image.shape == (48, 64, 3) and frame.image[0, 0].tolist() == [200, 0, 0]
    source.close()
    assert camera.calls == ["start", "stop", "close"] and source.read() is None
    swapped = picamera2.open(options(picamera2, width=64, height=48, swap_rb=True), context)
    assert swapped.read().image[0, 0].tolist() == [0, 0, 200]
    swapped.close()


def test_one_decoding_thread_gives_the_same_frames():
    """decode_threads: 1 (the capture thread alone) changes who decodes, not what: the sample's frames are identical."""
    import numpy as np

    from edge.plugins import checked
    from edge.sources import opencv
    from edge.sources.spec import SAMPLE_VIDEO

    frames = {}
    for threads in (0, 1):
        source = opencv.open(checked(opencv.OPTIONS, {"uri": SAMPLE_VIDEO, "decode_threads": threads}, "t"),
                             {"log": None, "stop": None})
        try:
            frames[threads] = [source.read().image for _ in range(40)]
        finally:
            source.close()
    assert all(np.array_equal(a, b) for a, b in zip(frames[0], frames[1])) and len(frames[1]) == 40
