"""Stand-in for awsiot/eventstreamrpc.py: the connection-level errors an IPC call can raise."""


class EventStreamError(RuntimeError):
    pass


class ConnectionClosedError(EventStreamError):
    pass


class LifecycleHandler:
    def on_connect(self):
        pass

    def on_disconnect(self, reason):
        pass

    def on_error(self, error):
        return True
