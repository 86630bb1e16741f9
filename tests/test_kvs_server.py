"""The test KVS server itself: SigV4 on both planes, PutMedia's streamed acks per Cluster, and its fault knobs.

The client here is deliberately small and separate from the producer: botocore's own kinesisvideo client for the
control plane, and for PutMedia a raw socket (chunked request body going out while a thread reads the acks)."""
import datetime
import socket
import struct
import threading
import time

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from edge.kvs.acks import AckReader
from tests.kvs_ebml import MkvReader
from tests.kvs_server import ACCESS_KEY, REGION, SECRET_KEY, KvsServer, verify_signature

# -- a hand-built MKV: the few elements PutMedia needs ------------------------------------------------------------


def element(element_id, data=b"", size=None):
    """One EBML element; size=b'unknown' writes the 8-byte unknown size (Segment, streamed Clusters)."""
    head = element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
    if size == b"unknown":
        return head + b"\x01\xff\xff\xff\xff\xff\xff\xff" + data
    return head + (0x01 << 56 | len(data)).to_bytes(8, "big") + data


def uint(element_id, value):
    return element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


HEADER = (element(0x1A45DFA3, uint(0x4286, 1) + element(0x4282, b"matroska")) + element(0x18538067, size=b"unknown")
          + element(0x1549A966, uint(0x2AD7B1, 1000000))
          + element(0x1654AE6B, element(0xAE, uint(0xD7, 1) + element(0x86, b"V_MPEG4/ISO/AVC"))))


def cluster(timecode, keyframes=(True, False, False), unknown_size=False):
    blocks = b"".join(element(0xA3, b"\x81" + struct.pack(">hB", 33 * i, 0x80 if key else 0) + b"frame%d" % i)
                      for i, key in enumerate(keyframes))
    return element(0x1F43B675, uint(0xE7, timecode) + blocks, size=b"unknown" if unknown_size else None)


# -- a PutMedia client ------------------------------------------------------------------------------------------


class PutMedia(object):
    """One PutMedia request on a raw socket: send() writes a chunk; a thread reads the response and its acks."""

    def __init__(self, url, stream, secret=SECRET_KEY, kind="ABSOLUTE", start="1700000000.000", unsigned_payload=True):
        host = url.split("//", 1)[1]
        headers = {"x-amzn-stream-name": stream, "x-amzn-fragment-timecode-type": kind,
                   "x-amzn-producer-start-timestamp": start, "x-amzn-fragment-acknowledgment-required": "1"}
        if unsigned_payload:
            headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
        request = AWSRequest(method="POST", url=url + "/putMedia", headers=headers)
        SigV4Auth(Credentials(ACCESS_KEY, secret), "kinesisvideo", REGION).add_auth(request)
        lines = ["POST /putMedia HTTP/1.1", "Host: " + host, "Transfer-Encoding: chunked"]
        lines += ["{}: {}".format(k, v) for k, v in request.headers.items()]
        self.sock = socket.create_connection(("127.0.0.1", int(host.rsplit(":", 1)[1])), timeout=10)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        self.status, self.headers, self.body, self.acks, self.ended = None, {}, b"", [], None  # ended: 'final chunk' or 'cut'
        self.reader = AckReader()
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def send(self, data):
        self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def finish(self, timeout=5):
        self.sock.sendall(b"0\r\n\r\n")
        return self.wait(lambda: self.ended, timeout)

    def wait(self, predicate, timeout=5):
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def events(self):
        with self.changed:
            return [(a.event_type, a.fragment_timecode, a.error_id) for a in self.acks]

    def _read(self):
        rfile = self.sock.makefile("rb")
        try:
            status = int(rfile.readline().split()[1])
            headers = {}
            for line in iter(rfile.readline, b"\r\n"):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            with self.changed:
                self.status, self.headers = status, headers
                self.changed.notify_all()
            if headers.get("transfer-encoding") != "chunked":
                self._end(body=rfile.read(int(headers.get("content-length", 0))), how="final chunk")
                return
            while True:
                size = int(rfile.readline().strip(), 16)
                if size == 0:
                    return self._end(how="final chunk")
                data = rfile.read(size)
                rfile.readline()
                with self.changed:
                    self.acks.extend(self.reader.feed(data))
                    self.changed.notify_all()
        except (OSError, ValueError, IndexError):
            self._end(how="cut")

    def _end(self, body=b"", how=None):
        with self.changed:
            self.body, self.ended = body, how
            self.changed.notify_all()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reading thread; close() alone would not
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def kvs():
    with KvsServer() as server:
        server.create("cam")
        yield server


