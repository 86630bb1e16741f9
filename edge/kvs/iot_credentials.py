"""AWS IoT's credentials provider: a device's X.509 certificate exchanged for temporary AWS credentials through a
role alias, so a car or a DeepLens streams to Kinesis Video without long-lived keys on its SD card.

    GET https://<credentials endpoint>/role-aliases/<role alias>/credentials
    x-amzn-iot-thingname: <thing name>          (TLS with the thing's certificate and private key)
    -> {"credentials": {"accessKeyId", "secretAccessKey", "sessionToken", "expiration": "2026-12-01T17:02:00Z"}}

The credentials are kept until REFRESH_BEFORE_S before they expire and asked for again then (botocore's
RefreshableCredentials does the asking, so a signer always signs with fresh ones). A refusal (403: the role alias
or the certificate's policy) is a one-line RoadedgeError; a network failure a ConnectionError to retry.
"""
import calendar
import collections
import http.client
import json
import os
import ssl
import time
from urllib.parse import quote, urlsplit

from roadedge.core.errors import RoadedgeError, os_reason

REFRESH_BEFORE_S = 300.0
Credentials = collections.namedtuple("Credentials", "access_key secret_key token expiry")  # expiry: epoch seconds


def _expiry(text):
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        raise RoadedgeError("iot credentials: expiration {!r}; expected YYYY-MM-DDTHH:MM:SSZ".format(text)) from None


class IotCredentialsProvider(object):
    """fetch() -> Credentials from the provider; botocore() -> RefreshableCredentials that call it as needed."""

    def __init__(self, endpoint, role_alias, thing_name, cert, key, ca="", timeout=10.0):
        parts = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        if parts.scheme != "https" or not parts.hostname:
            raise RoadedgeError("iot_credentials.endpoint {!r}: expected the account's credentials endpoint, e.g. "
                                "xxxx.credentials.iot.us-east-1.amazonaws.com".format(endpoint))
        self.host, self.port = parts.hostname, parts.port or 443
        self.path = "/role-aliases/{}/credentials".format(quote(role_alias, safe=""))
        self.role_alias, self.thing_name, self.timeout = role_alias, thing_name, float(timeout)
        self.context = self._tls(cert, key, ca)
        self.fetches = 0

    @staticmethod
    def _tls(cert, key, ca):
        for name, path in (("cert", cert), ("key", key), ("ca", ca)):
            if (path or name != "ca") and not os.path.isfile(str(path)):
                raise RoadedgeError("iot_credentials: {}: {}: no such file".format(name, path))
        try:
            context = ssl.create_default_context(cafile=ca or None)
            context.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as err:
            raise RoadedgeError("iot_credentials: cert {} / key {} / ca {}: cannot load them ({})".format(
                cert, key, ca or "(system)", getattr(err, "reason", None) or os_reason(err))) from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def fetch(self):
        connection = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.context)
        try:
            connection.request("GET", self.path, headers={"x-amzn-iot-thingname": self.thing_name})
            response = connection.getresponse()
            body = response.read(1 << 16)
        except ssl.SSLError as err:
            raise RoadedgeError("iot credentials {}: TLS refused ({}); check the thing's certificate, key and "
                                "CA".format(self.host, err.reason or err)) from None
        except OSError as err:
            raise ConnectionError("iot credentials {}:{}: {}".format(self.host, self.port, os_reason(err))) from err
        finally:
            connection.close()
        if response.status != 200:
            text = " ".join(body.decode("utf-8", "replace").split())[:200]
            error = RoadedgeError if response.status in (400, 401, 403, 404) else ConnectionError
            raise error("iot credentials: role alias {} for thing {}: HTTP {} {}".format(
                self.role_alias, self.thing_name, response.status, text))
        try:
            answer = json.loads(body.decode("utf-8"))["credentials"]
            found = Credentials(answer["accessKeyId"], answer["secretAccessKey"], answer["sessionToken"],
                                _expiry(answer["expiration"]))
        except (ValueError, KeyError, TypeError) as err:
            raise RoadedgeError("iot credentials {}: answer without credentials ({})".format(self.host, err)) \
                from None
        self.fetches += 1
        return found

    def botocore(self):
        """botocore RefreshableCredentials, refreshed REFRESH_BEFORE_S before they expire."""
        import datetime

        from botocore.credentials import RefreshableCredentials

        def refresh():
            found = self.fetch()
            expiry = datetime.datetime.fromtimestamp(found.expiry, datetime.timezone.utc)
            return {"access_key": found.access_key, "secret_key": found.secret_key, "token": found.token,
                    "expiry_time": expiry.isoformat()}

        credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "iot-credentials-provider")
        credentials._advisory_refresh_timeout = REFRESH_BEFORE_S  # refresh this long before the expiry
        credentials._mandatory_refresh_timeout = REFRESH_BEFORE_S / 2
        return credentials
