"""The demo SSD's network, built as SageMaker-structured symbol JSON with converters.ssd_builder (no MXNet needed).

Input block as SageMaker's: data -> _copy -> bn_data (BatchNorm, fix_gamma) on raw
RGB 0-255, so the converters record mean 0 in the IR metadata. Body: a compact
residual network for a 2-core CPU (3x3 stem at stride 2, then stages of basic
blocks conv-BN-ReLU, conv-BN, add, ReLU); feature maps at strides 8, 16 and 32
plus one SSD extra layer (1x1 reduce, 3x3 stride 2) at stride 64.

Anchors follow the synthetic boxes. Damage is small and thin (lateral cracks,
crosswalk and line blur reach width/height 8-16 at a height of a few percent of
the image), so a box only reaches IoU 0.5 with an anchor whose centre sits
within a fraction of its height: most anchor scales live on the stride-8 map.
MultiBoxPrior gives the aspect ratios to its first size only, so each scale is
its own prior head (loc/cls convolutions + MultiBoxPrior, SageMaker's head
structure), several per feature map, sizes a factor ~1.4 apart.

The stride-8 map's four heads (18 anchors a cell: 198 output channels over 32x32
cells) as 3x3 convolutions took a third of a training iteration. With a `neck`,
one shared 3x3 conv-BN-ReLU on that map gives them its spatial context and they
predict with 1x1 convolutions, at about half the cost; the other maps' heads are 3x3.
"""
from converters.ssd_builder import GraphBuilder, ssd_training_graph

RATIOS = (1.0, 2.0, 0.5, 4.0, 8.0)
WIDE_RATIOS = RATIOS + (16.0,)
# prior heads: (feature map index, anchor size as a fraction of the image side, aspect ratios w/h)
# (ratios no box of the training set would be matched to are left out: they only cost time in MultiBoxTarget)
HEADS = (
    (0, 0.04, (1.0, 2.0, 4.0)), (0, 0.06, (1.0, 2.0, 4.0, 8.0)), (0, 0.085, RATIOS), (0, 0.12, WIDE_RATIOS),
    (1, 0.17, WIDE_RATIOS), (1, 0.24, WIDE_RATIOS),
    (2, 0.34, RATIOS), (2, 0.48, (1.0, 2.0, 4.0)),
)
# body variants: stem channels, (channels, blocks, stride) per stage (features come from the last three
# stages), the channels of the extra feature maps (1x1 reduce to half, 3x3 stride 2) and of the stride-8 neck (0: none)
VARIANTS = {
    "tiny": {"stem": 16, "stages": ((16, 1, 2), (32, 1, 2), (48, 2, 2), (64, 2, 2)), "extra": (64,), "neck": 64},
    "tinyplus": {"stem": 16, "stages": ((16, 1, 2), (32, 2, 2), (64, 2, 2), (96, 2, 2)), "extra": (64,)},
    "small": {"stem": 16, "stages": ((24, 1, 2), (48, 1, 2), (64, 2, 2), (128, 1, 2)), "extra": (96,)},
    "base": {"stem": 24, "stages": ((32, 1, 2), (64, 2, 2), (96, 2, 2), (160, 1, 2)), "extra": (128,)},
}


def _conv_bn(b, name, x, filters, kernel=3, stride=1, relu=True):
    pad = kernel // 2
    x = b.conv(name, x, filters, kernel=(kernel, kernel), stride=(stride, stride), pad=(pad, pad), no_bias=True)
    x = b.batchnorm(name + "_bn", x)
    return b.relu(name + "_relu", x) if relu else x


def _block(b, name, x, in_filters, filters, stride):
    y = _conv_bn(b, name + "_conv1", x, filters, stride=stride)
    y = _conv_bn(b, name + "_conv2", y, filters, relu=False)
    shortcut = x
    if stride != 1 or in_filters != filters:
        shortcut = _conv_bn(b, name + "_sc", x, filters, kernel=1, stride=stride, relu=False)
    return b.relu(name + "_relu", b.op("elemwise_add", name + "_add", [y, shortcut]))


def body(b, stem, stages, extra, neck=0):
    """Feature-map entries: strides 8, 16, 32, then one per extra layer."""
    data = b.op("_copy", "id", [b.var("data")])
    x = b.batchnorm("bn_data", data, fix_gamma=True)
    x = _conv_bn(b, "stem", x, stem, stride=2)
    filters, features = stem, []
    for s, (out, blocks, stride) in enumerate(stages):
        for i in range(blocks):
            x = _block(b, "stage%d_unit%d" % (s + 1, i + 1), x, filters, out, stride if i == 0 else 1)
            filters = out
        features.append(x)
    features = features[-3:]
    if neck:
        features[0] = _conv_bn(b, "stride8_neck", features[0], neck)
    for i, out in enumerate(extra):
        y = _conv_bn(b, "multi_feat_%d_conv_1x1" % (i + 2), x, out // 2, kernel=1)
        x = _conv_bn(b, "multi_feat_%d_conv_3x3" % (i + 2), y, out, stride=2)
        features.append(x)
    return features


def head_kernels(variant, heads=HEADS):
    """The prediction convolutions' kernel side per prior head: 1x1 on the stride-8 map after a neck, else 3x3."""
    neck = VARIANTS[variant].get("neck")
    return [1 if neck and index == 0 else 3 for index, _, _ in heads]


def ssd_symbol(num_classes, variant="small", heads=HEADS):
    """The training graph (roadedge.core.mxnet_symbol.Graph) with SageMaker's heads."""
    b = GraphBuilder()
    features = body(b, **VARIANTS[variant])
    return ssd_training_graph(b, [features[index] for index, _, _ in heads], num_classes,
                              [(size,) for _, size, _ in heads], [tuple(ratios) for _, _, ratios in heads],
                              source="roadedge-demo-ssd", kernels=head_kernels(variant, heads))


def anchor_summary(variant, heads=HEADS):
    """What hyperparams.json records about the anchors: sizes, ratios and prediction kernel per prior head."""
    return {"sizes": [size for _, size, _ in heads], "ratios": [list(ratios) for _, _, ratios in heads],
            "feature_maps": [index for index, _, _ in heads],
            "kernels": head_kernels(variant, heads)}
