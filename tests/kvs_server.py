"""A local Kinesis Video Streams for tests: control plane, PutMedia and GetMedia on one loopback port, with faults on
demand.

    with KvsServer() as kvs:                 # 127.0.0.1, a free port, a thread per connection
        kvs.url, kvs.access_key, kvs.secret_key, kvs.region
        kvs.fail_next(2, 5001); kvs.drop_after(3); kvs.stall(1.5)
        kvs.streams["cam"].fragments         # every Cluster received: timecode, keyframes, blocks, raw, status

Every request must carry a SigV4 signature (service `kinesisvideo`) by the known credentials; the server
recomputes it with botocore's SigV4Auth from the signed headers it received and answers 403 with an AWS-style
JSON error (x-amzn-ErrorType SignatureDoesNotMatch) when it differs or the date is over 15 minutes off.

Signing PutMedia: its body is an endless chunked stream, so no producer can hash it before sending. The Java
producer SDK signs POSTs with the payload hash `UNSIGNED-PAYLOAD` and sends it as `x-amz-content-sha256`; the
body is never part of the signature. The server accepts exactly that: a PutMedia signature is recomputed over
an empty body, so the payload hash is the `x-amz-content-sha256` header when it was signed (UNSIGNED-PAYLOAD,
what our producer sends) and otherwise the empty string's SHA-256 (what a signer given no body computes).

PutMedia: answers 200 with a chunked body at once, then, while it reads the upload's chunks and parses the MKV
(tests/kvs_ebml.py), one JSON line per ack: BUFFERING when a Cluster's Timecode is read, RECEIVED and PERSISTED
when the Cluster is complete. ERROR 4004 (and the fragment is not kept) when its producer timestamp is not later
than the stream's last kept fragment (the session goes on); ERROR 4006 on MKV it cannot read and 4000 on broken
chunk framing (both end the session with the final chunk). A connection closed without the final chunk ends
the session without acking a Cluster of unknown size still open. One PutMedia per stream at a time: a second
gets 400 ConnectionLimitExceededException. No IDLE acks are sent.

GetMedia (tests/kvs_getmedia.py): what PutMedia persisted, one MKV per fragment with the service's tags, then new
fragments as they are persisted; the response ends after `get_media_idle_s` without one.
"""
import datetime
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.kvs_ebml import MkvReader

ACCESS_KEY = "AKIDKVSTEST"
SECRET_KEY = "kvs-test-secret"
REGION = "us-east-1"
MAX_SKEW_S = 15 * 60


class Stream(object):
    """A stream kept in memory, with everything PutMedia received on it."""

    def __init__(self, name, media_type, retention, account="123456789012", region=REGION):
        self.name = name
        self.media_type = media_type
        self.retention = retention
        self.arn = "arn:aws:kinesisvideo:{}:{}:stream/{}/{}".format(region, account, name, int(time.time() * 1000))
        self.created = time.time()
        self.fragments = []  # tests.kvs_ebml.Fragment, each with status 'PERSISTED' or an error id
        self.headers = []  # each PutMedia's request headers (a dict)
        self.last_ms = None  # producer timestamp (ms) of the last kept fragment
        self.uploading = False

    def persisted(self):
        return [f for f in self.fragments if f.status == "PERSISTED"]

    def info(self):
        return {"StreamName": self.name, "StreamARN": self.arn, "MediaType": self.media_type, "Status": "ACTIVE",
                "Version": "1", "CreationTime": self.created, "DataRetentionInHours": self.retention,
                "KmsKeyId": "arn:aws:kms:{}:123456789012:alias/aws/kinesisvideo".format(REGION)}


def verify_signature(headers, method, path, body, access_key=ACCESS_KEY, secret_key=SECRET_KEY, region=REGION, now=None):
    """None if the request's SigV4 signature is the one botocore computes for these credentials, else
    (x-amzn-ErrorType, message). `headers`: any mapping with items() (names in any case; the first of repeats)."""
    headers = {name.lower(): value for name, value in reversed(list(headers.items()))}
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "MissingAuthenticationTokenException", "no SigV4 Authorization header"
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(",") if "=" in part)
    scope = fields.get("Credential", "").split("/")
    if len(scope) != 5 or scope[0] != access_key:
        return "UnrecognizedClientException", "unknown access key"
    if scope[2:] != [region, "kinesisvideo", "aws4_request"]:
        return "SignatureDoesNotMatch", "credential scope {} is not {}/kinesisvideo".format("/".join(scope[1:]), region)
    stamp = headers.get("x-amz-date", "")
    try:
        when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return "SignatureDoesNotMatch", "no X-Amz-Date"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if abs((now - when).total_seconds()) > MAX_SKEW_S or scope[1] != stamp[:8]:
        return "InvalidSignatureException", "signature expired or dated wrongly"
    signed = [h for h in fields.get("SignedHeaders", "").split(";") if h]
    if "host" not in signed or any(headers.get(h) is None for h in signed):
        return "SignatureDoesNotMatch", "host not signed, or a signed header missing"
    request = AWSRequest(method=method, url="http://{}{}".format(headers["host"], path),
                         headers={h: headers[h] for h in signed}, data=body)
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(access_key, secret_key), "kinesisvideo", region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, fields.get("Signature", "")):
        return "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided."
    return None


