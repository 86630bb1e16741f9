"""How fast `roadedge cloud segment` drains a stream, on local parts: the bundled 640x360 sample drive streamed by
the runtime's producer to the tests' KVS server (15 fps, 1 s fragments), then read back with GetMedia and segmented
with the bundled demo model (edge/models/road-seg.xml, 448x256) into moto's S3 (server mode, in this process).

Reported: GetMedia + MKV + H.264 decoding alone (ms per frame, every frame converted to a picture), and the whole
consumer's wall time with --every 1 and --every 5 (frames of the stream per second, masks per second).

    python3 benchmarks/bench_cloud_segment.py [--frames 150] [--out benchmarks/results/cloud_segment.json]

On 2 shared cores (2026-12-01): decoding 4.7 ms a frame; --every 1: 17 masks/s (per mask: segmentation 35 ms, the
PNG 4 ms, the two S3 puts 25 ms in uploader threads, moto sharing this process's GIL); --every 5: 57 stream fps.
"""
import argparse
import json
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests.kvs_server import ACCESS_KEY, REGION, SECRET_KEY, KvsServer  # noqa: E402

SAMPLE = os.path.join(REPO, "edge", "data", "sample-drive.mp4")
MODEL = os.path.join(REPO, "edge", "models", "road-seg.xml")


def stream_frames(kvs, count, work):
    import cv2
    from botocore.credentials import Credentials

    from edge.kvs.control import StreamEndpoint, make_client
    from edge.kvs.encoder import H264Encoder
    from edge.kvs.producer import Producer
    from edge.kvs.store import FragmentStore

    capture = cv2.VideoCapture(SAMPLE)
    producer = Producer(FragmentStore(os.path.join(work, "store.sqlite"), 256 << 20, 3600),
                        StreamEndpoint(make_client(REGION, kvs.url), "cam"), Credentials(ACCESS_KEY, SECRET_KEY),
                        REGION, "cam", H264Encoder(640, 360, 15, 15, 800000), queue_frames=count + 10).start()
    for index in range(count):
        ok, frame = capture.read()
        if not ok:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = capture.read()
        producer.submit(frame, 1764547200.0 + index / 15.0, wait=True)
    assert producer.close(drain_timeout_s=120) == 0


def decode_only(kvs):
    from cloud.segment.decode import decode_fragment
    from cloud.segment.getmedia import MediaStream

    started, frames = time.perf_counter(), 0
    for fragment in MediaStream("cam", REGION, kvs.url).fragments({"StartSelectorType": "EARLIEST"}, until_idle_s=0.5):
        frames += sum(1 for _ in decode_fragment(fragment, range(len(fragment.video_frames()))))
    return frames, time.perf_counter() - started - 0.5


def timed(owner, name, totals):
    """Wrap owner.name to add its wall time to totals[name]."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - started

    setattr(owner, name, wrapper)
    return original


def consumer(kvs, s3_url, every, work, totals=None):
    from cloud.segment import consumer as consumer_module
    from cloud.segment.output import S3Output
    from cloud.segment.segmenters import IrSegmenter
    from roadedge.cli import main

    if totals is not None:  # where the time goes: segmentation, the PNG, the S3 puts
        timed(IrSegmenter, "__call__", totals)
        timed(S3Output, "put", totals)
        timed(consumer_module, "index_png_bytes", totals)
    started = time.perf_counter()
    code = main(["cloud", "segment", "--stream", "cam", "--model", MODEL, "--bucket", "s3://bench/e%d" % every,
                 "--every", str(every), "--start", "earliest", "--checkpoint", os.path.join(work, "c%d.json" % every),
                 "--kvs-endpoint-url", kvs.url, "--s3-endpoint-url", s3_url, "--region", REGION, "--until-idle", "0.5"])
    assert code == 0
    return time.perf_counter() - started - 0.5


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "cloud_segment.json"),
                        help="where the JSON goes ('' for nowhere)")
    args = parser.parse_args()
    import boto3
    from moto.server import ThreadedMotoServer

    for name, value in (("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
                        ("AWS_DEFAULT_REGION", REGION)):
        os.environ[name] = value
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    s3_url = "http://%s:%d" % moto.get_host_and_port()
    boto3.client("s3", endpoint_url=s3_url, region_name=REGION).create_bucket(Bucket="bench")
    results = {"frames": args.frames, "size": "640x360", "model": "road-seg (448x256)"}
    with tempfile.TemporaryDirectory() as work, KvsServer() as kvs:
        kvs.get_media_idle_s = 0.3
        stream_frames(kvs, args.frames, work)
        frames, seconds = decode_only(kvs)
        results["decode_ms_per_frame"] = round(seconds * 1000.0 / frames, 2)
        for every in (5, 1):
            totals = {} if every == 1 else None
            seconds = consumer(kvs, s3_url, every, work, totals)
            masks = len(range(0, args.frames, every))
            results["every_%d" % every] = {"seconds": round(seconds, 2), "stream_fps": round(args.frames / seconds, 1),
                                           "masks_per_s": round(masks / seconds, 1)}
            if totals:
                results["every_1"]["ms_per_mask"] = {name.strip("_"): round(value * 1000.0 / masks, 1)
                                                     for name, value in totals.items()}
    moto.stop()
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
