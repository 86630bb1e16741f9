"""Training graph -> deploy graph for SageMaker / MXNet example-ssd SSDs (what example/ssd/deploy.py does).

The training graph ends in MultiBoxTarget, SoftmaxOutput, smooth_l1 and
MakeLoss heads (SageMaker's also carries a MultiBoxDetection under MakeLoss).
The deploy graph keeps the shared body and ends in
    SoftmaxActivation(cls_preds, mode='channel') -> MultiBoxDetection(cls_prob, loc_preds, anchors)
with variances (0.1, 0.1, 0.2, 0.2): the channel softmax is the form the
DeepLens optimizer accepts (it refuses `softmax`).
"""
import os

from roadedge.core.errors import RoadedgeError
from roadedge.core.mxnet_symbol import Graph, Node, attr_tuple

TRAINING_OPS = ("_contrib_MultiBoxTarget", "SoftmaxOutput", "smooth_l1", "MakeLoss")
VARIANCES = "(0.1, 0.1, 0.2, 0.2)"


def graph_kind(graph):
    """'training', 'deploy', or RoadedgeError naming what makes it neither."""
    ops = graph.ops()
    head_nodes = [graph.nodes[head[0]] for head in graph.heads]
    if "_contrib_MultiBoxTarget" in ops:
        return "training"
    if len(head_nodes) == 1 and head_nodes[0].op == "_contrib_MultiBoxDetection" and not ops & set(TRAINING_OPS):
        return "deploy"
    heads = ", ".join("{} ({})".format(node.name, node.op) for node in head_nodes)
    raise RoadedgeError("{}: not an SSD training or deploy graph: no _contrib_MultiBoxTarget node and the output is {} "
                        "(expected a single _contrib_MultiBoxDetection)".format(graph.source, heads))


def _node_named_input(graph, index, position, what):
    node = graph.nodes[index]
    if len(node.inputs) <= position:
        raise RoadedgeError("{}: node {!r} ({}) has no input {} ({})".format(graph.source, node.name, node.op, position, what))
    return node.inputs[position]


def _loc_preds(graph, target_index):
    """The box-offset predictions: the input of the existing MultiBoxDetection, else what the loc loss subtracts from."""
    for node in graph.nodes:
        if node.op == "_contrib_MultiBoxDetection" and len(node.inputs) == 3:
            return node.inputs[1]
    for node in graph.nodes:
        if node.op in ("elemwise_sub", "_minus", "broadcast_sub") and len(node.inputs) == 2 and node.inputs[1][0] == target_index:
            return node.inputs[0]
    raise RoadedgeError("{}: cannot find the box predictions (no MultiBoxDetection and no loc_pred - loc_target "
                        "node feeding smooth_l1)".format(graph.source))


def num_classes(graph, cls_preds):
    """Object classes (background excluded) from the Reshape that forms the class predictions."""
    index = cls_preds[0]
    for _ in range(4):  # multibox_cls_pred = transpose(Reshape(concat, (0, -1, C+1)))
        node = graph.nodes[index]
        if node.op == "Reshape":
            shape = attr_tuple(node, "shape", kind=int)
            if shape and shape[-1] > 1:
                return shape[-1] - 1
        if not node.inputs:
            break
        index = node.inputs[0][0]
    return None


def to_deploy(graph, num_class=None, nms=0.45, topk=400, force_suppress=False):
    """A new deploy graph; a deploy graph comes back unchanged (same object)."""
    if graph_kind(graph) == "deploy":
        return graph
    target = next(i for i, node in enumerate(graph.nodes) if node.op == "_contrib_MultiBoxTarget")
    anchors = _node_named_input(graph, target, 0, "anchors")
    cls_preds = _node_named_input(graph, target, 2, "class predictions")
    loc_preds = _loc_preds(graph, target)
    found = num_classes(graph, cls_preds)
    if num_class is not None and found is not None and num_class != found:
        raise RoadedgeError("--num-class {}: the graph predicts {} classes (Reshape to {} scores per anchor incl. "
                            "background)".format(num_class, found, found + 1))
    if not 0 < nms <= 1:
        raise RoadedgeError("--nms {}: expected an IoU threshold in (0, 1]".format(nms))
    nodes = list(graph.nodes)
    nodes.append(Node("SoftmaxActivation", "cls_prob", {"mode": "channel"}, [cls_preds]))
    nodes.append(Node("_contrib_MultiBoxDetection", "detection", {
        "nms_threshold": repr(float(nms)), "force_suppress": str(bool(force_suppress)),
        "variances": VARIANCES, "nms_topk": str(int(topk))}, [(len(nodes) - 1, 0, 0), loc_preds, anchors]))
    return Graph(nodes, graph.heads, graph.source, graph.extra).subgraph([(len(nodes) - 1, 0)])


def deploy_paths(output_dir, name, epoch):
    prefix = os.path.join(output_dir, "deploy_" + name)
    return prefix + "-symbol.json", "%s-%04d.params" % (prefix, epoch)


def write_deploy(graph, params, output_dir, name, epoch):
    """Write deploy_NAME-symbol.json and deploy_NAME-EPOCH.params atomically; returns their paths."""
    from roadedge.core.fsutil import atomic_file
    from roadedge.core.mxnet_params import dumps_params

    symbol_path, params_path = deploy_paths(output_dir, name, epoch)
    with atomic_file(params_path) as handle:
        handle.write(dumps_params(params))
    with atomic_file(symbol_path) as handle:
        handle.write(graph.to_json().encode("utf-8"))
    return symbol_path, params_path


def deploy_command(args):
    from roadedge.core.sagemaker_model import load_model

    model = load_model(args.prefix, args.epoch)
    if args.data_shape is not None and args.data_shape <= 0:
        raise RoadedgeError("--data-shape {}: expected a positive input size".format(args.data_shape))
    kind = graph_kind(model.graph)
    deploy = to_deploy(model.graph, args.num_class, args.nms, args.topk, args.force_suppress)
    output_dir = args.output_dir or os.path.dirname(os.path.abspath(args.prefix))
    symbol_path, params_path = write_deploy(deploy, model.params, output_dir, model.name, args.epoch)
    if kind == "deploy":
        print("{} is already a deploy graph; copied unchanged to {}".format(args.prefix, symbol_path))
    else:
        print("wrote {} and {} ({} -> {} nodes; nms {}, topk {}, force_suppress {})".format(
            symbol_path, params_path, len(model.graph.nodes), len(deploy.nodes), args.nms, args.topk, args.force_suppress))
    return 0
