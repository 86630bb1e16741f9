"""The cost of streaming to Kinesis Video, in one run: `roadedge run` FPS without and with `--kvs` (the Python
producer, to the local KVS server of the tests on 127.0.0.1: SigV4 checked, MKV parsed, fragments acknowledged),
on the bundled model and the SageMaker ResNet-50 SSD 300, reading the 1280x720 drive and streaming 640x360 at
15 fps. Also the CPU milliseconds per encoded frame (libx264 through PyAV, measured alone) and the upload kbit/s.
Target: FPS with streaming >= 0.85 x without for ResNet-50 300.

    python3 benchmarks/bench_kvs.py                    # both models (ResNet-50 built once, cached in --work)
    python3 benchmarks/bench_kvs.py --models bundled --frames 300
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (REPO, os.path.join(REPO, "benchmarks")):
    if path not in sys.path:
        sys.path.insert(0, path)

from _models import BUNDLED_XML, drive_video, resnet50_ir  # noqa: E402

from tests.kvs_server import ACCESS_KEY, REGION, SECRET_KEY, KvsServer  # noqa: E402


def encode_ms_per_frame(frames=150):
    """CPU milliseconds libx264 (PyAV, zerolatency, veryfast) takes per 640x360 frame, measured alone."""
    import numpy as np

    from edge.kvs.encoder import H264Encoder

    encoder = H264Encoder(640, 360, 15, 30, 800000)
    images = [np.random.default_rng(i).integers(0, 255, (720, 1280, 3), dtype=np.uint8) for i in range(4)]
    started = time.process_time()
    for index in range(frames):
        encoder.encode(images[index % 4], index * 66)
    encoder.flush()
    return (time.process_time() - started) * 1000.0 / frames


def run(xml, video, frames, work, kvs=None):
    summary = os.path.join(work, "summary.json")
    args = [sys.executable, "-m", "roadedge", "run", "--model", xml, "--source", video, "--frames", str(frames),
            "--no-realtime", "--no-preview", "--quiet", "--output", "jsonl:" + os.devnull, "--summary", summary]
    env = dict(os.environ)
    if kvs is not None:
        settings = os.path.join(work, "kvs.yaml")
        with open(settings, "w") as handle:
            json.dump({"outputs": [{"type": "kvs", "stream_name": "bench", "producer": "python",
                                    "store": os.path.join(work, "kvs-%d.sqlite" % time.time_ns())}]}, handle)
        args += ["--config", settings, "--kvs", "bench", "--kvs-region", REGION, "--kvs-endpoint-url", kvs.url]
        env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    started = time.monotonic()
    subprocess.run(args, cwd=REPO, env=env, check=True)
    seconds = time.monotonic() - started
    with open(summary) as handle:
        return json.load(handle), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="bundled,resnet50-300")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--work", default=os.path.expanduser("~/.cache/roadedge/bench"))
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    video = drive_video(args.work)
    rows = []
    for model in args.models.split(","):
        xml = BUNDLED_XML if model == "bundled" else resnet50_ir(args.work, int(model.split("-")[1]))
        with tempfile.TemporaryDirectory() as work:
            plain, _ = run(xml, video, args.frames, work)
            with KvsServer() as kvs:
                kvs.create("bench")
                streamed, seconds = run(xml, video, args.frames, work, kvs)
                fragments = [f for f in kvs.streams["bench"].fragments if f.status == "PERSISTED"]
        sent = sum(f.size for f in fragments)
        rows.append({"model": model, "frames": args.frames, "fps": plain["fps"], "fps_kvs": streamed["fps"],
                     "ratio": round(streamed["fps"] / plain["fps"], 2) if plain["fps"] else None,
                     "fragments": len(fragments), "frames_streamed": sum(f.blocks for f in fragments),
                     "upload_kbit_s": round(sent * 8 / 1000.0 / seconds, 1)})
    encode_ms = round(encode_ms_per_frame(), 2)
    print("| model | frames | FPS | FPS with --kvs | ratio | fragments | frames streamed | upload kbit/s |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| {model} | {frames} | {fps} | {fps_kvs} | {ratio} | {fragments} | {frames_streamed} | "
              "{upload_kbit_s} |".format(**row))
    print("libx264 (PyAV), 640x360, zerolatency/veryfast: {} CPU ms per encoded frame".format(encode_ms))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": rows, "encode_cpu_ms_per_frame": encode_ms}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
