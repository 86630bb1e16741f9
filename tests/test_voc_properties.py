"""Property-based tests (hypothesis) of what reads untrusted data set files: the VOC XML parser, image inspection,
the data set loader and the whole `roadedge dataset convert` command (issue 11).

Each generated input must give a valid result or the project's own error (a problem line naming the file, or a
RoadedgeError), never another exception; the command must exit 0 or 2 with one-line errors, never 1. Under the
"ci" profile each test tries 150 generated inputs (conftest.py); HYPOTHESIS_PROFILE=soak tries 5000.
Run with --hypothesis-show-statistics to see the outcomes (hypothesis.event) of each test.
"""
import io
import json
import math
import os
import shutil
import tempfile
from collections import Counter
from xml.sax.saxutils import escape

import numpy as np
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st
from PIL import Image

from converters.image_files import inspect_image
from converters.voc_dataset import load_voc_dataset
from roadedge.cli import main
from roadedge.core.errors import RoadedgeError, ValidationFailed
from roadedge.core.voc import BOX_FIELDS, VocRecord, read_voc_xml

CLASS_MAP = ["D00", "D10", "D20", "D40"]
TRIED = Counter()  # generated inputs per test (explicit @examples included), shown with `pytest -s`
OUTCOMES = {}  # what they gave, per test


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    for name in sorted(TRIED):
        print("\n{}: {} generated inputs; {}".format(name, TRIED[name], ", ".join(
            "{} {}".format(k, v) for k, v in OUTCOMES.get(name, Counter()).most_common())))


# --- generated XML ---------------------------------------------------------------------------------------------

def texts(max_size):
    """Unicode text, mostly characters XML allows (now and then control characters, which it does not)."""
    allowed = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=max_size)
    return st.one_of(allowed, allowed, allowed, st.text(max_size=max_size))


NUMBER_TEXT = st.one_of(
    st.sampled_from(["1e400", "-1e400", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "-0", "0", "-0.0", "12abc",
                     " 12 ", "1_000", "0x10", "\u0661\u0662", "", "   ", "1e-400", "9" * 400, "+5", "5.", ".5", "1e3",
                     "\u22125", "12\n", "3.000000000000000000001", "1e308", "-1e308", "4e-324"]),
    st.integers(-10 ** 6, 10 ** 6).map(str),
    st.integers(-5, 70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    texts(12),
)
TAGS = st.one_of(
    st.sampled_from(["annotation", "size", "object", "bndbox", "name", "filename", "width", "height", "depth",
                     "truncated", "difficult", "pose", "segmented", "folder", "path", "source", "part"] + list(BOX_FIELDS)),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,8}", fullmatch=True),
    st.from_regex(r"[\u00c0-\u00ff\u4e00-\u4e20][\u00c0-\u00ff]{0,3}", fullmatch=True),
)
ATTRS = st.lists(st.tuples(st.from_regex(r"[a-z]{1,5}", fullmatch=True), texts(8)), max_size=2).map(
    lambda pairs: "".join(' %s="%s"' % (k, escape(v, {'"': "&quot;"})) for k, v in dict(pairs).items()))


def element(tag, inner, attrs=""):
    return "<%s%s>%s</%s>" % (tag, attrs, inner, tag)


JUNK = st.recursive(
    texts(10).map(escape),
    lambda inner: st.tuples(TAGS, ATTRS, st.lists(inner, max_size=3)).map(lambda t: element(t[0], "".join(t[2]), t[1])),
    max_leaves=6,
)
FIELD = st.tuples(st.one_of(st.sampled_from(BOX_FIELDS + ("width", "height", "depth")), TAGS), NUMBER_TEXT).map(
    lambda t: element(t[0], escape(t[1])))


def box_strategy():
    fields = st.lists(st.sampled_from(BOX_FIELDS), max_size=6).flatmap(
        lambda extra: st.permutations(list(BOX_FIELDS) + extra))
    return st.tuples(fields, st.lists(NUMBER_TEXT, min_size=10, max_size=10), st.lists(JUNK, max_size=1)).map(
        lambda t: element("bndbox", "".join(element(f, escape(v)) for f, v in zip(t[0], t[1])) + "".join(t[2])))


OBJECT = st.tuples(
    st.one_of(st.sampled_from(CLASS_MAP + ["D99", "", " D00 ", "D00\nD10"]), texts(8)),
    st.one_of(box_strategy(), st.just(""), FIELD),
    st.sampled_from(["", "<truncated>1</truncated>", "<difficult>1</difficult>", "<difficult>inf</difficult>",
                     "<truncated>nan</truncated>", "<difficult>yes</difficult>", "<difficult>1e400</difficult>"]),
    st.lists(st.one_of(JUNK, FIELD), max_size=2),
    st.randoms(use_true_random=False),
).map(lambda t: element("object", "".join(_shuffled([element("name", escape(t[0])), t[1], t[2]] + t[3], t[4]))))

