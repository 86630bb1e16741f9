"""Find and validate a VOC-XML data set (labelImg folder, RDD JPEGImages/ + Annotations/, RDD2020 images/ + annotations/xmls/).

`load_voc_dataset` reads every annotation file, finds its image, checks both
against each other and the class map, and returns the usable samples or
raises ValidationFailed listing every problem at once.
"""
import os
from collections import Counter

from converters.image_files import inspect_image
from roadedge.core.errors import RoadedgeError, ValidationFailed
from roadedge.core.voc import read_voc_xml, shown

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".JPG", ".JPEG", ".Jpg", ".png", ".PNG")


class Sample:
    """One image with its objects as (class_id, [xmin, ymin, xmax, ymax]) in image pixels."""

    def __init__(self, stem, image_path, width, height, depth, objects, xml_path):
        self.stem = stem
        self.image_path = image_path
        self.width = width
        self.height = height
        self.depth = depth
        self.objects = objects
        self.xml_path = xml_path


class LoadReport:
    """What was left out or changed on the way, for the summary and the warnings."""

    def __init__(self):
        self.skipped_unknown = Counter()
        self.skipped_difficult = 0
        self.clipped_boxes = 0
        self.dropped_empty = 0
        self.images_without_xml = 0
        self.warnings = []


def find_annotation_files(voc_dir):
    if not os.path.isdir(voc_dir):
        raise RoadedgeError("{}: not a folder; expected a folder of VOC XML files and images".format(voc_dir))
    found = []
    for folder, subfolders, files in os.walk(voc_dir):
        subfolders.sort()
        found.extend(os.path.join(folder, name) for name in sorted(files) if name.lower().endswith(".xml"))
    if not found:
        raise RoadedgeError("{}: no .xml annotation files found (searched recursively)".format(voc_dir))
    return found


def image_folders_for(xml_path):
    """Where the image of an annotation file may live, in the layouts labelImg and RDD use."""
    folder = os.path.dirname(xml_path)
    parent = os.path.dirname(folder)
    candidates = [folder, os.path.join(parent, "JPEGImages"), os.path.join(parent, "images")]
    if os.path.basename(folder).lower() == "xmls":  # RDD2020: <country>/annotations/xmls
        candidates.append(os.path.join(os.path.dirname(parent), "images"))
    return [path for path in candidates if os.path.isdir(path)]


def find_image(xml_path, filename):
    stem = os.path.splitext(os.path.basename(xml_path))[0]
    names = []
    if filename:
        names.append(os.path.basename(filename.replace("\\", "/")))
    names.extend(stem + ext for ext in IMAGE_EXTENSIONS)
    folders = image_folders_for(xml_path)
    for name in names:  # the image the XML names, in any folder, before an image named like the XML
        for folder in folders:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path, folders
    return None, folders


def load_voc_dataset(voc_dir, class_map, remap=None, unknown="error", skip_difficult=False,
                     clip=False, empty="keep", progress=None):
    """Returns (samples sorted by stem, LoadReport). Raises ValidationFailed with every problem found."""
    remap = remap or {}
    class_ids = {code: index for index, code in enumerate(class_map)}
    for source, target in remap.items():
        if target not in class_ids:
            raise RoadedgeError("--map {}={}: {!r} is not in the class map {}".format(
                source, target, target, ",".join(class_map)))
    xml_paths = find_annotation_files(voc_dir)
    report = LoadReport()
    problems = []
    samples = []
    stems = {}
    for xml_path in progress(xml_paths) if progress else xml_paths:
        record, found = read_voc_xml(xml_path)
        problems.extend(found)
        if record is None:
            continue
        if record.stem in stems:
            problems.append("{}: duplicate image stem {!r} (also {}); output files are named by stem".format(
                xml_path, record.stem, stems[record.stem]))
            continue
        stems[record.stem] = xml_path
        sample = _check_record(record, class_ids, remap, unknown, skip_difficult, clip, report, problems)
        if sample is None:
            continue
        if not sample.objects and empty == "drop":
            report.dropped_empty += 1
            continue
        fallback = _stem_fallback_warning(record, sample.image_path)
        if fallback:
            report.warnings.append(fallback)
        samples.append(sample)
    report.images_without_xml = _count_images_without_xml(voc_dir, stems)
    if problems:
        raise ValidationFailed(problems, voc_dir)
    samples.sort(key=lambda sample: sample.stem)
    return samples, report


