"""The MQTT sink's connection: the TLS context (client certificate, CA, ALPN for AWS IoT on 443), paho's client
class that reports why an attempt failed, and one-line reasons for failed attempts. Not a plugin (no TYPE)."""
import os
import socket
import sys

from roadedge.core.errors import RoadedgeError

ALPN_AWS_IOT = "x-amzn-mqtt-ca"
TLS_PROBLEMS = (  # OpenSSL reason -> what it means here (the first match wins)
    ("CERTIFICATE_VERIFY_FAILED", "the broker's certificate is not trusted"),
    ("UNKNOWN_CA", "the broker does not trust our client certificate (unknown CA)"),
    ("BAD_CERTIFICATE", "the broker refused our client certificate (bad certificate)"),
    ("CERTIFICATE_UNKNOWN", "the broker refused our client certificate (certificate unknown)"),
    ("CERTIFICATE_REQUIRED", "the broker requires a client certificate"),
    ("CERTIFICATE_EXPIRED", "a certificate has expired"),
    ("CERTIFICATE_REVOKED", "our client certificate is revoked"),
    ("NO_APPLICATION_PROTOCOL", "the broker does not accept ALPN " + ALPN_AWS_IOT),
    ("WRONG_VERSION_NUMBER", "the port does not speak TLS"),
    ("HANDSHAKE_FAILURE", "no protocol or cipher in common"),
)



def describe_failure(error):
    """(text, permanent) for a failed connection attempt, from an exception or paho's error log line."""
    text = str(error)
    upper = text.upper()
    for token, meaning in TLS_PROBLEMS:
        if token in upper:
            detail = getattr(error, "verify_message", None)
            return "TLS handshake failed: " + meaning + (" ({})".format(detail) if detail else ""), True
    ssl = sys.modules.get("ssl")  # not imported: no TLS was tried, so no SSLError
    if (ssl is not None and isinstance(error, ssl.SSLError)) or "[SSL" in text:
        return "TLS failed: " + text, True
    if isinstance(error, ConnectionRefusedError) or "refused" in text.lower():
        return "connection refused (no broker listening?)", False
    if isinstance(error, socket.gaierror):
        return "cannot resolve the host name ({})".format(error), False
    if isinstance(error, socket.timeout):
        return "connection timed out", False
    return text or type(error).__name__, False


def _file(options, key):
    path = os.path.expanduser(options[key])
    if not os.path.isfile(path):
        raise RoadedgeError("mqtt sink: {}: {}: no such file".format(key, options[key]))
    return path


def tls_context(options):
    """The client's SSLContext: verify the broker against `ca` (or the system CAs), present cert + key, ALPN."""
    if bool(options["cert"]) != bool(options["key"]):
        raise RoadedgeError("mqtt sink: cert and key go together; got only {}".format("cert" if options["cert"] else "key"))
    import ssl  # here: ssl's libraries cost a plugin registry without TLS 4 MiB

    ca = _file(options, "ca") if options["ca"] else None
    try:
        context = ssl.create_default_context(cafile=ca)
    except (ssl.SSLError, OSError) as err:
        raise RoadedgeError("mqtt sink: ca: {}: not a PEM CA certificate ({})".format(options["ca"], err)) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if options["cert"]:
        try:
            context.load_cert_chain(_file(options, "cert"), _file(options, "key"))
        except ssl.SSLError as err:
            raise RoadedgeError("mqtt sink: cert/key: {} / {}: cannot load them as a PEM certificate and its key "
                                "({})".format(options["cert"], options["key"], err.reason or err)) from None
    if options["alpn"]:
        context.set_alpn_protocols([ALPN_AWS_IOT])
    return context


def client_class(mqtt):
    class Client(mqtt.Client):
        """paho's client, telling the sink why a connection attempt failed (paho only says 'retrying')."""

        roadedge_attempt_failed = None

        def reconnect(self):
            try:
                return super().reconnect()
            except OSError as err:
                if self.roadedge_attempt_failed is not None:
                    self.roadedge_attempt_failed(err)
                raise

    return Client
