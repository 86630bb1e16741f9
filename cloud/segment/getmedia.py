"""Kinesis Video GetMedia as a stream of fragments: the data endpoint (GetDataEndpoint, APIName GET_MEDIA), then
GetMedia (boto3's `kinesis-video-media`, SigV4 by botocore) read chunk by chunk as the service sends it, parsed by
cloud.segment.mkv. When a response ends or the connection breaks, the next GetMedia continues after the last
fragment (StartSelector CONTINUATION_TOKEN, the token the service tagged it with; FRAGMENT_NUMBER without one).

    media = MediaStream("cam", region="", endpoint_url="")
    for fragment in media.fragments({"StartSelectorType": "EARLIEST"}, until_idle_s=5): ...
"""
import time

from cloud.segment.mkv import GetMediaReader, MkvError
from roadedge.core.errors import RoadedgeError

RECONNECT_PAUSE_S = 0.5
LIVE_READ_TIMEOUT_S = 30.0


def selector_for(start):
    """--start now|earliest|TIMESTAMP (epoch seconds or ISO 8601) -> a StartSelector (timestamps: producer's)."""
    import datetime

    text = str(start).strip()
    if text.lower() in ("now", "earliest"):
        return {"StartSelectorType": text.upper()}
    try:
        when = float(text)
    except ValueError:
        try:
            moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise RoadedgeError("--start {!r}: expected now, earliest, epoch seconds or an ISO 8601 time".format(start)) \
                from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        when = moment.timestamp()
    return {"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": when}


def later(number, than):
    """Whether fragment number `number` comes after `than` (both decimal strings, longer than an int64)."""
    try:
        return int(number) > int(than)
    except (TypeError, ValueError):
        return number != than


def _aws_error(err, what):
    """A one-line RoadedgeError for a botocore error (None for errors worth retrying: throttling, 5xx, network)."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(err, NoCredentialsError):
        return RoadedgeError("{}: no AWS credentials (environment, ~/.aws or an instance role)".format(what))
    if isinstance(err, EndpointConnectionError):
        return RoadedgeError("{}: cannot reach {}".format(what, err.kwargs.get("endpoint_url", "the endpoint")))
    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code", "")
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500 or code in ("ClientLimitExceededException", "ConnectionLimitExceededException"):
            return None
        message = err.response.get("Error", {}).get("Message", "")
        if code == "ResourceNotFoundException":
            return RoadedgeError("{}: not found ({})".format(what, message or code))
        return RoadedgeError("{}: {} {}".format(what, code, message).strip())
    return None


class MediaStream(object):
    """GetMedia on one stream; counts: requests (GetMedia calls), fragments (parsed)."""

    def __init__(self, stream, region="", endpoint_url="", sleep=time.sleep, clock=time.monotonic):
        self.stream, self.region, self.endpoint_url = stream, region, endpoint_url
        self.sleep, self.clock = sleep, clock
        self.requests = self.fragments_read = 0
        self._media = None
        self.continuation_token = None
        self.millis_behind_now = None

    def _session(self):
        import boto3

        return boto3.session.Session()

    def media_client(self, read_timeout):
        """The kinesis-video-media client on the stream's GET_MEDIA data endpoint (asked once)."""
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        session = self._session()
        what = "kvs stream {}".format(self.stream)
        if self._media is None:
            control = session.client("kinesisvideo", region_name=self.region or None,
                                     endpoint_url=self.endpoint_url or None,
                                     config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5))
            try:
                self._media = control.get_data_endpoint(StreamName=self.stream, APIName="GET_MEDIA")["DataEndpoint"]
            except (BotoCoreError, ClientError) as err:
                raise _aws_error(err, what) or RoadedgeError("{}: GetDataEndpoint failed ({})".format(what, err)) from None
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=read_timeout)
        return session.client("kinesis-video-media", region_name=self.region or None, endpoint_url=self._media,
                              config=config)

    def _open(self, client, selector):
        from botocore.exceptions import BotoCoreError, ClientError

        self.requests += 1
        try:
            return client.get_media(StreamName=self.stream, StartSelector=selector)["Payload"]
        except (BotoCoreError, ClientError) as err:
            fatal = _aws_error(err, "kvs stream {} (GetMedia)".format(self.stream))
            if fatal is not None:
                raise fatal from None
            return None

    def _chunks(self, payload):
        """The response body as it arrives: one HTTP chunk at a time (GetMedia answers chunked), else what is there."""
        raw = payload._raw_stream  # botocore's StreamingBody over urllib3's response; read() would wait for amt bytes
        if getattr(raw, "chunked", False):
            yield from raw.read_chunked(decode_content=False)
        else:
            while True:
                data = raw.read1(65536)
                if not data:
                    return
                yield data

    def fragments(self, selector, until_idle_s=None, stop=None):
        """Fragments from `selector` on, across reconnections. Ends once until_idle_s pass without a fragment (never
        when None) or when `stop` (a threading.Event) is set; the caller may also just stop iterating."""
        import urllib3.exceptions

        client = self.media_client(min(until_idle_s, LIVE_READ_TIMEOUT_S) if until_idle_s else LIVE_READ_TIMEOUT_S)
        last_number, last_seen = None, self.clock()
        while stop is None or not stop.is_set():
            payload = self._open(client, selector)
            reader = GetMediaReader()
            try:
                for data in (self._chunks(payload) if payload is not None else ()):
                    for fragment in reader.feed(data):
                        if last_number is not None and not later(fragment.number, last_number):
                            continue  # sent again after a reconnection
                        self.fragments_read += 1
                        self._trailing(fragment.trailing)
                        last_number, last_seen = fragment.number, self.clock()
                        yield fragment
                        last_seen = self.clock()  # idle time is the service's, not ours spent on the fragment
                        if stop is not None and stop.is_set():
                            return
                reader.end()
                self._trailing(reader.trailing)  # an error tag may come after the last fragment
            except (OSError, urllib3.exceptions.HTTPError):
                pass  # a broken or timed-out connection: continue after the last fragment
            except MkvError as err:
                raise RoadedgeError("kvs stream {}: GetMedia sent MKV this reader cannot follow ({})".format(
                    self.stream, err)) from None
            finally:
                if payload is not None:
                    payload.close()
            if until_idle_s is not None and self.clock() - last_seen >= until_idle_s:
                return
            if last_number is not None:
                selector = ({"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": self.continuation_token}
                            if self.continuation_token else
                            {"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": last_number})
            self.sleep(RECONNECT_PAUSE_S)

    def _trailing(self, trailing):
        if "ERROR_ID" in trailing or "ERROR_CODE" in trailing:
            raise RoadedgeError("kvs stream {}: GetMedia stopped with error {} {}".format(
                self.stream, trailing.get("ERROR_ID", ""), trailing.get("ERROR_CODE", "")).strip())
        if trailing.get("CONTINUATION_TOKEN"):
            self.continuation_token = trailing["CONTINUATION_TOKEN"]
        if trailing.get("MILLIS_BEHIND_NOW"):
            self.millis_behind_now = trailing["MILLIS_BEHIND_NOW"]
