"""Where the masks go (S3, the contract the decoding Lambda reads) and where the consumer keeps its place (a local
checkpoint file, replaced atomically after each fragment is fully written).

Per segmented frame, under s3://BUCKET/PREFIX/: `<stream>/<fragment number>/<producer ms>.json` FIRST (schema
roadedge.cloud.mask/1), then `<stream>/<fragment number>/<producer ms>.png` (class-index palette PNG). The Lambda
triggers on `.png`, so when it runs the JSON beside it is there; and a frame whose PNG exists is complete.
"""
import json
import os
import re

from roadedge.core.errors import RoadedgeError
from roadedge.core.fsutil import atomic_file

SCHEMA = "roadedge.cloud.mask/1"
CHECKPOINT_SCHEMA = "roadedge.cloud.segment-checkpoint/1"


def parse_bucket(url):
    """'s3://BUCKET/PREFIX' -> (bucket, prefix without slashes at its ends)."""
    match = re.match(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?$", url or "")
    if not match:
        raise RoadedgeError("--bucket {!r}: expected s3://BUCKET/PREFIX".format(url))
    return match.group(1), (match.group(2) or "").strip("/")


def frame_keys(prefix, stream, fragment_number, producer_ms):
    """(json key, png key) of one frame."""
    stem = "/".join(part for part in (prefix, stream, str(fragment_number), str(int(producer_ms))) if part)
    return stem + ".json", stem + ".png"


def frame_document(segmenter, stream, fragment, index, producer_ms, size, result, png_key):
    """The roadedge.cloud.mask/1 JSON of one frame (see the lead's contract)."""
    shares = {result.labels[klass]: share for klass, share in result.present()}
    return {"schema": SCHEMA, "stream": stream, "fragment_number": str(fragment.number),
            "producer_timestamp_ms": int(producer_ms), "server_timestamp_ms": fragment.server_ms,
            "frame": {"index": int(index), "width": int(size[0]), "height": int(size[1])},
            "model": {"name": segmenter.name, "source": segmenter.source},
            "labels": list(segmenter.labels), "road_classes": list(segmenter.road_classes), "mask_key": png_key,
            "segmentation": {"shares": shares,
                             "drivable_share": None if result.drivable is None else float(result.drivable),
                             "free_rows": None if result.free_rows is None else int(result.free_rows),
                             "free_share": None if result.free_share is None else float(result.free_share)}}


class S3Output(object):
    """boto3 S3 (endpoint: --s3-endpoint-url or AWS_ENDPOINT_URL_S3, which boto3 reads itself). puts: keys written."""

    UPLOADERS = 4  # frames being uploaded while the next are segmented (each frame's JSON, then its PNG)

    def __init__(self, bucket, prefix, region="", endpoint_url=""):
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix
        self._pool, self._pending = None, []
        config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60)
        self.client = boto3.session.Session().client("s3", region_name=region or None,
                                                     endpoint_url=endpoint_url or None, config=config)
        self.puts = []

    def _fail(self, err, what):
        from botocore.exceptions import ClientError, EndpointConnectionError

        if isinstance(err, EndpointConnectionError):
            return RoadedgeError("s3://{}: cannot reach {}".format(self.bucket, err.kwargs.get("endpoint_url", "S3")))
        if isinstance(err, ClientError):
            code = err.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket"):
                return RoadedgeError("--bucket s3://{}: no such bucket".format(self.bucket))
            if code in ("403", "AccessDenied"):
                return RoadedgeError("--bucket s3://{}: access denied ({})".format(self.bucket, what))
        return RoadedgeError("s3://{}: {} failed ({})".format(self.bucket, what, " ".join(str(err).split())))

    def check(self):
        """The bucket exists and answers (before any frame is decoded)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as err:
            raise self._fail(err, "HeadBucket") from None

    def exists(self, key):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as err:
            if _not_found(err):
                return False
            raise self._fail(err, "HeadObject " + key) from None
        except BotoCoreError as err:
            raise self._fail(err, "HeadObject " + key) from None

    def read_json(self, key):
        """The JSON object at key, or None when there is none (or it is not JSON)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as err:
            if _not_found(err):
                return None
            raise self._fail(err, "GetObject " + key) from None
        except BotoCoreError as err:
            raise self._fail(err, "GetObject " + key) from None
        try:
            return json.loads(body.decode("utf-8"))
        except ValueError:
            return None

    def put(self, key, body, content_type):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        except (BotoCoreError, ClientError) as err:
            raise self._fail(err, "PutObject " + key) from None
        self.puts.append(key)

    def write_frame(self, json_key, document, png_key, png, json_there=False):
        """The JSON first, then the PNG; json_there: the same JSON is already in S3 (a run killed between the two)."""
        if not json_there:
            self.put(json_key, json.dumps(document, sort_keys=True).encode("utf-8"), "application/json")
        self.put(png_key, png, "image/png")

    def submit_frame(self, *args):
        """write_frame in an uploader thread, so S3's latency overlaps the next frames' work; drain() waits for all.
        At most 2 x UPLOADERS frames wait: beyond that, the oldest is waited for here."""
        from concurrent.futures import ThreadPoolExecutor

        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.UPLOADERS, thread_name_prefix="roadedge-s3")
        self._pending.append(self._pool.submit(self.write_frame, *args))
        while len(self._pending) > 2 * self.UPLOADERS:
            self._pending.pop(0).result()

    def drain(self):
        """Wait for every submitted frame; the first upload error is raised (after all have finished)."""
        pending, self._pending = self._pending, []
        errors = [future.exception() for future in pending]
        for error in errors:
            if error is not None:
                raise error


def default_checkpoint(stream, bucket, prefix):
    """~/.cache/roadedge/segment-<stream>-<bucket>[-<prefix>].json (names made safe for a file name)."""
    name = "-".join(part for part in ("segment", stream, bucket, prefix.replace("/", "_")) if part)
    return os.path.join(os.path.expanduser("~"), ".cache", "roadedge", re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".json")


def load_checkpoint(path, stream, bucket, prefix):
    """The checkpoint dict (fragment_number, producer_timestamp_ms, frames_seen, ...) or None when there is none."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError) as err:
        raise RoadedgeError("--checkpoint {}: not readable as JSON ({})".format(path, err)) from None
    if not isinstance(state, dict) or state.get("schema") != CHECKPOINT_SCHEMA or not isinstance(
            state.get("frames_seen"), int) or not isinstance(state.get("fragment_number"), str):
        raise RoadedgeError("--checkpoint {}: expected a {} file".format(path, CHECKPOINT_SCHEMA))
    if (state.get("stream"), state.get("bucket"), state.get("prefix")) != (stream, bucket, prefix):
        raise RoadedgeError("--checkpoint {}: belongs to stream {} -> s3://{}/{}, not {} -> s3://{}/{}".format(
            path, state.get("stream"), state.get("bucket"), state.get("prefix"), stream, bucket, prefix))
    return state


def save_checkpoint(path, state):
    with atomic_file(path, "w") as handle:
        json.dump(state, handle, sort_keys=True)


def _not_found(err):
    """A botocore ClientError that says the object is not there (HeadObject answers a bare 404)."""
    return err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")
