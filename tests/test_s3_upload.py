"""`roadedge dataset upload` against moto's in-process S3."""
import os
import threading

import moto
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError

from converters.s3_upload import PART_SIZE, local_etag, make_client, parse_s3_uri, upload_dataset
from roadedge import cli
from roadedge.core.errors import RoadedgeError

BUCKET = "roadedge-data"
FILES = {
    "train/a.jpg": b"\xff\xd8jpeg-a" * 50,
    "train/b.jpg": b"\xff\xd8jpeg-b" * 70,
    "validation/c.jpg": b"\xff\xd8jpeg-c" * 30,
    "train_annotation/a.json": b'{"file": "a.jpg", "annotations": []}',
    "train_annotation/b.json": b'{"file": "b.jpg", "annotations": [1]}',
    "validation_annotation/c.json": b'{"file": "c.jpg"}',
    "hyperparameters.json": b'{"num_classes": "2"}',
    "summary.json": b'{"counts": {}}',
}
NOT_UPLOADED = {"train.lst": b"0\t1\ta.jpg\n", "train/.DS_Store": b"junk", "notes.txt": b"local only"}


@pytest.fixture
def s3(aws_env):
    with moto.mock_aws():
        client = make_client(retries=3)
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def dataset(tmp_path):
    out = tmp_path / "converted"
    for rel, data in {**FILES, **NOT_UPLOADED}.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return out


