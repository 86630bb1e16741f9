"""MXNet symbol JSON read/edit/write without MXNet, on the real SageMaker training symbol; malformed symbols
(property-based: random, symbol-shaped and mutated JSON) are one RoadedgeError naming the file, never another exception."""
import json
import os

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from converters.ssd_deploy import graph_kind, to_deploy
from roadedge.core.errors import RoadedgeError
from roadedge.core.mxnet_symbol import Node, attr_bool, attr_float, attr_int, attr_tuple, load_symbol, loads_symbol
from tests import ssd_models

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "sagemaker-ssd-resnet50-training-symbol.json")


@pytest.fixture(scope="module")
def training_graph():
    return load_symbol(FIXTURE)


def test_nodes_and_heads_survive_a_round_trip(training_graph):
    with open(FIXTURE, encoding="utf-8") as handle:
        original = json.load(handle)
    written = json.loads(training_graph.to_json())
    assert written["nodes"] == original["nodes"]  # including the version 1 inputs of BatchNorm moving stats
    assert written["heads"] == original["heads"] and written["arg_nodes"] == original["arg_nodes"]
    assert written["attrs"] == {"mxnet_version": ["int", 10300]}


def test_attributes_parse_with_mxnet_defaults(training_graph):
    detection = training_graph.nodes[training_graph.find("detection")]
    assert attr_tuple(detection, "variances") == (0.1, 0.1, 0.2, 0.2)
    assert attr_bool(detection, "force_suppress", True) is False
    assert attr_float(detection, "nms_threshold", 0.5) == 0.45
    assert attr_int(detection, "nms_topk", -1) == 400
    assert attr_float(detection, "threshold", 0.01) == 0.01  # absent: MXNet's default
    prior = training_graph.nodes[training_graph.find("_plus15_anchors")]
    assert attr_tuple(prior, "ratios") == (1.0, 2.0, 0.5, 3.0, 0.333333333333)
    assert attr_tuple(prior, "steps") == (-1.0, -1.0)
    assert attr_tuple(prior, "offsets", (0.5, 0.5)) == (0.5, 0.5)
    pool = training_graph.nodes[training_graph.find("pooling0")]
    assert attr_tuple(pool, "kernel", kind=int) == (3, 3)
    with pytest.raises(RoadedgeError, match="node 'pooling0': attribute pool_type='max' is not a number"):
        attr_float(pool, "pool_type", 0)


def test_subgraph_keeps_only_what_a_head_needs(training_graph):
    anchors = training_graph.find("multibox_anchors")
    sub = training_graph.subgraph([(anchors, 0)])
    assert sub.nodes[sub.heads[0][0]].name == "multibox_anchors"
    assert "_contrib_MultiBoxTarget" not in sub.ops() and "SoftmaxOutput" not in sub.ops()
    assert sum(node.op == "_contrib_MultiBoxPrior" for node in sub.nodes) == 6
    assert all(i < index for index, node in enumerate(sub.nodes) for i, _, _ in node.inputs)


@pytest.mark.parametrize("text,message", [
    ("{not json", "model-symbol.json: not a symbol JSON file"),
    ('{"weights": []}', r"model-symbol.json: not an MXNet symbol file \(expected 'nodes' and 'heads'\)"),
    ('{"nodes": [{"op": "null"}], "heads": []}', "model-symbol.json: node 0: expected 'op', 'name' and 'inputs'"),
    ('{"nodes": [{"op": "Flatten", "name": "f", "inputs": [[3, 0, 0]]}], "heads": [[0, 0, 0]]}',
     r"model-symbol.json: node 0 \(f\): input 3 is not an earlier node"),
])
def test_bad_symbol_files_are_one_line_errors(text, message):
    with pytest.raises(RoadedgeError, match=message):
        loads_symbol(text, "model-symbol.json")


# ---- cut short, out of range, malformed: one RoadedgeError naming the file, never another exception ----------------

def _tiny_json():
    return json.loads(ssd_models.tiny().to_json())


