"""MXNet symbol JSON graphs read, edited and written without MXNet.

A graph is a list of nodes {op, name, attrs, inputs: [[node, output, version]]},
`arg_nodes` (indices of 'null' nodes), `heads` (the outputs) and
`node_row_ptr` (derived). Attribute values are strings, as MXNet stores
them; `attr_tuple` / `attr_bool` / `attr_float` parse them, with MXNet's own
defaults applying when an attribute is absent.
"""
import ast
import json

from roadedge.core.errors import RoadedgeError


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


def loads_symbol(text, source="<symbol>"):
    try:
        data = json.loads(text)
    except ValueError as err:
        raise RoadedgeError("{}: not a symbol JSON file: {}".format(source, err)) from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or "heads" not in data:
        raise RoadedgeError("{}: not an MXNet symbol file (expected 'nodes' and 'heads')".format(source))
    nodes = []
    for index, raw in enumerate(data["nodes"]):
        try:
            # MXNet < 0.9 wrote 'param'/'attr'; 1.x writes 'attrs'
            attrs = raw.get("attrs") or raw.get("attr") or raw.get("param") or {}
            nodes.append(Node(raw["op"], raw["name"], attrs, raw.get("inputs", [])))
        except (KeyError, TypeError, AttributeError):
            raise RoadedgeError("{}: node {}: expected 'op', 'name' and 'inputs'".format(source, index)) from None
    for index, node in enumerate(nodes):
        for entry in node.inputs:
            if not 0 <= entry[0] < index:
                raise RoadedgeError("{}: node {} ({}): input {} is not an earlier node".format(
                    source, index, node.name, entry[0]))
    extra = data.get("attrs") if isinstance(data.get("attrs"), dict) else None
    return Graph(nodes, data["heads"], source, extra)


def load_symbol(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return loads_symbol(handle.read(), path)
    except OSError as err:
        raise RoadedgeError("{}: cannot read symbol file: {}".format(path, err.strerror or err)) from None


def attr_tuple(node, key, default=None, kind=float):
    """'(3, 3)' / '[1,2]' / '3' -> tuple; `default` when absent."""
    text = node.attrs.get(key)
    if text is None:
        return default
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        raise RoadedgeError("node {!r}: attribute {}={!r} is not a tuple".format(node.name, key, text)) from None
    if not isinstance(value, (tuple, list)):
        value = (value,)
    return tuple(kind(v) for v in value)


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
        raise RoadedgeError("node {!r}: attribute {}={!r} is not a number".format(node.name, key, text)) from None


def attr_int(node, key, default):
    value = attr_float(node, key, default)
    return None if value is None else int(value)
