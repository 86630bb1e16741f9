"""The Lambda's entry point: `cloud.lambda_decode.handler.handler(event, context)` for S3 ObjectCreated events.

For each new mask PNG: read it (and the `.json` the segmenter wrote beside it first, for the labels and road
classes), compute the figures (figures.py) and write `<same name>.decoded.json` beside it. Every record is tried;
the summary lists what was decoded, skipped and failed.

Errors and retries: S3 invokes the Lambda asynchronously, and Lambda retries an invocation that raises (twice by
default, then the event goes to the on-failure destination or dead-letter queue, if any); a returned value is a
success whatever it says. So a record that failed for a reason a retry can cure (S3 unreachable, throttled, access
denied, any unexpected error) makes the handler raise after all records were tried; a record that can never succeed
(the mask is gone, it is no class-index PNG, it does not fit its labels) is logged and reported in the summary, and
the invocation succeeds. Decoding twice writes the same result, so a retried event does no harm.

Environment (all optional):
  ROADEDGE_LABELS              comma-separated class names of masks without a `.json` beside them (default: the
                               synthetic demo's labels, roadedge.core.seglabels.SYNTH_SEG_LABELS)
  ROADEDGE_ROAD_CLASSES        comma-separated drivable classes for such masks (default: the runtime's: road surface,
                               markings and cracks, not potholes)
  ROADEDGE_HFOV_DEG            the camera's horizontal field of view (default 62.2, the Pi Camera Module 2)
  ROADEDGE_MIN_OBSTACLE_SHARE  smallest obstacle listed, as a share of the frame's pixels (default 0.001)
  ROADEDGE_MAX_OBSTACLES       at most this many obstacles listed, nearest first (default 32)
  ROADEDGE_FREE_BAND, ROADEDGE_FREE_MIN_FILL  the free distance's centre band and fill (default 0.2, 0.5)
  AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL      another S3 endpoint (boto3 reads them itself)
"""
import json
import logging
import os

from cloud.lambda_decode.events import mask_records, result_key, sidecar_key
from cloud.lambda_decode.figures import CONNECTIVITY, DEFAULT_SETTINGS, MaskError, Settings, decode_mask
from roadedge.core.seglabels import DRIVABLE_LABELS, SYNTH_SEG_LABELS, decode_index_png

SCHEMA = "roadedge.cloud.decoded/1"
MASK_SCHEMA = "roadedge.cloud.mask/1"
MISSING_CODES = ("NoSuchKey", "404", "NotFound", "NoSuchBucket")

log = logging.getLogger("roadedge.lambda")
log.setLevel(logging.INFO)
_clients = {}


class PermanentError(Exception):
    """A record that no retry can decode."""


class DecodeFailed(Exception):
    """Raised at the end of an invocation with records a retry may decode (Lambda then retries the event)."""


def handler(event, context):
    settings = settings_from_env(os.environ)
    masks, skipped, errors = mask_records(event)
    for error in errors:
        error["retry"] = False
    decoded = []
    if masks:
        s3 = s3_client()
        for bucket, key in masks:
            try:
                decoded.append(decode_object(s3, bucket, key, settings))
            except PermanentError as err:
                errors.append({"bucket": bucket, "key": key, "error": str(err), "retry": False})
            except Exception as err:  # S3 trouble or a bug: a retry may do better
                errors.append({"bucket": bucket, "key": key, "error": "{}: {}".format(type(err).__name__, err), "retry": True})
    summary = {"decoded": decoded, "skipped": skipped, "errors": errors}
    for error in errors:
        log.error("roadedge decode: %s%s", error["error"], " (will be retried)" if error["retry"] else "")
    log.info("roadedge decode: %d decoded, %d skipped, %d failed", len(decoded), len(skipped), len(errors))
    retry = [error for error in errors if error["retry"]]
    if retry:
        raise DecodeFailed("{} of {} masks failed, a retry may decode them: {}".format(
            len(retry), len(masks), "; ".join("s3://{}/{}: {}".format(e["bucket"], e["key"], e["error"]) for e in retry)))
    return summary


def settings_from_env(env):
    """Settings from the ROADEDGE_* variables; ValueError naming the variable when one is not a number in range."""
    def number(name, default, low, high, kind=float):
        text = env.get(name, "").strip()
        if not text:
            return default
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not (low <= value <= high):
            raise ValueError("{}={!r}: expected a number from {} to {}".format(name, text, low, high))
        return value

    d = DEFAULT_SETTINGS
    return Settings(hfov_deg=number("ROADEDGE_HFOV_DEG", d.hfov_deg, 1.0, 179.0),
                    min_obstacle_share=number("ROADEDGE_MIN_OBSTACLE_SHARE", d.min_obstacle_share, 0.0, 1.0),
                    max_obstacles=number("ROADEDGE_MAX_OBSTACLES", d.max_obstacles, 0, 10000, int),
                    free_band=number("ROADEDGE_FREE_BAND", d.free_band, 0.01, 1.0),
                    free_min_fill=number("ROADEDGE_FREE_MIN_FILL", d.free_min_fill, 0.01, 1.0))


