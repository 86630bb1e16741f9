"""Training graph -> deploy graph for SageMaker / MXNet example-ssd SSDs (what example/ssd/deploy.py does).

The training graph ends in MultiBoxTarget, SoftmaxOutput, smooth_l1 and
MakeLoss heads (SageMaker's also carries a MultiBoxDetection under MakeLoss).
The deploy graph keeps the shared body and ends in
    SoftmaxActivation(cls_preds, mode='channel') -> MultiBoxDetection(cls_prob, loc_preds, anchors)
with variances (0.1, 0.1, 0.2, 0.2): the channel softmax is the form the
DeepLens optimizer accepts (it refuses `softmax`).
"""
import contextlib
import math
import os

from roadedge.core.errors import RoadedgeError, printable
from roadedge.core.mxnet_symbol import Graph, Node, attr_bool, attr_int, attr_tuple

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
    heads = ", ".join("{} ({})".format(printable(node.name), printable(node.op)) for node in head_nodes)
    raise RoadedgeError("{}: not an SSD training or deploy graph: no _contrib_MultiBoxTarget node and the output is {} "
                        "(expected a single _contrib_MultiBoxDetection)".format(graph.source, heads))


def _node_named_input(graph, index, position, what):
    node = graph.nodes[index]
    if len(node.inputs) <= position:
        raise RoadedgeError("{}: node {!r} ({}) has no input {} ({})".format(
            graph.source, node.name, printable(node.op), position, what))
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


@contextlib.contextmanager
def naming(source):
    """A RoadedgeError raised inside that names no file (an attribute of a node) gets `source: ` in front."""
    try:
        yield
    except RoadedgeError as err:
        if source and not source.startswith("<") and not str(err).startswith(source):
            raise RoadedgeError("{}: {}".format(source, err), err.exit_code) from None
        raise


def num_classes(graph, cls_preds):
    """Object classes (background excluded) from the Reshape that forms the class predictions."""
    index = cls_preds[0]
    for _ in range(4):  # multibox_cls_pred = transpose(Reshape(concat, (0, -1, C+1)))
        node = graph.nodes[index]
        if node.op == "Reshape":
            with naming(graph.source):
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
    check_number("--nms", nms, 0, 1, low_open=True, what="an IoU threshold")
    nodes = list(graph.nodes)
    nodes.append(Node("SoftmaxActivation", "cls_prob", {"mode": "channel"}, [cls_preds]))
    nodes.append(Node("_contrib_MultiBoxDetection", "detection", {
        "nms_threshold": repr(float(nms)), "force_suppress": str(bool(force_suppress)),
        "variances": VARIANCES, "nms_topk": str(int(topk))}, [(len(nodes) - 1, 0, 0), loc_preds, anchors]))
    return Graph(nodes, graph.heads, graph.source, graph.extra).subgraph([(len(nodes) - 1, 0)])


# ops whose (NCHW) output has the channels of their first input
SAME_CHANNELS = {"Activation", "relu", "LeakyReLU", "Pooling", "Dropout", "_copy", "identity", "BlockGrad", "stop_gradient",
                 "L2Normalization", "SoftmaxActivation", "clip", "elemwise_add", "elemwise_sub", "elemwise_mul", "_plus",
                 "_Plus", "_minus", "_Minus", "_mul", "_Mul", "broadcast_add", "broadcast_plus", "broadcast_sub",
                 "broadcast_mul", "add_n", "ElementWiseSum", "_plus_scalar", "_minus_scalar", "_mul_scalar",
                 "_div_scalar", "_PlusScalar", "_MinusScalar", "_MulScalar", "_DivScalar"}


