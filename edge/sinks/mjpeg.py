"""The local HTTP preview: the annotated frames as an MJPEG stream a browser shows.

Routes (more can be added with `server.add_route(path, handler)`, e.g. a
Prometheus `/metrics`, without touching this file):

    /              a small HTML page showing the stream
    /stream.mjpg   multipart/x-mixed-replace; boundary=frame, one JPEG part per frame
    /latest.jpg    the newest annotated JPEG (503 with Retry-After before the first frame)

A route whose path ends in "/" (e.g. "/snapshots/") serves every path under it.

Bound to anything but a loopback address, every route needs a token (the
`token` option, else one made at start and logged once with the URL):
`?token=...` (which also sets an HttpOnly SameSite=Strict cookie, so the page's
own requests carry it) or `Authorization: Bearer ...`; else 401. On loopback
no token is needed unless one is configured.

The server runs in daemon threads (one per viewer). write() only stores the
newest JPEG and wakes the viewers (a Condition): each viewer thread sends the
newest frame when it is free again, so a slow viewer skips frames and a stuck
one (connected, never reading) blocks only its own thread, which gives up
after `VIEWER_TIMEOUT` seconds without progress. The pipeline never waits for
a viewer. It listens on 127.0.0.1 unless told otherwise.
"""
import errno
import hmac
import html
import ipaddress
import re
import secrets
import socket
import socketserver
import threading
import time
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from edge.plugins import Check, Option, at_least, between, checked
from edge.sinks.base import Sink
from roadedge.core.errors import RoadedgeError

TYPE = "mjpeg"
OPTIONS = {
    "host": Option(str, "127.0.0.1", "address to listen on (0.0.0.0 shows the preview to the whole network)"),
    "port": Option(int, 8080, "TCP port (0: any free port)", check=between(0, 65535)),
    "quality": Option(int, 80, "JPEG quality, 1-100", check=between(1, 100)),
    "max_fps": Option(float, 15.0, "at most this many frames per second go to viewers (0: every frame)",
                      check=at_least(0)),
    "token": Option(str, "", "secret a browser must present (?token= or Authorization: Bearer); bound to a non-loopback "
                    "address without one, a token is made at start and logged",
                    check=Check(lambda v: re.match(r"^[A-Za-z0-9._~-]*$", v) is not None,
                                "letters, digits and ._~- only (it goes in a URL and a cookie as is)")),
}