SIZE = st.tuples(NUMBER_TEXT, NUMBER_TEXT, st.one_of(NUMBER_TEXT, st.just(None)), st.lists(JUNK, max_size=1)).map(
    lambda t: element("size", element("width", escape(t[0])) + element("height", escape(t[1]))
                      + ("" if t[2] is None else element("depth", escape(t[2]))) + "".join(t[3])))

DOCTYPES = st.sampled_from([
    "",
    '<!DOCTYPE annotation>',
    '<!DOCTYPE annotation SYSTEM "annotation.dtd">',
    '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
    '<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>',
    '<!DOCTYPE annotation [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE annotation [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>',
    '<!DOCTYPE annotation [<!ENTITY big "' + "x" * 5000 + '">]>',
    '<!DOCTYPE annotation [<!ELEMENT annotation ANY>]>',
])
ENTITY_USES = st.sampled_from([""] * 12 + ["&lol9;", "&xxe;", "&big;&big;&big;", "&amp;", "&#x41;", "&undefined;", "&#0;"])


def _shuffled(parts, rng):
    parts = list(parts)
    rng.shuffle(parts)
    return parts


@st.composite
def voc_documents(draw):
    """Bytes of a generated annotation file: mostly VOC-shaped, with random, missing, extra and garbled parts."""
    parts = [element("filename", escape(draw(st.one_of(st.just("img.jpg"), texts(20)))))]
    if draw(st.booleans()):
        parts.append(draw(SIZE))
    parts += draw(st.lists(OBJECT, max_size=4))
    parts += draw(st.lists(st.one_of(JUNK, FIELD), max_size=2))
    if draw(st.integers(0, 9)) == 0:  # deep nesting, inside or around
        depth = draw(st.integers(1, 5000))
        parts.append("<d>" * depth + "x" + "</d>" * depth)
    body = "".join(_shuffled(parts, draw(st.randoms(use_true_random=False)))) + draw(ENTITY_USES)
    root = draw(st.sampled_from(["annotation"] * 8 + ["Annotation", "root", "annotation xmlns='urn:x'"]))
    text = "<%s>%s</%s>" % (root, body, root.split()[0])
    doctype = draw(DOCTYPES) if draw(st.integers(0, 4)) == 0 else ""
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16", "latin-1", "ascii", "bogus"]))
    declaration = draw(st.sampled_from(["", '<?xml version="1.0"?>', '<?xml version="1.0" encoding="%s"?>' % encoding]))
    codec = encoding if encoding in ("utf-16", "latin-1", "ascii") and "encoding" in declaration else "utf-8"
    data = (declaration + doctype + text).encode(codec, "xmlcharrefreplace")
    garble = draw(st.sampled_from(["none"] * 12 + ["truncate", "delete", "insert"]))
    if garble != "none" and data:
        at = draw(st.integers(0, len(data) - 1))
        if garble == "truncate":
            data = data[:at]
        elif garble == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 20)):]
        else:
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    return data


def check_read(path, record, problems):
    """A valid record and/or one-line problems naming the file; never anything else."""
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    for problem in problems:
        assert problem.startswith(path + ": ") and len(problem.splitlines()) == 1 and len(problem) < 1000, problem
    if record is None:
        assert problems
        return "refused"
    assert isinstance(record, VocRecord) and isinstance(record.filename, str)
    if record.size is not None:
        width, height, depth = record.size
        assert all(isinstance(v, int) for v in record.size) and width > 0 and height > 0
    for obj in record.objects:
        assert obj.name and all(isinstance(v, float) and math.isfinite(v) for v in obj.bbox)
        assert obj.bbox[0] < obj.bbox[2] and obj.bbox[1] < obj.bbox[3]
        assert obj.truncated in (0, 1) and obj.difficult in (0, 1)
    return "record, {} objects, {}".format(min(len(record.objects), 2), "problems" if problems else "clean")


