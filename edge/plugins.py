"""Plugins are found, not listed: one file per source, backend and sink, selected by the `type:` of its section.

A plugin module in edge/sources/, edge/backends/ or edge/sinks/ defines:

    TYPE = "opencv"                                   # the value of `type:`
    OPTIONS = {"uri": Option(str, "sample", "what it means"),
               "port": Option(int, 1883, "broker port", check=between(1, 65535)),
               "hint": Option(str, "LATENCY", "...", choices=("LATENCY", "THROUGHPUT")), ...}
    def open(options, context): ...                   # checked options (defaults filled in) -> the object

Adding a plugin is adding such a file: `plugins()` imports every module of the
package and keeps those with a TYPE. Each option declares its type, default,
allowed values and check beside it; `edge.config` and `checked()` apply them, so
a bad profile is one line naming the key before anything opens. Plugins import
their device or network libraries inside `open`, never at module level: the
registry must import on a DeepLens (Python 3.7, numpy and cv2 only).
"""
import copy
import importlib
import pkgutil
from collections import namedtuple

from roadedge.core.errors import RoadedgeError

PACKAGES = {"source": "edge.sources", "backend": "edge.backends", "sink": "edge.sinks"}

# check: a Check (predicate, what is expected) or None; choices: the allowed values or None
Option = namedtuple("Option", "type default help choices check", defaults=(None, None))
Check = namedtuple("Check", "ok expected")
_found = {}


def between(low, high):
    return Check(lambda v: low <= v <= high, "{}..{}".format(low, high))


def at_least(low, unit=""):
    return Check(lambda v: v >= low, "at least {}{}".format(low, unit))


def above(low):
    return Check(lambda v: v > low, "more than {}".format(low))


def _is(value, kind):
    return isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))


def list_of(kind, length=None, low=None):
    """A list of `kind` values (of `length` items, each >= `low` when given)."""
    name = {str: "strings", int: "integers", float: "numbers"}.get(kind, kind.__name__)
    expected = "a list of {}{}{}".format("{} ".format(length) if length else "", name,
                                         " of at least {}".format(low) if low is not None else "")
    return Check(lambda v: (length is None or len(v) in (0, length)) and all(
        _is(item, kind) and (low is None or item >= low) for item in v), expected)


def mapping_of_scores():
    """{name: number in 0..1}: per-class thresholds."""
    return Check(lambda v: all(isinstance(k, str) and (_is(x, float) or _is(x, int)) and 0 <= x <= 1
                               for k, x in v.items()), "a mapping of class codes to numbers in 0..1")


def discover(package, attribute):
    """{value of `attribute`: module} over the modules of `package` that define it (cached)."""
    key = (package, attribute)
    if key not in _found:
        modules = {}
        root = importlib.import_module(package)
        for info in pkgutil.iter_modules(root.__path__):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(package + "." + info.name)
            name = getattr(module, attribute, None)
            if name is not None:
                modules[name] = module
        _found[key] = modules
    return _found[key]


def plugins(kind):
    """{type name: module} of one kind: 'source', 'backend' or 'sink'."""
    return discover(PACKAGES[kind], "TYPE")


def plugin(kind, type_name):
    """The module implementing `type_name` of `kind`; RoadedgeError naming the known types if there is none."""
    found = plugins(kind)
    if type_name not in found:
        raise RoadedgeError("{}.type: {!r}; expected one of {}".format(kind, type_name, ", ".join(sorted(found))))
    return found[type_name]


def kind_of(value):
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping", type(None): "nothing"}.get(type(value), type(value).__name__)


def check_value(where, value, option):
    """One option's value against its type, allowed values and check; RoadedgeError naming `where` otherwise."""
    expected = option.type
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok and not (value is None and option.default is None):
        raise RoadedgeError("{}: expected {}, got {} ({!r})".format(where, kind_of(expected()), kind_of(value), value))
    if option.choices is not None and value not in option.choices:
        raise RoadedgeError("{}: {!r}; expected one of {}".format(where, value, ", ".join(map(str, option.choices))))
    if option.check is not None and value is not None and not option.check.ok(value):
        raise RoadedgeError("{}: {!r}; expected {}".format(where, value, option.check.expected))


def with_defaults(options_spec, options):
    """`options` with every key of the plugin's OPTIONS filled in from its defaults (no checks)."""
    merged = dict((key, copy.deepcopy(option.default)) for key, option in options_spec.items())
    merged.update(copy.deepcopy(options or {}))
    return merged


def checked(options_spec, options, where):
    """Defaults filled in and every option checked: what a plugin's open() works with, also when opened directly.
    `where` names the section in errors ("mqtt sink")."""
    merged = with_defaults(options_spec, options)
    for key, value in merged.items():
        if key == "type":
            continue
        if key not in options_spec:
            raise RoadedgeError("{}: {}: unknown option; expected one of {}".format(where, key,
                                                                                 ", ".join(sorted(options_spec))))
        check_value("{}: {}".format(where, key), value, options_spec[key])
    return merged
