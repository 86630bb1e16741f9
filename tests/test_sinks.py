"""The sinks of `roadedge run` with real parts: files, stdout, an HTTP server and clients, a FIFO, MP4 files."""
import http.client
import io
import json
import logging
import os
import socket
import stat
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from edge import preview_server
from edge.messages import Envelope
from edge.processing.decoders import Detection
from edge.sinks import fifo, jsonl, mjpeg, record
from edge.sinks.base import FrameResult
from edge.sources.base import Frame
from roadedge.core.errors import RoadedgeError


def context(source_fps=None):
    return {"log": logging.getLogger("test-sinks"), "stop": threading.Event(), "device": "test-device",
            "source_fps": source_fps}


def gradient(width, height, shift=0):
    x, y = np.meshgrid(np.linspace(0, 255, width), np.linspace(0, 255, height))
    return np.dstack([(x + shift) % 256, y, (x + y + 3 * shift) % 256]).astype(np.uint8)


def noise(width, height, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def message(index):
    return Envelope("test-device", "boot-1", next_seq={"detections": index}).detections(
        timestamp=1.7e9 + index, frame_index=index, frame_size=(320, 180), model_name="demo", model_sha256="0" * 64,
        latency_ms=12.5, detections=[Detection(5, "D40", 0.87, (0.1, 0.2, 0.3, 0.4))])


def result(index=0, image=None, with_message=True):
    image = gradient(320, 180, index) if image is None else image
    return FrameResult(Frame(index, image, time.time()), [], message(index) if with_message else None,
                       annotated=image)


def split_jpegs(data):
    """Back-to-back JPEGs -> list of bytes; asserts the stream starts with SOI and ends with EOI."""
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    return [b"\xff\xd8" + part + b"\xff\xd9" for part in data[2:-2].split(b"\xff\xd9\xff\xd8")]


def decoded_shape(jpeg):
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image.shape


def test_jsonl_appends_one_flushed_line_per_message_to_a_file(tmp_path):
    path = tmp_path / "out" / "sub" / "detections.jsonl"
    path.parent.mkdir(parents=True)  # sinks never create folders
    sink = jsonl.open({"path": str(path)}, context())
    assert sink.needs_image is False
    sink.write(result(0))
    assert path.read_text().count("\n") == 1  # visible before close: flushed per line
    sink.write(result(1, with_message=False))  # a frame without a message writes nothing
    sink.write(result(2))
    sink.close()
    again = jsonl.open({"path": str(path)}, context())  # append, not truncate
    again.write(result(3))
    again.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [message(0), message(2), message(3)]
    assert all(line == json.dumps(json.loads(line), separators=(",", ":")) for line in lines)  # compact


def test_jsonl_to_stdout(capsys):
    sink = jsonl.open({"path": "-"}, context())
    for index in range(3):
        sink.write(result(index, with_message=index != 1))
    sink.close()
    out = capsys.readouterr().out
    assert [json.loads(line) for line in out.splitlines()] == [message(0), message(2)]


def test_jsonl_stops_the_pipeline_when_stdout_is_closed(monkeypatch):
    read_end, write_end = os.pipe()
    os.close(read_end)  # `roadedge run | head -1` after head has exited
    with io.open(write_end, "w") as closed:
        monkeypatch.setattr("sys.stdout", closed)
        ctx = context()
        sink = jsonl.open({"path": "-"}, ctx)
        sink.write(result(0))
        sink.write(result(1))
        assert ctx["stop"].is_set() and sink.lines == 0
        sink.close()


@pytest.fixture
def preview():
    sink = mjpeg.open({"port": 0, "max_fps": 0}, context())
    yield sink
    sink.close()


def url(sink, path):
    host, port = sink.address
    return "http://{}:{}{}".format(host, port, path)


def test_preview_latest_is_503_before_the_first_frame_then_the_newest_jpeg(preview):
    assert preview.address[0] == "127.0.0.1" and preview.address[1] > 0
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url(preview, "/latest.jpg"), timeout=5)
    assert err.value.code == 503 and err.value.headers["Retry-After"]
    preview.write(result(0))
    preview.write(result(1, gradient(160, 90)))
    with urllib.request.urlopen(url(preview, "/latest.jpg"), timeout=5) as response:
        assert response.headers["Content-Type"] == "image/jpeg"
        assert decoded_shape(response.read()) == (90, 160, 3)


def test_preview_page_routes_and_404(preview):
    with urllib.request.urlopen(url(preview, "/"), timeout=5) as response:
        page = response.read().decode("utf-8")
    assert 'src="/stream.mjpg"' in page and "test-device" in page
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url(preview, "/nothing-here"), timeout=5)
    assert err.value.code == 404
    preview.server.add_route("/metrics", lambda request: preview_server.send_body(
        request, 200, "text/plain; version=0.0.4", b"roadedge_frames_total 3\n"))
    with urllib.request.urlopen(url(preview, "/metrics?x=1"), timeout=5) as response:
        assert response.read() == b"roadedge_frames_total 3\n"