class KvsServer(ThreadingHTTPServer):
    """The test server (see the module docstring). Knobs apply to the next PutMedia fragments on any stream."""

    daemon_threads = True

    def __init__(self, access_key=ACCESS_KEY, secret_key=SECRET_KEY, region=REGION):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.access_key, self.secret_key, self.region = access_key, secret_key, region
        self.url = "http://127.0.0.1:{}".format(self.server_address[1])
        self.streams = {}
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # notified when a fragment is kept (GetMedia waits on it)
        self.get_media_idle_s = 2.0  # a GetMedia response ends after this long without a new fragment
        self.requests = []  # (path, status) of every request answered
        self._fail = []  # error ids for the next fragments that would be PERSISTED
        self._drop_after = None
        self._stall_until = 0.0
        self._fragment_number = 91343852333181432392682062607743920146264772256
        self._thread = None

    def __enter__(self):
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), name="kvs-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
        self._thread.join(5)

    def create(self, name, media_type="video/h264", retention=24):
        """Creates a stream directly (no signed request), as a test's setup."""
        with self.lock:
            self.streams[name] = Stream(name, media_type, retention)
            return self.streams[name]

    def fail_next(self, n, error_id=5000):
        """The next n fragments get ERROR error_id where PERSISTED was due (after BUFFERING and RECEIVED)."""
        with self.lock:
            self._fail = [error_id] * n

    def drop_after(self, n_fragments):
        """The PutMedia connection is cut (no final chunk) once n more fragments have been acknowledged."""
        with self.lock:
            self._drop_after = n_fragments

    def stall(self, seconds):
        """PutMedia handlers read and acknowledge nothing for `seconds`, from the next chunk they read."""
        with self.lock:
            self._stall_until = time.monotonic() + seconds

    def stall_left(self):
        with self.lock:
            return self._stall_until - time.monotonic()

    def fragment_number(self):
        """The next fragment number: digits, longer than an int64, like the service's."""
        with self.lock:
            self._fragment_number += 1
            return str(self._fragment_number)

    def next_outcome(self):
        """(status for a complete fragment, whether to cut the connection after its acks)."""
        with self.lock:
            status = self._fail.pop(0) if self._fail else "PERSISTED"
            drop = False
            if self._drop_after is not None:
                self._drop_after -= 1
                drop = self._drop_after <= 0
                self._drop_after = None if drop else self._drop_after
            return status, drop


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        server = self.server
        path = self.path.split("?", 1)[0]
        if path == "/putMedia":
            self.close_connection = True  # an unread streamed body: nothing after it can be another request
            bad = verify_signature(self.headers, "POST", path, b"", server.access_key, server.secret_key, server.region)
            return self._error(403, *bad) if bad else self._put_media()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        bad = verify_signature(self.headers, "POST", path, body, server.access_key, server.secret_key, server.region)
        if bad:
            return self._error(403, *bad)
        try:
            request = json.loads(body.decode("utf-8") or "{}")
        except ValueError:
            return self._error(400, "InvalidArgumentException", "the body is not JSON")
        handler = {"/createStream": self._create, "/describeStream": self._describe,
                   "/getDataEndpoint": self._endpoint, "/getMedia": self._get_media}.get(path)
        if handler is None:
            return self._error(404, "UnknownOperationException", "no operation " + path)
        handler(request)

    def _reply(self, status, payload, headers=()):
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", "test-request")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.server.requests.append((self.path, status))

    def _error(self, status, kind, message):
        self._reply(status, {"message": message}, [("x-amzn-ErrorType", kind)])

    def _stream(self, name):
        with self.server.lock:
            return self.server.streams.get(name)

    def _create(self, request):
        name = request.get("StreamName")
        with self.server.lock:
            if name in self.server.streams:
                return self._error(400, "ResourceInUseException", "stream {} exists".format(name))
            stream = self.server.streams[name] = Stream(name, request.get("MediaType", ""),
                                                        request.get("DataRetentionInHours", 0))
        self._reply(200, {"StreamARN": stream.arn})

    def _describe(self, request):
        stream = self._stream(request.get("StreamName"))
        if stream is None:
            return self._error(404, "ResourceNotFoundException", "no stream {}".format(request.get("StreamName")))
        self._reply(200, {"StreamInfo": stream.info()})

    def _endpoint(self, request):
        if request.get("APIName") not in ("PUT_MEDIA", "GET_MEDIA"):
            return self._error(400, "InvalidArgumentException", "only APIName PUT_MEDIA and GET_MEDIA are served here")
        if self._stream(request.get("StreamName")) is None:
            return self._error(404, "ResourceNotFoundException", "no stream {}".format(request.get("StreamName")))
        self._reply(200, {"DataEndpoint": self.server.url})

    def _get_media(self, request):
        from tests.kvs_getmedia import serve_get_media

        serve_get_media(self, request)

    def _put_media(self):
        stream = self._stream(self.headers.get("x-amzn-stream-name"))
        kind = self.headers.get("x-amzn-fragment-timecode-type")
        try:
            start_ms = int(round(float(self.headers.get("x-amzn-producer-start-timestamp", "")) * 1000))
        except (ValueError, OverflowError):
            start_ms = None
        if stream is None:
            return self._error(404, "ResourceNotFoundException", "no stream {}".format(self.headers.get("x-amzn-stream-name")))
        if kind not in ("ABSOLUTE", "RELATIVE") or start_ms is None:
            return self._error(400, "InvalidArgumentException", "bad timecode type or producer start timestamp")
        with self.server.lock:
            busy, stream.uploading = stream.uploading, True
            if not busy:
                stream.headers.append(dict(self.headers.items()))
        if busy:
            return self._error(400, "ConnectionLimitExceededException", "a PutMedia is already open on this stream")
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.server.requests.append((self.path, 200))
            _Upload(self, stream, start_ms if kind == "RELATIVE" else 0).run()
        except OSError:
            pass  # the client went away
        finally:
            with self.server.lock:
                stream.uploading = False


