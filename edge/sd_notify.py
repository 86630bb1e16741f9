"""systemd's notify protocol for `roadedge run` under Type=notify: READY=1, WATCHDOG=1, STATUS=..., STOPPING=1.

The protocol is one datagram per notification, newline-separated KEY=VALUE
assignments, sent over AF_UNIX SOCK_DGRAM to $NOTIFY_SOCKET (a path, or an
abstract socket when it starts with '@'). $WATCHDOG_USEC (with $WATCHDOG_PID,
when set, naming this process) asks for WATCHDOG=1 more often than that: we
ping at half of it. Without $NOTIFY_SOCKET everything here is a no-op.

The runtime's hook is a pipeline listener (it runs on the loop's thread after
the sinks have the frame): READY=1 after the first frame's result is written,
WATCHDOG=1 as frames finish (at most every interval/2), STATUS= every few
seconds with FPS, frames, dropped frames and outbox depth. A stalled capture
or inference finishes no frames, so the pings stop (a frame a remote backend
could not infer still pings: the loop lives, restarting would not help): the runtime's own watchdog
(pipeline.watchdog_s, reopen, exit 3 after watchdog_restarts) acts first, and
systemd's WatchdogSec (set larger) restarts the service when even that is
stuck. Standard library only, Python 3.7 (a DeepLens runs this).
"""
import logging
import os
import socket
import time

log = logging.getLogger("roadedge.sd_notify")

STATUS_INTERVAL_S = 5.0  # STATUS= at most this often (and at least with every watchdog ping)


def socket_address(value):
    """$NOTIFY_SOCKET -> the address for sendto(): a path, or '\\0name' for '@name' (Linux abstract namespace)."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # systemd sends only these two forms (vsock: is not for us)


def watchdog_interval(environ=None, pid=None):
    """Seconds between watchdog pings (half of $WATCHDOG_USEC), or None when no watchdog is asked of this process."""
    environ = os.environ if environ is None else environ
    usec, owner = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    try:
        usec = int(usec)
    except ValueError:
        return None
    if usec <= 0:
        return None
    if owner:
        try:
            if int(owner) != (os.getpid() if pid is None else pid):
                return None  # the watchdog is for another process of the service
        except ValueError:
            return None
    return usec / 2e6


class Notifier(object):
    """Sends notifications to the socket; send() never raises (systemd gone must not stop the runtime)."""

    def __init__(self, address, ping_s=None, clock=time.monotonic):
        self.address, self.ping_s, self.clock = address, ping_s, clock
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)  # the loop's thread sends: never wait for systemd
        self.ready = False
        self.last_ping = self.last_status = None
        self.sent, self.failures = 0, 0

    def send(self, *assignments):
        data = "\n".join(assignments).encode("utf-8")
        try:
            self.sock.sendto(data, self.address)
        except OSError as err:
            if not self.failures:
                log.warning("systemd notify socket: %s (further failures are counted, not logged)", err)
            self.failures += 1
            return False
        self.sent += 1
        return True

    def frame_done(self, status):
        """After a finished frame: READY=1 the first time, WATCHDOG=1 when a ping is due, STATUS= when it is due.
        `status`: a function giving the STATUS text (called only when one is sent)."""
        now = self.clock()
        lines = []
        if not self.ready:
            self.ready = True
            lines.append("READY=1")
        if self.ping_s is not None and (self.last_ping is None or now - self.last_ping >= self.ping_s):
            self.last_ping = now
            lines.append("WATCHDOG=1")
        status_every = min(STATUS_INTERVAL_S, self.ping_s) if self.ping_s else STATUS_INTERVAL_S
        if lines or self.last_status is None or now - self.last_status >= status_every:
            self.last_status = now
            lines.append("STATUS=" + status())
        if lines:
            self.send(*lines)

    def alive(self):
        """A frame handled without a result (a remote endpoint out of reach): the loop is not stuck, so the watchdog
        is pinged when due; READY=1 still waits for a frame that went through."""
        now = self.clock()
        if self.ping_s is not None and (self.last_ping is None or now - self.last_ping >= self.ping_s):
            self.last_ping = now
            self.send("WATCHDOG=1")

    def stopping(self, status="stopping"):
        self.send("STOPPING=1", "STATUS=" + status)

    def close(self):
        self.sock.close()


def from_environment(environ=None):
    """A Notifier for $NOTIFY_SOCKET (with the watchdog interval of $WATCHDOG_USEC), or None when not under systemd."""
    environ = os.environ if environ is None else environ
    address = socket_address(environ.get("NOTIFY_SOCKET", ""))
    if address is None:
        return None
    return Notifier(address, watchdog_interval(environ))


def status_text(pipeline, finishing=0):
    """STATUS= for `systemctl status`: FPS, frames, dropped frames and what the outboxes still hold. `finishing`: 1 from
    a listener (the pipeline counts the frame after its listeners)."""
    capture = pipeline.capture
    fps = pipeline.current_fps()
    parts = ["{:.1f} FPS".format(fps) if fps is not None else "- FPS",
             "{} frames".format(pipeline.frames_done + finishing),
             "{} dropped".format(capture.dropped if capture is not None else 0)]
    depth = None
    for sink in pipeline.sinks:
        try:
            stats = sink.stats() if hasattr(sink, "stats") else None
        except Exception:  # stats are best effort
            stats = None
        if stats and "outbox_depth" in stats:
            depth = (depth or 0) + int(stats["outbox_depth"])
    if depth is not None:
        parts.append("outbox {}".format(depth))
    if pipeline.not_inferred:
        parts.append("{} not inferred".format(pipeline.not_inferred))
    return ", ".join(parts)


def attach(runtime, environ=None):
    """Under systemd (NOTIFY_SOCKET set): a listener on the runtime's pipeline that notifies; returns the Notifier
    (run_command sends STOPPING=1 through it), or None."""
    notifier = from_environment(environ)
    if notifier is None:
        return None
    pipeline = runtime.pipeline
    pipeline.listeners.append(lambda result: notifier.frame_done(lambda: status_text(pipeline, 1)))
    pipeline.heartbeats.append(notifier.alive)
    return notifier
