"""GluonCV's segmentation heads on layer4's features: FCN, PSPNet's pyramid pooling, DeepLabV3's ASPP.

All end in the same classifier (`head.block`: 3x3 conv, BatchNorm, ReLU,
Dropout (inference: nothing), 1x1 conv with bias to the classes).
- fcn: the classifier on the features (its 3x3 conv narrows C to C / 4).
- psp: the features concatenated with four branches `head.psp.convK` (1x1
  conv, BatchNorm, ReLU) on adaptive average pools to 1, 2, 3 and 6 bins,
  each resized back to the feature map's size (bilinear, align_corners).
- deeplab: `head.aspp.concurent` 0: 1x1 conv; 1-3: 3x3 convs dilated by 12,
  24, 36 (pad = dilation); 4: global average pool, 1x1 conv, resized (from
  one pixel: a copy) to the feature map; each with BatchNorm and ReLU;
  concatenated, projected by `head.aspp.project` (1x1 conv, BatchNorm, ReLU,
  Dropout), then the classifier.
Widths come from the weight shapes; the pool sizes and atrous rates are
GluonCV's constants.
"""
import openvino.opset13 as ops

from converters.gluoncv_seg.layers import spatial_of
from converters.openvino_native.resize import adaptive_avg_pool, bilinear_resize
from roadedge.core.errors import RoadedgeError

PSP_BINS = (1, 2, 3, 6)
ASPP_RATES = (12, 24, 36)


def classifier(layers, x, num_classes=None):
    x = layers.conv_bn_relu(x, "head.block.0", "head.block.1", kernel=(3, 3))
    logits = layers.conv(x, "head.block.4", kernel=(1, 1), bias=True)
    if num_classes is not None and layers.shape_of("head.block.4.weight")[0] != num_classes:
        raise RoadedgeError("{}: parameter head.block.4.weight has {} output channels, but num_classes is {}".format(
            layers.source, layers.shape_of("head.block.4.weight")[0], num_classes))
    return logits


def fcn(layers, c4):
    return c4


def psp(layers, c4):
    size = spatial_of(c4)
    branches = [c4]
    for index, bins in enumerate(PSP_BINS, start=1):
        prefix = "head.psp.conv{}.".format(index)
        pooled = adaptive_avg_pool(c4, bins)
        branch = layers.conv_bn_relu(pooled, prefix + "0", prefix + "1", kernel=(1, 1))
        branches.append(bilinear_resize(branch, *size).output(0))
    return ops.concat(branches, 1).output(0)


def deeplab(layers, c4):
    size = spatial_of(c4)
    prefix = "head.aspp.concurent."
    branches = [layers.conv_bn_relu(c4, prefix + "0.0", prefix + "0.1", kernel=(1, 1))]
    for index, rate in enumerate(ASPP_RATES, start=1):
        branches.append(layers.conv_bn_relu(c4, "{}{}.0".format(prefix, index), "{}{}.1".format(prefix, index),
                                            dilation=rate, kernel=(3, 3)))
    pooled = adaptive_avg_pool(c4, 1)
    pooled = layers.conv_bn_relu(pooled, prefix + "4.gap.1", prefix + "4.gap.2", kernel=(1, 1))
    branches.append(bilinear_resize(pooled, *size).output(0))
    x = ops.concat(branches, 1).output(0)
    return layers.conv_bn_relu(x, "head.aspp.project.0", "head.aspp.project.1", kernel=(1, 1))


HEADS = {"fcn": fcn, "psp": psp, "deeplab": deeplab}
