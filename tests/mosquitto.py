"""A real mosquitto broker for the tests: its own config, a free port on 127.0.0.1, started and stopped on demand.

Never the system's mosquitto service: every Broker writes its own config into a
temporary folder and runs `mosquitto -c CONF` as a child process.
"""
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

FALLBACK = "/usr/sbin/mosquitto"  # where Debian's package puts it, often not on a user's PATH
MISSING = "mosquitto is not installed (.ci/run installs it: apt-get install mosquitto)"


def find_mosquitto():
    """The mosquitto binary on PATH, else FALLBACK if it exists, else None."""
    return shutil.which("mosquitto") or (FALLBACK if os.path.exists(FALLBACK) else None)


def require_mosquitto():
    """The mosquitto binary. Not installed: the test is skipped, or fails under CI=true (CI must run the broker tests)."""
    binary = find_mosquitto()
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(MISSING + "; CI=true: the broker tests must run, not be skipped", pytrace=False)
        pytest.skip(MISSING)
    return binary


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Broker(object):
    """mosquitto on 127.0.0.1:port. tls: dict(cafile=, certfile=, keyfile=) for a listener requiring client
    certificates. persistence: keep retained messages and persistent sessions across stop()/start().
    anonymous=False: a broker that refuses every client (no password file): CONNACK 'not authorised'."""

    def __init__(self, folder, tls=None, persistence=False, port=None, anonymous=True):
        self.folder = str(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.port = port or free_port()
        self.conf = os.path.join(self.folder, "mosquitto.conf")
        self.log_path = os.path.join(self.folder, "mosquitto.log")
        self.process = None
        lines = ["listener {} 127.0.0.1".format(self.port), "allow_anonymous {}".format("true" if anonymous else "false"),
                 "persistence {}".format("true" if persistence else "false"),
                 "log_dest file {}".format(self.log_path), "log_type error", "log_type warning", "log_type notice",
                 "log_type information", "connection_messages true", "max_queued_messages 100000"]
        if persistence:
            lines += ["persistence_location {}/".format(self.folder), "autosave_interval 1"]
        if os.geteuid() == 0:
            lines.append("user {}".format(getpass.getuser()))  # root would switch to user mosquitto: keep tmp readable
        if tls:
            lines += ["cafile {}".format(tls["cafile"]), "certfile {}".format(tls["certfile"]),
                      "keyfile {}".format(tls["keyfile"]), "require_certificate true"]
        with open(self.conf, "w") as handle:
            handle.write("\n".join(lines) + "\n")

    def start(self, timeout=10.0):
        binary = require_mosquitto()
        assert self.process is None or self.process.poll() is not None, "already running"
        self.process = subprocess.Popen([binary, "-c", self.conf], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("mosquitto exited ({}): {}\n{}".format(self.process.returncode,
                                                                       self.process.stderr.read().decode(), self.log()))
            if port_open(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("mosquitto did not open port {} within {} s\n{}".format(self.port, timeout, self.log()))

    def stop(self, timeout=10.0):
        """SIGTERM (mosquitto saves its persistence file), then wait; SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process.stderr.close()
        deadline = time.monotonic() + timeout
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def log(self):
        try:
            with open(self.log_path) as handle:
                return handle.read()
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
