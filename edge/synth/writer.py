"""Writing synthetic data to disk: an RDD/labelImg VOC data set, or a drive video with per-frame labels.

With `segmentation`, the data set is a Pascal VOC 2012 segmentation tree as
well: SegmentationClass/<id>.png (palette PNGs of SYNTH_SEG_LABELS indices,
VOC colours), ImageSets/Segmentation/{train,val,trainval}.txt and labels.txt
(the class names in index order, for `roadedge dataset convert-seg --classes`).

Frames are rendered in worker processes (each frame depends only on the
seed and its index, so the output is identical whatever the worker count)
and written by the parent, in order, into an `atomic_dir`.
"""
import contextlib
import json
import multiprocessing
import os
import signal
import sys
import time

import cv2
import numpy as np

from edge.synth.api import DriveRenderer, render_image, render_labelled
from roadedge.core.errors import RoadedgeError
from roadedge.core.fsutil import atomic_dir
from roadedge.core.seglabels import SYNTH_SEG_LABELS, index_png_bytes
from roadedge.core.voc import write_voc_xml

VIDEO_NAME, LABELS_NAME = "drive.mp4", "drive.jsonl"
DRIVE_NAME, SETTINGS_NAME, TRACK_NAME = "drive.json", "drive.yaml", "drive.nmea"
SEG_LABELS_NAME = "labels.txt"


def stem_for(seed, index):
    return "synth-s%d-%05d" % (seed, index)


def default_workers(count):
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8, count // 8 or 1))


def _worker_init():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates the pool
    cv2.setNumThreads(1)


def _render_still(job):
    seed, index, size, classes, quality, segmentation = job
    if segmentation:
        image, objects, mask = render_labelled(seed, index, size, classes)
        seg = (index_png_bytes(mask), np.bincount(mask.ravel(), minlength=256))
    else:
        (image, objects), seg = render_image(seed, index, size, classes), None
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return index, image.shape, buf.tobytes(), objects, seg


_drive = {}


def _render_frame(job):
    seed, size, classes, speed, fps, index, road_seed = job
    key = (seed, size, classes, speed, road_seed)
    if key not in _drive:
        _drive.clear()
        _drive[key] = DriveRenderer(seed, size, classes, speed, road_seed)
    image, objects = _drive[key].frame(index, fps)
    return index, image, objects