def test_read_voc_xml_gives_a_record_or_problems_for_any_generated_document(tmp_path):
    path = str(tmp_path / "gen.xml")
    outcomes = OUTCOMES["read_voc_xml (generated XML)"] = Counter()

    @given(voc_documents())
    @example(b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
             b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
             b'<annotation><filename>&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;</filename></annotation>')
    @example(b'<annotation><size><width>64</width><height>48</height></size><object><name>D00</name><bndbox>'
             b'<xmin>nan</xmin><ymin>-0</ymin><xmax>1e400</xmax><ymax>12abc</ymax></bndbox></object></annotation>')
    def check(data):
        TRIED["read_voc_xml (generated XML)"] += 1
        with open(path, "wb") as handle:
            handle.write(data)
        record, problems = read_voc_xml(path)
        outcome = check_read(path, record, problems)
        if record is None:
            outcome = next((k for k in ("DOCTYPE", "malformed XML", "root element") if k in problems[0]), "other")
            if b"<!DOCTYPE" in data and b"]>" in data and outcome != "malformed XML":
                assert outcome == "DOCTYPE", problems  # a DTD is refused before any entity in it is expanded
        if b"<!DOCTYPE" in data and outcome.startswith("record"):
            raise AssertionError("a document with a DOCTYPE was read: {!r}".format(data[:200]))
        event(outcome)
        outcomes[outcome.split(",")[0] if outcome.startswith("record") else outcome] += 1

    check()
    # the generator reaches every kind of outcome, so the property is not vacuous
    assert outcomes["record"] >= 20 and outcomes["DOCTYPE"] >= 5 and outcomes["malformed XML"] >= 5, outcomes


def test_read_voc_xml_on_random_bytes(tmp_path):
    path = str(tmp_path / "bytes.xml")
    outcomes = OUTCOMES["read_voc_xml (random bytes)"] = Counter()

    @given(st.one_of(st.binary(max_size=3000),
                     st.tuples(st.sampled_from([b"<annotation>", b'<?xml version="1.0" encoding="utf-16"?>',
                                                b"\xef\xbb\xbf<annotation><size>", b"\xff\xfe<\x00a\x00", b"<!DOCTYPE x ["]),
                               st.binary(max_size=500)).map(b"".join)))
    def check(data):
        TRIED["read_voc_xml (random bytes)"] += 1
        with open(path, "wb") as handle:
            handle.write(data)
        record, problems = read_voc_xml(path)
        outcome = check_read(path, record, problems)
        event(outcome)
        outcomes[outcome.split(",")[0]] += 1

    check()


@pytest.mark.parametrize("doc", [
    b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><annotation><filename>&x;</filename></annotation>',
    b'<!DOCTYPE a [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]><annotation/>',
    b'<!DOCTYPE a [<!ENTITY a "' + b"&b;" * 10 + b'"><!ENTITY b "' + b"x" * 1000 + b'">]><annotation>' + b"&a;" * 1000
    + b"</annotation>",
    b'<!DOCTYPE annotation><annotation><filename>x.jpg</filename></annotation>',
], ids=["external entity", "parameter entity", "quadratic blow-up", "plain DOCTYPE"])
def test_dtds_and_entities_are_refused_unread(tmp_path, doc):
    path = tmp_path / "evil.xml"
    path.write_bytes(doc)
    record, problems = read_voc_xml(str(path))
    assert record is None and problems == ["{}: DOCTYPE and ENTITY declarations are not allowed in an annotation file "
                                           "(refused unread)".format(path)]


# --- generated image files -------------------------------------------------------------------------------------

FORMAT_MODES = {"JPEG": ["RGB", "L", "CMYK"], "PNG": ["RGB", "RGBA", "L", "P", "1", "I;16", "LA"],
                "GIF": ["P", "L"], "BMP": ["RGB", "L", "P"], "TIFF": ["RGB", "L"], "WEBP": ["RGB", "RGBA"]}


