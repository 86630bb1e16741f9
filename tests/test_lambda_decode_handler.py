"""The decoding Lambda's handler: S3 notifications parsed (URL-encoded keys, other events and suffixes skipped, broken
records reported), and end to end against moto's S3 server: masks and their .json in, .decoded.json beside them with
the figures, permanent failures reported in the summary, retryable ones raised after the other records ran."""
import json
import math

import boto3
import numpy as np
import pytest

from cloud.lambda_decode import handler as lambda_handler
from cloud.lambda_decode.events import mask_records
from cloud.lambda_decode.figures import DEFAULT_SETTINGS, decode_mask
from roadedge.core.seglabels import DRIVABLE_LABELS, SYNTH_SEG_LABELS
from tests.lambda_s3 import moto_s3_server, put_frame, s3_event
from tests.mosquitto import free_port

LABELS = list(SYNTH_SEG_LABELS)
ROAD = [name for name in LABELS if name in DRIVABLE_LABELS]
PREFIX = "masks/rc-car/91343852333181432392682062607743920146197565584"


def frame_mask(seed, height=72, width=128):
    """Road below a background horizon, a pole and a pothole at places that depend on `seed`."""
    rng = np.random.default_rng(seed)
    mask = np.full((height, width), LABELS.index("road"), np.uint8)
    mask[:height // 3] = LABELS.index("background")
    x = int(rng.integers(0, width - 12))
    mask[50:60, x:x + 12] = LABELS.index("pole")
    mask[64:68, 60:70] = LABELS.index("D40")
    return mask


def test_records_keys_are_url_decoded_and_other_objects_skipped():
    event = s3_event("b", ["a/x y+z.png", "a/x.json", "a/x.decoded.json", "a/ü.png"])
    event["Records"].append(s3_event("b", ["a/gone.png"], "ObjectRemoved:Delete")["Records"][0])
    event["Records"].append({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}}})
    masks, skipped, errors = mask_records(event)
    assert event["Records"][0]["s3"]["object"]["key"] == "a/x+y%2Bz.png"
    assert masks == [("b", "a/x y+z.png"), ("b", "a/ü.png")]
    assert [(s["key"], s["reason"]) for s in skipped] == [
        ("a/x.json", "not a .png mask"), ("a/x.decoded.json", "not a .png mask"),
        ("a/gone.png", "event ObjectRemoved:Delete (not ObjectCreated)")]
    assert errors == [{"record": 5, "error": "record 5: expected s3.bucket.name and s3.object.key"}]
    assert mask_records({"Records": []}) == ([], [], [])
    assert mask_records({"hello": 1})[2][0]["error"] == "the event has no Records list (not an S3 notification)"


def test_settings_come_from_the_environment():
    assert lambda_handler.settings_from_env({}) == DEFAULT_SETTINGS
    settings = lambda_handler.settings_from_env({"ROADEDGE_HFOV_DEG": "90", "ROADEDGE_MAX_OBSTACLES": "3",
                                                 "ROADEDGE_MIN_OBSTACLE_SHARE": "0.01"})
    assert (settings.hfov_deg, settings.max_obstacles, settings.min_obstacle_share) == (90.0, 3, 0.01)
    with pytest.raises(ValueError, match=r"ROADEDGE_HFOV_DEG='wide': expected a number from 1.0 to 179.0"):
        lambda_handler.settings_from_env({"ROADEDGE_HFOV_DEG": "wide"})


@pytest.fixture(scope="module")
def endpoint():
    with moto_s3_server() as url:
        yield url


