"""`roadedge dataset convert`: exact outputs for hand-written VOC fixtures, options, and every bad input."""
import json
import os
import shutil

import pytest

from roadedge.cli import main
from roadedge.core.catalog import load_catalog
from tests.conftest import make_image

RDD2018 = load_catalog()["class_maps"]["rdd2018"]
CATEGORIES = [{"class_id": i, "name": code} for i, code in enumerate(RDD2018)]


def convert(*args):
    return main(["dataset", "convert", *map(str, args)])


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def test_exact_sagemaker_json_for_both_element_orders_floats_and_edge_boxes(voc_fixture_dir, tmp_path):
    out = tmp_path / "out"
    assert convert(voc_fixture_dir, out, "--validation-fraction", "0", "--lst") == 0

    assert sorted(os.listdir(out)) == ["hyperparameters.json", "summary.json", "train", "train.lst",
                                      "train_annotation", "validation", "validation.lst", "validation_annotation"]
    assert sorted(os.listdir(out / "train")) == ["labelimg_order.jpg", "no_extension.png", "rdd_order.jpg"]
    assert sorted(os.listdir(out / "train_annotation")) == ["labelimg_order.json", "no_extension.json", "rdd_order.json"]
    assert os.listdir(out / "validation") == [] and os.listdir(out / "validation_annotation") == []
    size = [{"width": 64, "height": 48, "depth": 3}]
    assert read_json(out / "train_annotation" / "labelimg_order.json") == {
        "file": "labelimg_order.jpg",
        "image_size": size,
        "annotations": [
            {"class_id": 0, "left": 10, "top": 5, "width": 10, "height": 35},
            {"class_id": 5, "left": 30, "top": 20, "width": 20, "height": 10},
        ],
        "categories": CATEGORIES,
    }
    assert read_json(out / "train_annotation" / "rdd_order.json") == {
        "file": "rdd_order.jpg",
        "image_size": size,
        "annotations": [
            {"class_id": 7, "left": 2.5, "top": 30, "width": 57.75, "height": 17.5},
            {"class_id": 4, "left": 0, "top": 0, "width": 64, "height": 48},
        ],
        "categories": CATEGORIES,
    }
    assert read_json(out / "train_annotation" / "no_extension.json")["annotations"] == [
        {"class_id": 2, "left": 1, "top": 1, "width": 62, "height": 8}]
    assert read_json(out / "train_annotation" / "no_extension.json")["file"] == "no_extension.png"
    # images are copied byte for byte
    with open(voc_fixture_dir / "JPEGImages" / "rdd_order.jpg", "rb") as a, open(out / "train" / "rdd_order.jpg", "rb") as b:
        assert a.read() == b.read()

    assert read_json(out / "hyperparameters.json") == {
        "num_classes": "8", "num_training_samples": "3", "image_shape": "300"}
    summary = read_json(out / "summary.json")
    assert summary["classes"] == RDD2018
    assert summary["splits"]["train"]["per_class"] == {
        "D00": 1, "D01": 0, "D10": 1, "D11": 0, "D20": 1, "D40": 1, "D43": 0, "D44": 1}
    assert summary["splits"]["train"]["images"] == 3 and summary["splits"]["validation"]["images"] == 0
    assert summary["left_out"]["empty_images"] == 1

    lines = (out / "train.lst").read_text().splitlines()
    assert lines == [
        "0\t4\t5\t64\t48\t0\t0.156250\t0.104167\t0.312500\t0.833333\t5\t0.468750\t0.416667\t0.781250\t0.625000\ttrain/labelimg_order.jpg",
        "1\t4\t5\t64\t48\t2\t0.015625\t0.020833\t0.984375\t0.187500\ttrain/no_extension.png",
        "2\t4\t5\t64\t48\t7\t0.039062\t0.625000\t0.941406\t0.989583\t4\t0.000000\t0.000000\t1.000000\t1.000000\ttrain/rdd_order.jpg",
    ]
    assert (out / "validation.lst").read_text() == ""


