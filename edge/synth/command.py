"""`roadedge synth`: render a labelled road-damage data set, or a drive video with per-frame labels."""
import sys

from roadedge.core.catalog import SYNTH_CLASSES
from roadedge.core.errors import RoadedgeError
from roadedge.core.seglabels import SYNTH_SEG_LABELS

IMAGE_SIZE, VIDEO_SIZE = (600, 600), (640, 360)


def register(subparsers):
    p = subparsers.add_parser(
        "synth",
        help="render synthetic dashcam road frames with road-damage labels",
        description="Render procedural dashcam road frames with ground-truth road damage "
        "(D00 longitudinal crack, D10 lateral crack, D20 alligator crack, D40 pothole, D43 crosswalk blur, "
        "D44 white line blur). Writes OUT_DIR/JPEGImages/*.jpg + OUT_DIR/Annotations/*.xml (VOC, RDD layout), "
        "or with --video OUT_DIR/drive.mp4 + OUT_DIR/drive.jsonl. With --segmentation also a Pascal VOC 2012 "
        "segmentation tree: SegmentationClass/*.png (palette PNGs of per-pixel class indices, VOC colours), "
        "ImageSets/Segmentation/{train,val,trainval}.txt and labels.txt (%s), which `roadedge dataset convert-seg` "
        "takes as it is. The same seed gives the same files. "
        "OUT_DIR is written atomically: nothing is left behind on failure." % ", ".join(SYNTH_SEG_LABELS),
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder (must not exist unless --overwrite)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the output depends only on it and the options (default: 0)")
    p.add_argument("--count", type=int, default=None, help="number of images (default: 100; not with --video)")
    p.add_argument("--size", default=None, metavar="WxH",
                   help="frame size in pixels (default: 600x600 for images, 640x360 for --video)")
    p.add_argument("--classes", default=None, metavar="CODES",
                   help="comma-separated damage classes to draw, from %s (default: all)" % ",".join(SYNTH_CLASSES))
    p.add_argument("--flat", action="store_true",
                   help="write images and XML side by side in OUT_DIR (labelImg style) instead of JPEGImages/ + Annotations/")
    p.add_argument("--quality", type=int, default=None, help="JPEG quality 1-100 (default: 95; not with --video)")
    p.add_argument("--segmentation", action="store_true",
                   help="also write per-pixel ground truth as a VOC 2012 segmentation tree (not with --flat or --video)")
    p.add_argument("--val-fraction", type=float, default=None, metavar="F",
                   help="share of the images (the last ones) listed in val.txt (default: 0.2; --segmentation only)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    p.add_argument("--video", action="store_true",
                   help="render one continuous drive instead: OUT_DIR/drive.mp4 (mp4v) and OUT_DIR/drive.jsonl "
                   "(one line per frame: frame, t, width, height, objects with track_id), drive.json (the camera's "
                   "mounting, the start, each damage's place on the map), drive.yaml (its gps: and camera: settings for "
                   "`roadedge run --config`) and drive.nmea (its GPS track, for --gps file:)")
    p.add_argument("--duration", type=float, default=None, help="video length in seconds (default: 10; --video only)")
    p.add_argument("--fps", type=int, default=None, help="video frames per second (default: 15; --video only)")
    p.add_argument("--speed", type=float, default=None, help="driving speed in m/s (default: 12; --video only)")
    p.add_argument("--drive-frames", type=int, default=None, metavar="K",
                   help="the --count images are every K-th frame of rendered 20 s drives (seeds --seed, --seed+1, ...; "
                   "640x360 unless --size) instead of stills: what a dashcam sees, near and far damage, for training")
    p.add_argument("--road-seed", type=int, default=None, metavar="N",
                   help="--video: the road and its damages come from N, the pass over it (light, camera, noise) from --seed: "
                   "two seeds on one road seed are two passes over the same damages (default: --seed)")
    p.add_argument("--start", default=None, metavar="LAT,LON",
                   help="--video: where the drive starts on the map (default 52.5163,13.3777)")
    p.add_argument("--heading", type=float, default=None, metavar="DEG",
                   help="--video: the drive's heading, degrees clockwise from north (default 90)")
    p.add_argument("--workers", type=int, default=None,
                   help="render processes (default: one per CPU, at most 8); the output does not depend on it")
    p.set_defaults(handler=run)


def parse_size(text):
    parts = text.lower().split("x")
    try:
        width, height = (int(v) for v in parts)
    except ValueError:
        raise RoadedgeError("bad --size %r: expected WIDTHxHEIGHT, e.g. 600x600" % text) from None
    if not (32 <= width <= 8192 and 32 <= height <= 8192):
        raise RoadedgeError("bad --size %r: each side must be 32..8192 pixels" % text)
    return width, height


def parse_start(text):
    """--start LAT,LON -> (lat, lon), or None."""
    if text is None:
        return None
    try:
        lat, lon = (float(v) for v in text.split(","))
    except ValueError:
        raise RoadedgeError("bad --start %r: expected LAT,LON in degrees, e.g. 52.5163,13.3777" % text) from None
    if not (-90 < lat < 90 and -180 <= lon <= 180):
        raise RoadedgeError("bad --start %r: latitude -90..90 and longitude -180..180" % text)
    return lat, lon


def parse_classes(text):
    if text is None:
        return SYNTH_CLASSES
    codes = [c.strip().upper() for c in text.split(",") if c.strip()]
    unknown = [c for c in codes if c not in SYNTH_CLASSES]
    if unknown or not codes:
        raise RoadedgeError("unknown class %s in --classes; allowed: %s" % (
            ", ".join(unknown) if unknown else "(none given)", ",".join(SYNTH_CLASSES)))
    return tuple(c for c in SYNTH_CLASSES if c in codes)


def _check(args):
    classes = parse_classes(args.classes)
    if args.video:
        for name, value in (("--count", args.count), ("--quality", args.quality), ("--flat", args.flat or None),
                            ("--drive-frames", args.drive_frames),
                            ("--segmentation", args.segmentation or None), ("--val-fraction", args.val_fraction)):
            if value is not None:
                raise RoadedgeError("%s applies to image data sets, not to --video" % name)
        size = parse_size(args.size) if args.size else VIDEO_SIZE
        if size[0] % 2 or size[1] % 2:
            raise RoadedgeError("bad --size %dx%d for --video: MPEG-4 needs an even width and height" % size)
        if args.duration is not None and not args.duration > 0:
            raise RoadedgeError("--duration must be positive, got %g" % args.duration)
        if args.fps is not None and not 1 <= args.fps <= 120:
            raise RoadedgeError("--fps must be 1..120, got %d" % args.fps)
        if args.speed is not None and not 0 <= args.speed <= 60:
            raise RoadedgeError("--speed must be 0..60 m/s, got %g" % args.speed)
        args.start = parse_start(args.start)
        if args.heading is not None and not 0 <= args.heading < 360:
            raise RoadedgeError("--heading must be 0..360 degrees, got %g" % args.heading)
    else:
        for name, value in (("--duration", args.duration), ("--fps", args.fps), ("--speed", args.speed),
                            ("--road-seed", args.road_seed), ("--start", args.start), ("--heading", args.heading)):
            if value is not None:
                raise RoadedgeError("%s applies to --video only" % name)
        size = parse_size(args.size) if args.size else (VIDEO_SIZE if args.drive_frames else IMAGE_SIZE)
        if args.drive_frames is not None and not 1 <= args.drive_frames <= 300:
            raise RoadedgeError("--drive-frames must be 1..300 (every K-th frame of a 300-frame drive), got %d"
                                % args.drive_frames)
        if args.drive_frames and args.segmentation:
            raise RoadedgeError("--drive-frames renders boxes only: not with --segmentation")
        if args.count is not None and args.count < 1:
            raise RoadedgeError("--count must be at least 1, got %d" % args.count)
        if args.quality is not None and not 1 <= args.quality <= 100:
            raise RoadedgeError("--quality must be 1..100, got %d" % args.quality)
        _check_segmentation(args)
    if args.workers is not None and args.workers < 1:
        raise RoadedgeError("--workers must be at least 1, got %d" % args.workers)
    return classes, size


def _check_segmentation(args):
    if not args.segmentation:
        if args.val_fraction is not None:
            raise RoadedgeError("--val-fraction applies to --segmentation only")
        return
    if args.flat:
        raise RoadedgeError("--segmentation writes a VOC tree (JPEGImages/, SegmentationClass/, ImageSets/): not with --flat")
    if args.val_fraction is not None and not 0 < args.val_fraction < 1:
        raise RoadedgeError("--val-fraction must be between 0 and 1 (exclusive), got %g" % args.val_fraction)
    if args.count is not None and args.count < 2:
        raise RoadedgeError("--segmentation needs --count >= 2 (train.txt and val.txt each list one image at least)")


def run(args):
    classes, size = _check(args)
    from edge.synth import writer

    if args.video:
        summary = writer.write_video(args.out_dir, args.seed, args.duration or 10.0, args.fps or 15, size, classes,
                                     12.0 if args.speed is None else args.speed, args.overwrite, args.workers,
                                     args.road_seed, args.start, args.heading)
        print("wrote %s: %d frames %dx%d, %d damage tracks, %d boxes in %.1f s" % (
            args.out_dir, summary["frames"], size[0], size[1], summary["tracks"], summary["boxes"], summary["seconds"]))
        return 0
    summary = writer.write_dataset(args.out_dir, args.count or 100, args.seed, size, classes, args.flat,
                                   95 if args.quality is None else args.quality, args.overwrite, args.workers,
                                   args.segmentation, 0.2 if args.val_fraction is None else args.val_fraction,
                                   args.drive_frames or 0)
    per_class = ", ".join("%s %d" % (c, n) for c, n in summary["objects"].items())
    print("wrote %s: %d images, %d objects (%s) in %.1f s" % (
        args.out_dir, summary["images"], sum(summary["objects"].values()), per_class, summary["seconds"]))
    if args.segmentation:
        total = float(sum(summary["class_pixels"].values())) or 1.0
        shares = ", ".join("%s %.1f%%" % (n, 100 * v / total) for n, v in summary["class_pixels"].items() if v)
        print("segmentation: %d train + %d val, %d classes (%s); pixels: %s" % (
            summary["train"], summary["val"], len(summary["labels"]), writer.SEG_LABELS_NAME, shares))
    sys.stdout.flush()
    return 0
