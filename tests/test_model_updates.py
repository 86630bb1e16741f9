"""Model updates with rollback: versions in moto's S3 (server mode) or a watched folder, swapped between two frames of
a running `roadedge run` pipeline; status messages through a real mosquitto; the AWS IoT shadow's documented topics
played by the test."""
import json
import os
import threading
import time

import boto3
import jsonschema
import pytest
from prometheus_client import generate_latest

from edge import app, config
from edge.messages import Envelope
from edge.metrics import RuntimeMetrics
from edge.models_update.shadow import Shadow, checked_thresholds
from edge.models_update.shadow import topics as shadow_topics
from edge.models_update.sources import FolderSource, pick, version_key
from edge.models_update.store import ModelStore
from edge.models_update.verify import smoke_frame, verify
from edge.processing.geometry import Resize
from edge.sinks.base import Sink
from edge.sources.spec import SAMPLE_VIDEO
from edge.tasks.detection import DetectionDecoder
from roadedge.core.errors import RoadedgeError
from tests.lambda_s3 import moto_s3_server
from tests.model_versions import NAME, failing_files, put_folder, put_s3, version_files
from tests.mosquitto import Broker
from tests.test_mqtt import Subscriber, wait_until

BUCKET, PREFIX, DEVICE = "fleet-models", "roadedge/detector", "van-7"
SHADOW = "$aws/things/{}/shadow/name/roadedge".format(DEVICE)
WAIT_S = 120  # how long a test waits for what must come (a failure, never a measurement)
STATUS_SCHEMA = json.load(open(os.path.join(os.path.dirname(__file__), "..", "edge", "schemas", "status-v1.schema.json")))


class Statuses(Sink):
    """Records the status messages and every frame's index and model (what the loop hands to the sinks)."""

    def __init__(self):
        self.status, self.frames, self.lock = [], [], threading.Lock()

    def write(self, result):
        if result.message is not None:
            with self.lock:
                self.frames.append((result.message["frame"]["index"], result.message["model"]["sha256"],
                                    [d["score"] for d in result.message["detections"]]))

    def publish_status(self, message):
        with self.lock:
            self.status.append(message)

    def events(self):
        with self.lock:
            return [(m.get("event"), (m.get("candidate") or {}).get("version"), m["model"]["version"]) for m in self.status
                    if m.get("event")]


