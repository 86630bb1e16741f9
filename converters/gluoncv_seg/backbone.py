"""GluonCV's dilated ResNetV1b family (resnet50_v1s, resnet101_v1s, ...), read off the parameter names and shapes.

What the names say: the stem is deep (`conv1.0`, `conv1.3`, `conv1.6` 3x3
convolutions with BatchNorms `conv1.1`, `conv1.4`, then `bn1`: the v1s stem)
or plain (one `conv1.weight`, stride 2); blocks are bottlenecks when they have
a `conv3`, else basic blocks; `layerN.K` counts the blocks of each of the four
layers; a block has a projection shortcut when it has `downsample.0`. Channel
widths come from the weight shapes. What the names cannot say is GluonCV's
dilation strategy (dilated=True, output stride 8): layer strides 1, 2, 1, 1
and dilations 1, 1, 2, 4; a layer's first block uses dilation 1 (layers of
dilation 1 and 2) or 2 (dilation 4) where its later blocks use the layer's;
the bottleneck strides and dilates its 3x3 `conv2`, the basic block its
`conv1` (its `conv2` always uses the layer's dilation); the stem's max pool
is 3x3, stride 2, pad 1.
"""
import re

import openvino.opset13 as ops

from converters.gluoncv_seg.layers import channels_of, max_pool, relu
from roadedge.core.errors import RoadedgeError

LAYER_STRIDES = (1, 2, 1, 1)
LAYER_DILATIONS = (1, 1, 2, 4)


def describe(params, source):
    """{'stem': 'deep'|'plain', 'block': 'bottleneck'|'basic', 'blocks': [n1, n2, n3, n4]} from the names."""
    names = set(params)
    if "conv1.0.weight" in names:
        stem = "deep"
    elif "conv1.weight" in names:
        stem = "plain"
    else:
        raise RoadedgeError("{}: parameter conv1.0.weight (deep stem, resnet50_v1s) or conv1.weight (plain stem) "
                            "missing; expected a GluonCV ResNetV1b backbone's parameters".format(source))
    blocks = []
    for layer in range(1, 5):
        found = {int(m.group(1)) for m in (re.match(r"layer{}\.(\d+)\.".format(layer), n) for n in names) if m}
        if not found:
            raise RoadedgeError("{}: no layer{}.* parameters; expected the four layers of a ResNetV1b backbone".format(
                source, layer))
        if found != set(range(len(found))):
            missing = min(set(range(max(found) + 1)) - found)
            raise RoadedgeError("{}: parameters of block layer{}.{} missing (blocks {} found)".format(
                source, layer, missing, ", ".join(str(i) for i in sorted(found))))
        blocks.append(len(found))
    if any(re.match(r"layer[5-9]\.", n) for n in names):
        raise RoadedgeError("{}: parameters of a fifth layer (layer5.*); expected the four layers of a ResNetV1b "
                            "backbone".format(source))
    block = "bottleneck" if "layer1.0.conv3.weight" in names else "basic"
    return {"stem": stem, "block": block, "blocks": blocks}


def stem(layers, x, kind):
    if kind == "deep":
        x = layers.conv_bn_relu(x, "conv1.0", "conv1.1", stride=2, kernel=(3, 3))
        x = layers.conv_bn_relu(x, "conv1.3", "conv1.4", kernel=(3, 3))
        x = layers.conv(x, "conv1.6", kernel=(3, 3))
    else:
        x = layers.conv(x, "conv1", stride=2)
    x = relu(layers.batch_norm(x, "bn1"))
    return max_pool(x)


def bottleneck(layers, x, prefix, stride, dilation):
    out = layers.conv_bn_relu(x, prefix + "conv1", prefix + "bn1", kernel=(1, 1))
    out = layers.conv_bn_relu(out, prefix + "conv2", prefix + "bn2", stride=stride, dilation=dilation, kernel=(3, 3))
    out = layers.batch_norm(layers.conv(out, prefix + "conv3", kernel=(1, 1)), prefix + "bn3")
    return _residual(layers, x, out, prefix, stride)


def basic(layers, x, prefix, stride, dilation, previous_dilation):
    out = layers.conv_bn_relu(x, prefix + "conv1", prefix + "bn1", stride=stride, dilation=dilation, kernel=(3, 3))
    out = layers.batch_norm(layers.conv(out, prefix + "conv2", dilation=previous_dilation, kernel=(3, 3)), prefix + "bn2")
    return _residual(layers, x, out, prefix, stride)


def _residual(layers, x, out, prefix, stride):
    if layers.has(prefix + "downsample.0.weight"):
        x = layers.batch_norm(layers.conv(x, prefix + "downsample.0", stride=stride, kernel=(1, 1)),
                              prefix + "downsample.1")
    elif stride != 1 or channels_of(x) != channels_of(out):
        raise RoadedgeError("{}: parameter {}downsample.0.weight missing; {} needs a projection shortcut there "
                            "({} channels in, {} out, stride {})".format(
                                layers.source, prefix, layers.what, channels_of(x), channels_of(out), stride))
    return relu(ops.add(out, x))


def backbone(layers, x, structure):
    """data -> (c3, c4): layer3's and layer4's outputs (output stride 8)."""
    x = stem(layers, x, structure["stem"])
    outputs = []
    for index, count in enumerate(structure["blocks"]):
        stride, dilation = LAYER_STRIDES[index], LAYER_DILATIONS[index]
        for block in range(count):
            prefix = "layer{}.{}.".format(index + 1, block)
            first = 1 if dilation in (1, 2) else 2
            block_dilation = first if block == 0 else dilation
            block_stride = stride if block == 0 else 1
            if structure["block"] == "bottleneck":
                x = bottleneck(layers, x, prefix, block_stride, block_dilation)
            else:
                x = basic(layers, x, prefix, block_stride, block_dilation, dilation)
        outputs.append(x)
    return outputs[2], outputs[3]
