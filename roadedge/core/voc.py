"""Pascal VOC / labelImg / RDD annotation XML: write one, and read one into a record plus problems.

Reading never raises on bad content: every problem is collected as a
one-line message naming the file and the field, so a whole data set can be
reported at once. Element order inside <object> and <bndbox> does not matter
(labelImg and the RDD files disagree on it), coordinates may be floats.
"""
import math
import os
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")


def write_voc_xml(filename, folder, width, height, depth, objects, path=None, database="roadedge-synth"):
    """labelImg-style XML (tab indented) as bytes. `objects`: dicts with name, bbox, truncated, difficult."""
    lines = ["<annotation>", "\t<folder>%s</folder>" % escape(folder), "\t<filename>%s</filename>" % escape(filename)]
    if path is not None:
        lines.append("\t<path>%s</path>" % escape(path))
    lines += [
        "\t<source>",
        "\t\t<database>%s</database>" % escape(database),
        "\t</source>",
        "\t<size>",
        "\t\t<width>%d</width>" % width,
        "\t\t<height>%d</height>" % height,
        "\t\t<depth>%d</depth>" % depth,
        "\t</size>",
        "\t<segmented>0</segmented>",
    ]
    for obj in objects:
        lines += [
            "\t<object>",
            "\t\t<name>%s</name>" % escape(obj["name"]),
            "\t\t<pose>%s</pose>" % escape(obj.get("pose", "Unspecified")),
            "\t\t<truncated>%d</truncated>" % int(obj.get("truncated", 0)),
            "\t\t<difficult>%d</difficult>" % int(obj.get("difficult", 0)),
            "\t\t<bndbox>",
        ]
        for field, value in zip(BOX_FIELDS, obj["bbox"]):
            lines.append("\t\t\t<%s>%s</%s>" % (field, _number_text(value), field))
        lines += ["\t\t</bndbox>", "\t</object>"]
    lines.append("</annotation>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _number_text(value):
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


class VocObject:
    __slots__ = ("index", "name", "bbox", "truncated", "difficult")

    def __init__(self, index, name, bbox, truncated=0, difficult=0):
        self.index = index  # 1-based position in the file, for messages
        self.name = name
        self.bbox = bbox  # [xmin, ymin, xmax, ymax] floats, as written in the file
        self.truncated = truncated
        self.difficult = difficult

    def describe(self):
        return "object[%d] (%s)" % (self.index, shown(self.name, quote=False))


class VocRecord:
    """One parsed annotation file. `size` is (width, height, depth) or None when missing/invalid."""

    def __init__(self, xml_path, filename, size, objects):
        self.xml_path = xml_path
        self.filename = filename
        self.size = size
        self.objects = objects

    @property
    def stem(self):
        return os.path.splitext(os.path.basename(self.xml_path))[0]


MAX_XML_BYTES = 8 << 20  # an annotation file is a few KB; anything this large is not one


class _Refused(Exception):
    """A DTD or entity declaration: refused before anything in it is read or expanded."""


def parse_xml(data):
    """The root Element of an XML document (bytes), refusing DOCTYPE, ENTITY and external entities.

    Entities can only be declared in a DTD, so refusing the DOCTYPE before its
    internal subset is read rules out entity expansion (billion laughs, quadratic
    blow-up) and external files alike. Raises _Refused or expat.ExpatError.
    """
    from xml.parsers import expat

    def refuse(*args):
        raise _Refused("DOCTYPE and ENTITY declarations are not allowed in an annotation file (refused unread)")

    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    parser.Parse(data, True)
    return builder.close()


def read_voc_xml(xml_path):
    """Parse one file. Returns (record or None, problems): record is None only when the XML is unreadable.

    Never raises for the file's content: anything wrong in it is a problem
    naming the file (and the field), one line each.
    """
    from xml.parsers import expat

    try:
        with open(xml_path, "rb") as handle:
            data = handle.read(MAX_XML_BYTES + 1)
    except OSError as err:
        return None, ["%s: cannot read: %s" % (xml_path, err.strerror or err)]
    if len(data) > MAX_XML_BYTES:
        return None, ["%s: larger than %d MB, not an annotation file" % (xml_path, MAX_XML_BYTES >> 20)]
    try:
        root = parse_xml(data)
    except _Refused as err:
        return None, ["%s: %s" % (xml_path, err)]
    except (expat.ExpatError, ValueError, LookupError) as err:  # LookupError, UnicodeError: a bad encoding declaration
        return None, ["%s: malformed XML: %s" % (xml_path, shown(str(err), 200, quote=False))]
    if root.tag != "annotation":
        return None, ["%s: root element is <%s>, expected <annotation>" % (xml_path, shown(root.tag, quote=False))]
    problems = []
    filename = (root.findtext("filename") or "").strip()
    size = _read_size(root, xml_path, problems)
    objects = []
    for index, node in enumerate(root.findall("object"), start=1):
        obj = _read_object(node, index, xml_path, problems)
        if obj is not None:
            objects.append(obj)
    return VocRecord(xml_path, filename, size, objects), problems


def shown(text, limit=60, quote=True):
    """Text from a file as it goes into a one-line message: quoted (repr) if asked or unprintable, and cut at `limit`."""
    cut = text[:limit]
    if quote or not cut.isprintable():
        cut = repr(cut)
    return cut + ("..." if len(text) > limit else "")


def _read_size(root, xml_path, problems):
    node = root.find("size")
    if node is None:
        problems.append("%s: missing <size>" % xml_path)
        return None
    values = []
    for field in ("width", "height"):
        value = _number(node, field, xml_path, "size/" + field, problems)
        if value is not None and (value <= 0 or not value.is_integer()):
            problems.append("%s: size/%s: expected a positive integer, got %s" % (
                xml_path, field, shown(node.findtext(field).strip(), quote=False)))
            value = None
        values.append(value)
    depth_text = node.findtext("depth")
    depth = 3
    if depth_text is not None and depth_text.strip():
        try:
            depth = int(float(depth_text))
        except (ValueError, OverflowError):  # not a number, nan, inf
            problems.append("%s: size/depth: expected an integer, got %s" % (xml_path, shown(depth_text.strip())))
    if None in values:
        return None
    return int(values[0]), int(values[1]), depth


def _read_object(node, index, xml_path, problems):
    name = (node.findtext("name") or "").strip()
    where = "%s: object[%d]" % (xml_path, index)
    if not name:
        problems.append("%s: missing <name>" % where)
        return None
    where += " (%s)" % shown(name, quote=False)
    box = node.find("bndbox")
    if box is None:
        problems.append("%s: missing <bndbox>" % where)
        return None
    coords = [_number(box, field, where, "bndbox/" + field, problems) for field in BOX_FIELDS]
    if None in coords:
        return None
    xmin, ymin, xmax, ymax = coords
    bad = False
    if xmin >= xmax:
        problems.append("%s: bndbox: xmin (%g) must be less than xmax (%g)" % (where, xmin, xmax))
        bad = True
    if ymin >= ymax:
        problems.append("%s: bndbox: ymin (%g) must be less than ymax (%g)" % (where, ymin, ymax))
        bad = True
    if bad:
        return None
    return VocObject(index, name, coords, _flag(node, "truncated"), _flag(node, "difficult"))


def _number(parent, field, where, label, problems):
    text = parent.findtext(field)
    if text is None or not text.strip():
        problems.append("%s: missing <%s>" % (where, label))
        return None
    try:
        value = float(text)
    except ValueError:
        problems.append("%s: %s: expected a number, got %s" % (where, label, shown(text.strip())))
        return None
    if not math.isfinite(value):  # nan, inf, 1e400: would reach the SageMaker JSON as NaN / Infinity (not JSON)
        problems.append("%s: %s: expected a finite number, got %s" % (where, label, shown(text.strip())))
        return None
    return value


def _flag(node, field):
    text = (node.findtext(field) or "0").strip()
    try:
        return 1 if int(float(text)) else 0
    except (ValueError, OverflowError):  # not a number, nan, inf
        return 0