def run_in_thread(runtime):
    box = {}

    def run():
        try:
            box["summary"] = runtime.pipeline.run()
        except BaseException as err:  # the test fails with it below
            box["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def stop(runtime, thread, box):
    runtime.pipeline.stop()
    thread.join(60)
    runtime.close()
    if "error" in box:
        raise box["error"]
    return box["summary"]


def source_config():
    return {"type": "opencv", "uri": SAMPLE_VIDEO, "loop": True, "realtime": False, "max_fps": 25.0}


# -- no model needed ---------------------------------------------------------------------------------------------------
def test_versions_sort_as_numbers_and_the_desired_one_is_picked():
    assert sorted(["10", "9", "1.10", "1.9", "v2"], key=version_key) == ["1.9", "1.10", "9", "10", "v2"]
    found = [{"version": v} for v in ("3", "12", "4")]
    assert pick(found)["version"] == "12" and pick(found, "4")["version"] == "4" and pick(found, "7") is None


def test_the_store_keeps_current_and_previous_and_nothing_of_the_user(tmp_path):
    state = tmp_path / "state"
    (state / "models").mkdir(parents=True)
    (state / "notes.txt").write_text("mine")
    store = ModelStore(str(state))
    entries = []
    for version in ("1", "2", "3"):
        staged = store.staging()
        open(os.path.join(staged, NAME + ".xml"), "w").write(version)
        entries.append(store.install(staged, {"name": NAME, "version": version, "sha256": version * 64}))
        store.activate(entries[-1])
    assert store.folders() == sorted([entries[1]["dir"], entries[2]["dir"]])
    assert (store.current["version"], store.previous["version"]) == ("3", "2")
    store.roll_back(entries[2], "its first 3 frames failed")
    again = ModelStore(str(state))  # what a restart reads
    assert again.current["version"] == "2" and again.rejected(entries[2]) == "its first 3 frames failed"
    assert again.folders() == [entries[1]["dir"]] and (state / "notes.txt").read_text() == "mine"


def test_a_v1_status_without_a_model_stays_valid_and_an_update_status_validates():
    envelope = Envelope("van-7", "b" * 32)
    jsonschema.validate(envelope.status(state="online"), STATUS_SCHEMA)
    model = {"name": NAME, "version": "2", "sha256": "a" * 64}
    message = envelope.status(state="online", model=model, event="model_rolled_back", reason="its first 3 frames failed",
                              candidate={"name": NAME, "version": "4", "sha256": "c" * 64})
    jsonschema.validate(message, STATUS_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(dict(message, event="model_exploded"), STATUS_SCHEMA)


def test_a_folder_with_metadata_without_version_or_sha256_is_a_problem_named(tmp_path):
    files = version_files("1")
    put_folder(str(tmp_path), dict(files, **{".json": json.dumps({"labels": ["D00"]}).encode()}))
    found, problems = FolderSource(str(tmp_path)).candidates()
    assert found == [] and problems == ["{}: version: None; expected the version's name or number".format(
        tmp_path / (NAME + ".json"))]


def test_shadow_thresholds_are_checked_like_the_profile_and_topics_are_the_documented_ones():
    assert checked_thresholds({"min_score": 1, "class_thresholds": {"D40": 0.7}}) == {
        "min_score": 1.0, "class_thresholds": {"D40": 0.7}}
    with pytest.raises(RoadedgeError) as caught:
        checked_thresholds({"min_score": 1.5})
    assert str(caught.value) == "shadow: thresholds.min_score: 1.5; expected 0.0..1.0"
    with pytest.raises(RoadedgeError) as caught:
        checked_thresholds({"top_k": 3})
    assert str(caught.value) == "shadow: thresholds.top_k: unknown key; expected min_score or class_thresholds"
    assert shadow_topics("van-7", "roadedge") == {
        "get": "$aws/things/van-7/shadow/name/roadedge/get",
        "get_accepted": "$aws/things/van-7/shadow/name/roadedge/get/accepted",
        "update": "$aws/things/van-7/shadow/name/roadedge/update",
        "delta": "$aws/things/van-7/shadow/name/roadedge/update/delta"}


def test_expected_outputs_in_the_metadata_must_match_before_a_version_runs(tmp_path):
    from edge.backends import openvino

    folder = tmp_path / "v5"
    folder.mkdir()
    files = version_files("5")
    meta = json.loads(files[".json"])
    options = config.load("x86-openvino-cpu", None, {"backend": {"model": "bundled"}})["backend"]
    options = {key: value for key, value in options.items() if key != "type"}

    def attempt(expected):
        put_folder(str(folder), dict(files, **{".json": json.dumps(dict(meta, expected=expected)).encode()}))
        candidate, = FolderSource(str(folder)).candidates()[0]
        backend = verify(str(folder / (NAME + ".xml")), candidate, lambda path: openvino.open(dict(options, model=path)),
                         running.model, {"min_score": 0.0, "class_thresholds": {}, "top_k": 1, "resize": "stretch"})
        backend.close()

    running = openvino.open(dict(options, model=openvino.BUNDLED_MODEL))
    grey = {"fill": [128, 128, 128], "width": 256, "height": 256}
    found = DetectionDecoder(running.model, {"min_score": 0.0, "class_thresholds": {}, "top_k": 1})(
        running.infer(smoke_frame((256, 256), grey["fill"])), Resize((256, 256), (256, 256)))
    best = {"label": found[0].label, "score": found[0].score, "box": list(found[0].box)}
    attempt({"input": grey, "detections": [best], "tolerance": 0.01})  # what the model gives: it may run
    wrong = dict(best, box=[min(v + 0.2, 1.0) for v in best["box"]])
    with pytest.raises(RoadedgeError) as caught:
        attempt({"input": grey, "detections": [wrong], "tolerance": 0.01})
    assert "expected detection 0: {}".format(best["label"]) in str(caught.value)
    with pytest.raises(RoadedgeError) as caught:
        attempt({"input": grey, "detections": [], "tolerance": 0.01})
    assert "expected: 0 detections on the test input, the model gives 1" in str(caught.value)
    running.close()


class FakeConnection(object):
    """What Shadow needs of the mqtt sink: subscribe, send, connect_hooks."""

    def __init__(self):
        self.handlers, self.sent, self.connect_hooks = {}, [], []

    def subscribe(self, topic, handler):
        self.handlers[topic] = handler

    def send(self, topic, message):
        self.sent.append((topic, message))


def test_the_shadow_asks_for_its_document_reads_desired_and_skips_stale_deltas():
    connection, desired = FakeConnection(), []
    shadow = Shadow(connection, "van-7", "roadedge", desired.append)
    shadow.start()
    topics = shadow_topics("van-7", "roadedge")
    assert connection.sent == [(topics["get"], {})] and sorted(connection.handlers) == sorted(
        [topics["delta"], topics["get_accepted"]])
    document = {"state": {"desired": {"model_version": "3", "thresholds": {"min_score": 0.7}, "other": 1},
                          "reported": {"model_version": "2"}, "delta": {"model_version": "3"}},
                "metadata": {}, "version": 10, "timestamp": 1764600000}
    connection.handlers[topics["get_accepted"]](topics["get_accepted"], json.dumps(document).encode())
    delta = {"state": {"model_version": None}, "version": 9, "timestamp": 1764600001}  # older than the document
    connection.handlers[topics["delta"]](topics["delta"], json.dumps(delta).encode())
    connection.handlers[topics["delta"]](topics["delta"], b"not json")
    connection.handlers[topics["delta"]](topics["delta"], json.dumps(dict(delta, version=11)).encode())
    assert desired == [{"model_version": "3", "thresholds": {"min_score": 0.7}}, {"model_version": None}]
    connection.connect_hooks[0]()  # a reconnection asks again
    shadow.report({"model_version": "3"})
    assert connection.sent[1:] == [(topics["get"], {}), (topics["update"], {"state": {"reported": {"model_version": "3"}}})]


# -- a running pipeline ------------------------------------------------------------------------------------------------
def test_a_watched_folder_swaps_between_frames_without_losing_one(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    put_folder(str(models), version_files("1"))
    recorder = Statuses()
    settings = config.load("x86-openvino-cpu", None, {
        "device_name": DEVICE, "source": source_config(), "pipeline": {"publish_empty": True},
        "backend": {"model": str(models)}, "outputs": [],
        "model_updates": {"interval_s": 0.2, "state_dir": str(tmp_path / "state")}})
    runtime = app.build(settings, extra_sinks=[recorder])
    assert runtime.pipeline.model.metadata["version"] == "1"
    thread, box = run_in_thread(runtime)
    assert wait_until(lambda: len(recorder.frames) >= 10, WAIT_S)
    put_folder(str(models), version_files("2", weights_sha256="f" * 64))  # metadata that is not the weights'
    assert wait_until(lambda: ("model_rejected", "2", "1") in recorder.events(), WAIT_S), recorder.status
    assert "the .bin's sha256 is " in recorder.status[-1]["reason"] and runtime.model_updates.store.current["version"] == "1"
    put_folder(str(models), version_files("2"))  # the right metadata: not refused for good, tried again
    assert wait_until(lambda: ("model_updated", "2", "2") in recorder.events(), WAIT_S), recorder.status
    count = len(recorder.frames)
    assert wait_until(lambda: len(recorder.frames) >= count + 10, WAIT_S)
    summary = stop(runtime, thread, box)
    indices = [index for index, _, _ in recorder.frames]
    assert indices == list(range(len(indices))) and summary["lost"] == 0  # the source never restarted
    assert recorder.events() == [("model_rejected", "2", "1"), ("model_updated", "2", "2")]
    assert sorted(os.listdir(tmp_path / "state" / "models")) == sorted(
        [runtime.model_updates.store.current["dir"], runtime.model_updates.store.previous["dir"]])
    metrics = RuntimeMetrics(DEVICE, NAME)
    metrics.refresh_model(runtime.pipeline)
    text = generate_latest(metrics.registry).decode()
    assert 'roadedge_model_info{{name="{}",sha256="{}",version="2"}} 1.0'.format(NAME, runtime.pipeline.model.sha256) in text
    assert 'roadedge_model_updates_total{outcome="updated"} 1.0' in text
    assert 'roadedge_model_updates_total{outcome="rolled_back"} 0.0' in text
    assert 'roadedge_model_updates_total{outcome="rejected"} 1.0' in text


def test_s3_versions_update_reject_roll_back_and_follow_the_shadow(tmp_path, aws_env):
    with moto_s3_server() as endpoint, Broker(tmp_path / "broker") as broker:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        put_s3(s3, BUCKET, PREFIX, "1", version_files("1"))
        status = Subscriber(broker.port, "roadedge/{}/status".format(DEVICE))
        shadow = Subscriber(broker.port, SHADOW + "/#")
        recorder = Statuses()
        settings = config.load("x86-openvino-cpu", None, {
            "device_name": DEVICE, "source": source_config(), "pipeline": {"publish_empty": True},
            "backend": {"model": "s3://{}/{}/".format(BUCKET, PREFIX)},
            "detection": {"min_score": 0.3},
            "outputs": [{"type": "mqtt", "port": broker.port, "outbox": str(tmp_path / "outbox.sqlite")}],
            "model_updates": {"interval_s": 0.2, "state_dir": str(tmp_path / "state"), "endpoint_url": endpoint,
                              "failures_before_rollback": 3, "shadow": True}})
        runtime = app.build(settings, extra_sinks=[recorder])
        store = runtime.model_updates.store
        thread, box = run_in_thread(runtime)
        try:
            first = runtime.pipeline.model.sha256
            assert wait_until(lambda: any(m.get("model", {}).get("version") == "1" for m in status.of("status")), WAIT_S)
            assert wait_until(lambda: shadow.of("get"), WAIT_S)  # the runtime asked for the shadow's document

            put_s3(s3, BUCKET, PREFIX, "2", version_files("2"))
            assert wait_until(lambda: ("model_updated", "2", "2") in recorder.events(), WAIT_S), recorder.status

            put_s3(s3, BUCKET, PREFIX, "3", version_files("3", truncate=True))
            assert wait_until(lambda: ("model_rejected", "3", "2") in recorder.events(), WAIT_S), recorder.status
            reason = [m for m in recorder.status if m.get("event") == "model_rejected"][0]["reason"]
            assert "truncated IR weights" in reason and store.current["version"] == "2"

            put_s3(s3, BUCKET, PREFIX, "4", failing_files("4", str(tmp_path / "v4")))
            assert wait_until(lambda: ("model_rolled_back", "4", "2") in recorder.events(), WAIT_S), recorder.status
            rolled = [m for m in recorder.status if m.get("event") == "model_rolled_back"][0]
            assert rolled["reason"].startswith("its first 3 frames failed") and rolled["model"]["sha256"] == first
            assert store.current["version"] == "2" and store.rejected({"version": "4", "sha256": rolled["candidate"][
                "sha256"]}) and store.folders() == [store.current["dir"]]

            # the fleet wants version 1 back and a higher threshold: the shadow service's delta document
            delta = {"state": {"model_version": "1", "thresholds": {"min_score": 0.6}}, "version": 7,
                     "timestamp": int(time.time()), "metadata": {}}
            shadow.client.publish(SHADOW + "/update/delta", json.dumps(delta), qos=1).wait_for_publish(10)
            assert wait_until(lambda: ("model_updated", "1", "1") in recorder.events(), WAIT_S), recorder.status

            def reported():
                states = [m["state"]["reported"] for m in shadow.of("update")]
                return states and states[-1]["model_version"] == "1" and states[-1]["thresholds"]["min_score"] == 0.6
            assert wait_until(reported, WAIT_S), shadow.of("update")
            count = len(recorder.frames)
            assert wait_until(lambda: len(recorder.frames) >= count + 5, WAIT_S)
        finally:
            summary = stop(runtime, thread, box)
            status.close()
            shadow.close()
        last = shadow.of("update")[-1]["state"]["reported"]
        assert last["model_name"] == NAME and last["model_sha256"] == first
        assert last["model_update"]["event"] == "model_updated" and last["model_update"]["version"] == "1"
        assert recorder.events() == [("model_updated", "2", "2"), ("model_rejected", "3", "2"),
                                     ("model_updated", "4", "4"), ("model_rolled_back", "4", "2"),
                                     ("model_updated", "1", "1")]
        indices = [index for index, _, _ in recorder.frames]
        assert indices == list(range(len(indices))) and summary["lost"] == 0  # the failed frames were inferred again
        assert all(sha != rolled["candidate"]["sha256"] for _, sha, _ in recorder.frames)  # no frame of v4 went out
        scores = [s for _, _, found in recorder.frames[count:] for s in found]
        assert all(s >= 0.6 for s in scores)
        for message in status.of("status"):
            jsonschema.validate(message, STATUS_SCHEMA)
        broker_events = [(m.get("event"), m["model"]["version"]) for m in status.of("status") if m.get("event")]
        assert ("model_rolled_back", "2") in broker_events and ("model_updated", "1") in broker_events
        (tmp_path / "status-messages.json").write_text(json.dumps(status.of("status"), indent=2))
        print("\nstatus messages: " + json.dumps([m for m in status.of("status") if m.get("event")], indent=2))


def test_an_empty_prefix_without_a_stored_version_is_one_line(tmp_path, aws_env):
    with moto_s3_server() as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="empty-fleet")  # not BUCKET: moto's state outlives its server
        settings = config.load("x86-openvino-cpu", None, {
            "device_name": DEVICE, "backend": {"model": "s3://empty-fleet/{}/".format(PREFIX)}, "outputs": [],
            "model_updates": {"state_dir": str(tmp_path / "state"), "endpoint_url": endpoint}})
        with pytest.raises(RoadedgeError) as caught:
            app.build(settings)
        assert str(caught.value).startswith("backend.model s3://empty-fleet/{}/: no model version there".format(PREFIX))
