"""The HTTP side of `roadedge serve`: SageMaker's container protocol and the runtime API's path.

    GET  /ping                          200 once the model is compiled, 503 before
    POST /invocations                   an image in (image/jpeg, image/png, application/x-image), the answer out
    POST /endpoints/NAME/invocations    the same, where boto3's sagemaker-runtime invoke_endpoint posts (any NAME)

Every error is JSON, {"error": CODE, "message": TEXT}, with SageMaker's error type in `x-amzn-ErrorType` so boto3
raises a ClientError with that code and the message. Work is bounded: at most `max_connections` connections (more are
answered 503 and closed), at most workers + queue requests admitted to inference (more get 503 at once), bodies of at
most `max_bytes` and images of at most `max_pixels` (413).
"""
import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

IMAGE_TYPES = ("image/jpeg", "image/png", "application/x-image")
ENDPOINT_PATH = re.compile(r"^/endpoints/([^/?]+)/invocations$")
PATHS = ("/ping", "/invocations")
# SageMaker's error codes for boto3 (botocore reads x-amzn-ErrorType): what the runtime API would say for each status
ERROR_TYPES = {400: "ModelError", 406: "ModelError", 415: "ModelError", 500: "ModelError", 503: "ServiceUnavailable"}
VALIDATION = "ValidationError"  # everything else: a bad request that never reached the model


class ServeApp(object):
    """The server's state: the model (None until loaded, then `ready`), limits and the admission count."""

    def __init__(self, max_bytes=6 * 1024 * 1024, max_pixels=40_000_000, queue=0):
        self.model, self.max_bytes, self.max_pixels, self.queue = None, int(max_bytes), int(max_pixels), int(queue)
        self.admitted, self.capacity, self.lock = 0, 0, threading.Lock()

    def ready(self, model):
        """Serve `model` from now on: admits its workers plus the queue (default 4 per worker) at a time."""
        self.capacity = model.workers + (self.queue or 4 * model.workers)
        self.model = model

    def admit(self):
        with self.lock:
            if self.admitted >= self.capacity:
                return False
            self.admitted += 1
            return True

    def leave(self):
        with self.lock:
            self.admitted -= 1


class HttpError(Exception):
    def __init__(self, status, code, message, close=False):
        super().__init__(message)
        self.status, self.code, self.message, self.close = status, code, message, close


def media_type(value):
    return (value or "").split(";", 1)[0].strip().lower()


def choose_answer(accept, offered):
    """The answer type for an Accept header: the first of its types (in the order given; q-values are not weighed)
    that the model offers, 'type/*' its first of that type; '*/*' or no Accept: the model's default (offered[0]). None
    when nothing fits."""
    if not (accept or "").strip():
        return offered[0]
    for part in accept.split(","):
        wanted = media_type(part)
        if wanted in ("*/*", "*"):
            return offered[0]
        if wanted.endswith("/*"):
            match = [kind for kind in offered if kind.startswith(wanted[:-1])]
            if match:
                return match[0]
        elif wanted in offered:
            return wanted
    return None


