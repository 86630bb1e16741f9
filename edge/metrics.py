"""Prometheus metrics of the running pipeline, served as /metrics on the preview server.

A pipeline listener: `observe(result)` per frame feeds the stage histograms,
and `refresh(pipeline)` (per frame, cheap) copies the counters that the
pipeline and the sinks keep (dropped frames, outbox depth, drops and messages
not stored, publish failures, reconnects) into gauges. prometheus_client is imported here only, so the
device path (lambda_function.py) never needs it.
"""
MODEL_OUTCOMES = ("updated", "rolled_back", "rejected")
STAGE_BUCKETS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)  # milliseconds


class RuntimeMetrics(object):
    def __init__(self, device, model):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        labels = {"device": device, "model": model}
        self.info = Gauge("roadedge_info", "the running device and model", list(labels), registry=self.registry)
        self.info.labels(**labels).set(1)
        self.frames = Counter("roadedge_frames", "frames processed", registry=self.registry)
        self.detections = Counter("roadedge_detections", "detections emitted", registry=self.registry)
        self.fps = Gauge("roadedge_fps", "frames per second over the last 30 frames", registry=self.registry)
        self.stage = Histogram("roadedge_stage_milliseconds", "time per frame in each pipeline stage", ["stage"],
                               buckets=STAGE_BUCKETS, registry=self.registry)
        self.dropped = Gauge("roadedge_dropped_frames", "frames dropped by back-pressure (live sources)",
                             registry=self.registry)
        self.queue = Gauge("roadedge_queue_depth", "frames waiting between capture and inference", registry=self.registry)
        self.sink_errors = Gauge("roadedge_sink_errors", "frames a sink failed on", ["sink"], registry=self.registry)
        self.outbox = Gauge("roadedge_outbox_depth", "messages stored and not yet acknowledged by the broker",
                            ["sink"], registry=self.registry)
        self.outbox_dropped = Gauge("roadedge_outbox_dropped", "messages the outbox dropped (size or age limit)",
                                    ["sink"], registry=self.registry)
        self.outbox_not_stored = Gauge("roadedge_outbox_not_stored", "messages the outbox could not store (disk full, "
                                       "read-only, I/O error): lost", ["sink"], registry=self.registry)
        self.publish_failures = Gauge("roadedge_publish_failures", "publishes that failed", ["sink"],
                                      registry=self.registry)
        self.reconnects = Gauge("roadedge_reconnects", "broker reconnections", ["sink"], registry=self.registry)
        self.sink_counters = Gauge("roadedge_sink_counter", "every numeric counter a sink reports (e.g. the kvs sink's "
                                   "fragments_sent, fragments_acknowledged, fragments_resent, store_depth, "
                                   "encoder_skips)", ["sink", "counter"], registry=self.registry)
        self.model_info = Gauge("roadedge_model_info", "the running model: name, version (empty when it has none) and "
                                "the sha256 of its weights", ["name", "version", "sha256"], registry=self.registry)
        self.model_updates = Counter("roadedge_model_updates", "model versions swapped in (updated), rolled back after "
                                     "failing their first frames (rolled_back) or refused before running (rejected)",
                                     ["outcome"], registry=self.registry)
        self.model_key, self.model_seen = None, {}
        for outcome in MODEL_OUTCOMES:
            self.model_updates.labels(outcome=outcome)

    def observe(self, result):
        self.frames.inc()
        self.detections.inc(len(result.detections))
        for stage, ms in result.timings.items():
            self.stage.labels(stage=stage).observe(ms)

    def refresh_model(self, pipeline):
        """The running model's info metric, and the model updates' counters (edge.models_update.swap)."""
        from edge.messages import model_fields

        model = getattr(pipeline, "model", None)
        if model is None:
            return
        fields = model_fields(model)
        key = (fields["name"] or "", fields["version"] or "", fields["sha256"] or "")
        if key != self.model_key:
            if self.model_key is not None:
                self.model_info.remove(*self.model_key)
            self.model_info.labels(*key).set(1)
            self.model_key = key
        swap = getattr(pipeline, "model_swap", None)
        for outcome in MODEL_OUTCOMES if swap is not None else ():
            count = swap.counts[outcome]
            if count > self.model_seen.get(outcome, 0):
                self.model_updates.labels(outcome=outcome).inc(count - self.model_seen.get(outcome, 0))
                self.model_seen[outcome] = count

    def refresh(self, pipeline):
        self.refresh_model(pipeline)
        fps = pipeline.current_fps()
        if fps is not None:
            self.fps.set(fps)
        capture = pipeline.capture
        if capture is not None:
            self.dropped.set(capture.dropped)
            self.queue.set(capture.depth())
        for name, count in pipeline.sink_errors.items():
            self.sink_errors.labels(sink=name).set(count)
        for sink in pipeline.sinks:
            stats = sink.stats() if hasattr(sink, "stats") else None
            if not stats:
                continue
            name = getattr(sink, "TYPE", None) or type(sink).__name__
            for key, gauge in (("outbox_depth", self.outbox), ("outbox_dropped", self.outbox_dropped),
                               ("outbox_not_stored", self.outbox_not_stored),
                               ("publish_failures", self.publish_failures), ("reconnects", self.reconnects)):
                if key in stats:
                    gauge.labels(sink=name).set(stats[key])
            for key, value in stats.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.sink_counters.labels(sink=name, counter=key).set(value)

    def listener(self, pipeline):
        """A pipeline listener (callable(result)) that observes and refreshes."""

        def listen(result):
            self.observe(result)
            self.refresh(pipeline)

        return listen

    def route(self, request):
        """The /metrics handler for edge.sinks.mjpeg's route table."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from edge.preview_server import send_body

        send_body(request, 200, CONTENT_TYPE_LATEST, generate_latest(self.registry))


def attach(runtime):
    """Serve /metrics on every preview server of the runtime; returns the metrics or None without a preview."""
    servers = [sink for sink in runtime.sinks if hasattr(sink, "add_route")]
    if not servers:
        return None
    try:
        metrics = RuntimeMetrics(runtime.pipeline.envelope.device, runtime.backend.model.name)
    except ImportError:  # prometheus_client missing: the preview still works
        return None
    for server in servers:
        server.add_route("/metrics", metrics.route)
    metrics.refresh_model(runtime.pipeline)
    runtime.pipeline.listeners.append(metrics.listener(runtime.pipeline))
    return metrics
