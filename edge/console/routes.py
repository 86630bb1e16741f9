"""The console's HTTP routes on the preview server (edge.sinks.mjpeg's route table).

    /                          the console page (static/index.html)
    /static/<file>             console.js, console.css (only the files in static/)
    /api/state                 device, stats (FPS, outbox, Kinesis store, GPS fix), class catalogue
    /api/events?class=&since=  the newest events message of each damage track, last seen first
    /api/defects?class=&since= the defect registry's defects (with a snapshot URL), newest first
    /api/track                 the drive's track: [{lat, lon, stale, fix}]
    /snapshots/<file>          a JPEG from the registry's snapshots folder (nothing outside it)
    /report?format=geojson|csv|gpx&class=&since=   the registry as a download

`class` is a class code (D40), `since` an ISO date or time (2026-12-01, 2026-12-01T08:00 (UTC) or with a
zone): unknown codes and malformed dates are a 400. Errors are JSON:
{"error": "..."}.
"""
import json
import os
import re
from urllib.parse import parse_qs, unquote, urlsplit

from edge.defects.times import epoch_seconds
from roadedge.core.catalog import class_color, class_name, load_catalog
from roadedge.core.errors import RoadedgeError

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}
SNAPSHOT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
REPORTS = {"geojson": ("application/geo+json", "to_geojson"), "csv": ("text/csv; charset=utf-8", "to_csv"),
           "gpx": ("application/gpx+xml", "to_gpx")}


class BadRequest(Exception):
    """A 400 with this message."""


def send_json(request, status, value):
    from edge.preview_server import send_body

    body = json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")
    send_body(request, status, "application/json", body, {"Cache-Control": "no-store"})


def query(request):
    return {key: values[-1] for key, values in parse_qs(urlsplit(request.path).query).items()}


def filters(params):
    """(label, since as epoch seconds) from the query; BadRequest naming the parameter and what was expected. `since`
    is read as the registry reads it (edge.defects.times), so the console accepts exactly what the registry takes."""
    label = params.get("class") or None
    if label is not None and label not in load_catalog()["classes"]:
        raise BadRequest("class={}: expected a class code, one of {}".format(
            label, " ".join(sorted(load_catalog()["classes"]))))
    since = params.get("since") or None
    if since is None:
        return label, None
    try:
        return label, epoch_seconds(since)
    except ValueError:
        raise BadRequest("since={}: expected an ISO date or time, e.g. 2026-12-01 or 2026-12-01T08:00".format(since)) \
            from None


def hex_color(code):
    blue, green, red = class_color(code)
    return "#{:02x}{:02x}{:02x}".format(red, green, blue)


