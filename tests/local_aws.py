"""Local AWS for the cloud-path tests: the test KVS server's credentials in the environment (and no real AWS
configuration), moto's S3 in server mode with one versioned bucket (a key written twice has two versions), and a
sink that records the runtime's status messages."""
import contextlib
import urllib.request

from edge.sinks.base import Sink
from tests.kvs_server import ACCESS_KEY, REGION, SECRET_KEY


def use_kvs_credentials(monkeypatch, tmp_path):
    for name, value in (("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
                        ("AWS_DEFAULT_REGION", REGION), ("AWS_CONFIG_FILE", str(tmp_path / "none")),
                        ("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none")), ("AWS_EC2_METADATA_DISABLED", "true")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@contextlib.contextmanager
def versioned_bucket(bucket):
    """(s3 client, endpoint url) of moto's S3 server on 127.0.0.1 holding `bucket` with versioning on. moto's state
    lives in the process, not the server, so it is reset first."""
    import boto3
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        url = "http://{}:{}".format(*moto.get_host_and_port())
        urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset", method="POST"), timeout=10).close()
        s3 = boto3.client("s3", endpoint_url=url, region_name=REGION)
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        yield s3, url
    finally:
        moto.stop()


def versions(s3, bucket):
    """{key: number of versions}: a key written twice has two."""
    counts = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    return counts


class StatusRecorder(Sink):
    """Keeps the state of every status message the loop publishes (online, degraded, stalled, ...)."""

    TYPE = "status-recorder"

    def __init__(self):
        self.states = []

    def write(self, result):
        pass

    def publish_status(self, message):
        self.states.append(message["state"])