class _Upload(object):
    """One PutMedia session: the request body's chunks in, the MKV's fragments out as acks."""

    def __init__(self, handler, stream, offset_ms):
        self.handler, self.server, self.stream, self.offset_ms = handler, handler.server, stream, offset_ms
        self.reader = MkvReader()

    def run(self):
        chunked = "chunked" in self.handler.headers.get("Transfer-Encoding", "").lower()
        left = None if chunked else int(self.handler.headers.get("Content-Length") or 0)
        while True:
            self._stall()
            try:
                data = self._read_chunk() if chunked else self._read_plain(left)
            except ValueError:  # chunk framing broken: the service's "error reading the data stream"
                self._ack("ERROR", None, 4000)
                self.handler.wfile.write(b"0\r\n\r\n")
                return
            self._stall()
            if left is not None:
                left -= len(data)
            if not data:
                break
            if not self._handle(self.reader.feed(data)):
                return
        if self._handle(self.reader.end()):
            self.handler.wfile.write(b"0\r\n\r\n")

    def _stall(self):
        wait = self.server.stall_left()
        while wait > 0:
            time.sleep(wait)
            wait = self.server.stall_left()

    def _read_chunk(self):
        rfile = self.handler.rfile
        line = rfile.readline(1024)
        if not line:
            raise OSError("the connection closed without the final chunk")
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while rfile.readline(1024).strip():
                pass  # trailers
            return b""
        if size > 64 * 1024 * 1024:
            raise ValueError("a chunk of {} bytes".format(size))
        data = rfile.read(size)
        if len(data) < size:
            raise OSError("the upload ended inside a chunk")
        if rfile.readline(8) != b"\r\n":
            raise ValueError("no CRLF after a chunk")
        return data

    def _read_plain(self, left):
        return self.handler.rfile.read1(min(left, 65536)) if left > 0 else b""

    def _ack(self, event_type, fragment=None, error_id=None):
        ack = {"EventType": event_type}
        if fragment is not None:
            ack["FragmentTimecode"] = fragment.timecode
            ack["FragmentNumber"] = fragment.number
        if error_id is not None:
            ack["ErrorId"] = error_id
        data = json.dumps(ack).encode("utf-8") + b"\n"
        self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _handle(self, events):
        """Acks for the parser's events; False once the session is over (4006, or a drop)."""
        for event, fragment in events:
            if event == "start":
                fragment.number = self.server.fragment_number()
                fragment.producer_ms = fragment.timecode + self.offset_ms
                fragment.late = self.stream.last_ms is not None and fragment.producer_ms <= self.stream.last_ms
                if not fragment.late:
                    self._ack("BUFFERING", fragment)
            elif fragment.late:
                fragment.status = 4004
                self._record(fragment)
                self._ack("ERROR", fragment, 4004)
            else:
                fragment.status, drop = self.server.next_outcome()
                self._record(fragment)
                self._ack("RECEIVED", fragment)
                if fragment.status == "PERSISTED":
                    if self.stream.retention:  # a stream that keeps no data never persists: RECEIVED is all
                        self._ack("PERSISTED", fragment)
                else:
                    self._ack("ERROR", fragment, fragment.status)
                if drop:
                    self.handler.connection.shutdown(socket.SHUT_RDWR)
                    return False
        if self.reader.error is not None:
            current = self.reader.current()
            self._ack("ERROR", current if current is not None and current.number is not None else None, 4006)
            self.handler.wfile.write(b"0\r\n\r\n")
            return False
        return True

    def _record(self, fragment):
        with self.server.lock:
            fragment.header = bytes(self.reader.header)  # what GetMedia serves before the Cluster: its Info and Tracks
            fragment.server_ms = int(time.time() * 1000)
            self.stream.fragments.append(fragment)
            if fragment.status == "PERSISTED":
                self.stream.last_ms = fragment.producer_ms
            self.server.changed.notify_all()
