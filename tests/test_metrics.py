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
