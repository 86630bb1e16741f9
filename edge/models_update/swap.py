"""The loop's side of a model update: a verified backend swapped in between two frames, on probation, rolled back.

The updater thread offers a backend (opened, compiled, smoke-tested) with offer(); the loop calls between_frames()
before it reads the next frame. The swap finishes the frames in flight with the old backend first, then switches
backend, model, decoder and annotator, and publishes an `online` status with `event: model_updated`. The new
version is on probation for its first N frames (model_updates.failures_before_rollback): the old backend stays
open meanwhile. A frame whose inference or decoding raises is held back; N such frames in a row roll back: the
previous backend is current again, the held-back frames and those in flight are inferred again with it (none is
lost), the failed version is rejected in the store, and the status says `model_rolled_back` with the reason. A
frame that goes through before that ends the run of failures (the frames held back are then counted as lost);
N frames through end the probation and the old backend is closed.

Thresholds from the shadow are applied here too, between two frames: the decoder is built again with them.
"""
import collections
import logging
import threading

from edge.messages import model_fields
from roadedge.core.errors import openvino_reason

log = logging.getLogger("roadedge.models")


class ModelSwap(object):
    def __init__(self, store, failures_before_rollback, on_change=None):
        self.store, self.limit = store, max(1, int(failures_before_rollback))
        self.on_change = on_change or (lambda: None)  # the updater hears that the running version changed
        self.lock = threading.Lock()
        self.offered = self.thresholds = None
        self.notices = collections.deque()  # (event, reason, candidate) for the loop to publish as status
        self.probation = None
        self.idle = threading.Event()  # no offer waiting and no version on probation: the updater may go on
        self.idle.set()
        self.counts = collections.Counter()  # updated, rolled_back, rejected
        self.last_event = None  # {event, version, reason} of the last update: the shadow's reported model_update

    def _event(self, event, reason, candidate):
        self.counts[event.replace("model_", "")] += 1
        self.last_event = {"event": event, "version": candidate.get("version"), "reason": reason}

    # -- the updater's side (its own thread) ---------------------------------------------------------------------------
    def offer(self, backend, entry):
        with self.lock:
            self.idle.clear()
            self.offered = (backend, entry)

    def set_thresholds(self, settings):
        with self.lock:
            self.thresholds = dict(settings)

    def notice(self, event, reason, candidate):
        """A version refused before it ran (verify failed): said in the next status, from the loop's thread."""
        with self.lock:
            self._event(event, reason, candidate)
            self.notices.append((event, reason, candidate))

    def close(self):
        """At the end of the run: a backend offered and never swapped in, or kept for a rollback, is closed."""
        with self.lock:
            offered, self.offered = self.offered, None
        if offered is not None:
            _close(offered[0])
        if self.probation is not None:
            _close(self.probation["old"])
            self.probation = None
        self.idle.set()

    # -- the loop's side ----------------------------------------------------------------------------------------------
    def between_frames(self, pipeline, pending):
        if self.offered is None and self.thresholds is None and not self.notices:
            return
        with self.lock:
            offered, self.offered = self.offered, None
            thresholds, self.thresholds = self.thresholds, None
            notices = list(self.notices)
            self.notices.clear()
        for event, reason, candidate in notices:
            pipeline._publish_status(_state(pipeline), event=event, reason=reason, candidate=candidate)
        if thresholds is not None:
            pipeline.config[pipeline.task.SECTION] = dict(pipeline.config[pipeline.task.SECTION], **thresholds)
            pipeline.decode = pipeline.task.decoder(pipeline.model, pipeline.config[pipeline.task.SECTION])
            log.info("thresholds now %s", thresholds)
        if offered is not None:
            while pending:  # the frames in flight finish with the backend they were submitted to
                pipeline._finish(pending.popleft(), pending)
            self._switch(pipeline, offered[0], offered[1])

    def _use(self, pipeline, backend):
        pipeline.backend, pipeline.model = backend, backend.model
        settings = pipeline.config[pipeline.task.SECTION]
        pipeline.decode = pipeline.task.decoder(pipeline.model, settings)
        if pipeline.annotate is not None:
            pipeline.annotate = pipeline.task.annotator(pipeline.model, settings)

    def _switch(self, pipeline, backend, entry):
        old, old_fields = pipeline.backend, model_fields(pipeline.model)
        self._use(pipeline, backend)
        self.probation = {"old": old, "entry": entry, "failures": 0, "ok": 0, "held": []}
        self.store.activate(entry)
        reason = "version {} replaces {} between frames {} and {}".format(
            entry["version"], old_fields["version"], pipeline.frames_done - 1, pipeline.frames_done)
        log.info("model %s: %s", entry["name"], reason)
        self._event("model_updated", reason, entry)
        pipeline._publish_status(_state(pipeline), event="model_updated", reason=reason, candidate=model_fields(backend.model))
        self.on_change()

    def inference_failed(self, pipeline, job, err, pending):
        """A frame of the version on probation failed: True when handled here (held back, perhaps rolled back)."""
        probation = self.probation
        if probation is None:
            return False
        probation["failures"] += 1
        probation["held"].append(job)
        if probation["failures"] >= self.limit:
            self._roll_back(pipeline, pending, err)
        return True

    def inference_ok(self, pipeline):
        probation = self.probation
        if probation is None:
            return
        if probation["held"]:
            log.warning("model %s: %d frames failed, then one went through; they are lost", probation["entry"]["version"],
                        len(probation["held"]))
            pipeline.lost_frames += len(probation["held"])
            probation["held"], probation["failures"] = [], 0
        probation["ok"] += 1
        if probation["ok"] >= self.limit:
            self.probation = None
            _close(probation["old"])
            self.idle.set()

    def _roll_back(self, pipeline, pending, err):
        probation, self.probation = self.probation, None
        failed = pipeline.backend
        jobs = probation["held"] + list(pending)
        pending.clear()
        self._use(pipeline, probation["old"])
        reason = "its first {} frames failed ({}: {}); back to version {}".format(
            probation["failures"], type(err).__name__, openvino_reason(err, 240),
            model_fields(pipeline.model)["version"])
        log.error("model %s version %s rolled back: %s", probation["entry"]["name"], probation["entry"]["version"],
                  reason)
        self.store.roll_back(probation["entry"], reason)
        self._event("model_rolled_back", reason, probation["entry"])
        pipeline._publish_status(_state(pipeline), event="model_rolled_back", reason=reason,
                                 candidate=model_fields(failed.model))
        _close(failed)
        for job in jobs:  # inferred again with the previous version: in order, one at a time
            frame = job["frame"]
            pipeline.backend.prepare(pipeline._input_frame_size(frame))
            pipeline._finish(pipeline._start(frame), collections.deque())
        self.idle.set()
        self.on_change()


def _state(pipeline):
    """An update does not hide that frames go without inference (degraded); otherwise the runtime is online."""
    return "degraded" if pipeline.degraded else "online"


def _close(backend):
    try:
        backend.close()
    except Exception as err:  # closing a backend we are done with is best effort
        log.debug("closing %s failed: %s", type(backend).__name__, err)