BOUNDARY = "frame"
COOKIE = "roadedge_token"
VIEWER_TIMEOUT = 10.0  # seconds a viewer may leave a send blocked before it is dropped
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{margin:0;background:#111;color:#bbb;font:14px sans-serif}}
img{{display:block;max-width:100%;max-height:95vh;margin:0 auto}}p{{text-align:center}}</style></head>
<body><img src="/stream.mjpg" alt="live preview"><p>{title} &middot; <a href="/latest.jpg">latest frame</a></p>
</body></html>
"""


def same_secret(given, token):
    """Constant-time comparison of a presented token with the configured one."""
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost, or "" (every address)
        return False


def send_body(request, status, content_type, body, headers=None):
    """A complete response with a body: what a route handler usually does."""
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(body)))
    for key, value in (headers or {}).items():
        request.send_header(key, value)
    request.end_headers()
    request.wfile.write(body)


class LatestFrame(object):
    """The newest JPEG and its sequence number, shared between the pipeline and the viewer threads."""

    def __init__(self):
        self.condition = threading.Condition()
        self.jpeg, self.seq, self.closed = None, 0, False

    def put(self, jpeg):
        with self.condition:
            self.jpeg, self.seq = jpeg, self.seq + 1
            self.condition.notify_all()

    def get(self):
        with self.condition:
            return self.seq, self.jpeg

    def wait_newer(self, seq, timeout):
        """(seq, jpeg) once there is a frame newer than `seq`, or the current one after `timeout` or close()."""
        with self.condition:
            self.condition.wait_for(lambda: self.closed or self.seq != seq, timeout)
            return self.seq, self.jpeg

    def close(self):
        with self.condition:
            self.closed = True
            self.condition.notify_all()


class _Handler(BaseHTTPRequestHandler):
    server_version = "roadedge-preview"
    timeout = VIEWER_TIMEOUT

    def setup(self):
        BaseHTTPRequestHandler.setup(self)
        self.server.track(self.connection, True)

    def finish(self):
        try:
            BaseHTTPRequestHandler.finish(self)
        except OSError:
            pass
        finally:
            self.server.track(self.connection, False)

    def do_GET(self):
        self.extra_headers = []
        try:
            if not self._authorized():
                send_body(self, 401, "application/json", b'{"error": "token required: open the URL with ?token=..."}\n',
                          {"WWW-Authenticate": 'Bearer realm="roadedge"'})
                return
            route = self.server.route_for(self.path.split("?", 1)[0])
            if route is None:
                send_body(self, 404, "text/plain; charset=utf-8", b"not found\n")
            else:
                route(self)
        except _CLIENT_GONE:
            self.close_connection = True

    def _authorized(self):
        """No token configured, or a matching one in the query (then also set as a cookie), header or cookie."""
        token = self.server.token
        if not token:
            return True
        query = parse_qs(urlsplit(self.path).query)
        if any(same_secret(value, token) for value in query.get("token", [])):
            self.extra_headers.append(("Set-Cookie", "{}={}; Path=/; HttpOnly; SameSite=Strict".format(COOKIE, token)))
            return True
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and same_secret(value.strip(), token):
            return True
        cookies = SimpleCookie()
        try:
            cookies.load(self.headers.get("Cookie") or "")
        except CookieError:
            return False
        return COOKIE in cookies and same_secret(cookies[COOKIE].value, token)

    def end_headers(self):
        for key, value in getattr(self, "extra_headers", ()):
            self.send_header(key, value)
        self.extra_headers = []
        BaseHTTPRequestHandler.end_headers(self)

    def log_message(self, format, *args):
        if self.server.log is not None:
            self.server.log.debug("preview %s: %s", self.address_string(), format % args)


class PreviewServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a route table {path: handler(request)} and the newest frame."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, frames, log=None, title="roadedge preview", token=""):
        self.frames, self.log, self.title, self.token = frames, log, title, token
        self.routes = {"/": self._index, "/stream.mjpg": self._stream, "/latest.jpg": self._latest}
        self._connections = set()
        self._lock = threading.Lock()
        ThreadingHTTPServer.__init__(self, address, _Handler)

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)  # HTTPServer's version does a reverse DNS lookup: skip it
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def add_route(self, path, handler):
        """Serve GET `path` with handler(request): `request` is the BaseHTTPRequestHandler (see send_body)."""
        self.routes[path] = handler

    def route_for(self, path):
        """The exact route, else the longest prefix route ("/snapshots/") the path is under."""
        route = self.routes.get(path)
        if route is not None:
            return route
        prefixes = [p for p in self.routes if p.endswith("/") and len(p) > 1 and path.startswith(p)]
        return self.routes[max(prefixes, key=len)] if prefixes else None

    def track(self, connection, alive):
        with self._lock:
            (self._connections.add if alive else self._connections.discard)(connection)

    def drop_connections(self):
        """Unblock every viewer thread (a stuck viewer's send fails at once)."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        if self.log is not None:
            self.log.debug("preview: request from %s failed", client_address, exc_info=True)

    def _index(self, request):
        page = PAGE.format(title=html.escape(self.title))
        send_body(request, 200, "text/html; charset=utf-8", page.encode("utf-8"))

    def _latest(self, request):
        _, jpeg = self.frames.get()
        if jpeg is None:
            send_body(request, 503, "text/plain; charset=utf-8", b"no frame yet\n", {"Retry-After": "1"})
        else:
            send_body(request, 200, "image/jpeg", jpeg, {"Cache-Control": "no-store"})

    def _stream(self, request):
        request.send_response(200)
        request.send_header("Content-Type", "multipart/x-mixed-replace; boundary=" + BOUNDARY)
        request.send_header("Cache-Control", "no-cache, no-store, must-revalidate")
        request.send_header("Pragma", "no-cache")
        request.send_header("Connection", "close")
        request.end_headers()
        request.close_connection = True
        sent = 0
        while not self.frames.closed:
            seq, jpeg = self.frames.wait_newer(sent, 1.0)
            if jpeg is None or seq == sent or self.frames.closed:
                continue
            head = "--{}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n".format(BOUNDARY, len(jpeg))
            request.wfile.write(head.encode("ascii") + jpeg + b"\r\n")
            sent = seq


class MjpegSink(Sink):
    TYPE = TYPE
    needs_image = True

    def __init__(self, server, quality=80, max_fps=15.0, log=None):
        self.server, self.frames, self.log = server, server.frames, log
        self.quality = int(quality)
        self.interval = 1.0 / float(max_fps) if max_fps and max_fps > 0 else 0.0
        self.pushed = self.skipped = 0
        self._due = None
        self._thread = None
        self._closed = False

    @property
    def address(self):
        """(host, port) actually bound."""
        return tuple(self.server.server_address[:2])

    @property
    def url(self):
        host, port = self.address
        return "http://{}:{}/".format("[{}]".format(host) if ":" in host else host, port)

    def add_route(self, path, handler):
        self.server.add_route(path, handler)

    def start(self):
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="roadedge-preview", daemon=True)
        self._thread.start()
        return self

    def write(self, result):
        if result.final:  # the closing result carries events and stats, not a new picture
            return
        if self._closed:
            return
        now = time.monotonic()
        if self.interval:
            if self._due is not None and now < self._due:
                self.skipped += 1
                return
            behind = self._due is None or now - self._due > self.interval
            self._due = now + self.interval if behind else self._due + self.interval
        self.frames.put(result.jpeg(self.quality))
        self.pushed += 1

    def close(self):
        if self._closed:
            return
        self._closed = True
        self.frames.close()
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(5.0)
        self.server.drop_connections()
        self.server.server_close()


def bind(host, port, log=None, title="roadedge preview", token=""):
    """A PreviewServer listening on host:port; a one-line RoadedgeError when it cannot."""
    server_class = PreviewServer
    if ":" in host:
        server_class = type("PreviewServer6", (PreviewServer,), {"address_family": socket.AF_INET6})
    try:
        return server_class((host, int(port)), LatestFrame(), log, title, token)
    except OSError as err:
        where = "preview {}:{}".format(host, port)
        if err.errno == errno.EADDRINUSE:
            raise RoadedgeError(where + ": address already in use (use --preview HOST:PORT or --no-preview)") from None
        if err.errno in (errno.EACCES, errno.EPERM):
            raise RoadedgeError(where + ": permission denied (ports below 1024 need privileges)") from None
        reason = err.strerror or str(err)
        raise RoadedgeError("{}: {} (use --preview HOST:PORT or --no-preview)".format(where, reason)) from None


def open(options, context):
    options = checked(OPTIONS, options, "mjpeg sink")
    context = context or {}
    log = context.get("log")
    quality = int(options["quality"])
    title = "roadedge preview" + (" - " + context["device"] if context.get("device") else "")
    token, made = options["token"], False
    if not token and not is_loopback(options["host"]):
        token, made = secrets.token_urlsafe(18), True
    server = bind(options["host"], options["port"], log, title, token)
    sink = MjpegSink(server, quality, options["max_fps"], log).start()
    if log is not None:
        if made:  # the only place it is shown: whoever reads the log may open the console
            log.info("preview at %s?token=%s (a token is required off loopback)", sink.url, token)
        else:
            log.info("preview at %s%s", sink.url, " (token required)" if token else "")
    return sink