@pytest.fixture
def s3(aws_env, endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    for name in ("ROADEDGE_LABELS", "ROADEDGE_ROAD_CLASSES", "ROADEDGE_HFOV_DEG", "ROADEDGE_MIN_OBSTACLE_SHARE"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.client("s3", endpoint_url=endpoint)
    return client


def read_json(s3, bucket, key):
    got = s3.get_object(Bucket=bucket, Key=key)
    return got["ContentType"], json.loads(got["Body"].read())


def test_masks_are_decoded_beside_themselves(s3):
    s3.create_bucket(Bucket="frames")
    keys = [put_frame(s3, "frames", "{}/{}".format(PREFIX, 1795248900000 + 66 * i), frame_mask(i), LABELS, ROAD, i)
            for i in range(2)]
    keys.append(put_frame(s3, "frames", "masks/rc car/77/1795248900500", frame_mask(5), LABELS, ROAD[:1]))
    summary = lambda_handler.handler(s3_event("frames", keys), None)
    assert summary["errors"] == [] and summary["skipped"] == []
    assert [d["result_key"] for d in summary["decoded"]] == [k[:-4] + ".decoded.json" for k in keys]
    for index, key in enumerate(keys):
        content_type, result = read_json(s3, "frames", key[:-4] + ".decoded.json")
        road = ROAD[:1] if index == 2 else ROAD
        assert content_type == "application/json"
        assert result["schema"] == "roadedge.cloud.decoded/1" and result["mask_key"] == key
        assert result["mask_json_key"] == key[:-4] + ".json" and result["road_classes"] == road
        assert result["stream"] == key.split("/")[1] and result["producer_timestamp_ms"] == int(key.split("/")[-1][:-4])
        expected = decode_mask(frame_mask(5 if index == 2 else index), LABELS, road)
        assert {k: result[k] for k in expected} == json.loads(json.dumps(expected))
        assert summary["decoded"][index]["obstacles"] == expected["obstacle_count"] == 2
    pole = [o for o in result["obstacles"] if o["class"] == "pole"][0]
    assert pole["pixels"] == 120 and pole["box"][1:4:2] == [50, 60]
    assert not [o for o in s3.list_objects_v2(Bucket="frames")["Contents"] if o["Key"].endswith(".decoded.decoded.json")]


def test_labels_from_the_masks_json_else_from_the_environment(s3, monkeypatch):
    s3.create_bucket(Bucket="labels")
    mask = np.zeros((40, 60), np.uint8)
    mask[20:] = 1
    mask[30:35, 40:50] = 2
    with_json = put_frame(s3, "labels", "m/s/1/100", mask, ["sky", "street", "car"], ["street"])
    without = put_frame(s3, "labels", "m/s/1/200", mask)
    monkeypatch.setenv("ROADEDGE_LABELS", "void, lane ,dog")
    monkeypatch.setenv("ROADEDGE_ROAD_CLASSES", "lane")
    monkeypatch.setenv("ROADEDGE_HFOV_DEG", "90")
    lambda_handler.handler(s3_event("labels", [with_json, without]), None)
    _, first = read_json(s3, "labels", "m/s/1/100.decoded.json")
    _, second = read_json(s3, "labels", "m/s/1/200.decoded.json")
    assert first["labels"] == ["sky", "street", "car"] and [o["class"] for o in first["obstacles"]] == ["car"]
    assert first["drivable_share"] == pytest.approx((1200 - 50) / 2400) and first["settings"]["hfov_deg"] == 90.0
    assert first["obstacles"][0]["bearing_right_deg"] == pytest.approx(math.degrees(math.atan(20 / 30)))
    assert second["labels"] == ["void", "lane", "dog"] and second["mask_json_key"] is None
    assert second["road_classes"] == ["lane"] and list(second["shares"]) == ["void", "lane", "dog"]
    monkeypatch.delenv("ROADEDGE_LABELS")
    monkeypatch.delenv("ROADEDGE_ROAD_CLASSES")
    lambda_handler.handler(s3_event("labels", [without]), None)
    _, synthetic = read_json(s3, "labels", "m/s/1/200.decoded.json")
    assert synthetic["labels"] == LABELS and synthetic["road_classes"] == ROAD and list(synthetic["shares"]) == [
        "background", "road", "lane_marking"]


def test_a_bad_record_is_reported_and_the_others_decoded(s3):
    s3.create_bucket(Bucket="mixed")
    good = put_frame(s3, "mixed", "m/s/2/100", frame_mask(1), LABELS, ROAD)
    s3.put_object(Bucket="mixed", Key="m/s/2/200.png", Body=b"not a png at all")
    unfit = put_frame(s3, "mixed", "m/s/2/300", frame_mask(2), ["background", "road"], ["road"])
    newer = put_frame(s3, "mixed", "m/s/2/400", frame_mask(3), LABELS, ROAD)
    s3.put_object(Bucket="mixed", Key="m/s/2/400.json", Body=json.dumps({"schema": "roadedge.cloud.mask/2"}).encode())
    event = s3_event("mixed", ["m/s/2/gone.png", "m/s/2/200.png", unfit, good, "m/s/2/100.json", newer])
    summary = lambda_handler.handler(event, None)
    assert [d["key"] for d in summary["decoded"]] == [good]
    assert [(e["key"], e["retry"]) for e in summary["errors"]] == [
        ("m/s/2/gone.png", False), ("m/s/2/200.png", False), (unfit, False), (newer, False)]
    assert summary["errors"][3]["error"] == ("s3://mixed/m/s/2/400.json: schema 'roadedge.cloud.mask/2'; "
                                             "expected roadedge.cloud.mask/1")
    assert summary["errors"][0]["error"] == "s3://mixed/m/s/2/gone.png: no such object (deleted before it was decoded?)"
    assert summary["errors"][1]["error"] == "s3://mixed/m/s/2/200.png: not a PNG file"
    assert "class indices 7, 14 in the mask, but there are 2 labels" in summary["errors"][2]["error"]
    assert summary["skipped"][0]["key"] == "m/s/2/100.json"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="mixed")["Contents"]}
    assert "m/s/2/100.decoded.json" in keys and not {"m/s/2/200.decoded.json", "m/s/2/300.decoded.json"} & keys


def test_unreachable_s3_raises_so_lambda_retries(s3, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:{}".format(free_port()))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(lambda_handler.DecodeFailed, match=r"^2 of 2 masks failed, a retry may decode them: "
                       r"s3://b/a\.png: EndpointConnectionError: .*; s3://b/c d\.png: "):
        lambda_handler.handler(s3_event("b", ["a.png", "c d.png"]), None)
