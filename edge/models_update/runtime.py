"""What edge.app calls when backend.model names a source of model versions (an S3 prefix or a folder).

At start the store's current version runs (it works offline; the previous one if the current one does not load).
A store without any version fetches the newest from the source first (and verifies its sha256), or fails with one
line. Then the updater thread looks for new versions, and with model_updates.shadow the device shadow says which
version and thresholds the fleet wants.
"""
import logging
import os

from edge.models_update.sources import open_source, pick
from edge.models_update.store import ModelStore
from edge.models_update.swap import ModelSwap
from edge.models_update.verify import check_files
from roadedge.core.errors import RoadedgeError

log = logging.getLogger("roadedge.models")


def default_state_dir(device):
    return os.path.join("~", ".cache", "roadedge", "models-" + device)


class ModelUpdates(object):
    def __init__(self, config, plugin, context):
        settings = config["model_updates"]
        self.settings, self.config, self.plugin, self.context = settings, config, plugin, context
        if config["backend"]["type"] != "openvino":
            raise RoadedgeError("backend.model {}: model updates from a source of versions need the openvino "
                                "backend (backend.type is {})".format(config["backend"]["model"], config["backend"]["type"]))
        self.options = {key: value for key, value in config["backend"].items() if key != "type"}
        self.store = ModelStore(settings["state_dir"] or default_state_dir(config["device_name"]))
        self.source = open_source(config["backend"]["model"], settings)
        self.swap = ModelSwap(self.store, settings["failures_before_rollback"])
        self.updater = self.shadow = None

    def open_path(self, path):
        """The configured backend plugin's open() on one stored version (same device, precision, requests...)."""
        return self.plugin.open(dict(self.options, model=path), self.context)

    def open_current(self):
        """The backend of the current version: at start, and when the watchdog opens inference again."""
        store = self.store
        current, previous = store.current, store.previous
        if store.has(current):
            try:
                return self.open_path(store.path_of(current))
            except RoadedgeError as err:
                if not store.has(previous):
                    raise
                log.error("model version %s does not load (%s); back to version %s", current["version"], err,
                          previous["version"])
                store.roll_back(current, str(err))
                return self.open_path(store.path_of(previous))
        return self.open_path(self._fetch_first())

    def _fetch_first(self):
        candidates, problems = self.source.candidates()
        chosen = pick(candidates)
        if chosen is None:
            raise RoadedgeError("backend.model {}: no model version there and none stored in {}; expected NAME.xml, "
                                "NAME.bin and NAME.json (with version and sha256){}".format(
                                    self.source.where, self.store.root, "; " + problems[0] if problems else ""))
        staged = self.store.staging()
        self.source.download(chosen, staged)
        check_files(os.path.join(staged, chosen["name"] + ".xml"), chosen)
        entry = self.store.install(staged, chosen)
        self.store.activate(entry)
        log.info("model version %s from %s", entry["version"], chosen["where"])
        return self.store.path_of(entry)

    def attach(self, runtime):
        """The running pipeline learns to swap models; the updater (and the shadow) start."""
        from edge.models_update.updater import Updater

        pipeline = runtime.pipeline
        pipeline.model_swap = self.swap
        self.updater = Updater(self.source, self.store, self.swap, self.open_path, pipeline,
                               self.settings["interval_s"])
        if self.settings["shadow"]:
            self.shadow = self._shadow(runtime)
            self.updater.shadow = self.shadow
        self.updater.start()

    def _shadow(self, runtime):
        from edge.models_update.shadow import Shadow

        sinks = [sink for sink in runtime.sinks if hasattr(sink, "subscribe") and hasattr(sink, "send")]
        if not sinks:
            raise RoadedgeError("model_updates.shadow: needs an mqtt output (the device shadow is reached through "
                                "its connection)")
        thing = self.settings["thing_name"] or sinks[0].client_id
        shadow = Shadow(sinks[0], thing, self.settings["shadow_name"], self.updater.desire)
        shadow.start()
        return shadow

    def close(self):
        if self.updater is not None:
            self.updater.stop()
        self.swap.close()