def test_a_node_list_cut_short_is_refused_naming_the_file():
    data = _tiny_json()
    count = len(data["nodes"])
    cut = dict(data, nodes=data["nodes"][: count // 2])
    with pytest.raises(RoadedgeError, match=r"^cut-symbol.json: node_row_ptr has {} entries for {} nodes \(expected {}; "
                       r"is the node list cut short\?\)$".format(count + 1, count // 2, count // 2 + 1)):
        loads_symbol(json.dumps(cut), "cut-symbol.json")
    del cut["node_row_ptr"]  # MXNet < 0.9 wrote none: the heads still point past the end
    with pytest.raises(RoadedgeError, match=r"^cut-symbol.json: arg_nodes: \d+ is not one of the {} node indices".format(
            count // 2)):
        loads_symbol(json.dumps(cut), "cut-symbol.json")
    del cut["arg_nodes"]
    with pytest.raises(RoadedgeError, match=r"^cut-symbol.json: head {} points past the end of the node list \({} nodes; "
                       r"cut short\?\)$".format(data["heads"][0][0], count // 2)):
        loads_symbol(json.dumps(cut), "cut-symbol.json")


@pytest.mark.parametrize("change,message", [
    (lambda d: d.update(heads=[[10 ** 6, 0, 0]]), r"head 1000000 points past the end of the node list"),
    (lambda d: d.update(heads=[]), r"heads \[\]: expected a non-empty list"),
    (lambda d: d.update(heads=7), r"heads 7: expected a non-empty list"),
    (lambda d: d.update(heads=[[0, -1, 0]]), r"head \[0, -1, 0\]: expected \[node, output, version\]"),
    (lambda d: d.update(heads=[["1", 0, 0]]), r"head \[\"1\", 0, 0\]: expected \[node, output, version\]"),
    (lambda d: d["nodes"][-1].update(inputs=[[10 ** 6, 0, 0]]),
     r"input 1000000 is not an earlier node \(past the end of the node list of \d+ nodes: cut short\?\)"),
    (lambda d: d["nodes"][-1].update(inputs=[["x", 0]]), r"input \[\"x\", 0\]: expected \[node, output, version\]"),
    (lambda d: d["nodes"][-1].update(inputs=[[float("nan"), 0]]), r"input \[NaN, 0\]: expected"),
    (lambda d: d["nodes"][-1].update(inputs={"a": 1}), r"inputs \{\"a\": 1\}: expected a list"),
    (lambda d: d["nodes"][-1].update(attrs="abc"), r"attributes \"abc\": expected an object of strings"),
    (lambda d: d["nodes"][-1].update(attrs={"kernel": [3, 3]}), r"attributes .*: expected an object of strings"),
    (lambda d: d["nodes"][0].update(name=["data"]), r"node 0: expected 'op', 'name' and 'inputs'"),
    (lambda d: d.update(nodes=[]), r"the symbol has no nodes"),
    (lambda d: d["nodes"][-1].update(name="a\nb", inputs=[[10 ** 6, 0, 0]]), r"node \d+ \(\"a\\nb\"\): input 1000000"),
], ids=["head past end", "no heads", "heads not a list", "negative output", "string index", "input past end",
        "string input", "NaN input", "inputs an object", "attrs a string", "attr a list", "name a list", "no nodes",
        "newline in a name"])
def test_malformed_symbols_are_one_line_errors_naming_the_file(change, message):
    data = _tiny_json()
    change(data)
    with pytest.raises(RoadedgeError, match="^m-symbol.json: .*" + message):
        loads_symbol(json.dumps(data), "m-symbol.json")


def test_nesting_and_encoding_errors_are_one_line():
    with pytest.raises(RoadedgeError, match=r"^deep-symbol.json: not a symbol JSON file: nested too deeply$"):
        loads_symbol("[" * 100000, "deep-symbol.json")
    with pytest.raises(RoadedgeError, match=r"^latin-symbol.json: not a symbol JSON file"):
        loads_symbol(b'{"nodes": [], "heads": [], "x": "\xe9"}', "latin-symbol.json")


ATTR_READERS = (attr_tuple, attr_float, attr_int, lambda node, key, default: attr_bool(node, key, False))


def parse_or_refuse(text, source="fuzz-symbol.json"):
    """loads_symbol, every attribute through every reader, then what `convert deploy` does with the graph: a valid
    result or one RoadedgeError."""
    try:
        graph = loads_symbol(text, source)
        event("loaded")
        for node in graph.nodes:
            for key in node.attrs:
                for read in ATTR_READERS:
                    try:
                        read(node, key, None)
                    except RoadedgeError as err:
                        assert "\n" not in str(err)
        assert loads_symbol(graph.to_json(), source).to_json() == graph.to_json()
        graph.reachable()
        deploy = to_deploy(graph)
        assert graph_kind(deploy) == "deploy"
        event("deployed")
        return graph
    except RoadedgeError as err:
        event("refused")
        assert "\n" not in str(err), str(err)
        return None


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=12)
INDEX = st.one_of(st.integers(-2, 12), st.sampled_from([2 ** 31, 2 ** 63, 10 ** 30]), JSON)
OPS = st.sampled_from(["null", "Convolution", "Activation", "Reshape", "Concat", "_contrib_MultiBoxPrior", "MakeLoss",
                       "_contrib_MultiBoxTarget", "_contrib_MultiBoxDetection", "SoftmaxOutput"]) | st.text(max_size=6)


@st.composite
def symbol_shaped(draw):
    """Random JSON in the symbol's shape: nodes with ops, names, attrs and input entries of any value."""
    nodes = draw(st.lists(st.fixed_dictionaries(
        {"op": OPS, "name": st.sampled_from(["data", "label", "x"]) | st.text(max_size=4),
         "inputs": st.lists(st.lists(INDEX, min_size=0, max_size=4), max_size=3) | JSON},
        optional={"attrs": st.dictionaries(st.text(max_size=6), st.text(max_size=6) | JSON, max_size=3)}), max_size=8))
    data = {"nodes": nodes, "heads": draw(st.lists(st.lists(INDEX, max_size=4), max_size=3) | JSON)}
    if draw(st.booleans()):
        data["arg_nodes"] = draw(st.lists(INDEX, max_size=4) | JSON)
    if draw(st.booleans()):
        data["node_row_ptr"] = draw(st.lists(st.integers(0, 20), max_size=10) | JSON)
    return json.dumps(data)


# attribute text that parses as Python but is no tuple of numbers, or numbers no int can hold
ODD_ATTRS = ["(0, -1, 3)", "(1,)", "()", "x", "-1", "1e308", "1e999", "nan", "inf", "-inf", '("a",)', "((1, 2),)", "1+2j",
             "(None, 0)", "[True]", "(" * 500 + ")" * 500, "[" * 5000, "9" * 5000, "{1: 2}", "b'x'"]


@st.composite
def mutated_symbol(draw):
    """The tiny SSD training symbol with one to three corruptions: some keep it loadable but rewire it (an input to
    another earlier node, another op, odd attributes, other heads), others break it (cut short, garbage, truncated)."""
    data = _tiny_json()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["rewire", "op", "attrs", "head", "cut", "node", "input", "heads", "key", "text"]))
        nodes = data.get("nodes") if isinstance(data.get("nodes"), list) else []
        at = draw(st.integers(0, max(0, len(nodes) - 1)))
        node = nodes[at] if nodes and isinstance(nodes[at], dict) else None
        inputs = node.get("inputs") if node and isinstance(node.get("inputs"), list) and node.get("inputs") else None
        if kind == "rewire" and inputs and at:
            inputs[draw(st.integers(0, len(inputs) - 1))] = [draw(st.integers(0, at - 1)), draw(st.integers(0, 2)), 0]
        elif kind == "op" and node:
            node["op"] = draw(OPS)
        elif kind == "attrs" and node:
            node["attrs"] = draw(st.dictionaries(st.sampled_from(["kernel", "shape", "num_filter", "mode", "sizes"]),
                                                 st.sampled_from(ODD_ATTRS) | st.text(max_size=8), max_size=2))
        elif kind == "head" and nodes:
            data["heads"] = [[draw(st.integers(0, len(nodes) - 1)), draw(st.integers(0, 2)), 0]]
        elif kind == "cut":
            data["nodes"] = nodes[:at]
        elif kind == "node" and nodes:
            nodes[at] = draw(JSON)
        elif kind == "input" and inputs:
            inputs[draw(st.integers(0, len(inputs) - 1))] = draw(st.lists(INDEX, max_size=4) | JSON)
        elif kind == "heads":
            data["heads"] = draw(st.lists(st.lists(INDEX, max_size=4), max_size=3) | JSON)
        elif kind == "key":
            data.pop(draw(st.sampled_from(["nodes", "heads", "arg_nodes", "node_row_ptr", "attrs"])), None)
    text = json.dumps(data)
    return text[: draw(st.integers(0, len(text)))] if kind == "text" else text


@given(st.sampled_from(ODD_ATTRS) | st.text(max_size=12) | st.builds(repr, JSON))
def test_property_attribute_text_reads_or_is_refused(text):
    """Any attribute text through attr_tuple/float/int/bool (as kinds int and float): a value or one RoadedgeError."""
    node = Node("Convolution", "conv", {"kernel": text})
    for read in ATTR_READERS + (lambda n, key, default: attr_tuple(n, key, default, kind=int),):
        try:
            read(node, "kernel", None)
        except RoadedgeError as err:
            assert str(err).startswith("node 'conv': attribute kernel=") and "\n" not in str(err), str(err)


@given(JSON)
def test_property_random_json_is_refused(value):
    assert parse_or_refuse(json.dumps(value)) is None


@given(symbol_shaped())
def test_property_symbol_shaped_json_loads_or_is_refused(text):
    parse_or_refuse(text)


@given(mutated_symbol())
def test_property_mutated_ssd_symbols_load_or_are_refused(text):
    parse_or_refuse(text)