def control_client(url, secret=SECRET_KEY):
    return botocore.session.get_session().create_client(
        "kinesisvideo", endpoint_url=url, region_name=REGION, aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))


# -- control plane ----------------------------------------------------------------------------------------------


def test_control_plane_calls_signed_by_botocore_succeed_and_a_wrong_secret_gets_403(kvs):
    client = control_client(kvs.url)
    arn = client.create_stream(StreamName="road", DataRetentionInHours=24, MediaType="video/h264")["StreamARN"]
    info = client.describe_stream(StreamName="road")["StreamInfo"]
    assert (info["StreamARN"], info["Status"], info["DataRetentionInHours"]) == (arn, "ACTIVE", 24)
    assert client.get_data_endpoint(StreamName="road", APIName="PUT_MEDIA")["DataEndpoint"] == kvs.url
    with pytest.raises(ClientError) as missing:
        client.describe_stream(StreamName="nope")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as forbidden:
        control_client(kvs.url, secret="wrong").describe_stream(StreamName="road")
    assert forbidden.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert forbidden.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


# -- PutMedia ---------------------------------------------------------------------------------------------------


def test_each_cluster_is_acked_while_the_upload_is_still_open(kvs):
    put = PutMedia(kvs.url, "cam")
    put.send(HEADER)
    clusters = [cluster(1700000000000), cluster(1700000002000, (True, False)), cluster(1700000004000, (True,))]
    for n, data in enumerate(clusters):
        for i in range(0, len(data), 7):  # the Cluster in small pieces, as a slow link would deliver it
            put.send(data[i:i + 7])
        assert put.wait(lambda n=n: len(put.acks) == 3 * (n + 1)), put.events()  # before the next is sent
    tcs = [1700000000000, 1700000002000, 1700000004000]
    assert put.events() == [(kind, tc, None) for tc in tcs for kind in ("BUFFERING", "RECEIVED", "PERSISTED")]
    numbers = [a.fragment_number for a in put.acks]
    assert all(numbers[i] == numbers[i + 1] == numbers[i + 2] for i in (0, 3, 6)) and len(set(numbers)) == 3
    assert put.finish() == "final chunk" and put.status == 200
    got = kvs.streams["cam"].fragments
    assert [(f.timecode, f.blocks, f.keyframe, f.status) for f in got] == [
        (1700000000000, 3, True, "PERSISTED"), (1700000002000, 2, True, "PERSISTED"), (1700000004000, 1, True, "PERSISTED")]
    assert [bytes(f.raw) for f in got] == clusters and got[0].keyframes == [True, False, False]
    assert kvs.streams["cam"].headers[0]["x-amzn-fragment-acknowledgment-required"] == "1"
    put.close()