def _stem_fallback_warning(record, image_path):
    """A warning when <filename> names another image and the one named like the XML file was used instead."""
    if not record.filename:
        return None
    asked = os.path.basename(record.filename.replace("\\", "/"))
    if os.path.basename(image_path) == asked or os.path.splitext(asked)[0] == record.stem:
        return None  # the named image, or its stem with another extension (.JPG, .png, none)
    return "{}: filename: image {} not found; using {}, named like the XML file".format(
        record.xml_path, shown(record.filename, 120), image_path)


def _check_record(record, class_ids, remap, unknown, skip_difficult, clip, report, problems):
    xml_path = record.xml_path
    image_path, folders = find_image(xml_path, record.filename)
    if image_path is None:
        problems.append("{}: filename: image {} not found (looked in {})".format(
            xml_path, shown(record.filename or record.stem + ".*", 120), ", ".join(folders) or os.path.dirname(xml_path)))
        return None
    info = inspect_image(image_path, problems, formats=("JPEG", "PNG"), expected="a JPEG or PNG image")
    if info is None:
        return None
    width, height, depth = info.width, info.height, info.bands
    if record.size is not None and record.size[:2] != (width, height):
        problems.append("{}: size: {}x{} in the XML, but image {} is {}x{}".format(
            xml_path, record.size[0], record.size[1], os.path.basename(image_path), width, height))
        return None
    objects = []
    for obj in record.objects:
        code = remap.get(obj.name, obj.name)
        if code not in class_ids:
            if unknown == "skip":
                report.skipped_unknown[obj.name] += 1
                continue
            problems.append("{}: {}: name: class {} is not in the class map {} (use --unknown skip or --map {}=CLASS)".format(
                xml_path, obj.describe(), shown(obj.name), ",".join(sorted(class_ids, key=class_ids.get)),
                shown(obj.name, quote=False)))
            continue
        if skip_difficult and obj.difficult:
            report.skipped_difficult += 1
            continue
        box = _check_box(obj, width, height, clip, xml_path, report, problems)
        if box is not None:
            objects.append((class_ids[code], box))
    return Sample(record.stem, image_path, width, height, depth, objects, xml_path)


def _check_box(obj, width, height, clip, xml_path, report, problems):
    xmin, ymin, xmax, ymax = obj.bbox
    outside = []
    if xmin < 0:
        outside.append("xmin {:g} < 0".format(xmin))
    if ymin < 0:
        outside.append("ymin {:g} < 0".format(ymin))
    if xmax > width:
        outside.append("xmax {:g} > image width {}".format(xmax, width))
    if ymax > height:
        outside.append("ymax {:g} > image height {}".format(ymax, height))
    if not outside:
        return [xmin, ymin, xmax, ymax]
    where = "{}: {}: bndbox".format(xml_path, obj.describe())
    if not clip:
        problems.append("{}: outside the image ({}); use --clip to clip it".format(where, ", ".join(outside)))
        return None
    box = [max(xmin, 0.0), max(ymin, 0.0), min(xmax, float(width)), min(ymax, float(height))]
    if box[0] >= box[2] or box[1] >= box[3]:
        report.warnings.append("{}: entirely outside the image; dropped".format(where))
        return None
    report.clipped_boxes += 1
    report.warnings.append("{}: clipped to the image ({})".format(where, ", ".join(outside)))
    return box


def _count_images_without_xml(voc_dir, stems):
    count = 0
    for _, _, files in os.walk(voc_dir):
        for name in files:
            stem, ext = os.path.splitext(name)
            if ext in IMAGE_EXTENSIONS and stem not in stems:
                count += 1
    return count
