"""Reading a settings file (a device profile, --config) so that no file can hurt the reader.

- at most MAX_BYTES; UTF-8 only (a one-line error names the byte offset otherwise);
- anchors and aliases within a small budget (MAX_ALIASES, and MAX_NODES values once expanded): a 400-byte
  "billion laughs" file must not expand into gigabytes while the checker walks it;
- numbers as a person reads them: `1_0`, `0x1F`, `0o17`, `1:20` (YAML 1.1's underscores, bases and
  sexagesimals) stay strings, so the type check names them instead of taking 10, 31, 15 or 80 silently;
- nesting at most MAX_DEPTH deep.
"""
import re

from roadedge.core.errors import RoadedgeError

MAX_BYTES = 1 << 20  # edge.config reads at most one byte more
MAX_ALIASES = 100
MAX_DEPTH = 32
MAX_NODES = 100000

_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)$")


def _loader():
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """SafeLoader with plain decimal ints and floats only (no underscores, bases, sexagesimals; no nan/inf)."""

    resolvers = {}
    for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items():
        kept = [(tag, regexp) for tag, regexp in entries
                if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
        resolvers[first] = kept
    for first in "-+0123456789.":
        resolvers.setdefault(first, [])
        resolvers[first] = resolvers[first] + [("tag:yaml.org,2002:int", _INT), ("tag:yaml.org,2002:float", _FLOAT)]
    StrictLoader.yaml_implicit_resolvers = resolvers
    return StrictLoader


def _check_events(path, text):
    """Count aliases, nesting and the nodes the document expands to, before anything is built from them."""
    import yaml

    aliases, sizes, stack, total = 0, {}, [[None, 0]], 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise RoadedgeError("{}: line {}: more than {} aliases (*name); expected a plain settings file".format(
                    path, line, MAX_ALIASES))
            stack[-1][1] += sizes.get(event.anchor, 1)
        elif isinstance(event, yaml.ScalarEvent):
            stack[-1][1] += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            stack.append([event.anchor, 1])
            if len(stack) > MAX_DEPTH:
                raise RoadedgeError("{}: line {}: nested more than {} levels deep".format(path, line, MAX_DEPTH))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, count = stack.pop()
            if anchor:
                sizes[anchor] = count
            stack[-1][1] += count
        total = stack[0][1] + sum(count for _, count in stack[1:])
        if total > MAX_NODES:
            raise RoadedgeError("{}: line {}: expands to more than {} values (aliases of aliases?); expected a plain "
                                "settings file".format(path, line, MAX_NODES))


def parse_settings(path, data):
    """The YAML document in `data` (bytes) -> Python values; RoadedgeError naming `path` for anything wrong."""
    import yaml

    if len(data) > MAX_BYTES:
        raise RoadedgeError("{}: {} bytes; a settings file is at most {} bytes".format(path, len(data), MAX_BYTES))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RoadedgeError("{}: not UTF-8 text (byte {} at offset {})".format(path, hex(data[err.start]), err.start)) \
            from None
    try:
        _check_events(path, text)
        return yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = " line {}".format(mark.line + 1) if mark is not None else ""
        reason = " ".join(str(getattr(err, "problem", None) or err).split())
        raise RoadedgeError("{}:{} not valid YAML ({})".format(path, where, reason)) from None
    except RecursionError:
        raise RoadedgeError("{}: nested too deeply".format(path)) from None
