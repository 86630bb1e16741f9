"""`roadedge dataset upload OUT_DIR s3://bucket/prefix`: put a converted data set where SageMaker reads it.

What is uploaded, keeping paths relative to OUT_DIR (`OUT_DIR/train/x.jpg`
becomes `s3://bucket/prefix/train/x.jpg`):

- the channel folders that exist: train/, validation/, train_annotation/,
  validation_annotation/ and label_map/ (recursively; names starting with a
  dot, such as .DS_Store, are left out because SageMaker would read them as
  data);
- hyperparameters.json and summary.json at the prefix root, if present, so
  the S3 copy documents itself.

Nothing else in OUT_DIR is uploaded (im2rec .lst files are local build inputs).

Re-running is cheap: the prefix is listed once, and an object whose size and
ETag match the local file is skipped. For a single-part upload the ETag is the
MD5 of the content; for a multipart upload it is the MD5 of the parts' MD5
digests followed by "-<parts>". Uploads use a fixed part size, so the local
ETag is computed the same way. An object written by another tool with another
part size, or an SSE-KMS encrypted one (its ETag is not an MD5), is simply
uploaded again.
"""
import hashlib
import os
import re
import sys
import threading

from roadedge.core.errors import RoadedgeError

CHANNELS = ("train", "validation", "train_annotation", "validation_annotation", "label_map")
DATA_CHANNELS = CHANNELS[:4]
ROOT_FILES = ("hyperparameters.json", "summary.json")
PART_SIZE = 8 * 1024 * 1024  # multipart threshold and part size; fixed so ETags are reproducible

_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$")


class LocalFile:
    __slots__ = ("path", "rel", "size", "key")

    def __init__(self, path, rel, size, key):
        self.path = path  # absolute local path
        self.rel = rel  # path relative to OUT_DIR, "/"-separated
        self.size = size
        self.key = key  # S3 object key


class UploadResult:
    """What `upload_dataset` did (or, with dry_run, would do)."""

    def __init__(self, bucket, prefix, uploaded, skipped, dry_run):
        self.bucket = bucket
        self.prefix = prefix
        self.uploaded = uploaded  # LocalFile list: sent (or to send)
        self.skipped = skipped  # LocalFile list: already there, unchanged
        self.dry_run = dry_run

    @property
    def bytes_uploaded(self):
        return sum(f.size for f in self.uploaded)

    @property
    def uri(self):
        return "s3://{}/{}".format(self.bucket, self.prefix + "/" if self.prefix else "")


def parse_s3_uri(uri):
    """`s3://bucket[/prefix]` -> (bucket, prefix without surrounding slashes)."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise RoadedgeError("{}: not an S3 URI (expected s3://bucket[/prefix])".format(uri))
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise RoadedgeError("{}: '{}' is not a valid bucket name (expected s3://bucket[/prefix])".format(uri, bucket))
    prefix = prefix.rstrip("/")
    if prefix.startswith("/") or "//" in prefix:
        raise RoadedgeError("{}: empty path segment in the prefix (expected s3://bucket[/prefix])".format(uri))
    return bucket, prefix


def collect_files(out_dir, prefix=""):
    """The files to upload, sorted by key. Raises RoadedgeError if OUT_DIR has no channel."""
    out_dir = os.path.abspath(os.fspath(out_dir))
    if not os.path.isdir(out_dir):
        raise RoadedgeError("{}: no such folder (expected a converted data set)".format(out_dir))
    if not any(os.path.isdir(os.path.join(out_dir, c)) for c in DATA_CHANNELS):
        raise RoadedgeError("{}: no channel folder found (expected at least one of {}; "
                            "run `roadedge dataset convert` or `convert-seg` first)".format(out_dir, ", ".join(DATA_CHANNELS)))
    rels = [name for name in ROOT_FILES if os.path.isfile(os.path.join(out_dir, name))]
    for channel in CHANNELS:
        top = os.path.join(out_dir, channel)
        for folder, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                if not name.startswith("."):
                    rels.append(os.path.relpath(os.path.join(folder, name), out_dir).replace(os.sep, "/"))
    found = []
    for rel in rels:
        path = os.path.join(out_dir, *rel.split("/"))
        key = prefix + "/" + rel if prefix else rel
        found.append(LocalFile(path, rel, os.path.getsize(path), key))
    found.sort(key=lambda f: f.key)
    return found


def local_etag(path, size=None, threshold=PART_SIZE, part_size=PART_SIZE):
    """The ETag S3 gives this file when uploaded by `upload_dataset` with these settings."""
    from s3transfer.utils import ChunksizeAdjuster

    if size is None:
        size = os.path.getsize(path)
    if size < threshold:
        digest = hashlib.md5()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    # s3transfer enlarges the part size for huge files (10,000 parts at most) and
    # raises it to S3's 5 MiB minimum; mirror that so the part count matches.
    part_size = ChunksizeAdjuster().adjust_chunksize(part_size, size)
    digests = []
    with open(path, "rb") as handle:
        for part in iter(lambda: handle.read(part_size), b""):
            digests.append(hashlib.md5(part).digest())
    return "{}-{}".format(hashlib.md5(b"".join(digests)).hexdigest(), len(digests))


def make_client(region=None, endpoint_url=None, retries=5):
    """An S3 client retrying each failed request up to `retries` more times (botocore standard mode)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": retries, "mode": "standard"})
    return boto3.session.Session().client("s3", region_name=region, endpoint_url=endpoint_url, config=config)


