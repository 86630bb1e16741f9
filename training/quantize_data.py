"""The frames `roadedge convert quantize` calibrates on and measures accuracy on: a folder, or synthetic stills.

Synthetic sets are rendered by `roadedge synth`'s writer into a temporary folder and then read back exactly as
`roadedge eval` reads a folder (JPEG and all), so `roadedge synth --seed S --count N --size WxH` and `roadedge eval`
reproduce the metadata's figures.
"""
import os

from roadedge.core.errors import RoadedgeError

SYNTH = "synth"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def synth_folder(work, role, count, seed, size):
    """Render `count` labelled stills of `seed` into work/role (a VOC folder); its path."""
    from edge.synth.writer import write_dataset

    folder = os.path.join(work, role)
    write_dataset(folder, count, seed, size=size, workers=1 if count < 64 else None)  # a pool costs seconds to start
    return folder


def parse_size(text):
    from edge.synth.command import parse_size as parse

    return parse(text)


def check_count(option, value):
    if value is None or value < 1:
        raise RoadedgeError("--{} {}: expected a positive number of frames".format(option, value))
    return value


def _plain_images(folder, limit):
    found = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(root, name) for name in sorted(names) if name.lower().endswith(IMAGE_SUFFIXES))
    return sorted(found)[:limit]


def calibration_images(source, count, seed, size, work):
    """(image paths, a record of where they came from) for calibration: labels are not needed."""
    from training.evaluate import load_data

    if source == SYNTH:
        folder = synth_folder(work, "calibration", count, seed, size)
        return [image.path for image in load_data(folder, limit=count).images], {
            "source": SYNTH, "seed": seed, "size": "{}x{}".format(*size), "images": count}
    if not os.path.isdir(source):
        raise RoadedgeError("--calibration {}: not a folder; expected a folder of images, a VOC folder, a SageMaker "
                            "object-detection folder or synth".format(source))
    split = "train" if os.path.isdir(os.path.join(source, "train_annotation")) else "validation"
    paths = _plain_images(os.path.join(source, split) if os.path.isdir(os.path.join(source, split + "_annotation"))
                          else source, count)
    if not paths:
        raise RoadedgeError("--calibration {}: no images (expected JPEG or PNG frames, a VOC folder or a SageMaker "
                            "object-detection folder)".format(source))
    return paths, {"source": os.path.abspath(source), "images": len(paths)}


def validation_set(source, count, seed, size, work, labels, ignore_unknown=False):
    """(data set, ground truth per image as the evaluator maps it, a record of where it came from)."""
    from training.eval_video import drive_paths
    from training.evaluate import load_data, map_classes

    if source == SYNTH:
        folder = synth_folder(work, "validation", count, seed, size)
        record = {"source": SYNTH, "seed": seed, "size": "{}x{}".format(*size)}
    else:
        if not os.path.isdir(source) and not drive_paths(source):
            raise RoadedgeError("--validation {}: not a folder; expected a VOC folder, a SageMaker object-detection "
                                "folder, a `roadedge synth --video` drive or synth".format(source))
        folder, record = source, {"source": os.path.abspath(source)}
    try:
        data = load_data(folder, "validation", count)
    except RoadedgeError as err:
        if not any(text in str(err) for text in ("no images to evaluate", "no .xml annotation files")):
            raise
        raise RoadedgeError("--validation {}: no labelled images (expected a VOC folder or a SageMaker object-detection "
                            "folder)".format(source)) from None
    ground_truth, unknown = map_classes(labels, data, ignore_unknown)
    record.update(images=len(data.images), format=data.kind)
    if data.split:
        record["split"] = data.split
    if unknown:
        record["unknown_objects_left_out"] = unknown
    return data, ground_truth, record
