"""Kinesis Video's control plane for a producer: the stream exists (created if allowed) and its PutMedia data endpoint
is known, asked again about every 45 minutes (AWS's advice for long-lived producers) or after a failed connection.

boto3's `kinesisvideo` client speaks this plane (DescribeStream, CreateStream, GetDataEndpoint, SigV4 with service
`kinesisvideo`); only PutMedia itself is missing from boto3. Errors that retrying cannot fix (no such stream and
`create_stream` off, access denied, a bad stream name) are one-line RoadedgeErrors naming the stream; a network
failure is a ConnectionError the producer retries with its backoff.
"""
import time

from roadedge.core.errors import RoadedgeError

REFRESH_S = 45 * 60.0
ACTIVE_WAIT_S = 30.0
MEDIA_TYPE = "video/h264"


def make_client(region="", endpoint_url=""):
    """boto3's kinesisvideo client (credentials from the standard chain), with bounded retries and timeouts."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise RoadedgeError("kvs sink: needs boto3 (pip install boto3, or roadedge[aws])") from None
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=15)
    return boto3.session.Session().client("kinesisvideo", region_name=region or None,
                                          endpoint_url=endpoint_url or None, config=config)


class StreamEndpoint(object):
    """endpoint() -> the stream's PutMedia data endpoint URL, cached for REFRESH_S; invalidate() after a failure."""

    def __init__(self, client, stream_name, create=True, retention_hours=24, clock=time.monotonic, sleep=time.sleep):
        self.client, self.stream_name = client, stream_name
        self.create, self.retention_hours = bool(create), int(retention_hours)
        self.clock, self.sleep = clock, sleep
        self._endpoint, self._at = None, None
        self.refreshes, self.info = 0, None

    def endpoint(self):
        now = self.clock()
        if self._endpoint is None or now - self._at >= REFRESH_S:
            self.info = self.ensure_stream()  # DataRetentionInHours 0: fragments are never PERSISTED, only RECEIVED
            answer = self._call("get_data_endpoint", StreamName=self.stream_name, APIName="PUT_MEDIA")
            self._endpoint, self._at = answer["DataEndpoint"], now
            self.refreshes += 1
        return self._endpoint

    def invalidate(self):
        """Ask again on the next endpoint() (the data endpoint may have moved)."""
        self._endpoint = None

    def ensure_stream(self):
        """The stream's description once it is ACTIVE; created first when it is missing and creating is allowed."""
        info = self._describe()
        if info is None:
            if not self.create:
                raise RoadedgeError("kvs stream {}: no such stream (create it, or set create_stream: true)".format(
                    self.stream_name))
            self._call("create_stream", StreamName=self.stream_name, DataRetentionInHours=self.retention_hours,
                       MediaType=MEDIA_TYPE)
            info = self._describe()
        deadline = self.clock() + ACTIVE_WAIT_S
        while info is not None and info.get("Status") != "ACTIVE":
            if info.get("Status") == "DELETING" or self.clock() >= deadline:
                raise RoadedgeError("kvs stream {}: status {}; expected ACTIVE".format(self.stream_name,
                                                                                        info.get("Status")))
            self.sleep(1.0)
            info = self._describe()
        return info

    def _describe(self):
        from botocore.exceptions import ClientError

        try:
            return self.client.describe_stream(StreamName=self.stream_name)["StreamInfo"]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise self._error("DescribeStream", err) from None
        except Exception as err:
            known = self._network("DescribeStream", err)
            if known is None:
                raise
            raise known from err

    def _call(self, method, **params):
        from botocore.exceptions import ClientError

        try:
            return getattr(self.client, method)(**params)
        except ClientError as err:
            raise self._error(method, err) from None
        except Exception as err:
            known = self._network(method, err)
            if known is None:
                raise
            raise known from err

    def _error(self, operation, err):
        error = err.response.get("Error", {})
        return RoadedgeError("kvs stream {}: {} refused: {}: {}".format(
            self.stream_name, operation, error.get("Code", "error"), " ".join(str(error.get("Message", "")).split())))

    def _network(self, operation, err):
        from botocore.exceptions import BotoCoreError, NoCredentialsError, PartialCredentialsError

        if isinstance(err, (NoCredentialsError, PartialCredentialsError)):
            return RoadedgeError("kvs stream {}: {}: no usable AWS credentials ({}); set them in the environment, "
                                 "a profile, an instance role, or iot_credentials".format(self.stream_name, operation, err))
        if isinstance(err, (BotoCoreError, OSError)):
            return ConnectionError("kvs {}: {}".format(operation, " ".join(str(err).split())))
        return None  # not ours to name: raised as it is
