"""MXNet symbol JSON graphs read, edited and written without MXNet.

A graph is a list of nodes {op, name, attrs, inputs: [[node, output, version]]},
`arg_nodes` (indices of 'null' nodes), `heads` (the outputs) and
`node_row_ptr` (derived). Attribute values are strings, as MXNet stores
them; `attr_tuple` / `attr_bool` / `attr_float` parse them, with MXNet's own
defaults applying when an attribute is absent.
"""
import ast
import json

from roadedge.core.errors import RoadedgeError, printable


class Node:
    __slots__ = ("op", "name", "attrs", "inputs")

    def __init__(self, op, name, attrs=None, inputs=None):
        self.op = op
        self.name = name
        self.attrs = dict(attrs or {})
        # (node index, output index, version); version 1 marks a mutated aux state (BatchNorm moving stats)
        self.inputs = [(int(e[0]), int(e[1]), int(e[2]) if len(e) > 2 else 0) for e in (inputs or [])]

    def __repr__(self):
        return "Node(%s %r)" % (self.op, self.name)


class Graph:
    def __init__(self, nodes, heads, source="<symbol>", extra=None):
        self.nodes = nodes
        self.heads = [tuple(head[:2]) for head in heads]
        self.source = source
        self.extra = dict(extra or {})  # top-level 'attrs' such as mxnet_version

    def find(self, name):
        for index, node in enumerate(self.nodes):
            if node.name == name:
                return index
        return None

    def ops(self):
        return {node.op for node in self.nodes}

    def consumers(self, index):
        return [i for i, node in enumerate(self.nodes) if any(entry[0] == index for entry in node.inputs)]

    def reachable(self, heads=None):
        """Indices of the nodes the heads depend on, in topological (file) order."""
        seen = set()
        stack = [head[0] for head in (heads if heads is not None else self.heads)]
        while stack:
            index = stack.pop()
            if index not in seen:
                seen.add(index)
                stack.extend(entry[0] for entry in self.nodes[index].inputs)
        return sorted(seen)

    def subgraph(self, heads):
        """A new graph holding only what `heads` (list of (node, output)) need, renumbered."""
        keep = self.reachable(heads)
        renumber = {old: new for new, old in enumerate(keep)}
        nodes = []
        for old in keep:
            node = self.nodes[old]
            nodes.append(Node(node.op, node.name, node.attrs, [(renumber[i], o, v) for i, o, v in node.inputs]))
        return Graph(nodes, [(renumber[i], o) for i, o in heads], self.source, self.extra)

    def to_json(self):
        nodes = []
        for node in self.nodes:
            entry = {"op": node.op, "name": node.name}
            if node.attrs:
                entry["attrs"] = dict(node.attrs)
            entry["inputs"] = [list(e) for e in node.inputs]
            nodes.append(entry)
        row_ptr = [0]
        for node in self.nodes:
            row_ptr.append(row_ptr[-1] + _num_outputs(node))
        graph = {
            "nodes": nodes,
            "arg_nodes": [i for i, node in enumerate(self.nodes) if node.op == "null"],
            "node_row_ptr": row_ptr,
            "heads": [[i, o, 0] for i, o in self.heads],
        }
        if self.extra:
            graph["attrs"] = self.extra
        return json.dumps(graph, indent=2, allow_nan=False)


# outputs including hidden ones (BatchNorm's mean/var, Dropout's mask), as node_row_ptr counts them
_OUTPUTS = {"BatchNorm": 3, "_contrib_MultiBoxTarget": 3, "Dropout": 2}


def _num_outputs(node):
    return _OUTPUTS.get(node.op, 1)


def _short(value, limit=60):
    text = json.dumps(value) if isinstance(value, (list, dict, str, int, float, type(None))) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clip(text, limit=60):
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _entry(raw):
    """[node, output] or [node, output, version] of non-negative JSON integers -> a 3-tuple, else None."""
    if not isinstance(raw, list) or not 2 <= len(raw) <= 3:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in raw):
        return None
    return (raw[0], raw[1], raw[2] if len(raw) > 2 else 0)


def _node(raw, index, count, source):
    if not isinstance(raw, dict) or not isinstance(raw.get("op"), str) or not isinstance(raw.get("name"), str):
        raise RoadedgeError("{}: node {}: expected 'op', 'name' and 'inputs'".format(source, index))
    name, shown = raw["name"], printable(raw["name"])
    # MXNet < 0.9 wrote 'param'/'attr'; 1.x writes 'attrs'
    attrs = raw.get("attrs") or raw.get("attr") or raw.get("param") or {}
    if not isinstance(attrs, dict) or not all(isinstance(value, str) for value in attrs.values()):
        raise RoadedgeError("{}: node {} ({}): attributes {}: expected an object of strings (MXNet writes every "
                            "attribute as text)".format(source, index, shown, _short(attrs)))
    inputs = raw.get("inputs", [])
    if not isinstance(inputs, list):
        raise RoadedgeError("{}: node {} ({}): inputs {}: expected a list of [node, output, version]".format(
            source, index, shown, _short(inputs)))
    entries = []
    for raw_entry in inputs:
        entry = _entry(raw_entry)
        if entry is None:
            raise RoadedgeError("{}: node {} ({}): input {}: expected [node, output, version] of non-negative "
                                "integers".format(source, index, shown, _short(raw_entry)))
        if entry[0] >= index:
            where = " (past the end of the node list of {} nodes: cut short?)".format(count) if entry[0] >= count else ""
            raise RoadedgeError("{}: node {} ({}): input {} is not an earlier node{}".format(
                source, index, shown, entry[0], where))
        entries.append(entry)
    return Node(raw["op"], name, attrs, entries)