def read_part(stream):
    """One part of a multipart/x-mixed-replace body: (headers, body)."""
    line = stream.readline()
    while line in (b"\r\n", b"\n"):
        line = stream.readline()
    assert line.strip() == b"--frame", line
    headers = {}
    for line in iter(stream.readline, b"\r\n"):
        key, _, value = line.decode("ascii").partition(":")
        headers[key.strip().lower()] = value.strip()
    return headers, stream.read(int(headers["content-length"]))


def test_preview_stream_delivers_frames_to_a_real_client(preview):
    host, port = preview.address
    connection = http.client.HTTPConnection(host, port, timeout=5)
    connection.request("GET", "/stream.mjpg")
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
    preview.write(result(0))
    headers, first = read_part(response.fp)
    assert headers["content-type"] == "image/jpeg" and decoded_shape(first) == (180, 320, 3)
    preview.write(result(1, gradient(160, 90)))
    _, second = read_part(response.fp)
    assert decoded_shape(second) == (90, 160, 3)
    connection.close()


def test_a_stuck_viewer_never_blocks_write(preview):
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(preview.address)
    stuck.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: test\r\n\r\n")  # and never reads
    frames = [result(i, noise(640, 480, i)) for i in range(4)]
    for frame in frames:
        frame.jpeg(80)  # encode up front: the test times write(), not the encoder
    slowest, started = 0.0, time.monotonic()
    for index in range(200):
        before = time.monotonic()
        preview.write(frames[index % 4])
        slowest = max(slowest, time.monotonic() - before)
        if index == 100:
            with urllib.request.urlopen(url(preview, "/latest.jpg"), timeout=5) as response:
                assert response.status == 200  # other viewers are still served
    assert time.monotonic() - started < 5.0 and slowest < 0.5  # generous: the test machine is busy
    assert preview.pushed == 200
    before = time.monotonic()
    preview.close()
    assert time.monotonic() - before < 3.0  # closing does not wait for the stuck viewer either
    stuck.close()


def test_preview_port_in_use_is_one_line_and_close_releases_the_port():
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    with pytest.raises(RoadedgeError) as err:
        mjpeg.open({"port": port}, context())
    assert str(err.value) == ("preview 127.0.0.1:{}: address already in use "
                              "(use --preview HOST:PORT or --no-preview)".format(port))
    blocker.close()
    first = mjpeg.open({"port": port}, context())
    first.write(result(0))
    with urllib.request.urlopen(url(first, "/latest.jpg"), timeout=5) as response:
        response.read()
    first.close()
    second = mjpeg.open({"port": port}, context())  # the port is free again
    assert second.address == ("127.0.0.1", port)
    second.close()


def test_preview_max_fps_caps_the_frames_pushed_to_viewers():
    sink = mjpeg.open({"port": 0, "max_fps": 1.0}, context())
    try:
        frame = result(0)
        for _ in range(10):
            sink.write(frame)
        assert (sink.pushed, sink.skipped) == (1, 9)
        time.sleep(1.05)
        sink.write(frame)
        assert sink.pushed == 2
    finally:
        sink.close()


def read_available(fd):
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_fifo_without_a_reader_skips_frames_without_blocking(tmp_path):
    path = tmp_path / "deeplens" / "results.mjpeg"
    path.parent.mkdir(parents=True)  # sinks never create folders
    sink = fifo.open({"path": str(path)}, context())
    assert stat.S_ISFIFO(os.stat(str(path)).st_mode) and sink.needs_image
    started = time.monotonic()
    for index in range(20):
        sink.write(result(index))
    assert time.monotonic() - started < 2.0
    assert (sink.frames_written, sink.frames_skipped, sink.connected) == (0, 20, False)
    sink.close()


def test_fifo_refuses_a_regular_file(tmp_path):
    path = tmp_path / "results.mjpeg"
    path.write_bytes(b"not a fifo")
    with pytest.raises(RoadedgeError, match="results.mjpeg: exists and is not a FIFO"):
        fifo.open({"path": str(path)}, context())


def test_fifo_reader_receives_whole_jpegs(tmp_path):
    path = str(tmp_path / "results.mjpeg")
    sink = fifo.open({"path": path}, context())
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a reader is there before the first frame
    sink.write(result(0))
    assert sink.connected
    os.set_blocking(reader, True)
    received = []
    thread = threading.Thread(target=lambda: received.append(b"".join(iter(lambda: os.read(reader, 65536), b""))))
    thread.start()
    for index in range(1, 6):
        sink.write(result(index, gradient(320 + 16 * index, 180)))
    sink.close()  # the reader then sees the end of the stream
    thread.join(5)
    os.close(reader)
    jpegs = split_jpegs(received[0])
    assert [decoded_shape(j)[:2] for j in jpegs] == [(180, 320)] + [(180, 320 + 16 * i) for i in range(1, 6)]
    assert (sink.frames_written, sink.frames_skipped) == (6, 0)


