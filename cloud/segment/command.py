"""`roadedge cloud segment`: a Kinesis video stream's frames to class-index masks and their figures in S3."""
import os
import signal
import sys
import threading
import time

from roadedge.core.commands import lazy_handler


def register(subparsers):
    cloud = subparsers.add_parser("cloud", help="the cloud half: Kinesis Video frames to masks in S3, ...",
                                  description="What runs off the vehicle.")
    commands = cloud.add_subparsers(dest="cloud_command", metavar="SUBCOMMAND")
    commands.required = True
    p = commands.add_parser(
        "segment", help="segment every Nth frame of a Kinesis video stream into S3",
        description="Read a Kinesis video stream with GetMedia, decode every Nth frame, segment it (a local IR or a "
        "SageMaker endpoint) and write PREFIX/<stream>/<fragment number>/<producer ms>.json then .png to S3. The "
        "last finished fragment is checkpointed, so a restart resumes after it and writes nothing twice. Credentials "
        "come from the standard AWS chain.")
    p.add_argument("--stream", required=True, metavar="NAME", help="the Kinesis video stream")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--endpoint", metavar="NAME", help="a SageMaker endpoint answering class-index PNGs")
    model.add_argument("--model", metavar="IR", help="a segmentation model run here with OpenVINO (IR .xml, ...)")
    p.add_argument("--bucket", required=True, metavar="s3://BUCKET/PREFIX", help="where the masks go")
    p.add_argument("--every", type=int, default=1, metavar="N",
                   help="segment frames 0, N, 2N, ... of the stream, counted from where the consumer first started "
                   "(default 1: every frame)")
    p.add_argument("--start", default="now", metavar="now|earliest|TIMESTAMP",
                   help="where to begin without a checkpoint: now, earliest, or a producer time (epoch seconds or ISO "
                   "8601); with a checkpoint the consumer always resumes after it")
    p.add_argument("--checkpoint", default="", metavar="PATH",
                   help="the checkpoint file (default ~/.cache/roadedge/segment-<stream>-<bucket>-<prefix>.json)")
    p.add_argument("--region", default="", help="AWS region (default: the AWS configuration's)")
    p.add_argument("--kvs-endpoint-url", default="", metavar="URL", help="Kinesis Video control-plane endpoint")
    p.add_argument("--endpoint-url", default="", metavar="URL", help="SageMaker runtime endpoint (local servers)")
    p.add_argument("--s3-endpoint-url", default="", metavar="URL", help="S3 endpoint (also AWS_ENDPOINT_URL_S3)")
    p.add_argument("--labels", default="", metavar="A,B,...",
                   help="with --endpoint: class names in index order (default: the synthetic demo set)")
    p.add_argument("--road-classes", default="", metavar="A,B,...", help="classes that count as drivable road")
    p.add_argument("--device", default="CPU", help="with --model: the OpenVINO device")
    p.add_argument("--until-idle", type=float, metavar="SECONDS",
                   help="stop once no new fragment came for this long (default: run until interrupted)")
    p.add_argument("--fragments", type=int, metavar="N", help="stop after N fragments")
    p.set_defaults(handler=lazy_handler("cloud.segment.command", "segment_command"))


def _names(text):
    return [name.strip() for name in text.split(",") if name.strip()]


def segment_command(args):
    from cloud.segment.consumer import Consumer
    from cloud.segment.getmedia import LIVE_READ_TIMEOUT_S, MediaStream, selector_for
    from cloud.segment.output import S3Output, default_checkpoint, load_checkpoint, parse_bucket
    from roadedge.core.errors import RoadedgeError
    from roadedge.core.seglabels import SYNTH_SEG_LABELS

    for module, extra in (("boto3", "aws"), ("av", "kvs")):
        try:
            __import__(module)
        except ImportError:
            raise RoadedgeError("roadedge cloud segment needs {} (pip install 'roadedge[{}]')".format(module, extra)) \
                from None
    if args.every < 1:
        raise RoadedgeError("--every {}: expected 1 or more".format(args.every))
    if args.until_idle is not None and args.until_idle <= 0 or args.fragments is not None and args.fragments < 1:
        raise RoadedgeError("--until-idle and --fragments: expected a positive number")
    start = selector_for(args.start)
    bucket, prefix = parse_bucket(args.bucket)
    checkpoint = os.path.expanduser(args.checkpoint or default_checkpoint(args.stream, bucket, prefix))
    state = load_checkpoint(checkpoint, args.stream, bucket, prefix)
    output = S3Output(bucket, prefix, args.region, args.s3_endpoint_url)
    output.check()
    media = MediaStream(args.stream, args.region, args.kvs_endpoint_url)
    media.media_client(LIVE_READ_TIMEOUT_S)  # the stream exists and its data endpoint answers, before the model loads
    road = _names(args.road_classes)
    if args.model:
        from cloud.segment.segmenters import IrSegmenter

        if not os.path.isfile(os.path.expanduser(args.model)):
            raise RoadedgeError("--model {}: no such file".format(args.model))
        segmenter = IrSegmenter(os.path.expanduser(args.model), road, args.device)
    else:
        from cloud.segment.segmenters import EndpointSegmenter

        segmenter = EndpointSegmenter(args.endpoint, _names(args.labels) or list(SYNTH_SEG_LABELS), road, args.region,
                                      args.endpoint_url)
    consumer = Consumer(media, segmenter, output, args.stream, args.every, checkpoint, state)
    where = "after fragment {}".format(state["fragment_number"]) if state else args.start
    print("segmenting {} from {} with {} ({}), every {} frame(s), into s3://{}/{}".format(
        args.stream, where, segmenter.name, segmenter.source, args.every, bucket, prefix), file=sys.stderr, flush=True)
    stop = threading.Event()
    started = time.monotonic()
    previous = _on_signals(stop)
    try:
        counts = consumer.run(start, args.until_idle, args.fragments, stop)
    finally:
        _restore(previous)
    print("{}: {} fragments, {} frames, {} segmented, {} already in S3, {} objects written in {:.1f} s ({} GetMedia "
          "requests); checkpoint {}{}".format(
              args.stream, counts["fragments"], counts["frames"], counts["segmented"], counts["skipped"],
              len(output.puts), time.monotonic() - started, media.requests, checkpoint,
              " (interrupted)" if consumer.stopped or stop.is_set() else ""))
    return 0


def _on_signals(stop):
    """Ctrl-C and SIGTERM set the stop flag (the consumer finishes its frame and the checkpoint); a second one
    interrupts at once (a read waiting on an idle stream). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt()
        stop.set()
        print("stopping after the current frame (again to stop at once)", file=sys.stderr, flush=True)

    return {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}


def _restore(previous):
    for signum, handler in (previous or {}).items():
        signal.signal(signum, handler)
