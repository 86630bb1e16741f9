"""The local web console on the preview server: live stream, events, defects, map, stats, report download.

`attach(runtime)` (edge.app.build, beside edge.metrics.attach) adds the
console's routes (edge/console/routes.py) to every preview server of the
runtime and a feed that keeps what the page shows (edge/console/state.py).
The feed is a sink appended to the pipeline's own list, after the others, not
a listener: it also sees the closing result (the tracks ended at the end of a
run), and the defects sink has recorded a frame before the console reads it. The page is static files in edge/console/static/:
no build step and nothing fetched from the internet (the map is a plain
canvas, no tiles). The defect registry comes from the runtime's `defects`
sink when there is one (its `path` and `snapshots_dir`).
"""
from edge.console.routes import ConsoleRoutes
from edge.console.state import ConsoleState
from edge.sinks.base import Sink

__all__ = ["ConsoleFeed", "ConsoleRoutes", "ConsoleState", "attach", "serve"]


class ConsoleFeed(Sink):
    """Every result (the closing one too) into the console's state; no image, no counters."""

    TYPE = "console"

    def __init__(self, state):
        self.state = state

    def write(self, result):
        self.state.listen(result)


def serve(servers, state, defects_sink=None, device="", boot_id=None):
    """Install the console's routes on each server (anything with add_route); returns the ConsoleRoutes."""
    routes = ConsoleRoutes(state, getattr(defects_sink, "path", None), getattr(defects_sink, "snapshots_dir", None),
                           device, boot_id)
    for server in servers:
        routes.install(server)
    return routes


def attach(runtime):
    """The console on every preview server of the runtime; returns its ConsoleRoutes, or None without a preview."""
    servers = [sink for sink in runtime.sinks if hasattr(sink, "add_route")]
    if not servers:
        return None
    pipeline = runtime.pipeline
    defects = [sink for sink in runtime.sinks if getattr(sink, "TYPE", None) == "defects"]
    state = ConsoleState(pipeline.stats_snapshot)
    routes = serve(servers, state, defects[0] if defects else None, pipeline.envelope.device, pipeline.envelope.boot_id)
    pipeline.sinks.append(ConsoleFeed(state))
    return routes