def test_fifo_resizes_to_the_project_stream_size(tmp_path):
    path = str(tmp_path / "results.mjpeg")
    sink = fifo.open({"path": path, "width": 858, "height": 480}, context())
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    sink.write(result(0))
    sink.close()
    data = read_available(reader)
    os.close(reader)
    assert [decoded_shape(j) for j in split_jpegs(data)] == [(480, 858, 3)]


def test_fifo_reader_that_stops_reading_never_blocks_and_the_stream_stays_whole(tmp_path):
    path = str(tmp_path / "results.mjpeg")
    sink = fifo.open({"path": path}, context())
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opens, then does not read
    frames = [result(i, noise(640, 480, i)) for i in range(3)]
    for frame in frames:
        frame.jpeg(80)
    slowest, started = 0.0, time.monotonic()
    for index in range(200):
        before = time.monotonic()
        sink.write(frames[index % 3])
        slowest = max(slowest, time.monotonic() - before)
    assert time.monotonic() - started < 5.0 and slowest < 0.5
    assert sink.frames_skipped > 150 and sink.frames_written >= 1 and sink.connected
    data = read_available(reader)  # the reader wakes up: the stream goes on, in whole frames
    for index in range(10):
        sink.write(frames[index % 3])
        data += read_available(reader)
    sink.close()
    data += read_available(reader)
    os.close(reader)
    jpegs = split_jpegs(data)
    assert len(jpegs) == sink.frames_written > 3
    assert all(decoded_shape(j) == (480, 640, 3) for j in jpegs)
    assert sink.frames_written + sink.frames_skipped == 210


def test_fifo_reader_that_leaves_is_waited_for_again(tmp_path):
    path = str(tmp_path / "results.mjpeg")
    sink = fifo.open({"path": path}, context())
    first = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    sink.write(result(0))
    os.close(first)  # the viewer is closed
    sink.write(result(1))  # EPIPE: no exception, back to waiting
    assert not sink.connected and sink.frames_skipped == 1
    second = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    sink.write(result(2))
    assert sink.connections == 2 and sink.frames_written == 2
    assert [decoded_shape(j) for j in split_jpegs(read_available(second))] == [(180, 320, 3)]
    big, writes = result(3, noise(640, 480, 3)), 3
    while not sink.pending and writes < 50:  # fill the pipe until a frame is only partly written
        sink.write(big)
        writes += 1
    assert sink.pending
    os.close(second)  # and the reader leaves in the middle of that frame
    sink.write(big)
    assert not sink.connected and not sink.pending
    sink.close()
    assert sink.frames_written + sink.frames_skipped == writes + 1


def test_record_writes_an_mp4_under_its_name_only_when_complete(tmp_path):
    path = tmp_path / "videos" / "run.mp4"
    path.parent.mkdir(parents=True)  # sinks never create folders
    sink = record.open({"path": str(path)}, context(source_fps=10.0))
    assert sink.needs_image
    for index in range(12):
        sink.write(result(index))
    assert not path.exists()
    assert [p.name for p in path.parent.iterdir()] == [os.path.basename(sink.tmp_path)]
    sink.close()
    assert [p.name for p in path.parent.iterdir()] == ["run.mp4"]
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened() and capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    shapes, (ok, frame) = [], capture.read()
    while ok:
        shapes.append(frame.shape)
        ok, frame = capture.read()
    capture.release()
    assert shapes == [(180, 320, 3)] * 12


def test_record_options(tmp_path):
    with pytest.raises(RoadedgeError, match="path is required"):
        record.open({}, context())
    sink = record.open({"path": str(tmp_path / "a.mp4")}, context())
    assert sink.fps == 15.0  # no source rate known
    sink.close()
    assert list(tmp_path.iterdir()) == []  # nothing recorded, nothing left
    assert record.open({"path": str(tmp_path / "b.mp4"), "fps": 25}, context(source_fps=10.0)).fps == 25.0


@pytest.mark.parametrize("kind, options", [("jsonl", {}), ("record", {}), ("fifo", {}), ("s3", {"bucket": "b"})])
def test_a_sink_never_creates_missing_folders(tmp_path, kind, options):
    from edge import plugins
    from roadedge.core.errors import RoadedgeError

    missing = tmp_path / "typo" / "deeper"
    key = "spool" if kind == "s3" else "path"
    target = str(missing) if kind == "s3" else str(missing / "out.file")
    with pytest.raises(RoadedgeError) as err:
        plugins.plugin("sink", kind).open(dict(options, **{key: target}), {"device": "d"})
    assert str(missing) in str(err.value) and ("does not exist" in str(err.value) or "no such folder" in str(err.value))
    assert not (tmp_path / "typo").exists()
