"""Class maps: an ordered list of class codes whose positions are SageMaker's 0-based class ids."""
import json
import os

from roadedge.core.catalog import default_class_map, named_class_maps
from roadedge.core.errors import RoadedgeError


def parse_class_map(spec):
    """`spec`: None (default map), a named map, a file (one code per line or a JSON list), or 'A,B,C'."""
    if spec is None:
        return default_class_map()
    named = named_class_maps()
    if spec in named:
        return list(named[spec])
    return read_name_list(spec)


def read_name_list(spec):
    """Class names in index order from a file (one per line, '#' comments, or a JSON list) or 'a,b,c'.

    Errors name the file or --classes: a path that does not exist, an empty
    name in a comma list, an empty list, a name given twice.
    """
    if os.path.isfile(spec):
        names = [name for name in _read_class_file(spec) if name]
        where = spec
    elif "," not in spec and (os.sep in spec or spec.endswith((".txt", ".json"))):
        raise RoadedgeError("--classes {}: no such file (expected a file with one class per line, "
                            "or classes separated by commas)".format(spec))
    else:
        names = [name.strip() for name in spec.split(",")]
        where = "--classes"
        if any(not name for name in names):
            raise RoadedgeError("--classes {!r}: empty class name (expected a,b,c or a file with one class per line)".format(
                spec))
    if not names:
        raise RoadedgeError("{}: no classes listed".format(where))
    seen = set()
    for name in names:
        if name in seen:
            raise RoadedgeError("{}: class {!r} is listed twice; each class needs one id".format(where, name))
        seen.add(name)
    return names


def _read_class_file(path):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if text.lstrip().startswith("["):
        try:
            codes = json.loads(text)
        except ValueError as err:
            raise RoadedgeError("{}: invalid JSON class list: {}".format(path, err)) from None
        if not all(isinstance(code, str) for code in codes):
            raise RoadedgeError("{}: expected a JSON list of class code strings".format(path))
        return [code.strip() for code in codes]
    return [line.split("#")[0].strip() for line in text.splitlines()]


def parse_remap(pairs):
    """['D30=D40', ...] -> {'D30': 'D40'}."""
    remap = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise RoadedgeError("--map {!r}: expected SRC=DST, e.g. --map D30=D40".format(pair))
        remap[source.strip()] = target.strip()
    return remap
