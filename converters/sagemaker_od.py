"""Write a validated VOC data set as SageMaker object-detection channels.

Layout of OUT_DIR: train/, validation/ (images), train_annotation/,
validation_annotation/ (one JSON per image, same stem), summary.json,
hyperparameters.json (string values, as SageMaker stores them) and, with
--lst, train.lst / validation.lst for im2rec. Boxes keep the XML's pixel
coordinates: left = xmin, top = ymin, width = xmax - xmin, height = ymax - ymin.
"""
import json
import os
import shutil
import statistics
import sys
import time

from converters.classmap import parse_class_map, parse_remap
from converters.split import split_items
from converters.voc_dataset import load_voc_dataset
from roadedge.core.errors import RoadedgeError
from roadedge.core.fsutil import atomic_dir, check_output
from roadedge.core.voc import shown

CHANNELS = {"train": "train_annotation", "validation": "validation_annotation"}


def _number(value):
    value = float(value)
    return int(value) if value.is_integer() else round(value, 3)


def annotation_json(sample, output_name, class_map):
    """The SageMaker JSON object for one image (class ids 0-based, positions in `class_map`)."""
    return {
        "file": output_name,
        "image_size": [{"width": sample.width, "height": sample.height, "depth": sample.depth}],
        "annotations": [
            {
                "class_id": class_id,
                "left": _number(xmin),
                "top": _number(ymin),
                "width": _number(xmax - xmin),
                "height": _number(ymax - ymin),
            }
            for class_id, (xmin, ymin, xmax, ymax) in sample.objects
        ],
        "categories": [{"class_id": index, "name": code} for index, code in enumerate(class_map)],
    }


def lst_line(index, sample, relative_path):
    """im2rec detection list line: idx, header width 4, object width 5, image width/height, objects, path."""
    fields = [str(index), "4", "5", str(sample.width), str(sample.height)]
    for class_id, (xmin, ymin, xmax, ymax) in sample.objects:
        fields.append(str(class_id))
        fields.extend("%.6f" % value for value in (xmin / sample.width, ymin / sample.height,
                                                   xmax / sample.width, ymax / sample.height))
    fields.append(relative_path)
    return "\t".join(fields)


def suggested_image_shape(samples):
    """SageMaker's SSD resizes to a square; 512 when the images are large enough for it, else 300."""
    if not samples:
        return 300
    short_sides = [min(sample.width, sample.height) for sample in samples]
    return 512 if statistics.median(short_sides) >= 512 else 300


def split_summary(samples, class_map):
    per_class = {code: 0 for code in class_map}
    for sample in samples:
        for class_id, _ in sample.objects:
            per_class[class_map[class_id]] += 1
    return {
        "images": len(samples),
        "objects": sum(per_class.values()),
        "empty_images": sum(1 for sample in samples if not sample.objects),
        "per_class": per_class,
    }


def write_channels(out_dir, splits, class_map, lst=False, link=False, progress=None):
    """`splits`: {"train": [samples], "validation": [samples]}. Writes into the (temporary) folder `out_dir`."""
    jobs = []
    for split, samples in splits.items():
        for folder in (split, CHANNELS[split]):
            os.makedirs(os.path.join(out_dir, folder), exist_ok=True)
        jobs.extend((split, sample) for sample in samples)
    lst_lines = {split: [] for split in splits}
    for split, sample in progress(jobs) if progress else jobs:
        name = sample.stem + os.path.splitext(sample.image_path)[1].lower()
        _place_image(sample.image_path, os.path.join(out_dir, split, name), link)
        with open(os.path.join(out_dir, CHANNELS[split], sample.stem + ".json"), "w", encoding="utf-8") as handle:
            json.dump(annotation_json(sample, name, class_map), handle, allow_nan=False)
        lst_lines[split].append(lst_line(len(lst_lines[split]), sample, split + "/" + name))
    if lst:
        for split, lines in lst_lines.items():
            with open(os.path.join(out_dir, split + ".lst"), "w", encoding="utf-8") as handle:
                handle.write("".join(line + "\n" for line in lines))


def _place_image(source, target, link):
    if link:
        try:
            os.link(source, target)
            return
        except OSError:
            pass  # another file system: copy instead
    shutil.copyfile(source, target)


