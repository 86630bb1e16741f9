"""`roadedge kvs upload FILE --stream NAME`: a recording made offline (the record sink's MP4, any video OpenCV reads)
sent to Kinesis Video through the same producer as live streaming: re-encoded to H.264 fragments, stored on disk,
sent over PutMedia until every fragment is PERSISTED (the "docked body camera" case of AWS's PutMedia docs). The
store is kept per stream, so an interrupted upload resumes where it stopped when run again."""
import os
import sys
import time

from roadedge.core.commands import lazy_handler


def register(subparsers):
    kvs = subparsers.add_parser("kvs", help="Kinesis Video Streams: upload a recording",
                                description="Kinesis Video Streams tools (live streaming is `roadedge run --kvs`).")
    commands = kvs.add_subparsers(dest="kvs_command", metavar="SUBCOMMAND")
    commands.required = True
    p = commands.add_parser("upload", help="send a recorded video to a stream",
                            description="Send a recorded video (MP4 from the record sink, MKV, ...) to a Kinesis "
                            "Video stream, re-encoded to H.264 fragments and resent until each is PERSISTED. "
                            "Credentials come from the standard AWS chain.")
    p.add_argument("file", metavar="FILE", help="the recording")
    p.add_argument("--stream", required=True, metavar="NAME", help="the Kinesis Video stream (created if missing)")
    p.add_argument("--region", default="", help="AWS region (default: the AWS configuration's)")
    p.add_argument("--endpoint-url", default="", metavar="URL", help="control-plane endpoint (tests, VPC endpoints)")
    p.add_argument("--start", type=float, metavar="EPOCH_S",
                   help="when the recording began, seconds since the epoch (default: the file's time minus its length)")
    p.add_argument("--fragment-s", type=float, default=2.0, help="fragment length in seconds")
    p.add_argument("--bitrate", type=int, default=1500, help="H.264 bit rate in kbit/s")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the last acknowledgements")
    p.set_defaults(handler=lazy_handler("edge.kvs.command", "upload_command"))


def upload_command(args):
    import cv2
    from tqdm import tqdm

    from edge.plugins import checked
    from edge.sinks import kvs
    from roadedge.core.errors import RoadedgeError

    if not os.path.isfile(args.file):
        raise RoadedgeError("{}: no such file".format(args.file))
    capture = cv2.VideoCapture(args.file)
    if not capture.isOpened():
        raise RoadedgeError("{}: cannot read it as a video".format(args.file))
    fps = capture.get(cv2.CAP_PROP_FPS) or 15.0
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if not (0 < fps <= 120) or width <= 0 or height <= 0:
        raise RoadedgeError("{}: {}x{} at {} fps; expected a video with frames".format(args.file, width, height, fps))
    start = args.start if args.start is not None else os.path.getmtime(args.file) - count / fps
    options = checked(kvs.OPTIONS, {"stream_name": args.stream, "region": args.region, "producer": "python",
                                        "endpoint_url": args.endpoint_url, "fragment_s": args.fragment_s,
                                        "fps": min(60.0, fps), "width": width - width % 2, "height": height - height % 2,
                                        "bitrate": args.bitrate}, "kvs upload")
    producer = kvs.python_producer(options, {}, args.stream, args.region)
    started, index = time.time(), 0
    with tqdm(total=count or None, unit="frame", desc="encoding", disable=None, file=sys.stderr) as bar:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            producer.submit(frame, start + index / fps, wait=True)
            index += 1
            bar.update(1)
    capture.release()
    left = producer.close(drain_timeout_s=args.timeout)
    stats = producer.stats()
    if left:
        raise RoadedgeError("kvs upload {}: {} fragments not acknowledged within {:g} s; they stay in the store: run "
                            "the same command again to resume".format(args.file, left, args.timeout), exit_code=1)
    print("sent {} frames of {} to {} in {} fragments ({} resent) in {:.1f} s".format(
        index, args.file, args.stream, stats.get("fragments_acknowledged", 0), stats.get("fragments_resent", 0),
        time.time() - started))
    return 0
