"""The loop: capture -> infer (async) -> decode -> annotate -> sinks, with per-stage timing.

A capture thread reads the source into a bounded queue. For live sources the
oldest queued frame is dropped when inference falls behind (counted); files
are never dropped unless `drop_frames: always`. The main thread keeps up to
`backend.requests` inferences in flight and finishes frames in order: wait for
the oldest, decode, map boxes to the frame, build the v1 message, annotate if
a sink wants pictures, hand the result to every sink. A failing sink is logged
and counted; the others still get the frame.
"""
import collections
import logging
import threading
import time
import uuid

from edge.backends.base import FrameNotInferred, InferenceStalled
from edge.capture import WAITING, Capture, StageTimes
from edge.messages import Envelope
from edge.processing.geometry import Resize
from edge.sinks.base import FrameResult
from edge.tasks import task_for
from edge.watchdog import Watchdog, WatchdogExpired

log = logging.getLogger("roadedge.pipeline")


class Pipeline(object):
    def __init__(self, source, backend, sinks, config, stop_event=None, clock=time.time, boot_id=None, reopen=None,
                 locator=None):
        """`reopen`: {"capture": () -> a new source, "inference": () -> a new backend}, what the watchdog uses;
        `locator`: the vehicle's position per frame (edge.gps.locator.FrameLocator) when the run has GPS."""
        self.source, self.backend, self.sinks, self.config = source, backend, list(sinks), config
        self.reopen = dict(reopen or {})
        self.watchdog = Watchdog(config["pipeline"]["watchdog_s"], config["pipeline"]["watchdog_restarts"])
        self.lost_frames, self.recovering = 0, False
        self.not_inferred, self.degraded = 0, False  # frames a backend could not infer (FrameNotInferred)
        self.model = backend.model  # ModelInfo: the decoder, its filter and the annotator come from it
        self.task = task = task_for(self.model)
        self.decode = task.decoder(self.model, config[task.SECTION])
        self.resize_mode = config["detection"]["resize"]
        self.boot_id = boot_id or uuid.uuid4().hex
        self.envelope = Envelope(config["device_name"], self.boot_id)  # one seq per message kind, per boot
        self.stop_event = stop_event or threading.Event()
        self.times = StageTimes()
        self.frames_done, self.sink_errors, self.detections = 0, collections.Counter(), 0
        self.started = self.ended = self.first_done = None
        self.needs_image = any(sink.needs_image for sink in self.sinks)
        self.annotate = task.annotator(self.model, config[task.SECTION]) if self.needs_image else None
        self.clock = clock
        self.fps_window = collections.deque(maxlen=30)
        self.capture = None
        self.listeners = []  # callables(result) run after the sinks (Prometheus metrics, systemd's notifier)
        self.heartbeats = []  # callables() run for a frame handled without a result (not inferred): the loop lives
        events = config.get("events") or {"enabled": False}
        self.tracker = None
        if events.get("enabled"):
            from edge.processing.tracker import IouTracker

            self.tracker = IouTracker(iou=events["iou"], max_age_s=events["max_age_s"], min_hits=events["min_hits"],
                                      update_interval_s=events["update_interval_s"])
        self.model_swap = None  # edge.models_update.swap.ModelSwap when backend.model is a source of versions
        self.locator, self.geotagger = locator, None
        if locator is not None:
            from edge.processing.geotag import Geotagger

            self.geotagger = Geotagger(config["camera"])
        self.stats_interval = float(config["pipeline"].get("stats_interval", 0) or 0)
        self.next_stats = None
        self.last_frame = self.last_position = None

    def stop(self):
        self.stop_event.set()

    def _drop(self):
        mode = self.config["pipeline"]["drop_frames"]
        return mode == "always" or (mode == "auto" and bool(self.source.live))

    def _preprocess(self, image):
        """Letterbox needs the frame padded before the backend's own (stretching) resize."""
        input_size = self.model.input_size
        if self.resize_mode != "letterbox":
            return image, Resize((image.shape[1], image.shape[0]), input_size, "stretch")
        import cv2
        import numpy as np

        resize = Resize((image.shape[1], image.shape[0]), input_size, "letterbox")
        width, height = resize.content_size()
        canvas = np.zeros((input_size[1], input_size[0], 3), np.uint8)
        x, y = int(round(resize.offset[0])), int(round(resize.offset[1]))
        canvas[y:y + height, x:x + width] = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        return canvas, resize

    def _input_frame_size(self, frame):
        """What the backend is compiled for: the frame's size, or the model input when letterboxed here."""
        if self.resize_mode == "letterbox":
            return self.model.input_size
        return (frame.image.shape[1], frame.image.shape[0])

    def _start(self, frame):
        started = time.perf_counter()
        image, resize = self._preprocess(frame.image)
        handle = self.backend.submit(image)
        return {"frame": frame, "resize": resize, "handle": handle,
                "preprocess": (time.perf_counter() - started) * 1000.0}

    def _finish(self, job, pending=()):
        frame, timings = job["frame"], {"preprocess": job["preprocess"]}
        try:
            raw, timings["infer"] = self.backend.collect(job["handle"], self.watchdog.limit_s or None)
            started = time.perf_counter()
            found = self.decode(raw, job["resize"])
        except InferenceStalled:
            self._reopen("inference", self.watchdog.limit_s, pending)
            self.lost_frames += 1
            return None
        except FrameNotInferred as err:
            self._not_inferred(err)
            return None
        except Exception as err:  # a new model version on probation may fail: held back, perhaps rolled back
            if self.model_swap is None or not self.model_swap.inference_failed(self, job, err, pending):
                raise
            return None
        if self.model_swap is not None:
            self.model_swap.inference_ok(self)
        now = self.clock()
        frame_size = (frame.image.shape[1], frame.image.shape[0])
        position = None
        if self.locator is not None:
            position = self.locator.at(frame)
            found = self.task.geotag(found, self.geotagger, frame_size, position)
        message = self.task.message(
            self.envelope, timestamp=now, frame_index=frame.index, frame_size=frame_size,
            model=self.model, latency_ms=max((now - frame.timestamp) * 1000.0, 0.0), results=found,
            publish_empty=self.config["pipeline"]["publish_empty"], position=position)
        timings["decode"] = (time.perf_counter() - started) * 1000.0
        self.fps_window.append(time.perf_counter())
        annotated = None
        if self.annotate is not None:
            started = time.perf_counter()
            annotated = self.annotate(frame.image, found, fps=self.current_fps())
            timings["annotate"] = (time.perf_counter() - started) * 1000.0
        boxes = self.task.tracked(found)
        events, best = self._events(boxes, frame.index, now, position=position)
        result = FrameResult(frame, boxes, message, annotated, timings, events=events, stats=self._stats_due(now),
                             output=found)
        result.best_tracks, result.position = best, position
        self.last_position = position
        self._deliver(result)
        self._count(result)
        return result

    def _count(self, result):
        """A frame went through: its timings, the listeners (metrics), the counters, the watchdog's all-clear."""
        for stage, ms in result.timings.items():
            self.times.add(stage, ms)
        for listener in self.listeners:
            listener(result)
        self.frames_done += 1
        self.watchdog.frame_done()
        if self.recovering or self.degraded:
            if self.degraded:
                log.warning("inference works again after %d frames without", self.not_inferred)
            self.recovering = self.degraded = False
            self._publish_status("online")
        if self.frames_done == 1:
            self.first_done = time.perf_counter()  # compile and the first inference end here
        self.detections += len(result.detections)
        self.last_frame = result.frame

    def _not_inferred(self, err):
        """A frame the backend could not infer: counted; the first of a run of them is logged and makes the status
        `degraded` (until a frame goes through); the watchdog hears the loop is alive."""
        self.not_inferred += 1
        self.watchdog.frame_done()
        if not self.degraded:
            self.degraded = True
            log.warning("frames are not inferred: %s (counted as not_inferred; the loop goes on)", err)
            self._publish_status("degraded")
        for heartbeat in self.heartbeats:
            heartbeat()

    def _events(self, found, frame_index, now, flush=False, position=None):
        """Tracker events for this frame (or all open tracks at the end) as v1 events messages; `position`: the
        vehicle's fix on this frame (GPS)."""
        if self.tracker is None:
            return [], []
        raw = self.tracker.flush(now) if flush else self.tracker.update(found, frame_index, now)
        best = [] if flush else list(self.tracker.best_changed)
        messages = []
        for event in raw:
            key = next((k for k in (sink.image_key(self.boot_id, event["track_id"]) for sink in self.sinks) if k),
                       None)  # where a sink keeps the track's best frame (S3)
            messages.append(self.envelope.event(timestamp=now, event=event, model_name=self.model.name,
                                                image_key=key, position=position))
        return messages, best

    def stats_snapshot(self):
        capture = self.capture
        stats = {"fps": self.current_fps() or 0.0, "frames": self.frames_done,
                 "dropped_frames": capture.dropped if capture else 0, "queue_depth": capture.depth() if capture else 0,
                 "stages_ms": self.times.summary(), "detections": self.detections,
                 "sink_errors": dict(self.sink_errors), "sinks": {}, "not_inferred": self.not_inferred}
        backend = self.backend.stats()
        if backend:
            stats["backend"] = dict(backend)
        if self.last_position is not None:
            stats["gps"] = self.last_position
        if self.started is not None:
            stats["uptime_s"] = time.perf_counter() - self.started
        for sink in self.sinks:
            try:
                counters = sink.stats()
            except Exception as err:  # stats are best effort
                log.debug("stats of %s failed: %s", type(sink).__name__, err)
                continue
            if counters is not None:
                stats["sinks"][sink.TYPE or type(sink).__name__] = counters
        return stats

    def _stats_due(self, now, force=False):
        if self.stats_interval <= 0 and not force:
            return None
        if self.next_stats is None:
            self.next_stats = now + self.stats_interval
        if not force and now < self.next_stats:
            return None
        self.next_stats = now + self.stats_interval
        return self.envelope.stats(timestamp=now, stats=self.stats_snapshot())

    def finish_events(self):
        """At the clean end: end every open track and send a last stats message, in one result without a frame's
        detections, so the sinks publish them before they close."""
        if self.last_frame is None:
            return
        now = self.clock()
        position = self.locator.at(self.last_frame) if self.locator is not None else None
        events, _ = self._events([], self.last_frame.index, now, flush=True, position=position)
        result = FrameResult(self.last_frame, [], None, None, {}, events=events,
                             stats=self._stats_due(now, force=True))
        result.final, result.position = True, position
        self._deliver(result)

    def _deliver(self, result):
        """Hand a result to every sink; a failing sink is logged once and counted, the others still get it."""
        started = time.perf_counter()
        for sink in self.sinks:
            try:
                sink.write(result)
            except Exception as err:  # one failing sink never stops the others
                name = type(sink).__name__
                if not self.sink_errors[name]:
                    log.error("sink %s failed: %s (further errors of this sink are counted, not logged)", name, err)
                self.sink_errors[name] += 1
        result.timings["sinks"] = (time.perf_counter() - started) * 1000.0

    def _reopen(self, part, seconds, pending):
        """The watchdog's remedy for a stalled `part`: count it (WatchdogExpired after too many in a row), say so in
        the status, and open the part again; the frames in flight are lost (counted)."""
        self.watchdog.stalled(part, seconds)
        self._publish_status("stalled")
        self.recovering = True
        if part not in self.reopen:
            raise WatchdogExpired("watchdog: the {} stalled and this run cannot reopen it".format(part))
        if part == "capture":
            self.capture.abandon()
            _close_in_background(self.source)
            self.source = self.reopen[part]()
            self._start_capture()
        else:
            self.lost_frames += len(pending)
            pending.clear()
            _close_in_background(self.backend)
            self.backend = self.reopen[part]()

    def _start_capture(self):
        self.capture = Capture(self.source, self.config["pipeline"]["queue"], self._drop(), self.stop_event, self.times)
        self.capture.start()

    def _publish_status(self, state, **details):
        """`details`: event, reason, candidate of a model update (edge.models_update.swap)."""
        message = self.envelope.status(state=state, timestamp=self.clock(), model=self.model, **details)
        for sink in self.sinks:
            try:
                sink.publish_status(message)
            except Exception as err:  # the status is best effort; the frames go on
                log.warning("sink %s could not publish the status: %s", type(sink).__name__, err)

    def current_fps(self):
        if len(self.fps_window) < 2:
            return None
        span = self.fps_window[-1] - self.fps_window[0]
        return (len(self.fps_window) - 1) / span if span > 0 else None

    def run(self):
        """Run until the source ends, `frames` are done, or stop(); returns the summary dict."""
        limit = self.config["pipeline"]["frames"]
        self.started = time.perf_counter()
        self._start_capture()
        pending = collections.deque()
        submitted = 0
        try:
            while not self.stop_event.is_set() and not (limit and submitted >= limit):
                if self.model_swap is not None:
                    self.model_swap.between_frames(self, pending)  # a new model version swapped in, thresholds
                if pending and (len(pending) >= max(1, int(self.backend.requests))
                                or not self.capture.ready()):
                    self._finish(pending.popleft(), pending)  # a full ring, or nothing new yet: finish the oldest
                    continue
                frame = self.capture.get(timeout=0.25 if self.watchdog.enabled else None)
                if frame is WAITING:
                    if self.capture.stalled_for() > self.watchdog.limit_s:
                        self._reopen("capture", self.capture.stalled_for(), pending)
                    continue
                if frame is None:
                    break
                self.backend.prepare(self._input_frame_size(frame))  # e.g. compile for this size before submitting
                pending.append(self._start(frame))
                submitted += 1
            while pending:
                self._finish(pending.popleft(), pending)
            self.finish_events()
        finally:
            self.stop_event.set()
            self.ended = time.perf_counter()
            self.capture.join(5.0)
        if self.capture.error is not None:
            raise self.capture.error
        return self.summary()

    def summary(self):
        end = self.ended or time.perf_counter()
        seconds = max(end - (self.started or end), 1e-9)
        return {"frames": self.frames_done, "seconds": round(seconds, 3),
                "fps": round(self.frames_done / seconds, 2) if self.frames_done else 0.0,
                "startup_seconds": round(self.first_done - self.started, 3) if self.first_done else None,
                "steady_fps": round((self.frames_done - 1) / (end - self.first_done), 2)
                if self.first_done and self.frames_done > 1 and end > self.first_done else None,
                "detections": self.detections, "messages": self.envelope.count(self.task.KIND),
                "events": self.envelope.count("events"),
                "dropped": self.capture.dropped if self.capture else 0, "lost": self.lost_frames,
                "not_inferred": self.not_inferred, "backend": self.backend.stats(),
                "stalls": self.watchdog.stats(),
                "sink_errors": dict(self.sink_errors), "stages_ms": self.times.summary()}


def _close_in_background(part):
    """Close a part the watchdog gave up on without waiting for it: a stalled device may never return."""
    def close():
        try:
            part.close()
        except Exception as err:  # it was stalled; closing it is best effort
            log.debug("closing the stalled %s failed: %s", type(part).__name__, err)

    threading.Thread(target=close, name="roadedge-close-stalled", daemon=True).start()
