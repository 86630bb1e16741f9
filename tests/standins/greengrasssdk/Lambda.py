"""Stand-in for greengrasssdk/Lambda.py: `_invoke_internal` records instead of posting to the core's IPC server."""
import base64
import io
import json

invocations = []
_failures = [0]


class InvocationException(Exception):
    pass


def fail_next(count=1):
    _failures[0] = int(count)


def reset():
    del invocations[:]
    _failures[0] = 0


def published():
    """[(topic, payload, queueFullPolicy)] of the iot-data publishes so far."""
    return [(call["client_context"]["custom"]["subject"], call["payload"],
             call["client_context"]["custom"].get("queueFullPolicy")) for call in invocations]


class Client:
    def __init__(self, endpoint="localhost", port=8000):
        self.endpoint, self.port = endpoint, port

    def _invoke_internal(self, function_arn, payload, client_context, invocation_type="RequestResponse"):
        if _failures[0] > 0:
            _failures[0] -= 1
            raise InvocationException("Failed to invoke function due to <urlopen error [Errno 111] Connection refused>")
        if isinstance(payload, str):  # what urllib.request says about a str request body
            raise TypeError("POST data should be bytes, an iterable of bytes, or a file object. It cannot be of type str.")
        body = payload.read() if hasattr(payload, "read") else bytes(payload)
        invocations.append({"function_arn": function_arn, "payload": body,
                            "client_context": json.loads(base64.b64decode(client_context).decode()),
                            "invocation_type": invocation_type})
        return {"Payload": b"", "FunctionError": ""}


class StreamingBody(object):
    def __init__(self, payload):
        self._raw_stream = io.BytesIO(payload)

    def read(self, amt=None):
        return self._raw_stream.read(amt)

    def close(self):
        self._raw_stream.close()
