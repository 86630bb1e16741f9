"""Soak: `roadedge run` for N minutes on the looping sample video, publishing over MQTT to a local mosquitto that is
stopped and started again every few minutes, while RSS and FPS are sampled. Prints RSS growth after warm-up, FPS
drift and the messages lost (targets: RSS growth < 5 MB over 30 min, 0 lost). Not a CI test.

    python3 benchmarks/soak.py                      # 30 minutes, broker outage of 3 s every 3 minutes
    python3 benchmarks/soak.py --minutes 5 --restart-every 60 --json /tmp/soak.json

Only 127.0.0.1 is used: the broker is started here on a free port (mosquitto from Debian's packages).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests.mosquitto import Broker  # noqa: E402 - the tests' broker helper: a private mosquitto on a free port


def rss_mb(pid):
    try:
        with open("/proc/{}/status".format(pid)) as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


class Collector(object):
    """A persistent-session QoS 1 subscriber: detections seqs and stats messages, across broker restarts."""

    def __init__(self, port, device):
        import paho.mqtt.client as mqtt

        self.seqs, self.stats, self.lock = [], [], threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-collector", clean_session=False)
        self.client.reconnect_delay_set(0.2, 1)
        topic = "roadedge/{}/#".format(device)
        self.client.on_connect = lambda client, userdata, flags, rc, props: client.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, client, userdata, message):
        payload = json.loads(message.payload.decode("utf-8"))
        with self.lock:
            if message.topic.endswith("/detections"):
                self.seqs.append(payload["seq"])
            elif message.topic.endswith("/stats"):
                self.stats.append((time.monotonic(), payload["fps"]))

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def window_mean(values):
    return sum(values) / len(values) if values else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the runtime runs (default 30)")
    parser.add_argument("--restart-every", type=float, default=180.0, help="seconds between broker outages")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds the broker stays down each time")
    parser.add_argument("--warmup", type=float, default=120.0, help="seconds before the RSS baseline is taken")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)

    work = tempfile.mkdtemp(prefix="roadedge-soak-")
    broker = Broker(os.path.join(work, "broker"), persistence=True).start()
    device = "soak"
    collector = Collector(broker.port, device)
    summary_path = os.path.join(work, "summary.json")
    settings = os.path.join(work, "soak.yaml")
    with open(settings, "w") as handle:
        handle.write("pipeline: {stats_interval: 10}\n")
    command = [sys.executable, "-m", "roadedge", "run", "--source", "sample", "--loop", "--realtime", "--no-preview",
               "--config", settings, "--device-name", device, "--mqtt", "mqtt://127.0.0.1:{}".format(broker.port),
               "--outbox", os.path.join(work, "outbox.sqlite"), "--drain-timeout", "30", "--summary", summary_path,
               "--output", "jsonl:" + os.devnull, "--quiet"]
    runtime = subprocess.Popen(command, cwd=REPO)
    started = time.monotonic()
    end = started + args.minutes * 60.0
    next_outage = started + args.restart_every
    samples, outages = [], 0
    try:
        while time.monotonic() < end and runtime.poll() is None:
            now = time.monotonic()
            if now >= next_outage:
                broker.stop()
                time.sleep(args.outage)
                broker.start()
                outages += 1
                next_outage = time.monotonic() + args.restart_every
            rss = rss_mb(runtime.pid)
            if rss is not None:
                samples.append((now - started, rss))
            time.sleep(5.0)
    finally:
        if runtime.poll() is None:
            runtime.send_signal(signal.SIGTERM)
        code = runtime.wait(120)
    with open(summary_path) as handle:
        summary = json.load(handle)
    sent = summary["messages"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(set(collector.seqs)) < sent:
        time.sleep(0.5)
    collector.close()
    broker.stop()

    after = [rss for t, rss in samples if t >= args.warmup] or [rss for _, rss in samples]
    fps = [value for _, value in collector.stats if value]
    quarter = max(1, len(fps) // 4)
    received = set(collector.seqs)
    results = {
        "minutes": round((samples[-1][0] if samples else 0) / 60.0, 1), "exit_code": code, "outages": outages,
        "rss_after_warmup_mb": round(after[0], 1) if after else None, "rss_end_mb": round(after[-1], 1) if after else None,
        "rss_growth_mb": round(after[-1] - after[0], 1) if after else None,
        "rss_max_mb": round(max(after), 1) if after else None,
        "fps_first_quarter": round(window_mean(fps[:quarter]) or 0, 2),
        "fps_last_quarter": round(window_mean(fps[-quarter:]) or 0, 2),
        "frames": summary["frames"], "messages_sent": sent, "messages_received": len(collector.seqs),
        "duplicates": len(collector.seqs) - len(received), "lost": len(set(range(sent)) - received),
    }
    first, last = results["fps_first_quarter"], results["fps_last_quarter"]
    results["fps_drift_percent"] = round(100.0 * (last - first) / first, 1) if first else None
    for key, value in results.items():
        print("{:22s} {}".format(key, value))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    ok = results["lost"] == 0 and (results["rss_growth_mb"] or 0) < 5.0
    print("soak: {}".format("OK" if ok else "targets missed (RSS growth < 5 MB, 0 lost)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