def bucket_contents(client, bucket=BUCKET):
    keys = [obj["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for obj in page.get("Contents", ())]
    return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def keys_of(files):
    return sorted(f.key for f in files)


def test_parse_s3_uri():
    assert parse_s3_uri("s3://my-bucket") == ("my-bucket", "")
    assert parse_s3_uri("s3://my-bucket/") == ("my-bucket", "")
    assert parse_s3_uri("s3://my-bucket/a/b/") == ("my-bucket", "a/b")
    for bad in ("my-bucket/a", "http://my-bucket/a", "s3://", "s3:///a", "s3://x/a", "s3://bad bucket/a", "s3://b-b//a"):
        with pytest.raises(RoadedgeError):
            parse_s3_uri(bad)


def test_upload_then_everything_skipped(s3, dataset):
    result = upload_dataset(dataset, "s3://%s/roads/v1" % BUCKET, client=s3, progress=False)
    expected = {"roads/v1/" + rel: data for rel, data in FILES.items()}
    assert bucket_contents(s3) == expected
    assert keys_of(result.uploaded) == sorted(expected) and result.skipped == []
    assert result.bytes_uploaded == sum(len(d) for d in FILES.values())

    again = upload_dataset(dataset, "s3://%s/roads/v1/" % BUCKET, client=s3, progress=False)
    assert again.uploaded == [] and keys_of(again.skipped) == sorted(expected)
    assert bucket_contents(s3) == expected


def test_changed_content_of_same_size_is_uploaded_again(s3, dataset):
    upload_dataset(dataset, "s3://%s/p" % BUCKET, client=s3, progress=False)
    changed = FILES["train/b.jpg"].replace(b"jpeg-b", b"JPEG-B")
    assert len(changed) == len(FILES["train/b.jpg"])
    (dataset / "train/b.jpg").write_bytes(changed)
    result = upload_dataset(dataset, "s3://%s/p" % BUCKET, client=s3, progress=False)
    assert keys_of(result.uploaded) == ["p/train/b.jpg"]
    assert len(result.skipped) == len(FILES) - 1
    assert s3.get_object(Bucket=BUCKET, Key="p/train/b.jpg")["Body"].read() == changed


def test_multipart_object_is_skipped_when_unchanged(s3, dataset):
    big = os.urandom(PART_SIZE + 1024 * 1024)  # two parts at the default part size
    (dataset / "train/big.rec").write_bytes(big)
    upload_dataset(dataset, "s3://%s/p" % BUCKET, client=s3, progress=False)
    head = s3.head_object(Bucket=BUCKET, Key="p/train/big.rec")
    assert head["ETag"].strip('"').endswith("-2")
    assert head["ETag"].strip('"') == local_etag(str(dataset / "train/big.rec"))
    assert head["ContentLength"] == len(big)

    result = upload_dataset(dataset, "s3://%s/p" % BUCKET, client=s3, progress=False)
    assert result.uploaded == []

    (dataset / "train/big.rec").write_bytes(big[:-1] + bytes([big[-1] ^ 1]))
    result = upload_dataset(dataset, "s3://%s/p" % BUCKET, client=s3, progress=False)
    assert keys_of(result.uploaded) == ["p/train/big.rec"]


def test_failed_requests_are_retried(s3, dataset):
    attempts = {}
    lock = threading.Lock()

    def flaky(request, **kwargs):
        if request.url.endswith("/p/train/a.jpg"):
            with lock:
                attempts["a"] = attempts.get("a", 0) + 1
                if attempts["a"] <= 2:
                    raise EndpointConnectionError(endpoint_url=request.url)

    s3.meta.events.register("before-send.s3.PutObject", flaky)
    result = upload_dataset(dataset, "s3://%s/p" % BUCKET, client=s3, progress=False)
    assert attempts == {"a": 3}
    assert len(result.uploaded) == len(FILES)
    assert s3.get_object(Bucket=BUCKET, Key="p/train/a.jpg")["Body"].read() == FILES["train/a.jpg"]


def test_failure_after_retries_names_file_and_key(aws_env, dataset):
    with moto.mock_aws():
        client = make_client(retries=1)
        client.create_bucket(Bucket=BUCKET)
        calls = []

        def down(request, **kwargs):
            if request.url.endswith("/p/validation/c.jpg"):
                calls.append(1)
                raise EndpointConnectionError(endpoint_url=request.url)

        client.meta.events.register("before-send.s3.PutObject", down)
        with pytest.raises(RoadedgeError) as err:
            upload_dataset(dataset, "s3://%s/p" % BUCKET, client=client, progress=False)
        message = str(err.value)
        assert len(calls) == 2  # the first attempt and one retry
        assert str(dataset / "validation/c.jpg") in message and "s3://%s/p/validation/c.jpg" % BUCKET in message
        assert "failed after retries" in message and "1 upload failed" in message and "\n" not in message


class _Raw:
    def __init__(self, body):
        self.body = body

    def stream(self, **kwargs):
        yield self.body


def test_access_denied_is_one_line(s3, dataset):
    body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
    s3.meta.events.register("before-send.s3.PutObject", lambda request, **kw: AWSResponse(request.url, 403, {}, _Raw(body)))
    with pytest.raises(RoadedgeError, match="access denied to bucket 'roadedge-data'") as err:
        upload_dataset(dataset, "s3://%s/p" % BUCKET, client=s3, progress=False)
    assert "s3://%s/p/" % BUCKET in str(err.value)


def run(capsys, *argv):
    code = cli.main(["dataset", "upload"] + [str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_round_trip(s3, dataset, capsys):
    code, out, err = run(capsys, dataset, "s3://%s/roads" % BUCKET, "--retries", "2")
    assert (code, err) == (0, "")
    assert sum(len(d) for d in FILES.values()) == 1324
    assert out.strip() == "uploaded 8 files (1.3 KiB), skipped 0 unchanged, to s3://%s/roads/" % BUCKET
    assert bucket_contents(s3) == {"roads/" + rel: data for rel, data in FILES.items()}

    code, out, err = run(capsys, dataset, "s3://%s/roads" % BUCKET)
    assert (code, err) == (0, "")
    assert out.strip() == "uploaded 0 files (0 bytes), skipped 8 unchanged, to s3://{}/roads/".format(BUCKET)


def test_cli_dry_run_uploads_nothing(s3, dataset, capsys):
    s3.put_object(Bucket=BUCKET, Key="p/train/a.jpg", Body=FILES["train/a.jpg"])
    code, out, err = run(capsys, dataset, "s3://%s/p" % BUCKET, "--dry-run")
    assert (code, err) == (0, "")
    lines = out.strip().splitlines()
    assert "would skip train/a.jpg (unchanged at s3://roadedge-data/p/train/a.jpg)" in lines
    assert sum(line.startswith("would upload ") for line in lines) == len(FILES) - 1
    assert lines[-1].startswith("dry run: would upload 7 files")
    assert list(bucket_contents(s3)) == ["p/train/a.jpg"]


def assert_one_error_line(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("roadedge: error: "), err
    for fragment in fragments:
        assert fragment in lines[0]


def test_cli_missing_bucket(s3, dataset, capsys):
    code, _, err = run(capsys, dataset, "s3://no-such-bucket-here/p")
    assert_one_error_line(code, err, "bucket 'no-such-bucket-here' does not exist")


@pytest.mark.parametrize("uri", ["no-scheme/p", "s3://", "s3://a/p", "https://%s/p" % BUCKET])
def test_cli_bad_uri(aws_env, dataset, capsys, uri):
    code, _, err = run(capsys, dataset, uri)
    assert_one_error_line(code, err, uri, "expected s3://bucket[/prefix]")


def test_cli_folder_without_channels(aws_env, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "summary.json").write_text("{}")
    code, _, err = run(capsys, empty, "s3://%s/p" % BUCKET)
    assert_one_error_line(code, err, str(empty), "no channel folder")
    code, _, err = run(capsys, tmp_path / "missing", "s3://%s/p" % BUCKET)
    assert_one_error_line(code, err, str(tmp_path / "missing"), "no such folder")


def test_cli_without_credentials(aws_env, dataset, monkeypatch, capsys):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    # No mock here: botocore must fail before sending anything; the endpoint is a closed local port anyway.
    code, _, err = run(capsys, dataset, "s3://%s/p" % BUCKET, "--endpoint-url", "http://127.0.0.1:9", "--retries", "0")
    assert_one_error_line(code, err, "no AWS credentials found", "s3://%s/p/" % BUCKET)
