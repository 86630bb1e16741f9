"""Composition root: a validated configuration -> opened backend, sinks and source -> Pipeline.

Also used by lambda_function.py on a DeepLens, so Python 3.7 syntax and no
module-level imports beyond the standard library and edge.*.
"""
import logging
import threading
import uuid

from edge import plugins
from edge.pipeline import Pipeline

log = logging.getLogger("roadedge")


class Runtime(object):
    """The opened parts and the pipeline over them; close() releases all of them, whatever failed."""

    def __init__(self):
        self.source = self.backend = self.pipeline = self.metrics = self.model_updates = self.locator = None
        self.console = None  # edge.console.ConsoleRoutes when there is a preview
        self.notifier = None  # edge.sd_notify.Notifier under systemd (Type=notify), else None
        self.sinks = []
        self.stop = threading.Event()

    def close(self):
        if self.model_updates is not None:  # no version is offered to the loop from here on
            self.model_updates.close()
        if self.pipeline is not None:  # the watchdog may have opened the source or backend again
            self.source, self.backend = self.pipeline.source, self.pipeline.backend
        for sink in reversed(self.sinks):
            try:
                sink.close()
            except Exception as err:  # closing must reach every part
                log.error("closing sink %s failed: %s", type(sink).__name__, err)
        for part in (self.source, self.backend):
            if part is not None and hasattr(part, "close"):
                try:
                    part.close()
                except Exception as err:
                    log.error("closing %s failed: %s", type(part).__name__, err)
        self.sinks, self.source, self.backend = [], None, None
        if self.locator is not None:
            self.locator.close()
            self.locator = None
        if self.notifier is not None:
            self.notifier.close()
            self.notifier = None


def _section(section):
    return {key: value for key, value in section.items() if key != "type"}


def _opener(kind, section, context):
    """A function that opens the configured plugin of `kind` (again, when the watchdog asks)."""
    module = plugins.plugin(kind, section["type"])
    return lambda: module.open(_section(section), context)


def _names_versions(model):
    from edge.models_update.sources import is_update_source

    return is_update_source(model)


def build(config, extra_sinks=()):
    """Open everything the configuration names; on any failure close what was opened and re-raise."""
    runtime = Runtime()
    boot_id = uuid.uuid4().hex  # one per run: detections, events, stats and status messages all carry it
    context = {"log": log, "stop": runtime.stop, "device": config["device_name"], "source_fps": None,
               "boot_id": boot_id}
    try:
        open_backend = _opener("backend", config["backend"], context)
        if _names_versions(config["backend"].get("model")):  # an S3 prefix or a folder of model versions
            from edge.models_update.runtime import ModelUpdates

            runtime.model_updates = ModelUpdates(config, plugins.plugin("backend", config["backend"]["type"]), context)
            open_backend = runtime.model_updates.open_current
        open_source = _opener("source", config["source"], context)
        runtime.backend = open_backend()
        runtime.source = open_source()
        context["source_fps"] = getattr(runtime.source, "fps", None)
        if config.get("gps", {}).get("source"):  # before the sinks: a bad GPS source leaves no registry behind
            from edge.gps.locator import open_locator

            runtime.locator = open_locator(config["gps"], runtime.source)
        context["model"] = runtime.backend.model  # ModelInfo: sinks that need the task's output check it (masks)
        for section in config["outputs"]:
            runtime.sinks.append(plugins.plugin("sink", section["type"]).open(_section(section), context))
        runtime.sinks.extend(extra_sinks)
        runtime.pipeline = Pipeline(runtime.source, runtime.backend, runtime.sinks, config, stop_event=runtime.stop,
                                    boot_id=boot_id, reopen={"capture": open_source, "inference": open_backend},
                                    locator=runtime.locator)
        if runtime.model_updates is not None:
            runtime.model_updates.attach(runtime)
        if any(hasattr(sink, "add_route") for sink in runtime.sinks):
            from edge.metrics import attach

            runtime.metrics = attach(runtime)  # Prometheus /metrics beside the preview
            from edge import console

            runtime.console = console.attach(runtime)  # the web console at / (events, defects, map, stats)
        from edge import sd_notify

        runtime.notifier = sd_notify.attach(runtime)  # systemd READY/WATCHDOG/STATUS (None without NOTIFY_SOCKET)
    except BaseException:
        runtime.close()
        raise
    return runtime
