"""MXNet symbol JSON read/edit/write without MXNet, on the real SageMaker training symbol."""
import json
import os

import pytest

from roadedge.core.errors import RoadedgeError
from roadedge.core.mxnet_symbol import attr_bool, attr_float, attr_int, attr_tuple, load_symbol, loads_symbol

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
