"""Stand-in for the AWS IoT Greengrass Core SDK for Python (`greengrasssdk`, what a Greengrass v1 Lambda imports).

The layout and call signatures are those of aws/aws-greengrass-core-sdk-python
(greengrasssdk/__init__.py, client.py, IoTDataPlane.py, Lambda.py, v1.6):

    greengrasssdk.client("iot-data")     -> IoTDataPlane.Client(); unknown types raise Exception
    Client.publish(**kwargs)             keyword arguments only; `topic` required (ValueError if missing),
                                         `payload` optional (default b''), `queueFullPolicy` one of
                                         "AllOrException", "BestEffort", "" (ValueError otherwise); other
                                         keywords are ignored, as the real method ignores them
    -> Lambda.Client._invoke_internal(ROUTER_FUNCTION_ARN, payload, base64(client_context JSON), "Event")

Instead of posting to the core's IPC server, `_invoke_internal` records the
call (the real one sends the payload as an HTTP body, so a `str` payload is a
TypeError under Python 3, as urllib raises it). Test hooks: `invocations`
(dicts: function_arn, payload, client_context (decoded), invocation_type),
`published()` ([(topic, payload bytes, queueFullPolicy)]), `fail_next(n)` (the
next n invocations raise Lambda.InvocationException, as when the core's queue
is full or the IPC server is down), `reset()`.
"""
from .client import client
from .Lambda import StreamingBody, fail_next, invocations, published, reset

__version__ = "1.6.0"
INTERFACE_VERSION = "1.5"
__all__ = ["client", "StreamingBody", "fail_next", "invocations", "published", "reset"]
