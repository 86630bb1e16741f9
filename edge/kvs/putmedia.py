"""One PutMedia connection: a SigV4-signed POST whose body is an MKV stream sent in HTTP chunks for as long as the
producer likes, while the service's acknowledgements come back on the same connection (read by a thread).

    session = PutMediaSession(data_endpoint, "rc-car-1", credentials, "us-east-1", on_ack=acks.append)
    session.open(producer_start_ms)          # headers sent, HTTP 200 awaited (RoadedgeError / ConnectionError otherwise)
    session.send(mkv_header); session.send(cluster) ...
    session.close()                          # the final chunk; waits (bounded) for the last acknowledgements

Headers (AWS's PutMedia reference): x-amzn-stream-name, x-amzn-fragment-timecode-type ABSOLUTE (RELATIVE
timecodes restart at 0 on every reconnect), x-amzn-producer-start-timestamp (seconds with milliseconds),
x-amzn-fragment-acknowledgment-required 1, Transfer-Encoding chunked. The body cannot be hashed before it is sent,
so the signature covers the headers with the payload hash UNSIGNED-PAYLOAD (x-amz-content-sha256), as AWS's own
producer SDKs sign it.
"""
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

from edge.kvs.acks import AckReader
from roadedge.core.errors import RoadedgeError, os_reason


def signed_headers(url, stream_name, credentials, region, start_ms, now=None):
    """The PutMedia request's headers, signed (botocore SigV4, service kinesisvideo, UNSIGNED-PAYLOAD)."""
    import datetime

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    headers = {"x-amzn-stream-name": stream_name, "x-amzn-fragment-timecode-type": "ABSOLUTE",
               "x-amzn-producer-start-timestamp": "%.3f" % (start_ms / 1000.0),
               "x-amzn-fragment-acknowledgment-required": "1", "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    request = AWSRequest(method="POST", url=url, headers=headers, data=b"")
    if now is not None:
        request.context["timestamp"] = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime(
            "%Y%m%dT%H%M%SZ")
    SigV4Auth(credentials, "kinesisvideo", region).add_auth(request)
    return dict(request.headers.items())


class PutMediaSession(object):
    """The upload side is the caller's thread (send); a reader thread turns the response into Ack calls."""

    def __init__(self, endpoint, stream_name, credentials, region, on_ack, timeout=10.0, ssl_context=None):
        self.url = endpoint.rstrip("/") + "/putMedia"
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RoadedgeError("kvs data endpoint {!r}: expected an http(s) URL".format(endpoint))
        self.parts, self.stream_name, self.credentials, self.region = parts, stream_name, credentials, region
        self.on_ack, self.timeout, self.ssl_context = on_ack, float(timeout), ssl_context
        self.sock = self.reader = None
        self.closed = threading.Event()
        self.error = None  # why the reader stopped early (a ConnectionError / RoadedgeError), or None
        self.sent_bytes = 0

    def open(self, start_ms):
        host, port = self.parts.hostname, self.parts.port or (443 if self.parts.scheme == "https" else 80)
        try:
            sock = socket.create_connection((host, port), timeout=self.timeout)
            if self.parts.scheme == "https":
                sock = (self.ssl_context or ssl.create_default_context()).wrap_socket(sock, server_hostname=host)
        except OSError as err:
            raise ConnectionError("kvs putMedia {}:{}: {}".format(host, port, os_reason(err))) from err
        headers = signed_headers(self.url, self.stream_name, self.credentials, self.region, start_ms)
        lines = ["POST {} HTTP/1.1".format(self.parts.path or "/putMedia"), "Host: {}".format(self.parts.netloc),
                 "Transfer-Encoding: chunked", "Connection: keep-alive"]
        lines += ["{}: {}".format(name, value) for name, value in headers.items()]
        self.sock = sock
        self._write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        stream = sock.makefile("rb")
        status, reason, response_headers = self._read_head(stream)
        if status != 200:
            body = stream.read(int(response_headers.get("content-length", "0") or 0) or 0)[:300]
            self.abort()
            kind = response_headers.get("x-amzn-errortype", "").split(":")[0]
            text = "kvs putMedia {}: HTTP {} {} {}".format(self.stream_name, status, kind or reason,
                                                           " ".join(body.decode("utf-8", "replace").split()))
            raise (ConnectionError if status >= 500 or status == 429 else RoadedgeError)(text.strip())
        sock.settimeout(None)
        self.reader = threading.Thread(target=self._read_acks, args=(stream, response_headers), daemon=True,
                                       name="roadedge-kvs-acks")
        self.reader.start()

    def _read_head(self, stream):
        try:
            status_line = stream.readline(65537).decode("latin-1").strip()
            headers = {}
            while True:
                line = stream.readline(65537).decode("latin-1")
                if line in ("\r\n", "\n", ""):
                    break
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            version, status, reason = (status_line.split(" ", 2) + ["", ""])[:3]
            return int(status), reason, headers
        except (OSError, ValueError) as err:
            self.abort()
            raise ConnectionError("kvs putMedia {}: no HTTP answer ({})".format(self.stream_name, err)) from err

    def _read_acks(self, stream, headers):
        reader = AckReader()
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        try:
            while True:
                if chunked:
                    size_line = stream.readline(1024)
                    if not size_line:
                        raise ConnectionError("kvs putMedia {}: the connection closed".format(self.stream_name))
                    size = int(size_line.split(b";")[0].strip() or b"0", 16)
                    data = stream.read(size) if size else b""
                    stream.readline(3)
                    if not size:
                        break
                else:
                    data = stream.read1(65536) if hasattr(stream, "read1") else stream.read(1)
                    if not data:
                        break
                for ack in reader.feed(data):
                    self.on_ack(ack)
            for ack in reader.close():
                self.on_ack(ack)
        except (OSError, ValueError, RoadedgeError) as err:
            if not self.closed.is_set():
                self.error = err if isinstance(err, (ConnectionError, RoadedgeError)) else ConnectionError(
                    "kvs putMedia {}: {}".format(self.stream_name, err))
        finally:
            self.closed.set()

    def _write(self, data):
        try:
            self.sock.sendall(data)
        except OSError as err:
            raise ConnectionError("kvs putMedia {}: sending failed ({})".format(self.stream_name, os_reason(err))) \
                from err

    def send(self, data):
        """One chunk of the MKV stream; ConnectionError when the connection is gone."""
        if self.closed.is_set():
            raise self.error or ConnectionError("kvs putMedia {}: the connection ended".format(self.stream_name))
        if data:
            self._write(b"%x\r\n" % len(data) + bytes(data) + b"\r\n")
            self.sent_bytes += len(data)

    def close(self, wait_s=5.0):
        """End the upload (the final chunk) and wait up to wait_s for the service to finish its acknowledgements."""
        if self.sock is None:
            return
        try:
            if not self.closed.is_set():
                self._write(b"0\r\n\r\n")
            deadline = time.monotonic() + wait_s
            while not self.closed.is_set() and time.monotonic() < deadline:
                self.closed.wait(0.05)
        except ConnectionError:
            pass
        finally:
            self.abort()

    def abort(self):
        """Drop the connection at once (a stall, an ERROR acknowledgement the producer answers by reconnecting)."""
        sock, self.sock = self.sock, None
        self.closed.set()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
