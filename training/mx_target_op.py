"""Training with the SSD targets of training.multibox_targets in place of MXNet's `_contrib_MultiBoxTarget`.

`swap_targets(graph_json)` gives the training graph with each MultiBoxTarget node turned into a `Custom` node of
this module's operator (same inputs, outputs and parameters); `register(mx)` registers that operator. Only the
graph that is trained changes: mx_train saves SageMaker's graph, whose MultiBoxTarget has no parameters, with
the trained weights, so model.tar.gz is as before.
"""
import ast
import json

from training.multibox_targets import multibox_targets

OP_TYPE = "roadedge_multibox_target"
MXNET_OP = "_contrib_MultiBoxTarget"
_registered = []


def swap_targets(graph_json):
    """The symbol JSON with every MultiBoxTarget node computed by this module's custom operator."""
    graph = json.loads(graph_json)
    for node in graph["nodes"]:
        if node["op"] == MXNET_OP:
            node["op"] = "Custom"
            node["attrs"] = dict(node.get("attrs") or {}, op_type=OP_TYPE)
    return json.dumps(graph)


def register(mx):
    """Register the custom operator with MXNet (once per process)."""
    if _registered:
        return

    class MultiBoxTargetOp(mx.operator.CustomOp):
        def __init__(self, options):
            super().__init__()
            self.options = options

        def forward(self, is_train, req, in_data, out_data, aux):
            outputs = multibox_targets(in_data[0].asnumpy(), in_data[1].asnumpy(), in_data[2].asnumpy(), **self.options)
            for index, value in enumerate(outputs):
                self.assign(out_data[index], req[index], mx.nd.array(value, ctx=out_data[index].context))

        def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
            for index, grad in enumerate(in_grad):  # as MXNet's operator: no gradient to the class predictions
                self.assign(grad, req[index], mx.nd.zeros(grad.shape, ctx=grad.context))

    @mx.operator.register(OP_TYPE)
    class MultiBoxTargetProp(mx.operator.CustomOpProp):
        def __init__(self, overlap_threshold="0.5", ignore_label="-1", negative_mining_ratio="-1",
                     negative_mining_thresh="0.5", minimum_negative_samples="0", variances="(0.1, 0.1, 0.2, 0.2)"):
            super().__init__(need_top_grad=False)
            self.options = {"overlap_threshold": float(overlap_threshold), "ignore_label": float(ignore_label),
                            "negative_mining_ratio": float(negative_mining_ratio),
                            "negative_mining_thresh": float(negative_mining_thresh),
                            "variances": tuple(float(v) for v in ast.literal_eval(variances))}

        def list_arguments(self):
            return ["anchor", "label", "cls_pred"]

        def list_outputs(self):
            return ["loc_target", "loc_mask", "cls_target"]

        def infer_shape(self, in_shape):
            anchors, labels = in_shape[0], in_shape[1]
            batch, count = labels[0], anchors[1]
            return in_shape, [[batch, count * 4], [batch, count * 4], [batch, count]], []

        def declare_backward_dependency(self, out_grad, in_data, out_data):
            return []

        def create_operator(self, ctx, shapes, dtypes):
            return MultiBoxTargetOp(self.options)

    _registered.append(MultiBoxTargetProp)