def test_flat_labelimg_folder_and_rdd2020_layout_give_the_same_annotations(voc_fixture_dir, tmp_path):
    flat = tmp_path / "flat"
    rdd2020 = tmp_path / "rdd2020" / "Japan"
    flat.mkdir()
    (rdd2020 / "annotations" / "xmls").mkdir(parents=True)
    shutil.copytree(voc_fixture_dir / "JPEGImages", rdd2020 / "images")
    for folder in ("Annotations", "JPEGImages"):
        for name in os.listdir(voc_fixture_dir / folder):
            shutil.copy(voc_fixture_dir / folder / name, flat / name)
            if folder == "Annotations":
                shutil.copy(voc_fixture_dir / folder / name, rdd2020 / "annotations" / "xmls" / name)
    outputs = []
    for source in (voc_fixture_dir, flat, tmp_path / "rdd2020"):
        out = tmp_path / ("out-" + source.name)
        assert convert(source, out, "--validation-fraction", "0") == 0
        outputs.append({name: read_json(out / "train_annotation" / name) for name in os.listdir(out / "train_annotation")})
    assert outputs[0] == outputs[1] == outputs[2]
    assert len(outputs[0]) == 3


def test_empty_images_kept_on_request(voc_fixture_dir, tmp_path):
    out = tmp_path / "out"
    assert convert(voc_fixture_dir, out, "--validation-fraction", "0", "--empty", "keep") == 0
    assert read_json(out / "train_annotation" / "no_objects.json")["annotations"] == []
    assert read_json(out / "hyperparameters.json")["num_training_samples"] == "4"


def test_skip_difficult_and_custom_class_map(voc_fixture_dir, tmp_path):
    out = tmp_path / "out"
    assert convert(voc_fixture_dir, out, "--validation-fraction", "0", "--skip-difficult",
                   "--classes", "D00,D10,D20,D40,D43,D44") == 0
    labelimg = read_json(out / "train_annotation" / "labelimg_order.json")
    assert labelimg["annotations"] == [{"class_id": 0, "left": 10, "top": 5, "width": 10, "height": 35}]
    assert labelimg["categories"][-1] == {"class_id": 5, "name": "D44"}
    assert [a["class_id"] for a in read_json(out / "train_annotation" / "rdd_order.json")["annotations"]] == [5, 2]
    assert read_json(out / "hyperparameters.json")["num_classes"] == "6"
    assert read_json(out / "summary.json")["left_out"]["difficult_objects"] == 1


def test_class_map_from_file_and_named_map(voc_fixture_dir, tmp_path):
    class_file = tmp_path / "classes.txt"
    class_file.write_text("# road crew classes\nD44\nD20\nD10\nD00\nD40\n")
    out = tmp_path / "out"
    assert convert(voc_fixture_dir, out, "--validation-fraction", "0", "--classes", class_file) == 0
    assert [a["class_id"] for a in read_json(out / "train_annotation" / "rdd_order.json")["annotations"]] == [0, 1]
    assert convert(voc_fixture_dir, tmp_path / "o2", "--classes", "rdd2020", "--unknown", "skip") == 0
    assert read_json(tmp_path / "o2" / "summary.json")["classes"] == ["D00", "D10", "D20", "D40"]
    assert read_json(tmp_path / "o2" / "summary.json")["left_out"]["unknown_class_objects"] == {"D44": 1}


def test_unknown_class_is_an_error_by_default_then_skip_or_map(voc_fixture_dir, tmp_path, capsys):
    xml = voc_fixture_dir / "Annotations" / "labelimg_order.xml"
    xml.write_text(xml.read_text().replace("<name>D40</name>", "<name>D30</name>"))
    out = tmp_path / "out"
    assert convert(voc_fixture_dir, out) == 2
    err = capsys.readouterr().err
    assert "labelimg_order.xml: object[2] (D30): name: class 'D30' is not in the class map" in err
    assert not out.exists()

    assert convert(voc_fixture_dir, out, "--unknown", "skip", "--validation-fraction", "0") == 0
    assert len(read_json(out / "train_annotation" / "labelimg_order.json")["annotations"]) == 1
    assert read_json(out / "summary.json")["left_out"]["unknown_class_objects"] == {"D30": 1}

    assert convert(voc_fixture_dir, out, "--map", "D30=D40", "--overwrite", "--validation-fraction", "0") == 0
    assert [a["class_id"] for a in read_json(out / "train_annotation" / "labelimg_order.json")["annotations"]] == [0, 5]


