"""A real `roadedge serve` server in a thread on 127.0.0.1 (a free port), frames of the bundled sample drive to send it,
and a plain HTTP client that returns error answers instead of raising."""
import contextlib
import http.client
import json
import os
import threading

import cv2

from cloud.serve.http import ServeApp, make_server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "edge", "data", "sample-drive.mp4")
SEG_XML = os.path.join(ROOT, "edge", "models", "road-seg.xml")
DETECTION_FRAMES = (129, 149)  # frames of the sample drive where the bundled detector finds damage
SEGMENTATION_FRAMES = (20, 90)


def sample_frames(indices):
    """{index: BGR frame} of the sample drive (640x360)."""
    capture = cv2.VideoCapture(SAMPLE)
    frames, index = {}, 0
    while len(frames) < len(indices):
        ok, frame = capture.read()
        assert ok, "the sample drive ended before frame {}".format(max(indices))
        if index in indices:
            frames[index] = frame
        index += 1
    capture.release()
    return frames


def encode(image, ext=".jpg"):
    ok, data = cv2.imencode(ext, image, [cv2.IMWRITE_JPEG_QUALITY, 92] if ext == ".jpg" else [])
    assert ok
    return data.tobytes()


@contextlib.contextmanager
def running(model=None, **limits):
    """(app, port) of a server serving `model` (None: not loaded yet; call app.ready(model) to load it)."""
    app = ServeApp(**limits)
    if model is not None:
        app.ready(model)
    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class Answer(object):
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def content_type(self):
        return self.headers.get("Content-Type")

    def json(self):
        return json.loads(self.body.decode("utf-8"))


def request(port, method, path, body=None, headers=None, connection=None):
    """One request; `connection`: an http.client.HTTPConnection to reuse (keep-alive)."""
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, {k: v for k, v in response.getheaders()}, response.read())
    finally:
        if connection is None:
            conn.close()


def invoke(port, body, content_type="image/jpeg", accept=None, path="/invocations", **kwargs):
    headers = {"Content-Type": content_type} if content_type else {}
    if accept:
        headers["Accept"] = accept
    return request(port, "POST", path, body, headers, **kwargs)
