"""systemd's notify protocol, against a real NOTIFY_SOCKET: the test binds an AF_UNIX datagram socket (a path, or an
abstract one) and runs `roadedge run` as systemd would, with NOTIFY_SOCKET and WATCHDOG_USEC set. READY=1 comes
after the first frame's result is written, WATCHDOG=1 while frames flow (at most every interval/2), STATUS= with the
numbers, STOPPING=1 at the clean end; a stream that stops delivering stops the pings until the runtime's own
watchdog has reopened it."""
import http.server
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

import cv2
import numpy as np
import pytest

from edge import sd_notify

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATUS = re.compile(r"^STATUS=(?:(\d+\.\d) |- )FPS, (\d+) frames, (\d+) dropped$")


class NotifySocket(object):
    """What systemd listens on: an AF_UNIX SOCK_DGRAM socket; every datagram is kept with the moment it came and
    the number of JSON lines in `output` at that moment."""

    def __init__(self, output=None, abstract=False):
        self.folder = tempfile.mkdtemp(prefix="sdn-", dir="/tmp")  # a socket path has at most 107 bytes
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "roadedge-test-{}-{}".format(os.getpid(), id(self))
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            self.env_value = os.path.join(self.folder, "notify.sock")
            self.sock.bind(self.env_value)
        self.sock.settimeout(0.1)
        self.output, self.datagrams, self.closed = output, [], threading.Event()
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self):
        while not self.closed.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            lines = _count_lines(self.output) if self.output else None
            self.datagrams.append((time.monotonic(), data.decode("utf-8").split("\n"), lines))

    def close(self):
        self.closed.set()
        self.thread.join(2)
        self.sock.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def with_line(self, prefix):
        return [(at, fields, lines) for at, fields, lines in self.datagrams if any(f.startswith(prefix) for f in fields)]