class ConsoleRoutes(object):
    """The handlers over a ConsoleState and, when there is one, the defect registry (`registry_path`) and its
    snapshots folder."""

    def __init__(self, state, registry_path=None, snapshots_dir=None, device="", boot_id=None):
        self.state, self.device, self.boot_id = state, device, boot_id
        self.registry_path = registry_path
        self.snapshots_dir = os.path.realpath(snapshots_dir) if snapshots_dir else None

    def install(self, server):
        for path, handler in (("/", self.page), ("/index.html", self.page), ("/static/", self.static),
                              ("/api/state", self.api_state), ("/api/events", self.api_events),
                              ("/api/defects", self.api_defects), ("/api/track", self.api_track),
                              ("/api/", self.api_unknown), ("/snapshots/", self.snapshot), ("/report", self.report)):
            server.add_route(path, self._guarded(handler))

    def _guarded(self, handler):
        def handle(request):
            try:
                handler(request)
            except (BadRequest, ValueError) as err:  # ValueError: a date the registry cannot take (2026-02-30)
                send_json(request, 400, {"error": str(err)})
            except RoadedgeError as err:  # the registry cannot be read: say why, keep serving
                send_json(request, 503, {"error": str(err)})

        return handle

    # -- files -----------------------------------------------------------------------------------------------------
    def _send_file(self, request, path, content_type):
        from edge.preview_server import send_body

        with open(path, "rb") as handle:
            send_body(request, 200, content_type, handle.read(), {"Cache-Control": "no-cache"})

    def page(self, request):
        self._send_file(request, os.path.join(STATIC_DIR, "index.html"), STATIC_TYPES[".html"])

    def static(self, request):
        name = unquote(urlsplit(request.path).path[len("/static/"):])
        if name not in os.listdir(STATIC_DIR) or os.path.splitext(name)[1] not in STATIC_TYPES:
            send_json(request, 404, {"error": "no such file: /static/" + name})
            return
        self._send_file(request, os.path.join(STATIC_DIR, name), STATIC_TYPES[os.path.splitext(name)[1]])

    def snapshot_file(self, name):
        """The file `name` inside the snapshots folder, or None (no folder, a path outside it, not a file)."""
        if self.snapshots_dir is None or not name or "/" in name or "\\" in name or "\0" in name or name[0] == ".":
            return None
        path = os.path.realpath(os.path.join(self.snapshots_dir, name))
        if os.path.dirname(path) != self.snapshots_dir or not os.path.isfile(path):
            return None
        return path

    def snapshot(self, request):
        name = unquote(urlsplit(request.path).path[len("/snapshots/"):])
        path = self.snapshot_file(name)
        content_type = SNAPSHOT_TYPES.get(os.path.splitext(name)[1].lower())
        if path is None or content_type is None:
            send_json(request, 404, {"error": "no such snapshot: " + name})
            return
        self._send_file(request, path, content_type)

    def snapshot_url(self, relative):
        """A defect's snapshot (relative to the registry's folder) -> its /snapshots/ URL, or None."""
        if not relative or self.registry_path is None:
            return None
        path = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(self.registry_path)), relative))
        name = os.path.basename(path)
        return "/snapshots/" + name if self.snapshot_file(name) == path else None

    # -- data ------------------------------------------------------------------------------------------------------
    def api_unknown(self, request):
        send_json(request, 404, {"error": "no such API: " + urlsplit(request.path).path})

    def api_state(self, request):
        classes = {code: {"name": class_name(code), "color": hex_color(code)} for code in load_catalog()["classes"]}
        send_json(request, 200, {"device": self.device, "boot_id": self.boot_id, "stats": self.state.stats(),
                                 "events_seen": self.state.events_seen, "registry": self.registry_path is not None,
                                 "classes": classes})

    def api_events(self, request):
        label, since = filters(query(request))
        send_json(request, 200, {"events": self.state.events(label, since)})

    def api_track(self, request):
        send_json(request, 200, {"track": self.state.track(), "position": self.state.position()})

    def defects(self, label, since):
        if self.registry_path is None:
            return []
        from edge.defects.registry import read_defects

        if not os.path.exists(self.registry_path):  # no defect recorded yet
            return []
        return read_defects(self.registry_path, since=since, label=label)

    def api_defects(self, request):
        label, since = filters(query(request))
        defects = []
        for defect in self.defects(label, since):
            defect = dict(defect)
            defect["snapshot_url"] = self.snapshot_url(defect.get("snapshot"))
            defects.append(defect)
        defects.sort(key=lambda d: d.get("last_seen") or "", reverse=True)
        send_json(request, 200, {"defects": defects, "registry": self.registry_path is not None})

    def report(self, request):
        from edge.preview_server import send_body

        params = query(request)
        kind = params.get("format", "geojson")
        if kind not in REPORTS:
            raise BadRequest("format={}: expected one of {}".format(kind, ", ".join(sorted(REPORTS))))
        if self.registry_path is None:
            send_json(request, 404, {"error": "no defect registry: the run has no defects sink"})
            return
        label, since = filters(params)
        from edge.defects import report

        content_type, builder = REPORTS[kind]
        built = getattr(report, builder)(self.defects(label, since))
        body = (json.dumps(built, indent=1) if kind == "geojson" else built).encode("utf-8")
        name = "roadedge-defects{}.{}".format("-" + re.sub(r"[^A-Za-z0-9_.-]", "_", self.device) if self.device else "",
                                              kind)
        send_body(request, 200, content_type, body, {"Content-Disposition": 'attachment; filename="{}"'.format(name),
                                                    "Cache-Control": "no-store"})
