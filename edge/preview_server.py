"""The preview's HTTP server: the newest annotated JPEG as an MJPEG stream, a page and a still, plus the routes the
console and Prometheus /metrics add; behind the mjpeg sink (edge/sinks/mjpeg.py says what it serves and who may see
it). Kept out of the sink's module so the plugin registry, which imports every sink, does not load http.server and
ssl's libraries (~5 MiB) in a run without a preview."""
import errno
import hmac
import html
import ipaddress
import socket
import socketserver
import threading
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from roadedge.core.errors import RoadedgeError

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
