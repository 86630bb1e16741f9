"""Stand-in for awsiot/greengrasscoreipc/__init__.py: connect() to the nucleus, which here records instead.

connect(*, ipc_socket=None, authtoken=None, lifecycle_handler=None, timeout=10.0) reads
AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT and SVCUID from the environment when not given (a KeyError
when unset, as in the SDK: the nucleus sets them for its components).

Test hooks: `messages` (a dict per PublishToIoTCore request: topic_name, qos, payload (bytes), retain, ...),
`connections()` (connect() calls that succeeded), `fail_next(n, error)` (the next n publishes raise `error`, an
exception instance or class; default model.ServiceError), `refuse_connections(n)` (the next n connect() calls
raise ConnectionRefusedError), `reset()`.
"""
import os

from awsiot.eventstreamrpc import LifecycleHandler

messages = []
_state = {"connections": 0, "failures": [], "refused": 0}


def connections():
    """connect() calls that succeeded."""
    return _state["connections"]


def reset():
    del messages[:]
    _state.update(connections=0, failures=[], refused=0)


def fail_next(count=1, error=None):
    from awsiot.greengrasscoreipc import model

    _state["failures"].extend([error if error is not None else model.ServiceError(message="stand-in failure")] * count)


def refuse_connections(count=1):
    _state["refused"] = int(count)


def connect(*, ipc_socket=None, authtoken=None, lifecycle_handler=None, timeout=10.0):
    if not ipc_socket:
        ipc_socket = os.environ["AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"]
    if not authtoken:
        authtoken = os.environ["SVCUID"]
    if not lifecycle_handler:
        lifecycle_handler = LifecycleHandler()
    if _state["refused"] > 0:
        _state["refused"] -= 1
        raise ConnectionRefusedError(111, "Connection refused", ipc_socket)
    from awsiot.greengrasscoreipc.client import GreengrassCoreIPCClient

    _state["connections"] += 1
    return GreengrassCoreIPCClient(ipc_socket)