def _context():
    """Never plain fork: a forked child can inherit a lock held by one of OpenCV's threads and hang."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["edge.synth.writer"])
        return ctx
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def _mapper(workers):
    """Yield map(func, jobs, chunksize) giving results in order; in a process pool when workers > 1."""
    if workers <= 1:
        yield lambda func, jobs, chunksize: map(func, jobs)
        return
    pool = _context().Pool(workers, initializer=_worker_init)
    try:
        yield pool.imap
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _progress(total, unit):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, disable=None, file=sys.stderr, dynamic_ncols=True, leave=False)


def val_count(count, val_fraction):
    """Images of a segmentation set that go to val.txt (the last ones): at least one, and one left to train."""
    if count < 2:
        raise RoadedgeError("a segmentation set needs --count >= 2 (train.txt and val.txt each list one image at least)")
    return min(count - 1, max(1, int(round(count * val_fraction))))


def _render_drive_still(job):
    seed, size, classes, speed, fps, index, quality = job
    _, image, objects = _render_frame((seed, size, classes, speed, fps, index, None))
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return (seed, index), image.shape, buf.tobytes(), [{k: o[k] for k in ("name", "bbox", "truncated", "difficult")}
                                                       for o in objects], None


def drive_frame_jobs(count, seed, size, classes, quality, every=5, fps=15, duration=20.0, speed=12.0):
    """`count` frames of rendered drives: every `every`-th frame of `duration`-second drives seeded seed, seed+1, ..."""
    per_drive = max(1, int(duration * fps) // every)
    return [(seed + n // per_drive, tuple(size), classes, speed, fps, (n % per_drive) * every, quality)
            for n in range(count)]


def write_dataset(out_dir, count, seed, size=(600, 600), classes=None, flat=False, quality=95,
                  overwrite=False, workers=None, segmentation=False, val_fraction=0.2, drive_every=0):
    """Render `count` labelled stills into out_dir (RDD layout, or flat). Returns a summary dict.

    `segmentation` adds the VOC 2012 segmentation tree (not with `flat`); the last
    round(count * val_fraction) images are the val split. `drive_every` > 0: the images are every
    drive_every-th frame of rendered drives instead (drive_frame_jobs; stems drive-s<seed>-<frame>).
    """
    from roadedge.core.catalog import SYNTH_CLASSES

    classes = tuple(classes or SYNTH_CLASSES)
    if segmentation and flat:
        raise RoadedgeError("--segmentation writes a VOC tree (JPEGImages/, SegmentationClass/, ImageSets/): not with --flat")
    n_val = val_count(count, val_fraction) if segmentation else 0
    started = time.perf_counter()
    counts = {c: 0 for c in classes}
    pixels = np.zeros(256, np.int64)
    workers = default_workers(count) if workers is None else max(1, int(workers))
    with atomic_dir(out_dir, overwrite) as tmp:
        if flat:
            img_dir = ann_dir = tmp
            folder = os.path.basename(os.path.abspath(out_dir))
        else:
            img_dir, ann_dir = os.path.join(tmp, "JPEGImages"), os.path.join(tmp, "Annotations")
            os.makedirs(img_dir)
            os.makedirs(ann_dir)
            folder = "JPEGImages"
        if segmentation:
            seg_dir = os.path.join(tmp, "SegmentationClass")
            os.makedirs(seg_dir)
        jobs = [(seed, i, tuple(size), classes, quality, segmentation) for i in range(count)]
        render = _render_still
        if drive_every:
            jobs, render = drive_frame_jobs(count, seed, size, classes, quality, drive_every), _render_drive_still
        with _mapper(workers) as mapped, _progress(count, "img") as bar:
            for index, shape, jpeg, objects, seg in mapped(render, jobs, 4):
                stem = "drive-s%d-%05d" % index if drive_every else stem_for(seed, index)
                with open(os.path.join(img_dir, stem + ".jpg"), "wb") as handle:
                    handle.write(jpeg)
                xml = write_voc_xml(stem + ".jpg", folder, shape[1], shape[0], 3, objects)
                with open(os.path.join(ann_dir, stem + ".xml"), "wb") as handle:
                    handle.write(xml)
                if seg is not None:
                    with open(os.path.join(seg_dir, stem + ".png"), "wb") as handle:
                        handle.write(seg[0])
                    pixels += seg[1]
                for obj in objects:
                    counts[obj["name"]] += 1
                bar.update(1)
        if segmentation:
            _write_seg_lists(tmp, [stem_for(seed, i) for i in range(count)], n_val)
    summary = {"images": count, "objects": counts, "seconds": time.perf_counter() - started}
    if segmentation:
        summary.update(train=count - n_val, val=n_val, labels=list(SYNTH_SEG_LABELS),
                       class_pixels={name: int(pixels[i]) for i, name in enumerate(SYNTH_SEG_LABELS)})
    return summary


def _write_seg_lists(root, stems, n_val):
    lists = os.path.join(root, "ImageSets", "Segmentation")
    os.makedirs(lists)
    train, val = stems[:len(stems) - n_val], stems[len(stems) - n_val:]
    for name, ids in (("train.txt", train), ("val.txt", val), ("trainval.txt", stems)):
        with open(os.path.join(lists, name), "w", encoding="utf-8") as handle:
            handle.write("".join(i + "\n" for i in ids))
    with open(os.path.join(root, SEG_LABELS_NAME), "w", encoding="utf-8") as handle:
        handle.write("".join(name + "\n" for name in SYNTH_SEG_LABELS))


def write_video(out_dir, seed, duration=10.0, fps=15, size=(640, 360), classes=None, speed=12.0,
                overwrite=False, workers=None, road_seed=None, start=None, heading=None):
    """Render a drive into out_dir/drive.mp4 (mp4v) and out_dir/drive.jsonl, with where it is (edge.synth.drive_track):
    drive.json (camera, start, damages' places), drive.yaml (its gps and camera settings) and drive.nmea (its track).
    Returns a summary dict."""
    from edge.synth import drive_track
    from roadedge.core.catalog import SYNTH_CLASSES

    classes = tuple(classes or SYNTH_CLASSES)
    frames = int(round(duration * fps))
    if frames < 1:
        raise RoadedgeError("--duration %g at --fps %g gives no frames" % (duration, fps))
    started = time.perf_counter()
    workers = default_workers(frames) if workers is None else max(1, int(workers))
    tracks, boxes = set(), 0
    width, height = size
    if width % 2 or height % 2:
        raise RoadedgeError("video size %dx%d: MPEG-4 needs an even width and height" % (width, height))
    with atomic_dir(out_dir, overwrite) as tmp:
        video = cv2.VideoWriter(os.path.join(tmp, VIDEO_NAME), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
        if not video.isOpened():
            raise RoadedgeError("cannot open an mp4v video writer (this OpenCV build has no MPEG-4 encoder)")
        jobs = [(seed, (width, height), classes, speed, fps, i, road_seed) for i in range(frames)]
        try:
            with _mapper(workers) as mapped, _progress(frames, "frame") as bar, \
                    open(os.path.join(tmp, LABELS_NAME), "w", encoding="utf-8") as labels:
                for index, image, objects in mapped(_render_frame, jobs, 8):
                    video.write(image)
                    record = {"frame": index, "t": round(index / float(fps), 6), "width": width, "height": height,
                              "objects": objects}
                    labels.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")
                    tracks.update(o["track_id"] for o in objects)
                    boxes += len(objects)
                    bar.update(1)
        finally:
            video.release()
        renderer = DriveRenderer(seed, (width, height), classes, speed, road_seed)
        description = drive_track.drive_description(renderer, fps, frames, start or drive_track.DEFAULT_START,
                                                    drive_track.DEFAULT_HEADING if heading is None else heading, tracks)
        with open(os.path.join(tmp, DRIVE_NAME), "w", encoding="utf-8") as handle:
            json.dump(description, handle, indent=1)
        with open(os.path.join(tmp, SETTINGS_NAME), "w", encoding="utf-8") as handle:
            handle.write(drive_track.drive_settings_yaml(description))
        with open(os.path.join(tmp, TRACK_NAME), "w", encoding="ascii", newline="") as handle:
            handle.write(drive_track.drive_nmea(description))
    return {"frames": frames, "tracks": len(tracks), "boxes": boxes, "seconds": time.perf_counter() - started}