@st.composite
def image_files(draw):
    """(bytes, facts): random bytes, a real image in one of six formats, or such an image truncated or damaged."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=3000)), {"kind": "random"}
    fmt = draw(st.sampled_from(["JPEG", "PNG"] * 3 + sorted(FORMAT_MODES)))
    mode = draw(st.sampled_from(FORMAT_MODES[fmt]))
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    image = Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)).convert(mode)
    options = {"progressive": draw(st.booleans()), "quality": draw(st.integers(5, 100))} if fmt == "JPEG" else {}
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    data = buffer.getvalue()
    mutation = draw(st.sampled_from(["none", "none", "truncate", "truncate", "flip", "append", "zero pad"]))
    if mutation == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif mutation == "flip":
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    elif mutation == "append":
        data += draw(st.binary(min_size=1, max_size=50))
    elif mutation == "zero pad":
        data += b"\0" * draw(st.integers(1, 100))
    return data, {"kind": "image", "format": fmt, "size": (width, height), "mutation": mutation}


def test_inspect_image_gives_info_or_one_problem_for_any_file(tmp_path):
    path = str(tmp_path / "img.jpg")
    outcomes = OUTCOMES["inspect_image"] = Counter()

    @given(image_files())
    @example((b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x02\x00\x00\x00\x00\x00\x00\x00",
              {"kind": "random"}))  # a 100000 x 100000 header: Pillow's decompression-bomb error is a problem too
    def check(item):
        TRIED["inspect_image"] += 1
        data, facts = item
        with open(path, "wb") as handle:
            handle.write(data)
        problems = []
        info = inspect_image(path, problems, formats=("JPEG", "PNG"), expected="a JPEG or PNG image")
        if info is None:
            assert len(problems) == 1 and problems[0].startswith(path + ": ") and len(problems[0].splitlines()) == 1
        else:
            assert problems == [] and info.format in ("JPEG", "PNG") and info.width > 0 and info.height > 0
        whole = facts.get("mutation") in ("none", "append", "zero pad")
        if facts["kind"] == "image" and facts["format"] in ("JPEG", "PNG"):
            if whole and not (facts["format"] == "PNG" and facts["mutation"] == "append"):
                assert info is not None and (info.width, info.height) == facts["size"], problems
            if facts["mutation"] == "truncate":
                assert info is None, "a truncated {} was accepted".format(facts["format"])  # the issue 11 property
        elif facts["kind"] == "image" and whole:
            assert info is None and "is a {} file".format(facts["format"]) in problems[0]
        outcome = "accepted" if info is not None else problems[0][len(path) + 2:].split(" (")[0].split(":")[0]
        event(outcome)
        outcomes[outcome] += 1

    check()
    assert outcomes["accepted"] >= 20 and outcomes["truncated or corrupt image"] >= 5, outcomes


# --- generated data set trees: the loader and the whole command -------------------------------------------------

STEMS = st.sampled_from(["a", "b", "c", "road 1", "r\u00fcck", "x.y"])


@st.composite
def plausible_box(draw, width, height):
    """Mostly a valid box inside the image; sometimes one that leaves it, or generated numbers."""
    choice = draw(st.integers(0, 19))
    if choice < 17:
        xmin, ymin = draw(st.integers(0, width - 2)), draw(st.integers(0, height - 2))
        box = [xmin, ymin, draw(st.integers(xmin + 1, width)), draw(st.integers(ymin + 1, height))]
        return [str(v) if draw(st.booleans()) else repr(v + 0.25 * (i < 2)) for i, v in enumerate(box)]
    if choice < 19:
        return [str(draw(st.integers(-4, max(width, height) + 4))) for _ in BOX_FIELDS]
    return [draw(NUMBER_TEXT) for _ in BOX_FIELDS]


@st.composite
def voc_trees(draw):
    """A small data set: 1-3 annotation files (plausible VOC or generated), each with a valid, broken or no image."""
    layout = draw(st.sampled_from(["flat", "rdd", "rdd2020"]))
    items = []
    for stem in draw(st.lists(STEMS, min_size=1, max_size=3, unique=True)):
        width, height = draw(st.sampled_from([(32, 24), (48, 32)]))
        if draw(st.integers(0, 5)):
            objects = "".join(element("object", element("name", draw(st.sampled_from(CLASS_MAP * 3 + ["D99"]))) + element(
                "bndbox", "".join(element(f, escape(v)) for f, v in zip(BOX_FIELDS, draw(plausible_box(width, height))))))
                for _ in range(draw(st.integers(0, 3))))
            size = element("size", element("width", str(width)) + element("height", str(height + draw(st.sampled_from(
                [0] * 19 + [1])))))
            xml = element("annotation", element("filename", stem + ".jpg") + size + objects).encode("utf-8")
        else:
            xml = draw(voc_documents())
        image = draw(st.sampled_from(["jpeg"] * 12 + ["png"] * 4 + ["truncated", "none", "text"]))
        items.append((stem, xml, image, (width, height)))
    return layout, items


def write_tree(root, tree):
    layout, items = tree
    xml_dir, image_dir = {"flat": (root, root), "rdd": (os.path.join(root, "Annotations"), os.path.join(root, "JPEGImages")),
                          "rdd2020": (os.path.join(root, "annotations", "xmls"), os.path.join(root, "images"))}[layout]
    for folder in (xml_dir, image_dir):
        os.makedirs(folder, exist_ok=True)
    for stem, xml, image, (width, height) in items:
        with open(os.path.join(xml_dir, stem + ".xml"), "wb") as handle:
            handle.write(xml)
        if image == "none":
            continue
        ext = ".png" if image == "png" else ".jpg"
        pixels = np.full((height, width, 3), (len(stem) * 40) % 256, np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG" if image == "png" else "JPEG")
        data = {"truncated": buffer.getvalue()[:-20], "text": b"not an image"}.get(image, buffer.getvalue())
        with open(os.path.join(image_dir, stem + ext), "wb") as handle:
            handle.write(data)


def test_load_voc_dataset_gives_samples_or_the_projects_error_for_any_tree(tmp_path):
    outcomes = OUTCOMES["load_voc_dataset"] = Counter()

    @given(voc_trees(), st.sampled_from(["error", "skip"]), st.booleans(), st.sampled_from(["keep", "drop"]))
    def check(tree, unknown, clip, empty):
        TRIED["load_voc_dataset"] += 1
        root = tempfile.mkdtemp(dir=str(tmp_path))
        try:
            write_tree(root, tree)
            try:
                samples, report = load_voc_dataset(root, CLASS_MAP, unknown=unknown, clip=clip, empty=empty)
            except ValidationFailed as err:
                assert err.problems and all(len(p.splitlines()) == 1 for p in err.problems), err.problems
                outcome = "problems"
            except RoadedgeError as err:
                assert len(str(err).splitlines()) == 1
                outcome = "error"
            else:
                for sample in samples:
                    assert os.path.isfile(sample.image_path) and sample.width > 0 and sample.height > 0
                    for class_id, box in sample.objects:
                        assert 0 <= class_id < len(CLASS_MAP) and all(math.isfinite(v) for v in box)
                        assert 0 <= box[0] < box[2] <= sample.width and 0 <= box[1] < box[3] <= sample.height
                outcome = "loaded"
            event(outcome)
            outcomes[outcome] += 1
        finally:
            shutil.rmtree(root)

    check()
    assert outcomes["loaded"] >= 10 and outcomes["problems"] >= 10, outcomes


def _not_json(constant):
    raise AssertionError("{} written into a JSON file".format(constant))


def test_dataset_convert_exits_0_or_2_with_one_line_errors_for_any_tree(tmp_path, capsys):
    outcomes = OUTCOMES["dataset convert (CLI)"] = Counter()

    @given(voc_trees(), st.lists(st.sampled_from(["--clip", "--lst", "--link", "--skip-difficult", "--empty=keep",
                                                  "--unknown=skip", "--validation-fraction=0.5"]), unique=True, max_size=3))
    @example(("flat", [("a", b'<?xml version="1.0" encoding="bogus"?><annotation/>', "jpeg", (32, 24))]), [])
    @example(("rdd", [("a", b"<annotation><size><width>32</width><height>24</height><depth>inf</depth></size>"
                            b"<object><name>D00</name><difficult>1e400</difficult><bndbox><xmin>1</xmin><ymin>1</ymin>"
                            b"<xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>", "jpeg", (32, 24))]), [])
    @example(("flat", [("a", b"<annotation><size><width>32</width><height>24</height></size><object><name>D00</name>"
                             b"<bndbox><xmin>nan</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>"
                             b"</annotation>", "jpeg", (32, 24))]), ["--clip"])
    def check(tree, options):
        TRIED["dataset convert (CLI)"] += 1
        work = tempfile.mkdtemp(dir=str(tmp_path))
        root, out = os.path.join(work, "voc"), os.path.join(work, "out")
        try:
            write_tree(root, tree)
            capsys.readouterr()
            code = main(["dataset", "convert", root, out, "--classes", ",".join(CLASS_MAP)] + options)
            err = capsys.readouterr().err
            assert code in (0, 2), err
            lines = err.splitlines()
            assert all(line.startswith("roadedge: ") for line in lines), err
            assert "Traceback" not in err and "internal error" not in err
            if code == 0:
                assert {"train", "validation", "train_annotation", "validation_annotation"} <= set(os.listdir(out))
                for folder, _, names in os.walk(out):
                    for name in (n for n in names if n.endswith(".json")):
                        with open(os.path.join(folder, name), encoding="utf-8") as handle:
                            json.load(handle, parse_constant=_not_json)  # strict JSON: no NaN / Infinity
            else:
                assert lines and lines[-1].startswith("roadedge: ") and not os.path.exists(out)
            assert sorted(os.listdir(work)) == (["out", "voc"] if code == 0 else ["voc"])  # no partial or lock left
            event("exit {}".format(code))
            outcomes["exit {}".format(code)] += 1
        finally:
            shutil.rmtree(work)

    check()
    assert outcomes["exit 0"] >= 10 and outcomes["exit 2"] >= 10, outcomes