def test_unknown_size_clusters_relative_timecodes_and_an_empty_payload_hash(kvs):
    put = PutMedia(kvs.url, "cam", kind="RELATIVE", start="1700000000.500", unsigned_payload=False)
    put.send(HEADER + cluster(0, unknown_size=True))
    assert put.wait(lambda: len(put.acks) == 1) and put.events() == [("BUFFERING", 0, None)]
    put.send(cluster(2000, (False, True), unknown_size=True))  # the next Cluster ends the first
    assert put.wait(lambda: len(put.acks) == 4)
    assert put.finish() == "final chunk"  # the body's end ends the last
    assert put.events()[-2:] == [("RECEIVED", 2000, None), ("PERSISTED", 2000, None)]
    got = kvs.streams["cam"].fragments
    assert [(f.producer_ms, f.keyframe) for f in got] == [(1700000000500, True), (1700000002500, False)]
    put.close()


def test_a_timecode_not_later_than_the_last_gets_4004_and_bad_mkv_4006(kvs):
    put = PutMedia(kvs.url, "cam")
    put.send(HEADER + cluster(5000) + cluster(4000) + cluster(5000) + cluster(6000))
    assert put.finish()
    assert [e for e in put.events() if e[0] == "ERROR"] == [("ERROR", 4000, 4004), ("ERROR", 5000, 4004)]
    assert [f.timecode for f in kvs.streams["cam"].persisted()] == [5000, 6000]
    put.close()
    bad = PutMedia(kvs.url, "cam")
    bad.send(HEADER + cluster(7000) + b"\x00garbage")
    assert bad.wait(lambda: bad.ended) and bad.events()[-1] == ("ERROR", None, 4006)
    assert [f.timecode for f in kvs.streams["cam"].persisted()] == [5000, 6000, 7000]
    bad.close()


def test_bad_signature_unknown_stream_and_a_second_connection_are_refused(kvs):
    for put, status in ((PutMedia(kvs.url, "cam", secret="wrong"), 403), (PutMedia(kvs.url, "nope"), 404)):
        assert put.wait(lambda p=put: p.ended) and put.status == status, put.body
        put.close()
    first = PutMedia(kvs.url, "cam")
    assert first.wait(lambda: first.status == 200)
    second = PutMedia(kvs.url, "cam")
    assert second.wait(lambda: second.ended) and second.status == 400
    assert second.headers["x-amzn-errortype"] == "ConnectionLimitExceededException"
    first.close()
    second.close()


def test_fail_next_sends_error_instead_of_persisted(kvs):
    kvs.fail_next(1, 5001)
    put = PutMedia(kvs.url, "cam")
    put.send(HEADER + cluster(1000) + cluster(3000))
    assert put.finish()
    assert put.events() == [("BUFFERING", 1000, None), ("RECEIVED", 1000, None), ("ERROR", 1000, 5001),
                            ("BUFFERING", 3000, None), ("RECEIVED", 3000, None), ("PERSISTED", 3000, None)]
    assert [f.status for f in kvs.streams["cam"].fragments] == [5001, "PERSISTED"]
    put.close()


def test_drop_after_cuts_the_connection_mid_upload(kvs):
    kvs.drop_after(2)
    put = PutMedia(kvs.url, "cam")
    put.send(HEADER + cluster(1000) + cluster(3000))
    assert put.wait(lambda: put.ended) and put.ended == "cut"
    assert [e[0] for e in put.events()][-1] == "PERSISTED" and len(put.acks) == 6
    with pytest.raises(OSError):
        for _ in range(50):  # the server is gone: writing fails sooner or later
            put.send(cluster(5000))
            time.sleep(0.01)
    put.close()
    again = PutMedia(kvs.url, "cam")  # the stream is free for the next connection
    again.send(HEADER + cluster(5000))
    assert again.finish() == "final chunk" and again.events()[-1] == ("PERSISTED", 5000, None)
    again.close()


def test_stall_holds_back_reading_and_acks(kvs):
    put = PutMedia(kvs.url, "cam")
    assert put.wait(lambda: put.status == 200)
    kvs.stall(1.0)
    began = time.monotonic()
    put.send(HEADER + cluster(1000))
    assert not put.wait(lambda: put.acks, timeout=0.6)
    assert put.wait(lambda: len(put.acks) == 3, timeout=3)
    assert time.monotonic() - began >= 0.9
    put.finish()
    put.close()


