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
after `VIEWER_TIMEOUT` seconds without progress (edge/preview_server.py). The pipeline never waits for
a viewer. It listens on 127.0.0.1 unless told otherwise.
"""
import re
import secrets
import threading
import time

from edge.plugins import Check, Option, at_least, between, checked
from edge.sinks.base import Sink

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


def open(options, context):
    from edge.preview_server import bind, is_loopback  # http.server, only when a preview is configured

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