def list_remote(client, bucket, prefix):
    """{key: (size, etag)} for every object under `prefix/` (one paginated listing)."""
    remote = {}
    paginator = client.get_paginator("list_objects_v2")
    params = {"Bucket": bucket}
    if prefix:
        params["Prefix"] = prefix + "/"
    try:
        for page in paginator.paginate(**params):
            for obj in page.get("Contents", ()):
                remote[obj["Key"]] = (obj["Size"], obj.get("ETag", "").strip('"').lower())
    except Exception as err:  # botocore's exceptions are only importable lazily
        raise RoadedgeError(describe_error(err, bucket, "list s3://{}/{}".format(bucket, params.get("Prefix", "")))) from err
    return remote


def describe_error(err, bucket, action, path=None):
    """One line for a botocore failure: what was being done, to which bucket/key/file, and why."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    where = "{} -> {}".format(path, action) if path else action
    if isinstance(err, NoCredentialsError):
        return ("{}: no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "or run `aws configure`)".format(where))
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = error.get("Message") or code
        if code == "NoSuchBucket" or (code in ("404", "NotFound") and status == 404):
            return "{}: bucket '{}' does not exist".format(where, bucket)
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
            return "{}: the AWS credentials were rejected ({}: {})".format(where, code, message)
        if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled") or status == 403:
            return "{}: access denied to bucket '{}' (the credentials need s3:ListBucket and s3:PutObject)".format(where, bucket)
        return "{}: {} (HTTP {}): {}".format(where, code or "error", status, message)
    if isinstance(err, BotoCoreError):
        return "{}: failed after retries: {}".format(where, err)
    return "{}: {}: {}".format(where, type(err).__name__, err)


def upload_dataset(out_dir, uri, client=None, region=None, endpoint_url=None, retries=5, dry_run=False,
                   threshold=PART_SIZE, part_size=PART_SIZE, progress=True):
    """Upload OUT_DIR's channels under `uri`, skipping unchanged objects; return an UploadResult.

    `client` may be a ready boto3 S3 client (tests register event handlers on
    it); otherwise one is made from `region`, `endpoint_url` and `retries`.
    """
    bucket, prefix = parse_s3_uri(uri)
    files = collect_files(out_dir, prefix)
    if client is None:
        client = make_client(region, endpoint_url, retries)
    remote = list_remote(client, bucket, prefix)
    to_upload, skipped = [], []
    for f in files:
        have = remote.get(f.key)
        if have is not None and have[0] == f.size and have[1] == local_etag(f.path, f.size, threshold, part_size):
            skipped.append(f)
        else:
            to_upload.append(f)
    result = UploadResult(bucket, prefix, to_upload, skipped, dry_run)
    if not dry_run and to_upload:
        _transfer(client, bucket, to_upload, threshold, part_size, progress)
    return result


def _transfer(client, bucket, files, threshold, part_size, progress):
    from s3transfer.manager import TransferConfig, TransferManager
    from s3transfer.subscribers import BaseSubscriber
    from tqdm import tqdm

    lock = threading.Lock()
    total = sum(f.size for f in files)
    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="upload",
               file=sys.stderr, disable=None if progress else True)

    class Progress(BaseSubscriber):
        def on_progress(self, future, bytes_transferred, **kwargs):
            with lock:  # negative on a retry: the bytes are sent again
                bar.update(bytes_transferred)

    config = TransferConfig(multipart_threshold=threshold, multipart_chunksize=part_size)
    failures = []
    try:
        with TransferManager(client, config) as manager:
            futures = [(f, manager.upload(f.path, bucket, f.key, subscribers=[Progress()])) for f in files]
            for f, future in futures:
                try:
                    future.result()
                except Exception as err:
                    failures.append((f, err))
    finally:
        bar.close()
    if failures:
        f, err = failures[0]
        line = describe_error(err, bucket, "s3://{}/{}".format(bucket, f.key), path=f.path)
        done = len(files) - len(failures)
        raise RoadedgeError("{} ({} upload{} failed, {} succeeded; run the same command again to resume)".format(
            line, len(failures), "" if len(failures) == 1 else "s", done)) from err


def format_bytes(n):
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return "{} {}".format(n, unit) if unit == "bytes" else "{:.1f} {}".format(n, unit)
        n /= 1024.0
    return str(n)


def upload_command(args):
    if args.retries < 0:
        raise RoadedgeError("--retries: expected 0 or more, got {}".format(args.retries))
    result = upload_dataset(args.out_dir, args.s3_uri, region=args.region, endpoint_url=args.endpoint_url,
                            retries=args.retries, dry_run=args.dry_run)
    if args.dry_run:
        for f in result.uploaded:
            print("would upload {} ({}) -> s3://{}/{}".format(f.rel, format_bytes(f.size), result.bucket, f.key))
        for f in result.skipped:
            print("would skip {} (unchanged at s3://{}/{})".format(f.rel, result.bucket, f.key))
        print("dry run: would upload {} file{} ({}), skip {} unchanged, to {}".format(
            len(result.uploaded), "" if len(result.uploaded) == 1 else "s", format_bytes(result.bytes_uploaded),
            len(result.skipped), result.uri))
    else:
        print("uploaded {} file{} ({}), skipped {} unchanged, to {}".format(
            len(result.uploaded), "" if len(result.uploaded) == 1 else "s", format_bytes(result.bytes_uploaded),
            len(result.skipped), result.uri))
    return 0