def test_clip_option_clips_with_a_warning(voc_fixture_dir, tmp_path, capsys):
    xml = voc_fixture_dir / "Annotations" / "labelimg_order.xml"
    xml.write_text(xml.read_text().replace("<xmax>50</xmax>", "<xmax>70</xmax>"))
    assert convert(voc_fixture_dir, tmp_path / "out", "--clip", "--validation-fraction", "0") == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "object[2] (D40): bndbox: clipped to the image (xmax 70 > image width 64)" in err
    annotations = read_json(tmp_path / "out" / "train_annotation" / "labelimg_order.json")["annotations"]
    assert annotations[1] == {"class_id": 5, "left": 30, "top": 20, "width": 34, "height": 10}


def test_existing_output_needs_overwrite(voc_fixture_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert convert(voc_fixture_dir, out) == 2
    assert "output folder already exists (pass --overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert convert(voc_fixture_dir, out, "--overwrite") == 0
    assert not (out / "keep.txt").exists() and (out / "train").is_dir()


def test_split_is_reproducible_and_stratified(tmp_path):
    root = tmp_path / "voc"
    classes = ["D00", "D10", "D20", "D40", "D43", "D44"]
    for i in range(60):
        codes = [classes[i % 6]] + ([classes[(i * 7) % 6]] if i % 3 == 0 else [])
        objects = "".join(
            "<object><name>%s</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>" % c
            for c in codes)
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / ("img%02d.xml" % i)).write_text(
            "<annotation><filename>img%02d.jpg</filename><size><width>16</width><height>16</height></size>%s</annotation>"
            % (i, objects))
        make_image(str(root / "JPEGImages" / ("img%02d.jpg" % i)), 16, 16, seed=i)

    def validation_set(seed, out):
        assert convert(root, out, "--classes", ",".join(classes), "--seed", seed, "--validation-fraction", "0.3") == 0
        return sorted(os.listdir(out / "validation"))

    first = validation_set(7, tmp_path / "a")
    assert first == validation_set(7, tmp_path / "b")
    assert first != validation_set(8, tmp_path / "c")
    assert len(first) == 18  # round(60 * 0.3)
    per_class = read_json(tmp_path / "a" / "summary.json")["splits"]
    for code in classes:
        total = per_class["train"]["per_class"][code] + per_class["validation"]["per_class"][code]
        assert abs(per_class["validation"]["per_class"][code] - 0.3 * total) <= 2, code


# --- every bad input: one line naming file and field, exit 2, nothing written -------------------------

BAD_INPUTS = [
    ("malformed XML", lambda x: x.replace("</annotation>", "<annotation"), "labelimg_order.xml: malformed XML:"),
    ("missing bndbox", lambda x: x.replace("<bndbox>\n\t\t\t<xmin>10", "<box>\n\t\t\t<xmin>10").replace(
        "<ymax>40</ymax>\n\t\t</bndbox>", "<ymax>40</ymax>\n\t\t</box>"),
     "labelimg_order.xml: object[1] (D00): missing <bndbox>"),
    ("missing size", lambda x: x.replace("<width>64</width>", ""), "labelimg_order.xml: missing <size/width>"),
    ("xmin >= xmax", lambda x: x.replace("<xmin>30</xmin>", "<xmin>50</xmin>"),
     "labelimg_order.xml: object[2] (D40): bndbox: xmin (50) must be less than xmax (50)"),
    ("not a number", lambda x: x.replace("<ymin>5</ymin>", "<ymin>five</ymin>"),
     "labelimg_order.xml: object[1] (D00): bndbox/ymin: expected a number, got 'five'"),
    ("box outside", lambda x: x.replace("<ymax>30</ymax>", "<ymax>49</ymax>"),
     "labelimg_order.xml: object[2] (D40): bndbox: outside the image (ymax 49 > image height 48); use --clip"),
    ("size mismatch", lambda x: x.replace("<width>64</width>", "<width>640</width>"),
     "labelimg_order.xml: size: 640x48 in the XML, but image labelimg_order.jpg is 64x48"),
    # issue 11: nan / inf reached the SageMaker JSON as NaN / Infinity, which is not JSON
    ("nan coordinate", lambda x: x.replace("<xmin>10</xmin>", "<xmin>nan</xmin>"),
     "labelimg_order.xml: object[1] (D00): bndbox/xmin: expected a finite number, got 'nan'"),
    ("NaN coordinate", lambda x: x.replace("<ymin>20</ymin>", "<ymin> NaN </ymin>"),
     "labelimg_order.xml: object[2] (D40): bndbox/ymin: expected a finite number, got 'NaN'"),
    ("overflowing coordinate", lambda x: x.replace("<xmax>20</xmax>", "<xmax>1e400</xmax>"),
     "labelimg_order.xml: object[1] (D00): bndbox/xmax: expected a finite number, got '1e400'"),
    ("-inf coordinate", lambda x: x.replace("<ymin>5</ymin>", "<ymin>-inf</ymin>"),
     "labelimg_order.xml: object[1] (D00): bndbox/ymin: expected a finite number, got '-inf'"),
    ("infinite width", lambda x: x.replace("<width>64</width>", "<width>Infinity</width>"),
     "labelimg_order.xml: size/width: expected a finite number, got 'Infinity'"),
]


