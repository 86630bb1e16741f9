"""Prometheus metrics on the preview server's /metrics, fed by a real run on the bundled model."""
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from edge import app, config
from edge.sources.spec import SAMPLE_VIDEO


def test_metrics_count_frames_and_stage_times_of_a_run():
    cfg = config.load("x86-openvino-cpu", None, {
        "source": {"type": "opencv", "uri": SAMPLE_VIDEO, "realtime": False},
        "pipeline": {"frames": 25}, "outputs": [{"type": "mjpeg", "host": "127.0.0.1", "port": 0}]})
    runtime = app.build(cfg)
    try:
        summary = runtime.pipeline.run()
        host, port = runtime.sinks[0].address
        response = urllib.request.urlopen("http://%s:%d/metrics" % (host, port), timeout=5)
        body = response.read().decode()
        content_type = response.headers["Content-Type"]
    finally:
        runtime.close()
    assert content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert samples[("roadedge_frames_total", ())] == 25 == summary["frames"]
    assert samples[("roadedge_detections_total", ())] == summary["detections"]
    assert samples[("roadedge_stage_milliseconds_count", (("stage", "infer"),))] == 25
    assert samples[("roadedge_stage_milliseconds_count", (("stage", "annotate"),))] == 25
    assert samples[("roadedge_dropped_frames", ())] == 0
    assert samples[("roadedge_fps", ())] > 0
    assert samples[("roadedge_info", (("device", cfg["device_name"]), ("model", "road-damage-ssd")))] == 1


def test_every_numeric_sink_counter_is_a_prometheus_gauge():
    from prometheus_client import generate_latest

    from edge.metrics import RuntimeMetrics

    class KvsLike(object):
        TYPE = "kvs"

        def stats(self):
            return {"fragments_sent": 7, "fragments_acknowledged": 6, "store_depth": 1, "store_oldest_s": 2.5,
                    "connected": True}

    class Pipeline(object):
        sink_errors, sinks, capture = {}, [KvsLike()], None

        def current_fps(self):
            return None

    metrics = RuntimeMetrics("dev", "model")
    metrics.refresh(Pipeline())
    text = generate_latest(metrics.registry).decode()
    samples = {(s.labels.get("counter"), s.value) for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == "roadedge_sink_counter"}
    assert samples == {("fragments_sent", 7.0), ("fragments_acknowledged", 6.0), ("store_depth", 1.0),
                       ("store_oldest_s", 2.5)}
