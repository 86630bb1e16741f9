"""Class maps: an ordered list of class codes whose positions are SageMaker's 0-based class ids."""
import json
import os

from edge.catalog import default_class_map, named_class_maps
from edge.errors import RoadedgeError


def parse_class_map(spec):
    """`spec`: None (default map), a named map, a file (one code per line or a JSON list), or 'A,B,C'."""
    if spec is None:
        return default_class_map()
    named = named_class_maps()
    if spec in named:
        return list(named[spec])
    if os.path.isfile(spec):
        codes = _read_class_file(spec)
        where = spec
    else:
        codes = [code.strip() for code in spec.split(",")]
        where = "--classes"
    codes = [code for code in codes if code]
    if not codes:
        raise RoadedgeError("{}: the class map is empty; expected class codes such as D00,D10".format(where))
    seen = set()
    for code in codes:
        if code in seen:
            raise RoadedgeError("{}: class {!r} is listed twice; each class needs one id".format(where, code))
        seen.add(code)
    return codes


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