def s3_client():
    """boto3's S3 client, one per endpoint and region (reused while the Lambda stays warm)."""
    import boto3

    key = tuple(os.environ.get(name) for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION",
                                                  "AWS_DEFAULT_REGION"))
    if key not in _clients:
        _clients[key] = boto3.client("s3")
    return _clients[key]


def decode_object(s3, bucket, key, settings):
    """Decode s3://bucket/key, write the result beside it; the summary entry."""
    body = _get(s3, bucket, key)
    if body is None:
        raise PermanentError("s3://{}/{}: no such object (deleted before it was decoded?)".format(bucket, key))
    mask = read_mask(body, "s3://{}/{}".format(bucket, key))
    labels, road_classes, meta, meta_key = labels_for(s3, bucket, key)
    try:
        figures = decode_mask(mask, labels, road_classes, settings)
    except MaskError as err:
        raise PermanentError("s3://{}/{}: {} (labels from {})".format(bucket, key, err, meta_key or "the environment")) from None
    result = {"schema": SCHEMA, "bucket": bucket, "mask_key": key, "mask_json_key": meta_key,
              "stream": meta.get("stream"), "fragment_number": meta.get("fragment_number"),
              "producer_timestamp_ms": meta.get("producer_timestamp_ms"),
              "frame_index": meta["frame"].get("index") if isinstance(meta.get("frame"), dict) else None,
              "labels": labels, "road_classes": road_classes}
    result.update(figures)
    result["settings"] = dict(settings._asdict(), connectivity=CONNECTIVITY, obstacle_rows="lower half")
    out_key = result_key(key)
    s3.put_object(Bucket=bucket, Key=out_key, Body=json.dumps(result, indent=1).encode("utf-8"),
                  ContentType="application/json")
    return {"bucket": bucket, "key": key, "result_key": out_key, "drivable_share": figures["drivable_share"],
            "free_share": figures["free_share"], "obstacles": figures["obstacle_count"]}


def _get(s3, bucket, key):
    """The object's bytes; None when it (or its bucket) does not exist; other S3 errors propagate."""
    from botocore.exceptions import ClientError

    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in MISSING_CODES:
            return None
        raise


def read_mask(body, name):
    """The class indices of a palette ('P') or grayscale ('L') PNG (the pixel values, not the colours)."""
    try:
        return decode_index_png(body)
    except ValueError as err:
        raise PermanentError("{}: {}".format(name, err)) from None


def labels_for(s3, bucket, key):
    """(labels, road classes, the mask's .json as a dict or {}, its key or None).

    The `.json` beside the mask (written before it) is the writer's word; without one, ROADEDGE_LABELS and
    ROADEDGE_ROAD_CLASSES, else the synthetic demo's labels and the runtime's default road classes."""
    meta_key = sidecar_key(key)
    body = _get(s3, bucket, meta_key)
    if body is not None:
        where = "s3://{}/{}".format(bucket, meta_key)
        try:
            meta = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise PermanentError("{}: not JSON ({})".format(where, err)) from None
        if not isinstance(meta, dict):
            raise PermanentError("{}: expected a JSON object".format(where))
        if meta.get("schema", MASK_SCHEMA) != MASK_SCHEMA:
            raise PermanentError("{}: schema {!r}; expected {}".format(where, meta.get("schema"), MASK_SCHEMA))
        labels, road = meta.get("labels"), meta.get("road_classes")
        if not _names(labels) or not labels:
            raise PermanentError("{}: labels: expected a non-empty list of class names".format(where))
        if not _names(road) or any(name not in labels for name in road):
            raise PermanentError("{}: road_classes: expected a list of names among its labels".format(where))
        return list(labels), list(road), meta, meta_key
    labels = _listed(os.environ.get("ROADEDGE_LABELS")) or list(SYNTH_SEG_LABELS)
    asked = _listed(os.environ.get("ROADEDGE_ROAD_CLASSES"))
    unknown = [name for name in asked if name not in labels]
    if unknown:
        raise PermanentError("ROADEDGE_ROAD_CLASSES: {}: not among the labels ({})".format(", ".join(unknown), ", ".join(labels)))
    return labels, asked or [name for name in labels if name in DRIVABLE_LABELS], {}, None


def _names(value):
    return isinstance(value, list) and all(isinstance(name, str) for name in value)


def _listed(text):
    return [name.strip() for name in (text or "").split(",") if name.strip()]
