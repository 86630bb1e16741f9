"""The background thread: checks the source every interval_s (or at once when the shadow's desired version
changes), downloads a new version into the store, verifies it and offers it to the loop (swap.py). One version at
a time: nothing new is tried while one waits for the loop or is on probation. It also keeps the shadow's reported
state up to date (the running model, the thresholds in force, the last update's outcome).
"""
import logging
import threading

from edge.messages import model_fields
from edge.models_update.shadow import checked_thresholds
from edge.models_update.sources import pick
from edge.models_update.store import identity
from edge.models_update.verify import NotReady, verify
from roadedge.core.errors import RoadedgeError

log = logging.getLogger("roadedge.models")
UNSET = object()


class Updater(object):
    def __init__(self, source, store, swap, open_backend, pipeline, interval_s, shadow=None):
        self.source, self.store, self.swap, self.open_backend = source, store, swap, open_backend
        self.pipeline, self.interval_s, self.shadow = pipeline, float(interval_s), shadow
        self.desired = UNSET  # the shadow's model_version: UNSET (no shadow word yet) or None = the newest
        self.wake, self.stopping = threading.Event(), threading.Event()
        self.said = set()  # problems already logged or announced: each once
        self.thresholds_error = None
        self.reported = None
        self.thread = threading.Thread(target=self._run, name="roadedge-model-updates", daemon=True)
        swap.on_change = self.wake.set

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.wake.set()
        self.thread.join(30.0)

    def desire(self, state):
        """The shadow's desired state (paho's thread): noted, and the thread woken."""
        if "model_version" in state:
            version = state["model_version"]
            self.desired = None if version is None else str(version)
        if "thresholds" in state and state["thresholds"] is not None:
            try:
                thresholds = checked_thresholds(state["thresholds"])
                unknown = sorted(set(thresholds.get("class_thresholds", {})) - set(self.pipeline.model.labels))
                if self.pipeline.task.SECTION != "detection":
                    raise RoadedgeError("shadow: thresholds: the running model is a {} model; thresholds are the "
                                        "detection task's".format(self.pipeline.model.task))
                if unknown:
                    raise RoadedgeError("shadow: thresholds.class_thresholds: {}: not a class of model {}".format(
                        ", ".join(unknown), self.pipeline.model.name))
                self.swap.set_thresholds(thresholds)
                self.thresholds_error = None
            except RoadedgeError as err:
                log.error("%s", err)
                self.thresholds_error = str(err)
        self.wake.set()

    def _run(self):
        while not self.stopping.is_set():
            try:
                self.check()
            except Exception as err:  # the updater must never stop the stream: say it, try again next time
                self._say("model updates: checking {} failed: {}".format(self.source.where, err))
            self.report()
            self.wake.wait(self.interval_s)
            self.wake.clear()

    def _say(self, text):
        if text not in self.said:
            self.said.add(text)
            log.warning("%s", text)
            return True
        return False

    def check(self):
        """One look at the source; a new version verified and offered to the loop, or refused."""
        if not self.swap.idle.is_set():
            return
        try:
            candidates, problems = self.source.candidates()
        except RoadedgeError as err:
            self._say(str(err))
            return
        for problem in problems:
            self._say(problem)
        desired = None if self.desired is UNSET else self.desired
        if desired is None:  # the newest version not refused before
            candidates = [candidate for candidate in candidates if not self.store.rejected(candidate)]
        chosen = pick(candidates, desired)
        if chosen is None:
            if desired is not None:
                reason = "{}: no version {} published there".format(self.source.where, desired)
                if self._say(reason):
                    self.swap.notice("model_rejected", reason, {"name": None, "version": desired, "sha256": None})
            return
        current = self.store.current
        if current is not None and identity(current) == identity(chosen) or self.store.rejected(chosen):
            return
        log.info("model version %s (%s) found at %s; downloading and verifying", chosen["version"],
                 chosen["sha256"][:12], chosen["where"])
        staged = self.store.staging()
        try:
            self.source.download(chosen, staged)
            entry = self.store.install(staged, chosen)
        except RoadedgeError as err:
            self._say(str(err))
            return
        try:
            backend = verify(self.store.path_of(entry), chosen, self.open_backend, self.pipeline.model,
                             dict(self.pipeline.config[self.pipeline.task.SECTION]))
        except NotReady as err:  # not remembered: the files may be complete at the next check
            self.store.discard(entry)
            if self._say(str(err)):
                self._refused(chosen, str(err))
            return
        except RoadedgeError as err:
            self.store.reject(chosen, str(err))
            self.store.discard(entry)
            log.error("model version %s refused: %s", chosen["version"], err)
            self._refused(chosen, str(err))
            return
        self.swap.offer(backend, entry)

    def _refused(self, candidate, reason):
        self.swap.notice("model_rejected", reason, model_fields(candidate))

    def report(self):
        """The shadow's reported state, published when it changed."""
        if self.shadow is None:
            return
        running = model_fields(self.pipeline.model)
        settings = self.pipeline.config[self.pipeline.task.SECTION]
        reported = {"model_name": running["name"], "model_version": running["version"], "model_sha256": running["sha256"],
                    "thresholds": {key: settings[key] for key in ("min_score", "class_thresholds") if key in settings},
                    "thresholds_error": self.thresholds_error,
                    "model_update": self.swap.last_event}
        if reported != self.reported:
            self.shadow.report(reported)
            self.reported = reported
