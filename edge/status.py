"""The retained `status` message (edge/schemas/status-v1.schema.json): is a device's runtime up? No I/O.

`online` when a publishing sink connects, `offline` as its last will (the broker
publishes it when the connection dies without a DISCONNECT: kill -9, power
loss, network gone), `stopped` on a clean exit. boot_id tells runs apart.
"""
import time

from edge.messages import iso_utc

STATUS_SCHEMA = "roadedge.status/1"
STATES = ("online", "offline", "stopped")


def status_message(device, boot_id, state, timestamp=None):
    """{"schema", "device", "boot_id", "state", "ts"}; `state` one of STATES."""
    if state not in STATES:
        raise ValueError("status state {!r}; expected one of {}".format(state, ", ".join(STATES)))
    return {"schema": STATUS_SCHEMA, "device": device, "boot_id": boot_id, "state": state,
            "ts": iso_utc(time.time() if timestamp is None else timestamp)}
