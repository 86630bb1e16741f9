"""Helpers of the decoding Lambda's tests: moto's S3 in server mode, frames written as `roadedge cloud segment` writes
them (the `.json` first, then the class-index PNG) and the S3 notifications that announce them."""
import contextlib
import json
from urllib.parse import quote_plus

from moto.server import ThreadedMotoServer

from roadedge.core.seglabels import index_png_bytes
from tests.mosquitto import free_port


@contextlib.contextmanager
def moto_s3_server():
    """The endpoint URL of moto's S3 server on 127.0.0.1 (a real HTTP server in a thread)."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield "http://127.0.0.1:{}".format(port)
    finally:
        server.stop()


def put_frame(s3, bucket, stem, mask, labels=None, road_classes=None, frame_index=0):
    """Write STEM.json (unless labels is None) and STEM.png as the segmenter does; the PNG's key."""
    mask_key = stem + ".png"
    if labels is not None:
        stream, fragment, millis = stem.split("/")[-3:]
        meta = {"schema": "roadedge.cloud.mask/1", "stream": stream, "fragment_number": fragment,
                "producer_timestamp_ms": int(millis), "server_timestamp_ms": None,
                "frame": {"index": frame_index, "width": int(mask.shape[1]), "height": int(mask.shape[0])},
                "model": {"name": "road-seg", "source": "ir edge/models/road-seg.xml"}, "labels": list(labels),
                "road_classes": list(road_classes), "mask_key": mask_key,
                "segmentation": {"shares": {}, "drivable_share": None, "free_rows": None, "free_share": None}}
        s3.put_object(Bucket=bucket, Key=stem + ".json", Body=json.dumps(meta).encode(), ContentType="application/json")
    s3.put_object(Bucket=bucket, Key=mask_key, Body=index_png_bytes(mask), ContentType="image/png")
    return mask_key


def s3_event(bucket, keys, event_name="ObjectCreated:Put"):
    """An S3 notification for these keys, URL-encoded as S3 sends them (a space as '+')."""
    return {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventName": event_name,
                         "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": "arn:aws:s3:::" + bucket},
                                "object": {"key": quote_plus(key, safe="/"), "size": 1}}} for key in keys]}