def decode_image(data, max_pixels):
    """BGR uint8 image of an encoded body (as cv2.imread reads a file); HttpError 400 / 413."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as header:  # reads the header only: the size before any pixel is decoded
            width, height = header.size
    except Exception:  # noqa: BLE001 - a format Pillow does not know: OpenCV may, and says so below
        width = height = 0
    if width * height > max_pixels:
        raise HttpError(413, "image_too_large", "the image is {}x{} pixels; at most {} pixels are accepted".format(
            width, height, max_pixels))
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise HttpError(400, "undecodable_image", "cannot decode the {}-byte body as an image (JPEG or PNG)".format(
            len(data)))
    return image


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: boto3 and the benchmark's clients reuse their connections
    server_version = "roadedge-serve"
    timeout = 120  # an idle connection is closed after this many seconds
    disable_nagle_algorithm = True  # headers and body go out in two writes: Nagle + delayed ACK would add 40 ms each

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        if self.server.verbose:
            super().log_message(format, *args)

    def send_error(self, code, message=None, explain=None):
        """The base class's own errors (malformed request line, unknown method, header too long) as JSON too."""
        self.close_connection = True
        name = "not_implemented" if code == 501 else "bad_request" if code < 500 else "server_error"
        self._error(HttpError(code, name, message or self.responses.get(code, ("error",))[0], close=True))

    def handle_expect_100(self):
        """`Expect: 100-continue` (curl sends it with large bodies): a body over the limit is refused before it is sent."""
        length = self.headers.get("Content-Length", "")
        if length.strip().isdigit() and int(length) > self.server.app.max_bytes:
            self.close_connection = True
            self._error(HttpError(413, "payload_too_large", "the body is {} bytes; at most {} bytes are accepted".format(
                int(length), self.server.app.max_bytes), close=True))
            return False
        return super().handle_expect_100()

    def _send(self, status, body, content_type, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, err):
        if err.close:
            self.close_connection = True
        headers = [("x-amzn-ErrorType", ERROR_TYPES.get(err.status, VALIDATION))]
        if err.status == 503:
            headers.append(("Retry-After", "1"))
        if err.status == 405:
            headers.append(("Allow", "GET" if self._path() == "/ping" else "POST"))
        body = json.dumps({"error": err.code, "message": err.message}).encode("utf-8")
        self._send(err.status, body, "application/json", headers)

    def _path(self):
        return self.path.split("?", 1)[0]

    def _route(self, method):
        path = self._path()
        if path not in PATHS and not ENDPOINT_PATH.match(path):
            raise HttpError(404, "not_found", "no such path: {}; this server answers GET /ping, POST /invocations and "
                            "POST /endpoints/NAME/invocations".format(path[:200]), close=method != "GET")
        wanted = "GET" if path == "/ping" else "POST"
        if method != wanted:
            raise HttpError(405, "method_not_allowed", "{} {}: use {}".format(method, path[:200], wanted),
                            close=method != "GET")
        return path

    def do_GET(self):
        try:
            self._route(self.command)
            model = self.server.app.model
            if model is None:
                raise HttpError(503, "not_ready", "the model is still loading")
            body = json.dumps({"status": "ready", "model": model.name, "task": model.model.task}).encode("utf-8")
            self._send(200, body, "application/json")
        except HttpError as err:
            self._error(err)

    def do_POST(self):
        try:
            self._invoke(self._route(self.command))
        except HttpError as err:
            self._error(err)

    def do_PUT(self):
        try:
            self._route(self.command)  # raises: 404 or 405
        except HttpError as err:
            self._error(err)

    do_DELETE = do_PATCH = do_HEAD = do_PUT

    def _read_body(self, app):
        """The body, after the size checks (the connection closes when a body is left unread)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise HttpError(411, "length_required", "send the body with a Content-Length, not chunked", close=True)
        length = self.headers.get("Content-Length")
        if length is None:
            raise HttpError(411, "length_required", "a Content-Length header is required", close=True)
        if not length.strip().isdigit():
            raise HttpError(400, "bad_request", "Content-Length {!r}: expected a number of bytes".format(length[:40]),
                            close=True)
        if int(length) > app.max_bytes:
            raise HttpError(413, "payload_too_large", "the body is {} bytes; at most {} bytes are accepted".format(
                int(length), app.max_bytes), close=True)
        data = self.rfile.read(int(length))
        if len(data) < int(length):
            raise HttpError(400, "bad_request", "the body ended after {} of {} bytes".format(len(data), length), close=True)
        return data

    def _invoke(self, path):
        app = self.server.app
        model = app.model
        if model is None:
            raise HttpError(503, "not_ready", "the model is still loading; GET /ping answers 200 once it is ready",
                            close=True)
        content_type = media_type(self.headers.get("Content-Type"))
        if content_type not in IMAGE_TYPES:
            raise HttpError(415, "unsupported_content_type", "Content-Type {!r}: expected {}".format(
                content_type or None, ", ".join(IMAGE_TYPES)), close=True)
        answer = choose_answer(self.headers.get("Accept", ""), model.answers)
        if answer is None:
            raise HttpError(406, "not_acceptable", "Accept {!r}: model {} ({}) answers {}".format(
                self.headers.get("Accept")[:100], model.name, model.model.task, ", ".join(model.answers)), close=True)
        if not app.admit():
            raise HttpError(503, "busy", "every worker is busy and the queue is full; retry", close=True)
        try:
            image = decode_image(self._read_body(app), app.max_pixels)
            try:
                body, kind = model.predict(image, answer)
            except Exception as err:  # noqa: BLE001 - one bad inference must not take the server down
                raise HttpError(500, "inference_failed", "{}: {}".format(type(err).__name__, str(err)[:300])) from None
        finally:
            app.leave()
        variant = [("x-Amzn-Invoked-Production-Variant", "AllTraffic")] if path != "/invocations" else []
        self._send(200, body, kind, variant)


class ServeServer(ThreadingHTTPServer):
    """One thread per connection, at most `max_connections` of them; a connection beyond that gets 503 and is closed."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address, app, max_connections=64, verbose=False):
        self.app, self.verbose = app, verbose
        self.connections = threading.BoundedSemaphore(max_connections)
        super().__init__(address, Handler)

    def process_request(self, request, client_address):
        if not self.connections.acquire(blocking=False):
            body = json.dumps({"error": "busy", "message": "too many connections; retry"}).encode("utf-8")
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: "
                                + str(len(body)).encode() + b"\r\nx-amzn-ErrorType: ServiceUnavailable\r\n"
                                b"Retry-After: 1\r\nConnection: close\r\n\r\n" + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()


def make_server(app, host="127.0.0.1", port=8080, max_connections=64, verbose=False):
    """A listening ServeServer (not yet serving: call serve_forever, in a thread for tests); port 0: a free one."""
    try:
        return ServeServer((host, int(port)), app, max_connections, verbose)
    except OSError as err:
        from roadedge.core.errors import RoadedgeError, os_reason

        raise RoadedgeError("serve: cannot listen on {}:{} ({})".format(host, port, os_reason(err))) from None