def loads_symbol(text, source="<symbol>"):
    """Symbol JSON (text or bytes) -> Graph; anything malformed is one RoadedgeError naming `source`."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError; absurd nesting recurses
        reason = str(err) if isinstance(err, ValueError) else "nested too deeply"
        raise RoadedgeError("{}: not a symbol JSON file: {}".format(source, reason)) from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or "heads" not in data:
        raise RoadedgeError("{}: not an MXNet symbol file (expected 'nodes' and 'heads')".format(source))
    raw_nodes = data["nodes"]
    nodes = [_node(raw, index, len(raw_nodes), source) for index, raw in enumerate(raw_nodes)]
    if not nodes:
        raise RoadedgeError("{}: the symbol has no nodes".format(source))
    row_ptr = data.get("node_row_ptr")
    if row_ptr is not None and (not isinstance(row_ptr, list) or len(row_ptr) != len(nodes) + 1):
        raise RoadedgeError("{}: node_row_ptr has {} entries for {} nodes (expected {}; is the node list cut "
                            "short?)".format(source, len(row_ptr) if isinstance(row_ptr, list) else _short(row_ptr),
                                             len(nodes), len(nodes) + 1))
    arg_nodes = data.get("arg_nodes")
    if arg_nodes is not None:
        bad = [v for v in arg_nodes if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < len(nodes)] \
            if isinstance(arg_nodes, list) else [arg_nodes]
        if bad:
            raise RoadedgeError("{}: arg_nodes: {} is not one of the {} node indices (is the node list cut "
                                "short?)".format(source, _short(bad[0]), len(nodes)))
    heads = data["heads"]
    if not isinstance(heads, list) or not heads:
        raise RoadedgeError("{}: heads {}: expected a non-empty list of [node, output, version]".format(
            source, _short(heads)))
    for raw_head in heads:
        head = _entry(raw_head)
        if head is None:
            raise RoadedgeError("{}: head {}: expected [node, output, version] of non-negative integers".format(
                source, _short(raw_head)))
        if head[0] >= len(nodes):
            raise RoadedgeError("{}: head {} points past the end of the node list ({} nodes; cut short?)".format(
                source, head[0], len(nodes)))
    extra = data.get("attrs") if isinstance(data.get("attrs"), dict) else None
    return Graph(nodes, heads, source, extra)


def load_symbol(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise RoadedgeError("{}: cannot read symbol file: {}".format(path, err.strerror or err)) from None
    return loads_symbol(data, path)


def attr_tuple(node, key, default=None, kind=float):
    """'(3, 3)' / '[1,2]' / '3' -> tuple; `default` when absent."""
    text = node.attrs.get(key)
    if text is None:
        return default
    try:
        value = ast.literal_eval(text.strip())
        if not isinstance(value, (tuple, list)):
            value = (value,)
        if any(isinstance(v, (bool, str, bytes)) for v in value):
            raise TypeError
        return tuple(kind(v) for v in value)
    except (ValueError, SyntaxError, TypeError, OverflowError, RecursionError, MemoryError):
        # not Python literal syntax, nested, None, text, complex, an infinity as an int, absurdly deep
        raise RoadedgeError("node {!r}: attribute {}={!r} is not a tuple of numbers".format(
            node.name, key, _clip(text))) from None


def attr_bool(node, key, default):
    text = node.attrs.get(key)
    if text is None:
        return default
    if text.strip() in ("True", "true", "1"):
        return True
    if text.strip() in ("False", "false", "0"):
        return False
    raise RoadedgeError("node {!r}: attribute {}={!r} is not a boolean".format(node.name, key, text))


def attr_float(node, key, default):
    text = node.attrs.get(key)
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        raise RoadedgeError("node {!r}: attribute {}={!r} is not a number".format(node.name, key, _clip(text))) from None


def attr_int(node, key, default):
    value = attr_float(node, key, default)
    try:
        return None if value is None else int(value)
    except (ValueError, OverflowError):  # nan, inf
        raise RoadedgeError("node {!r}: attribute {}={!r} is not a whole number".format(
            node.name, key, node.attrs.get(key))) from None