def _progress(desc, unit):
    from tqdm import tqdm

    return lambda items: tqdm(items, desc=desc, unit=unit, disable=None, file=sys.stderr)


def convert_command(args):
    started = time.time()
    if not 0.0 <= args.validation_fraction < 1.0:
        raise RoadedgeError("--validation-fraction {}: expected a number in [0, 1)".format(args.validation_fraction))
    class_map = parse_class_map(args.classes)
    remap = parse_remap(args.remap)
    out_dir = check_output(args.out_dir, [args.voc_dir], args.overwrite)
    samples, report = load_voc_dataset(
        args.voc_dir, class_map, remap=remap, unknown=args.unknown, skip_difficult=args.skip_difficult,
        clip=args.clip, empty=args.empty, progress=_progress("checking", "file"))
    if not samples:
        raise RoadedgeError("{}: no image with objects left to convert (see --empty, --classes, --unknown)".format(args.voc_dir))
    by_stem = {sample.stem: sample for sample in samples}
    items = [(sample.stem, [class_map[class_id] for class_id, _ in sample.objects]) for sample in samples]
    train, validation = split_items(items, args.validation_fraction, args.seed)
    splits = {"train": [by_stem[stem] for stem in train], "validation": [by_stem[stem] for stem in validation]}
    summary = {
        "source": os.path.abspath(args.voc_dir),
        "classes": class_map,
        "seed": args.seed,
        "validation_fraction": args.validation_fraction,
        "splits": {split: split_summary(items_, class_map) for split, items_ in splits.items()},
        "left_out": {
            "unknown_class_objects": dict(sorted(report.skipped_unknown.items())),
            "difficult_objects": report.skipped_difficult,
            "empty_images": report.dropped_empty,
            "images_without_xml": report.images_without_xml,
        },
        "clipped_boxes": report.clipped_boxes,
    }
    hyperparameters = {
        "num_classes": str(len(class_map)),
        "num_training_samples": str(len(train)),
        "image_shape": str(suggested_image_shape(samples)),
    }
    # the images may also come from a JPEGImages/ or images/ folder beside VOC_DIR: none of them may be replaced either
    inputs = [args.voc_dir] + sorted({os.path.dirname(sample.image_path) for sample in samples})
    with atomic_dir(out_dir, overwrite=args.overwrite, inputs=inputs) as tmp:
        write_channels(tmp, splits, class_map, lst=args.lst, link=args.link, progress=_progress("writing", "image"))
        for name, content in (("summary.json", summary), ("hyperparameters.json", hyperparameters)):
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as handle:
                json.dump(content, handle, indent=2, allow_nan=False)
                handle.write("\n")
    for warning in report.warnings:
        print("roadedge: warning: " + warning, file=sys.stderr)
    print(format_summary(summary, hyperparameters, out_dir, time.time() - started))
    return 0


def format_summary(summary, hyperparameters, out_dir, seconds):
    splits = summary["splits"]
    rows = ["{:<8}{:>8}{:>12}".format("class", "train", "validation")]
    for code in summary["classes"]:
        rows.append("{:<8}{:>8}{:>12}".format(code, splits["train"]["per_class"][code], splits["validation"]["per_class"][code]))
    rows.append("{:<8}{:>8}{:>12}".format("images", splits["train"]["images"], splits["validation"]["images"]))
    left_out = summary["left_out"]
    notes = []
    if left_out["unknown_class_objects"]:
        notes.append("skipped objects of unmapped classes: " + ", ".join(
            "{} ({})".format(shown(code, quote=False), count) for code, count in left_out["unknown_class_objects"].items()))
    for key, label in (("difficult_objects", "skipped difficult objects"), ("empty_images", "dropped images without objects"),
                       ("images_without_xml", "ignored images without XML")):
        if left_out[key]:
            notes.append("{}: {}".format(label, left_out[key]))
    if summary["clipped_boxes"]:
        notes.append("clipped boxes: {}".format(summary["clipped_boxes"]))
    head = "wrote {} ({:.1f} s): num_classes={} num_training_samples={} image_shape={}".format(
        out_dir, seconds, hyperparameters["num_classes"], hyperparameters["num_training_samples"], hyperparameters["image_shape"])
    return "\n".join([head] + rows + notes)
