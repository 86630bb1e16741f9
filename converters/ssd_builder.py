"""Build MXNet SSD symbol graphs as JSON without MXNet, in the structure SageMaker's algorithm uses.

`GraphBuilder` is a tiny DSL over roadedge.core.mxnet_symbol; `ssd_training_graph`
puts SageMaker's multibox heads (per feature map: loc/cls 3x3 convolutions,
transpose + Flatten, MultiBoxPrior; Concat/Reshape; MultiBoxTarget,
SoftmaxOutput, smooth_l1, MakeLoss and a MultiBoxDetection under MakeLoss)
on top of any body. Used by the tests (models of known shape) and by the
training recipe.
"""
from roadedge.core.mxnet_symbol import Graph, Node

VARIANCES = "(0.1, 0.1, 0.2, 0.2)"


def _text(value):
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_text(v) for v in value) + ")"
    return str(value)


class GraphBuilder:
    def __init__(self):
        self.nodes = []

    def var(self, name, shape=None):
        """A variable; `shape` is recorded as MXNet's __shape__ for ones it cannot infer (e.g. a broadcast scale)."""
        self.nodes.append(Node("null", name, {"__shape__": _text(shape)} if shape else None))
        return (len(self.nodes) - 1, 0, 0)

    def op(self, op, name, inputs, **attrs):
        """Add a node; `inputs` are entries from var()/op(); returns its first output entry."""
        self.nodes.append(Node(op, name, {k: _text(v) for k, v in attrs.items()}, list(inputs)))
        return (len(self.nodes) - 1, 0, 0)

    def output(self, entry, index):
        return (entry[0], index, 0)

    def conv(self, name, data, num_filter, kernel=(3, 3), stride=(1, 1), pad=(1, 1), dilate=None, num_group=1, no_bias=False):
        inputs = [data, self.var(name + "_weight")] + ([] if no_bias else [self.var(name + "_bias")])
        attrs = {"kernel": kernel, "num_filter": num_filter, "pad": pad, "stride": stride, "no_bias": no_bias}
        if dilate:
            attrs["dilate"] = dilate
        if num_group != 1:
            attrs["num_group"] = num_group
        return self.op("Convolution", name, inputs, **attrs)

    def batchnorm(self, name, data, fix_gamma=False, eps=2e-5):
        params = [self.var(name + suffix) for suffix in ("_gamma", "_beta")]
        stats = [self.var(name + suffix) for suffix in ("_moving_mean", "_moving_var")]
        inputs = [data] + params + [(index, out, 1) for index, out, _ in stats]  # aux states: version 1
        return self.op("BatchNorm", name, inputs, eps=eps, fix_gamma=fix_gamma, momentum=0.9)

    def relu(self, name, data):
        return self.op("Activation", name, [data], act_type="relu")

    def graph(self, heads, source="<built>"):
        return Graph(self.nodes, [h[:2] for h in heads], source, {"mxnet_version": ["int", 10300]})


def multibox_heads(b, features, num_classes, sizes, ratios, steps=None, kernels=None):
    """loc_preds, cls_preds (transposed to [B, C+1, N]) and anchors for a list of feature-map entries.

    `kernels`: the prediction convolutions' kernel side per entry (default 3, as SageMaker's heads)."""
    locs, clss, anchors = [], [], []
    for i, (feature, size, ratio) in enumerate(zip(features, sizes, ratios)):
        name = "feat%d" % i
        per_cell = len(size) + len(ratio) - 1
        k = kernels[i] if kernels else 3
        kernel = {"kernel": (k, k), "pad": (k // 2, k // 2)}
        loc = b.conv(name + "_loc_pred_conv", feature, per_cell * 4, **kernel)
        loc = b.op("transpose", name + "_loc_transpose", [loc], axes=(0, 2, 3, 1))
        locs.append(b.op("Flatten", name + "_loc_flatten", [loc]))
        cls = b.conv(name + "_cls_pred_conv", feature, per_cell * (num_classes + 1), **kernel)
        cls = b.op("transpose", name + "_cls_transpose", [cls], axes=(0, 2, 3, 1))
        clss.append(b.op("Flatten", name + "_cls_flatten", [cls]))
        step = steps[i] if steps else (-1.0, -1.0)
        anchor = b.op("_contrib_MultiBoxPrior", name + "_anchors", [feature], clip=False, sizes=size, ratios=ratio, steps=step)
        anchors.append(b.op("Flatten", name + "_anchors_flatten", [anchor]))
    loc_preds = b.op("Concat", "multibox_loc_pred", locs, dim=1, num_args=len(locs))
    cls_preds = b.op("Concat", "multibox_cls_concat", clss, dim=1, num_args=len(clss))
    cls_preds = b.op("Reshape", "multibox_cls_reshape", [cls_preds], shape=(0, -1, num_classes + 1))
    cls_preds = b.op("transpose", "multibox_cls_pred", [cls_preds], axes=(0, 2, 1))
    anchors = b.op("Concat", "multibox_anchors_concat", anchors, dim=1, num_args=len(anchors))
    anchors = b.op("Reshape", "multibox_anchors", [anchors], shape=(0, -1, 4))
    return loc_preds, cls_preds, anchors


def training_heads(b, loc_preds, cls_preds, anchors, nms=0.45, topk=400):
    """SageMaker's training outputs: [cls_prob, loc_loss, cls_label, det_out]."""
    label = b.var("label")
    target = b.op("_contrib_MultiBoxTarget", "multibox_target", [anchors, label, cls_preds], overlap_threshold=0.5,
                  ignore_label=-1, negative_mining_ratio=3, minimum_negative_samples=0, negative_mining_thresh=0.5,
                  variances=VARIANCES)
    loc_target, loc_mask, cls_target = (b.output(target, i) for i in range(3))
    cls_prob = b.op("SoftmaxOutput", "cls_prob", [cls_preds, cls_target], ignore_label=-1, use_ignore=True,
                    grad_scale=1.0, multi_output=True, normalization="valid")
    diff = b.op("elemwise_sub", "_minus0", [loc_preds, loc_target])
    masked = b.op("elemwise_mul", "_mul0", [loc_mask, diff])
    loc_loss = b.op("MakeLoss", "loc_loss", [b.op("smooth_l1", "loc_loss_", [masked], scalar=1.0)],
                    grad_scale=1.0, normalization="valid")
    cls_label = b.op("MakeLoss", "cls_label", [cls_target], grad_scale=0)
    detection = b.op("_contrib_MultiBoxDetection", "detection", [cls_prob, loc_preds, anchors], nms_threshold=nms,
                     force_suppress=False, variances=VARIANCES, nms_topk=topk)
    det_out = b.op("MakeLoss", "det_out", [detection], grad_scale=0)
    return [cls_prob, loc_loss, cls_label, det_out]


def ssd_training_graph(b, features, num_classes, sizes, ratios, steps=None, source="<built>", kernels=None):
    loc_preds, cls_preds, anchors = multibox_heads(b, features, num_classes, sizes, ratios, steps, kernels)
    return b.graph(training_heads(b, loc_preds, cls_preds, anchors), source)