@pytest.mark.parametrize("case,edit,message", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_one_line_naming_file_and_field(voc_fixture_dir, tmp_path, capsys, case, edit, message):
    xml = voc_fixture_dir / "Annotations" / "labelimg_order.xml"
    xml.write_text(edit(xml.read_text()))
    out = tmp_path / "out"
    assert convert(voc_fixture_dir, out) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()
    assert [name for name in os.listdir(tmp_path) if name != "voc"] == []  # no partial folder left behind


def test_missing_image_and_duplicate_stem(voc_fixture_dir, tmp_path, capsys):
    os.remove(voc_fixture_dir / "JPEGImages" / "rdd_order.jpg")
    other = voc_fixture_dir / "more" / "Annotations"
    other.mkdir(parents=True)
    shutil.copy(voc_fixture_dir / "Annotations" / "labelimg_order.xml", other / "labelimg_order.xml")
    assert convert(voc_fixture_dir, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "rdd_order.xml: filename: image 'rdd_order.jpg' not found (looked in" in err
    assert "more/Annotations/labelimg_order.xml: duplicate image stem 'labelimg_order' (also " in err
    assert not (tmp_path / "out").exists()


def test_all_problems_reported_at_once(voc_fixture_dir, tmp_path, capsys):
    for name, edit in (("labelimg_order.xml", BAD_INPUTS[3][1]), ("rdd_order.xml", lambda x: x.replace("<ymin>30", "<ymin>x"))):
        xml = voc_fixture_dir / "Annotations" / name
        xml.write_text(edit(xml.read_text()))
    (voc_fixture_dir / "Annotations" / "broken.xml").write_text("<annotation><size>")
    assert convert(voc_fixture_dir, tmp_path / "out") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4
    assert "broken.xml: malformed XML" in lines[0]
    assert "labelimg_order.xml: object[2] (D40)" in lines[1]
    assert "rdd_order.xml: object[1] (D44): bndbox/ymin" in lines[2]
    assert lines[3] == "roadedge: 3 problems in {}; nothing was written".format(voc_fixture_dir)


def test_bad_options(voc_fixture_dir, tmp_path, capsys):
    assert convert(voc_fixture_dir, tmp_path / "o", "--validation-fraction", "1.5") == 2
    assert "--validation-fraction 1.5: expected a number in [0, 1)" in capsys.readouterr().err
    assert convert(voc_fixture_dir, tmp_path / "o", "--map", "D30") == 2
    assert "--map 'D30': expected SRC=DST" in capsys.readouterr().err
    assert convert(voc_fixture_dir, tmp_path / "o", "--classes", "D00,D00") == 2
    assert "class 'D00' is listed twice" in capsys.readouterr().err
    assert convert(tmp_path / "nowhere", tmp_path / "o") == 2
    assert "nowhere: not a folder" in capsys.readouterr().err


def test_split_keeps_every_class_near_the_fraction_when_classes_co_occur():
    import numpy as np

    from converters.split import split_items

    rng = np.random.default_rng(5)
    classes = ["D00", "D10", "D20", "D40", "D43", "D44"]
    items = []
    for i in range(300):
        # D20 shows up beside rarer classes most of the time: strata by rarest class starve it
        codes = list(rng.choice(classes, size=int(rng.integers(1, 4)), p=[0.1, 0.1, 0.5, 0.1, 0.1, 0.1]))
        items.append(("img%03d" % i, codes))
    train, validation = split_items(items, 0.3, seed=1)
    assert len(train) + len(validation) == 300 and set(train).isdisjoint(validation)
    assert abs(len(validation) - 90) <= 8  # images follow the per-class object demand, so within a few
    in_validation = set(validation)
    for code in classes:
        total = sum(codes.count(code) for _, codes in items)
        share = sum(codes.count(code) for stem, codes in items if stem in in_validation) / total
        assert abs(share - 0.3) <= 0.03, (code, share)
    assert split_items(items, 0.3, seed=1) == (train, validation)


def test_upper_case_extension_found_by_stem_and_written_lower_case(voc_fixture_dir, tmp_path, capsys):
    images = voc_fixture_dir / "JPEGImages"
    os.rename(images / "labelimg_order.jpg", images / "labelimg_order.JPG")  # the XML still says .jpg
    out = tmp_path / "out"
    assert convert(voc_fixture_dir, out, "--validation-fraction", "0") == 0
    assert "warning" not in capsys.readouterr().err  # same stem, another extension: not a different image
    assert "labelimg_order.jpg" in os.listdir(out / "train")
    assert read_json(out / "train_annotation" / "labelimg_order.json")["file"] == "labelimg_order.jpg"


@pytest.mark.parametrize("asked", ["IMG_4411.jpg", "C:\\Users\\crew\\IMG_4411.jpg"])
def test_filename_of_a_missing_image_falls_back_to_the_stem_image_with_one_warning(voc_fixture_dir, tmp_path, capsys, asked):
    xml = voc_fixture_dir / "Annotations" / "labelimg_order.xml"
    xml.write_text(xml.read_text().replace("<filename>labelimg_order.jpg</filename>", "<filename>%s</filename>" % asked))
    out = tmp_path / "out"
    assert convert(voc_fixture_dir, out, "--validation-fraction", "0") == 0

    assert read_json(out / "train_annotation" / "labelimg_order.json")["file"] == "labelimg_order.jpg"
    assert len(read_json(out / "train_annotation" / "labelimg_order.json")["annotations"]) == 2
    used = voc_fixture_dir / "JPEGImages" / "labelimg_order.jpg"
    assert (out / "train" / "labelimg_order.jpg").read_bytes() == used.read_bytes()
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("roadedge: warning: ")]
    assert warnings == ["roadedge: warning: {}: filename: image {!r} not found; using {}, named like the XML file".format(
        xml, asked, used)]  # once for the XML, not once per object


def test_no_warning_when_every_filename_names_its_image(voc_fixture_dir, tmp_path, capsys):
    # the fixtures: three names that match, and no_extension.xml naming "no_extension" for no_extension.png
    assert convert(voc_fixture_dir, tmp_path / "out", "--validation-fraction", "0", "--empty", "keep") == 0
    assert "warning" not in capsys.readouterr().err


def test_the_named_image_wins_over_an_image_named_like_the_xml_in_an_earlier_folder(voc_fixture_dir, tmp_path, capsys):
    xml = voc_fixture_dir / "Annotations" / "labelimg_order.xml"
    xml.write_text(xml.read_text().replace("<filename>labelimg_order.jpg</filename>", "<filename>IMG_4411.jpg</filename>"))
    images = voc_fixture_dir / "JPEGImages"
    os.rename(images / "labelimg_order.jpg", images / "IMG_4411.jpg")
    make_image(str(voc_fixture_dir / "Annotations" / "labelimg_order.jpg"), seed=9)  # a stray copy beside the XML
    out = tmp_path / "out"
    assert convert(voc_fixture_dir, out, "--validation-fraction", "0") == 0
    assert "warning" not in capsys.readouterr().err
    assert (out / "train" / "labelimg_order.jpg").read_bytes() == (images / "IMG_4411.jpg").read_bytes()


# --- an output that is, contains or lies inside the input is refused, with or without --overwrite (issue 11) ------

def snapshot(root):
    """{relative path: bytes} of every file under root: the input must come out of a refused run unchanged."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = handle.read()
    return found


OVERLAPS = {
    "is the input": (lambda voc, tmp: voc, "the output folder is the input"),
    "contains the input": (lambda voc, tmp: tmp, "the output folder contains the input"),
    "lies inside the input": (lambda voc, tmp: voc / "Annotations" / "out", "the output folder lies inside the input"),
    "a symlink to the input": (lambda voc, tmp: _symlink(tmp / "link", voc), "the output folder is the input"),
    "a symlink to a parent": (lambda voc, tmp: _symlink(tmp / "up" / "link", tmp) / "voc",
                              "the output folder is the input"),
}


def _symlink(link, target):
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
    return link


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("case", sorted(OVERLAPS))
def test_an_output_overlapping_the_input_is_refused_and_the_input_kept(voc_fixture_dir, tmp_path, capsys, case,
                                                                      overwrite):
    where, words = OVERLAPS[case]
    out = where(voc_fixture_dir, tmp_path)
    before = snapshot(voc_fixture_dir)
    listing = sorted(os.listdir(tmp_path))
    assert convert(voc_fixture_dir, out, *(["--overwrite"] if overwrite else [])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("roadedge: error: {}: {} {}".format(os.path.abspath(out), words,
                                                                                     voc_fixture_dir)), err
    assert snapshot(voc_fixture_dir) == before
    assert sorted(os.listdir(tmp_path)) == listing  # no partial folder, lock or output left behind


def test_an_output_replacing_the_image_folder_beside_voc_dir_is_refused(voc_fixture_dir, capsys):
    # VOC_DIR is the Annotations folder; the images come from the JPEGImages folder beside it
    images = voc_fixture_dir / "JPEGImages"
    before = snapshot(images)
    assert convert(voc_fixture_dir / "Annotations", images, "--overwrite") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "{}: the output folder is the input {}".format(images, images) in err[0], err
    assert snapshot(images) == before


def test_replacing_the_current_folder_is_refused(voc_fixture_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert convert(voc_fixture_dir, out) == 0
    monkeypatch.chdir(out / "train")
    assert convert(voc_fixture_dir, out, "--overwrite") == 2
    assert "the output folder contains the current folder" in capsys.readouterr().err
    assert (out / "train").is_dir()


def test_nan_with_clip_is_still_refused_and_every_json_written_is_strict(voc_fixture_dir, tmp_path, capsys):
    xml = voc_fixture_dir / "Annotations" / "labelimg_order.xml"
    xml.write_text(xml.read_text().replace("<xmax>50</xmax>", "<xmax>inf</xmax>"))
    assert convert(voc_fixture_dir, tmp_path / "out", "--clip") == 2  # --clip must not turn inf into the image width
    assert "object[2] (D40): bndbox/xmax: expected a finite number, got 'inf'" in capsys.readouterr().err
    xml.write_text(xml.read_text().replace("<xmax>inf</xmax>", "<xmax>50.25</xmax>"))
    assert convert(voc_fixture_dir, tmp_path / "out", "--clip", "--empty", "keep") == 0

    def reject(constant):
        raise AssertionError("{} in the output JSON".format(constant))

    written = [os.path.join(folder, name) for folder, _, names in os.walk(tmp_path / "out") for name in names
               if name.endswith(".json")]
    assert len(written) == 6
    for path in written:
        with open(path, encoding="utf-8") as handle:
            json.load(handle, parse_constant=reject)


def test_a_non_finite_number_in_what_is_written_is_an_error_not_invalid_json(voc_fixture_dir, tmp_path, monkeypatch,
                                                                            capsys):
    # a NaN that got past the checks must stop the write, not produce a file no JSON parser reads
    import converters.sagemaker_od as sagemaker_od

    real = sagemaker_od.annotation_json
    monkeypatch.setattr(sagemaker_od, "annotation_json", lambda *args: dict(real(*args), score=float("nan")))
    with pytest.raises(ValueError, match="not JSON compliant"):
        sagemaker_od.write_channels(str(tmp_path / "w"), {"train": [_sample(voc_fixture_dir)]}, RDD2018)


def _sample(voc_fixture_dir):
    from converters.voc_dataset import Sample

    return Sample("labelimg_order", str(voc_fixture_dir / "JPEGImages" / "labelimg_order.jpg"), 64, 48, 3,
                  [(0, [10.0, 5.0, 20.0, 40.0])], str(voc_fixture_dir / "Annotations" / "labelimg_order.xml"))


# --- truncated or corrupt images are a problem naming the file (issue 11) --------------------------------------

def _cut(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[:keep(len(data))])


def _progressive_then_cut(path):
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        image.save(path, "JPEG", progressive=True, quality=90)
    _cut(path, lambda n: n - 40)


BROKEN_IMAGES = {
    "JPEG cut in half": ("labelimg_order.jpg", lambda p: _cut(p, lambda n: n // 2),
                         "labelimg_order.jpg: truncated or corrupt image (expected a JPEG or PNG image): no JPEG "
                         "end-of-image marker, and decoding fails: image file is truncated"),
    "JPEG without its last 2 bytes": ("rdd_order.jpg", lambda p: _cut(p, lambda n: n - 2),
                                      "rdd_order.jpg: truncated or corrupt image"),
    "progressive JPEG cut": ("labelimg_order.jpg", _progressive_then_cut, "labelimg_order.jpg: truncated or corrupt image"),
    "PNG cut": ("no_extension.png", lambda p: _cut(p, lambda n: n - 30),
                "no_extension.png: truncated or corrupt image (expected a JPEG or PNG image): PNG chunks cut short"),
    "GIF named .jpg": ("rdd_order.jpg", lambda p: __import__("PIL.Image").Image.new("RGB", (64, 48)).save(p, "GIF"),
                       "rdd_order.jpg: is a GIF file (expected a JPEG or PNG image)"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_IMAGES))
def test_a_truncated_or_corrupt_image_is_a_problem_naming_the_file(voc_fixture_dir, tmp_path, capsys, case):
    name, breaker, message = BROKEN_IMAGES[case]
    breaker(voc_fixture_dir / "JPEGImages" / name)
    assert convert(voc_fixture_dir, tmp_path / "out", "--empty", "keep") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and message in err[0], err
    assert err[1] == "roadedge: 1 problem in {}; nothing was written".format(voc_fixture_dir)
    assert sorted(os.listdir(tmp_path)) == ["voc"]


def test_bytes_after_the_end_of_image_marker_or_zero_padding_are_fine(voc_fixture_dir, tmp_path):
    for name, extra in (("labelimg_order.jpg", b"\x00" * 300), ("rdd_order.jpg", b"camera maker's trailer")):
        path = voc_fixture_dir / "JPEGImages" / name
        path.write_bytes(path.read_bytes() + extra)
    assert convert(voc_fixture_dir, tmp_path / "out", "--empty", "keep") == 0
    copied = (tmp_path / "out" / "train" / "rdd_order.jpg").read_bytes()
    assert copied.endswith(b"camera maker's trailer")


def test_whole_images_are_checked_without_decoding_them(voc_fixture_dir, monkeypatch):
    from PIL import ImageFile

    from converters.image_files import inspect_image

    loads = []
    real = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(self.format) or real(self))
    problems = []
    for name in ("labelimg_order.jpg", "rdd_order.jpg", "no_extension.png", "no_objects.jpg"):
        assert inspect_image(str(voc_fixture_dir / "JPEGImages" / name), problems) is not None
    assert problems == [] and loads == []
    path = voc_fixture_dir / "JPEGImages" / "rdd_order.jpg"
    _cut(path, lambda n: n - 2)
    assert inspect_image(str(path), problems) is None and loads == ["JPEG"]  # decoded only when the marker is missing
