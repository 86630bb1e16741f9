"""AWS IoT's credentials provider against a local HTTPS server that requires the thing's client certificate, as the
real one does: the path, the thing-name header and the certificate arrive; credentials are refreshed before they
expire; refusals are one line."""
import http.server
import json
import socket
import ssl
import threading
import time

import pytest

from edge.kvs.iot_credentials import REFRESH_BEFORE_S, IotCredentialsProvider
from roadedge.core.errors import RoadedgeError
from tests.pki import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


class Provider(object):
    """The credentials provider's endpoint on 127.0.0.1: mutual TLS, one role alias, a fixed lifetime per answer."""

    def __init__(self, pki, lifetime_s=3600, status=200):
        self.requests, self.lifetime_s, self.status = [], lifetime_s, status
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("x-amzn-iot-thingname"),
                                       dict(x[0] for x in self.connection.getpeercert()["subject"])["commonName"]))
                expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + outer.lifetime_s))
                n = len(outer.requests)
                body = {"credentials": {"accessKeyId": "ASIA%04d" % n, "secretAccessKey": "secret%d" % n,
                                        "sessionToken": "token%d" % n, "expiration": expiry}}
                data = json.dumps(body if outer.status == 200 else {"message": "Access Denied"}).encode()
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki["server"] + ".crt", pki["server"] + ".key")
        context.load_verify_locations(pki["ca"] + ".crt")
        context.verify_mode = ssl.CERT_REQUIRED
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.endpoint = "127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def provider_for(pki, endpoint, client="client"):
    return IotCredentialsProvider(endpoint, "kvs-producer-alias", "rc-car-1", pki[client] + ".crt", pki[client] + ".key",
                                  pki["ca"] + ".crt")


def test_the_thing_gets_credentials_with_its_certificate(pki):
    server = Provider(pki)
    try:
        found = provider_for(pki, server.endpoint).fetch()
    finally:
        server.close()
    assert server.requests == [("/role-aliases/kvs-producer-alias/credentials", "rc-car-1", "rc-car-1")]
    assert found.access_key == "ASIA0001" and found.token == "token1"
    assert abs(found.expiry - (time.time() + 3600)) < 5


def test_credentials_are_refreshed_before_they_expire_and_not_before(pki):
    server = Provider(pki, lifetime_s=3600)
    try:
        credentials = provider_for(pki, server.endpoint).botocore()
        assert credentials.get_frozen_credentials().access_key == "ASIA0001"
        assert credentials.get_frozen_credentials().access_key == "ASIA0001" and len(server.requests) == 1
        server.lifetime_s = REFRESH_BEFORE_S / 4  # the next answer expires soon: using it asks again
        credentials._expiry_time = credentials._expiry_time.replace(year=2000)  # the first ones have run out
        frozen = credentials.get_frozen_credentials()
        assert frozen.access_key == "ASIA0002" and frozen.token == "token2"
        assert credentials.get_frozen_credentials().access_key == "ASIA0003"  # within the refresh window: again
    finally:
        server.close()


def test_a_refusal_is_one_line_naming_the_role_alias_and_the_thing(pki):
    server = Provider(pki, status=403)
    try:
        with pytest.raises(RoadedgeError) as err:
            provider_for(pki, server.endpoint).fetch()
    finally:
        server.close()
    assert str(err.value) == ('iot credentials: role alias kvs-producer-alias for thing rc-car-1: HTTP 403 '
                              '{"message": "Access Denied"}')


def test_a_certificate_the_provider_does_not_trust_is_refused_clearly(pki):
    server = Provider(pki)
    try:
        with pytest.raises((RoadedgeError, ConnectionError)) as err:
            provider_for(pki, server.endpoint, client="rogue").fetch()
    finally:
        server.close()
    assert "iot credentials" in str(err.value) and "\n" not in str(err.value) and server.requests == []


def test_bad_settings_and_an_unreachable_provider(pki, tmp_path):
    with pytest.raises(RoadedgeError, match="iot_credentials.endpoint 'ftp://x'"):
        provider_for(pki, "ftp://x")
    with pytest.raises(RoadedgeError, match="iot_credentials: cert: .*missing.crt: no such file"):
        IotCredentialsProvider("h", "a", "t", str(tmp_path / "missing.crt"), pki["client"] + ".key")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionError, match="iot credentials 127.0.0.1:%d" % port):
        provider_for(pki, "127.0.0.1:%d" % port).fetch()
