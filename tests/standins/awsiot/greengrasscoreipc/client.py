"""Stand-in for awsiot/greengrasscoreipc/client.py: the V1 client that clientv2 wraps (only what it needs)."""
import concurrent.futures

import awsiot.greengrasscoreipc as ipc
from awsiot.greengrasscoreipc import model


class GreengrassCoreIPCClient:
    def __init__(self, connection):
        self.connection = connection
        self.closed = False

    def close(self):
        self.closed = True
        future = concurrent.futures.Future()
        future.set_result(None)
        return future

    def publish_to_iot_core(self, request):
        """What the nucleus does with a PublishToIoTCore request: a response, or an error shape."""
        future = concurrent.futures.Future()
        if self.closed:
            from awsiot.eventstreamrpc import ConnectionClosedError

            future.set_exception(ConnectionClosedError("connection is closed"))
            return future
        if ipc._state["failures"]:
            error = ipc._state["failures"].pop(0)
            future.set_exception(error() if isinstance(error, type) else error)
            return future
        if not request.topic_name or request.qos not in (model.QOS.AT_MOST_ONCE, model.QOS.AT_LEAST_ONCE):
            future.set_exception(model.InvalidArgumentsError(message="topic_name and qos are required"))
            return future
        payload = request.payload.encode("utf-8") if isinstance(request.payload, str) else bytes(request.payload or b"")
        record = dict(vars(request))
        record["payload"] = payload
        ipc.messages.append(record)
        future.set_result(model.PublishToIoTCoreResponse())
        return future