def test_a_connection_closed_without_the_final_chunk_leaves_the_open_cluster_unacked(kvs):
    put = PutMedia(kvs.url, "cam")
    put.send(HEADER + cluster(1000, unknown_size=True) + cluster(3000, unknown_size=True))
    assert put.wait(lambda: len(put.acks) == 4)
    put.close()
    deadline = time.monotonic() + 5
    while kvs.streams["cam"].uploading and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [f.timecode for f in kvs.streams["cam"].fragments] == [1000]


def test_a_signature_more_than_15_minutes_off_is_refused():
    request = AWSRequest(method="POST", url="http://127.0.0.1:1/describeStream", data=b"{}")
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "kinesisvideo", REGION).add_auth(request)
    headers = dict(request.headers.items(), Host="127.0.0.1:1")
    assert verify_signature(headers, "POST", "/describeStream", b"{}") is None
    assert verify_signature(headers, "POST", "/describeStream", b"{ }")[0] == "SignatureDoesNotMatch"
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=16)
    assert verify_signature(headers, "POST", "/describeStream", b"{}", now=later)[0] == "InvalidSignatureException"


def test_broken_chunk_framing_gets_4000(kvs):
    put = PutMedia(kvs.url, "cam")
    put.send(HEADER + cluster(1000))
    put.sock.sendall(b"zz\r\n")
    assert put.wait(lambda: put.ended) and put.ended == "final chunk"
    assert put.events()[-1] == ("ERROR", None, 4000) and put.events()[-2] == ("PERSISTED", 1000, None)
    put.close()


# -- the server's MKV reader ------------------------------------------------------------------------------------


def read_all(pieces):
    """Everything MkvReader reports for the body in these pieces: its events and its error."""
    reader, seen = MkvReader(), []

    def note(events):  # a start is noted with the timecode only: the rest of its Cluster may not be read yet
        seen.extend((kind, f.timecode) if kind == "start" else (kind, f.timecode, tuple(f.keyframes), bytes(f.raw))
                    for kind, f in events)

    for piece in pieces:
        note(reader.feed(piece))
    note(reader.end())
    return seen, reader.error


mkv_bodies = st.lists(st.tuples(st.integers(0, 2 ** 40), st.lists(st.booleans(), min_size=1, max_size=4), st.booleans()),
                      max_size=5).map(lambda cs: HEADER + b"".join(cluster(tc, keys, unknown) for tc, keys, unknown in cs))


def test_mkv_reader_any_split_same_result_and_garbage_only_sets_error():
    count = {"inputs": 0, "fragments": 0, "errors": 0}

    flipped = st.tuples(mkv_bodies, st.integers(0, 10 ** 6), st.integers(0, 255)).map(
        lambda t: t[0][:t[1] % len(t[0])] + bytes([t[2]]) + t[0][t[1] % len(t[0]) + 1:])
    garbage = st.one_of(st.binary(max_size=200), st.binary(max_size=200).map(lambda b: HEADER + b"\x1fC\xb6u\x01" + b))
    @given(body=st.one_of(mkv_bodies, garbage, flipped, mkv_bodies.map(lambda b: b[:len(b) * 2 // 3])),
           cuts=st.lists(st.integers(0, 600), max_size=20))
    def check(body, cuts):
        count["inputs"] += 1
        whole = read_all([body])
        points = sorted(set(min(c, len(body)) for c in cuts))
        assert read_all([body[a:b] for a, b in zip([0] + points, points + [len(body)])]) == whole
        count["fragments"] += sum(1 for e in whole[0] if e[0] == "end")
        count["errors"] += whole[1] is not None

    check()
    print("\nmkv reader split property: {inputs} generated inputs, {fragments} fragments, {errors} errors".format(**count))
    assert count["fragments"] > 0 and count["errors"] > 0