def expected_param_shapes(graph, image_channels=3):
    """{variable name: (shape, node)}: the shape a learned parameter must have, as far as the graph fixes it without
    knowing the input size (None for a dimension it leaves open), and the node that needs it.

    Convolution weights (num_filter, channels / num_group, *kernel) and biases, BatchNorm's four per-channel vectors,
    FullyConnected's (num_hidden, ?) and bias, and variables that declare a __shape__; input channels are followed
    from `data` (an image: 3) through the ops that keep them. A node whose attributes do not parse is left to the
    converters, which name it.
    """
    channels, expected = {}, {}

    def expect(node, position, shape):
        if position < len(node.inputs):
            variable = graph.nodes[node.inputs[position][0]]
            if variable.op == "null" and variable.name not in expected:
                expected[variable.name] = (tuple(shape), node)

    for index, node in enumerate(graph.nodes):
        try:
            if node.op == "null":
                if node.name == "data":
                    channels[index] = image_channels
                declared = attr_tuple(node, "__shape__", kind=int)
                if declared and all(v > 0 for v in declared):
                    expected[node.name] = (declared, node)
                continue
            inbound = channels.get(node.inputs[0][0]) if node.inputs else None
            if node.op == "Convolution":
                filters, kernel = attr_int(node, "num_filter", None), attr_tuple(node, "kernel", kind=int)
                groups = attr_int(node, "num_group", 1)
                if filters and filters > 0 and kernel and groups and groups > 0:
                    expect(node, 1, (filters, inbound // groups if inbound else None) + kernel)
                    if not attr_bool(node, "no_bias", False):
                        expect(node, 2, (filters,))
                    channels[index] = filters
            elif node.op == "BatchNorm" and attr_int(node, "axis", 1) == 1:
                for position in range(1, 5):
                    expect(node, position, (inbound,))
                channels[index] = inbound
            elif node.op == "FullyConnected":
                hidden = attr_int(node, "num_hidden", None)
                if hidden and hidden > 0:
                    expect(node, 1, (hidden, None))
                    if not attr_bool(node, "no_bias", False):
                        expect(node, 2, (hidden,))
            elif node.op in SAME_CHANNELS:
                channels[index] = inbound
            elif node.op in ("Concat", "concat") and attr_int(node, "dim", 1) == 1:
                parts = [channels.get(entry[0]) for entry in node.inputs]
                channels[index] = sum(parts) if parts and None not in parts else None
        except (RoadedgeError, ValueError, TypeError, OverflowError):
            continue
    return expected


def _shape_text(shape):
    return "(" + ", ".join("?" if v is None else str(v) for v in shape) + ("," if len(shape) == 1 else "") + ")"


def check_params(deploy, params, params_source, graph=None):
    """The params belong to this model: every learned input of the deploy graph is there with the shape the graph
    gives it, and nothing is there that is no variable of `graph` (the graph they were loaded with, default the deploy
    graph). Refuses naming the params file and the first parameter that does not match."""
    from roadedge.core.mxnet_params import split_arg_aux

    graph = graph or deploy
    args, aux = split_arg_aux(params)
    stored = dict(aux)
    stored.update(args)
    expected = expected_param_shapes(graph)
    hint = "are these another model's params?"
    for node in deploy.nodes:
        if node.op != "null" or node.name == "data":
            continue
        if node.name not in stored:
            users = [n for n in deploy.nodes if any(deploy.nodes[e[0]] is node for e in n.inputs)]
            used_by = " (input of {} {!r})".format(printable(users[0].op), users[0].name) if users else ""
            raise RoadedgeError("{}: parameter {!r}{} of {} is missing; {}".format(
                params_source, node.name, used_by, graph.source, hint))
        if node.name in expected:
            shape, user = expected[node.name]
            value = stored[node.name]
            if len(value.shape) != len(shape) or any(e is not None and e != v for e, v in zip(shape, value.shape)):
                raise RoadedgeError("{}: parameter {!r} has shape {}, but {} {!r} in {} needs {}; {}".format(
                    params_source, node.name, _shape_text(value.shape), printable(user.op), user.name, graph.source,
                    _shape_text(shape), hint))
    variables = {node.name for node in graph.nodes if node.op == "null"}
    for name in params:
        plain = name.split(":", 1)[1] if name.startswith(("arg:", "aux:")) else name
        if plain not in variables:
            raise RoadedgeError("{}: {!r} is not a parameter of {}; {}".format(params_source, name, graph.source, hint))


def check_number(flag, value, low, high, low_open=False, high_open=False, what="a number"):
    """A command-line number must be finite and in range: NaN compares false with everything, so an unchecked
    `--tolerance nan` passes every comparison it meets. Raises one line naming the flag and the range."""
    if value is None:
        return
    inside = isinstance(value, (int, float)) and math.isfinite(value) and \
        (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not inside:
        raise RoadedgeError("{} {}: expected {} in {}{:g}, {:g}{}".format(
            flag, value, what, "(" if low_open else "[", low, high, ")" if high_open else "]"))


def check_ssd_flags(args):
    """The flags deploy, optimize and verify share, checked before any work."""
    check_number("--nms", getattr(args, "nms", None), 0, 1, low_open=True, what="an IoU threshold")
    topk = getattr(args, "topk", None)
    if topk is not None and topk != -1 and topk < 1:
        raise RoadedgeError("--topk {}: expected the detections kept before NMS (at least 1, or -1 for all)".format(topk))
    check_number("--epoch", getattr(args, "epoch", None), 0, 9999, what="an epoch number")


def deploy_paths(output_dir, name, epoch):
    prefix = os.path.join(output_dir, "deploy_" + name)
    return prefix + "-symbol.json", "%s-%04d.params" % (prefix, epoch)


def write_deploy(graph, params, output_dir, name, epoch):
    """Write deploy_NAME-symbol.json and deploy_NAME-EPOCH.params atomically; returns their paths."""
    from roadedge.core.fsutil import atomic_file
    from roadedge.core.mxnet_params import dumps_params

    symbol_path, params_path = deploy_paths(output_dir, name, epoch)
    # both or neither: each is written to a temporary file, and both are renamed only once both are complete
    with atomic_file(params_path) as params_handle, atomic_file(symbol_path) as symbol_handle:
        params_handle.write(dumps_params(params))
        symbol_handle.write(graph.to_json().encode("utf-8"))
    return symbol_path, params_path


def check_output_dir(path, flag="--output-dir"):
    """A folder to write into: it may be missing (it is created), but not a file or under one."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise RoadedgeError("{} {}: {} is a file; expected a folder (created if missing)".format(
            flag, path, "it" if probe == os.path.abspath(path) else probe))


def deploy_command(args):
    from roadedge.core.sagemaker_model import load_model

    if args.data_shape is not None and args.data_shape <= 0:
        raise RoadedgeError("--data-shape {}: expected a positive input size".format(args.data_shape))
    check_ssd_flags(args)
    output_dir = args.output_dir or os.path.dirname(os.path.abspath(args.prefix))
    check_output_dir(output_dir)
    model = load_model(args.prefix, args.epoch)
    kind = graph_kind(model.graph)
    deploy = to_deploy(model.graph, args.num_class, args.nms, args.topk, args.force_suppress)
    check_params(deploy, model.params, model.params_source, model.graph)
    symbol_path, params_path = write_deploy(deploy, model.params, output_dir, model.name, args.epoch)
    if kind == "deploy":
        print("{} is already a deploy graph; copied unchanged to {}".format(args.prefix, symbol_path))
    else:
        print("wrote {} and {} ({} -> {} nodes; nms {}, topk {}, force_suppress {})".format(
            symbol_path, params_path, len(model.graph.nodes), len(deploy.nodes), args.nms, args.topk, args.force_suppress))
    return 0