def _count_lines(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().count(b"\n")
    except OSError:
        return 0


def run_roadedge(args, notify, tmp_path, watchdog_usec=1000000, timeout=120):
    env = dict(os.environ, PYTHONPATH=ROOT, NOTIFY_SOCKET=notify.env_value, WATCHDOG_USEC=str(watchdog_usec))
    env.pop("WATCHDOG_PID", None)
    return subprocess.run([sys.executable, "-m", "roadedge", "run", "--no-preview"] + args, cwd=str(tmp_path), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def statuses(notify):
    found = []
    for _, fields, _ in notify.datagrams:
        for field in fields:
            if field.startswith("STATUS=") and not field.startswith("STATUS=stopping"):
                match = STATUS.match(field)
                assert match, field
                found.append(int(match.group(2)))
    return found


# ---- the protocol --------------------------------------------------------------------------------------------------

def test_the_socket_forms_and_the_watchdog_interval():
    assert sd_notify.socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert sd_notify.socket_address("@/org/freedesktop/systemd1/notify/42") == "\0/org/freedesktop/systemd1/notify/42"
    assert sd_notify.socket_address("") is None and sd_notify.socket_address("vsock:2:1234") is None
    assert sd_notify.watchdog_interval({"WATCHDOG_USEC": "90000000"}) == 45.0
    assert sd_notify.watchdog_interval({"WATCHDOG_USEC": "90000000", "WATCHDOG_PID": str(os.getpid())}) == 45.0
    assert sd_notify.watchdog_interval({"WATCHDOG_USEC": "90000000", "WATCHDOG_PID": "1"}) is None  # another process's
    assert sd_notify.watchdog_interval({"WATCHDOG_USEC": "0"}) is None and sd_notify.watchdog_interval({}) is None
    assert sd_notify.watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert sd_notify.from_environment({"WATCHDOG_USEC": "1000000"}) is None  # not under systemd: nothing to do


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_the_notifier_sends_ready_watchdog_status_and_stopping_as_datagrams(abstract):
    notify = NotifySocket(abstract=abstract)
    now = [100.0]
    try:
        notifier = sd_notify.from_environment({"NOTIFY_SOCKET": notify.env_value, "WATCHDOG_USEC": "2000000"})
        notifier.clock = lambda: now[0]
        for step in (0.0, 0.4, 0.4, 0.3, 1.2):  # frames finish at 100.0, 100.4, 100.8, 101.1, 102.3
            now[0] += step
            notifier.frame_done(lambda: "n={:.1f}".format(now[0]))
        notifier.stopping("stopping: 5 frames done")
        deadline = time.monotonic() + 5
        while len(notify.datagrams) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [fields for _, fields, _ in notify.datagrams] == [
            ["READY=1", "WATCHDOG=1", "STATUS=n=100.0"],  # the interval is 1 s (half of WATCHDOG_USEC)
            ["WATCHDOG=1", "STATUS=n=101.1"],
            ["WATCHDOG=1", "STATUS=n=102.3"],
            ["STOPPING=1", "STATUS=stopping: 5 frames done"]]
        notifier.close()
    finally:
        notify.close()


def test_a_notify_socket_that_is_gone_does_not_stop_the_runtime(tmp_path):
    notifier = sd_notify.Notifier(str(tmp_path / "nobody-listens.sock"), 1.0)
    notifier.frame_done(lambda: "x")
    notifier.stopping()
    assert notifier.failures == 2 and notifier.sent == 0
    notifier.close()


# ---- roadedge run under a NOTIFY_SOCKET ----------------------------------------------------------------------------

@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_roadedge_run_notifies_ready_after_the_first_frame_pings_while_frames_flow_and_says_stopping(tmp_path, abstract):
    out = tmp_path / "out.jsonl"
    (tmp_path / "settings.yaml").write_text("pipeline: {publish_empty: true, drop_frames: never}\n")
    notify = NotifySocket(output=str(out), abstract=abstract)
    try:
        # synthetic: a live drive at 15 FPS, so 45 frames take at least 2.9 s: pings every 0.5 s (WATCHDOG_USEC 1 s)
        result = run_roadedge(["--source", "synthetic:3", "--frames", "45", "--config", "settings.yaml", "--output",
                               "jsonl:" + str(out)], notify, tmp_path)
        time.sleep(0.3)
    finally:
        notify.close()
    assert result.returncode == 0, result.stderr.decode()
    assert _count_lines(str(out)) == 45
    datagrams = notify.datagrams
    first_at, first, lines_then = datagrams[0]
    assert first[0] == "READY=1" and len(notify.with_line("READY=1")) == 1
    assert lines_then >= 1  # READY=1 was sent after the first frame's line was written (and flushed)
    assert datagrams[-1][1][0] == "STOPPING=1" and datagrams[-1][1][1] == "STATUS=stopping: 45 frames done, draining " \
        "the outboxes" and len(notify.with_line("STOPPING=1")) == 1
    pings = [at for at, fields, _ in notify.with_line("WATCHDOG=1")]
    assert len(pings) >= 5, datagrams  # while frames flowed
    gaps = [later - earlier for earlier, later in zip(pings, pings[1:])]
    assert min(gaps) > 0.25, gaps  # at most one ping per interval/2 (0.5 s here), not one per frame
    frames = statuses(notify)
    assert frames[0] == 1 and frames == sorted(frames) and frames[-1] <= 45 and len(frames) >= 5


def test_without_notify_socket_roadedge_run_sends_nothing(tmp_path):
    notify = NotifySocket()
    try:
        env = dict(os.environ, PYTHONPATH=ROOT, WATCHDOG_USEC="1000000")
        env.pop("NOTIFY_SOCKET", None)
        result = subprocess.run([sys.executable, "-m", "roadedge", "run", "--no-preview", "--source", "synthetic:3",
                                 "--frames", "5", "--output", "jsonl:" + str(tmp_path / "o.jsonl"), "--quiet"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        time.sleep(0.2)
    finally:
        notify.close()
    assert result.returncode == 0, result.stderr.decode()
    assert notify.datagrams == []


# ---- a stream that stops delivering ------------------------------------------------------------------------------

class StallingStream(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """HTTP MJPEG (multipart/x-mixed-replace) at 15 FPS. The first connection sends `first` frames and then nothing,
    keeping the connection open (a wedged camera); later connections stream until the test ends."""

    daemon_threads = True

    def __init__(self, first):
        super().__init__(("127.0.0.1", 0), StallingHandler)
        self.first, self.connections, self.done = first, 0, threading.Event()
        self.jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 100, np.uint8))[1].tobytes()

    @property
    def url(self):
        return "http://127.0.0.1:%d/stream.mjpg" % self.server_address[1]


class StallingHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        server = self.server
        server.connections += 1
        first = server.connections == 1
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        sent = 0
        try:
            while not server.done.is_set():
                if first and sent >= server.first:
                    server.done.wait()  # stalled: the connection stays open and nothing comes
                    break
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(server.jpeg))
                self.wfile.write(server.jpeg + b"\r\n")
                self.wfile.flush()
                sent += 1
                time.sleep(1 / 15.0)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


def run_against_a_stalling_stream(tmp_path, first, source, pipeline, args, output):
    """`roadedge run` (under the test's NOTIFY_SOCKET) on a StallingStream that stalls after `first` frames; `source`
    and `pipeline`: the settings' flow mappings without the uri. Returns (result, notify, stream)."""
    stream = StallingStream(first=first)
    threading.Thread(target=stream.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    (tmp_path / "settings.yaml").write_text("source: {type: opencv, uri: '%s', %s}\npipeline: {%s}\n" % (
        stream.url, source, pipeline))
    notify = NotifySocket(output=str(output))
    try:
        result = run_roadedge(["--config", "settings.yaml", "--output", "jsonl:" + str(output)] + args, notify, tmp_path)
        time.sleep(0.3)
    finally:
        notify.close()
        stream.done.set()
        stream.shutdown()
        stream.server_close()
    return result, notify, stream


def test_a_stream_that_stops_delivering_stops_the_pings_until_the_runtimes_watchdog_reopens_it(tmp_path):
    out = tmp_path / "out.jsonl"
    # the runtime's watchdog reopens a capture silent for 1.5 s; FFmpeg's own read timeout (30 s) is far later
    result, notify, stream = run_against_a_stalling_stream(
        tmp_path, 20, "timeout: 30", "publish_empty: true, drop_frames: never, watchdog_s: 1.5, watchdog_restarts: 2",
        ["--frames", "40"], out)
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert "watchdog: the capture has not returned for" in stderr and "reopening it (stall 1 in a row" in stderr
    assert stream.connections == 2 and _count_lines(str(out)) == 40  # 20 before the stall, 20 from the new connection
    pings = [(at, STATUS.match(fields[-1]).group(2)) for at, fields, _ in notify.with_line("WATCHDOG=1")]
    before = [at for at, frames in pings if int(frames) <= 20]
    after = [at for at, frames in pings if int(frames) > 20]
    assert len(before) >= 2 and len(after) >= 2, pings
    # no ping (no datagram at all) while the stream was silent: the watchdog's 1.5 s, less the 0.5 s a ping may lead
    silent = [at for at, _, _ in notify.datagrams if before[-1] < at < after[0]]
    assert silent == [] and after[0] - before[-1] >= 1.0, pings
    assert notify.datagrams[-1][1][0] == "STOPPING=1"


def test_when_the_runtimes_watchdog_gives_up_there_is_no_stopping_and_the_exit_code_is_3(tmp_path):
    # closing the stalled source at the exit waits for FFmpeg's read to time out (4 s, after the watchdog's 1 s)
    result, notify, _ = run_against_a_stalling_stream(
        tmp_path, 10, "timeout: 4", "publish_empty: true, drop_frames: never, watchdog_s: 1.0, watchdog_restarts: 0", [],
        tmp_path / "out.jsonl")
    assert result.returncode == 3, result.stderr.decode()  # systemd's Restart= starts it again
    assert result.stderr.decode().strip().splitlines()[-1] == (
        "roadedge: error: watchdog: the capture stalled 1 times in a row (no result within 1 s each time); giving up so "
        "the service can be restarted")
    assert notify.with_line("READY=1") and notify.with_line("WATCHDOG=1")
    assert not notify.with_line("STOPPING=1")  # not a clean stop
    assert statuses(notify)[0] == 1 and max(statuses(notify)) <= 10 and _count_lines(str(tmp_path / "out.jsonl")) == 10


def test_status_counts_what_the_mqtt_outbox_holds_while_the_broker_is_unreachable(tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: every message stays in the outbox
    (tmp_path / "settings.yaml").write_text("pipeline: {publish_empty: true, drop_frames: never}\n")
    notify = NotifySocket()
    try:
        result = run_roadedge(["--source", "synthetic:3", "--frames", "30", "--config", "settings.yaml", "--output",
                               "jsonl:" + str(tmp_path / "out.jsonl"), "--mqtt", "mqtt://127.0.0.1:%d" % port,
                               "--outbox", str(tmp_path / "outbox.sqlite"), "--drain-timeout", "0.2"], notify, tmp_path)
        time.sleep(0.3)
    finally:
        notify.close()
    assert result.returncode == 0, result.stderr.decode()
    depths = []
    for _, fields, _ in notify.with_line("WATCHDOG=1"):
        match = re.match(r"^STATUS=(?:\d+\.\d|-) FPS, (\d+) frames, \d+ dropped, outbox (\d+)$", fields[-1])
        assert match, fields
        depths.append((int(match.group(1)), int(match.group(2))))
    assert len(depths) >= 3 and depths[0][1] >= 1  # the first frame's message (and the status) are stored
    # one detections message per frame (publish_empty), none sent: the outbox grows at least as the frames do
    assert all(depth >= frames for frames, depth in depths), depths
    assert [d for _, d in depths] == sorted(d for _, d in depths)


def test_systemctl_stop_sends_sigterm_and_gets_stopping_then_a_clean_exit(tmp_path):
    out = tmp_path / "out.jsonl"
    notify = NotifySocket(output=str(out))
    env = dict(os.environ, PYTHONPATH=ROOT, NOTIFY_SOCKET=notify.env_value, WATCHDOG_USEC="1000000")
    process = subprocess.Popen([sys.executable, "-m", "roadedge", "run", "--no-preview", "--source", "synthetic:3",
                                "--output", "jsonl:" + str(out), "--quiet"], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not notify.with_line("READY=1") and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert notify.with_line("READY=1"), "no READY=1"
        process.send_signal(signal.SIGTERM)  # what systemctl stop does (KillSignal=SIGTERM)
        _, stderr = process.communicate(timeout=60)
        time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.kill()
        notify.close()
    assert process.returncode == 0, stderr.decode()
    last = notify.datagrams[-1][1]
    assert last[0] == "STOPPING=1" and re.match(r"^STATUS=stopping: \d+ frames done, draining the outboxes$", last[1])
    assert len(notify.with_line("STOPPING=1")) == 1 and len(notify.with_line("READY=1")) == 1


def test_frames_a_remote_endpoint_cannot_infer_still_ping_the_watchdog_but_never_say_ready(tmp_path, monkeypatch):
    """The sagemaker backend against a closed port: no frame is inferred, yet the loop lives (restarting would not
    bring the endpoint back), so WATCHDOG=1 keeps coming; READY=1 waits for a frame that went through."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "sm.yaml").write_text("backend: {type: sagemaker, endpoint: road, endpoint_url: 'http://127.0.0.1:%d', "
                                      "retry_s: 0, timeout_s: 1}\npipeline: {drop_frames: never}\n" % port)
    for name, value in (("AWS_ACCESS_KEY_ID", "AKIDLOCAL"), ("AWS_SECRET_ACCESS_KEY", "local"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    notify = NotifySocket()
    try:
        result = run_roadedge(["--source", "synthetic:3", "--frames", "30", "--config", "sm.yaml"], notify, tmp_path)
        time.sleep(0.3)
    finally:
        notify.close()
    assert result.returncode == 0, result.stderr.decode()
    assert b"30 not inferred" in result.stderr
    assert not notify.with_line("READY=1")
    assert len(notify.with_line("WATCHDOG=1")) >= 3  # 30 live frames at 15 FPS: 2 s, a ping every 0.5 s
