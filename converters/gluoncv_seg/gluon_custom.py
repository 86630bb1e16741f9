"""Runs inside the MXNet environment: a GluonCV segmentation network on a backbone GluonCV does not name.

A demo model saved in the structure of SageMaker's networks (same parameter
names, its own widths and block counts) is rebuilt from GluonCV's own parts:
ResNetV1b's BasicBlockV1b / BottleneckV1b with GluonCV's dilation strategy,
_PyramidPooling (its branches of any width), _ASPPConv and _AsppPooling, and
the classifier of _FCNHead, with the widths read off the parameter shapes. It is the reference the native
engine is checked against for such models, and what the mxnet engine exports.
"""
import re

from gluoncv.model_zoo.deeplabv3 import _ASPPConv, _AsppPooling
from gluoncv.model_zoo.pspnet import _PyramidPooling
from gluoncv.model_zoo.resnetv1b import BasicBlockV1b, BottleneckV1b
from mxnet.gluon import nn
from mxnet.gluon.contrib.nn import HybridConcurrent

STRIDES, DILATIONS = (1, 2, 1, 1), (1, 1, 2, 4)  # GluonCV's dilated=True (output stride 8)
RATES = (12, 24, 36)


def _conv(channels, kernel, stride=1, pad=0, dilation=1, bias=False):
    return nn.Conv2D(channels, kernel, strides=stride, padding=pad, dilation=dilation, use_bias=bias)


def _conv_bn_relu(channels, kernel, pad=0, dilation=1):
    block = nn.HybridSequential()
    block.add(_conv(channels, kernel, pad=pad, dilation=dilation), nn.BatchNorm(), nn.Activation("relu"))
    return block


class _Classifier(nn.HybridBlock):  # head.block: 3x3 conv, BN, ReLU, Dropout, 1x1 conv with bias
    def __init__(self, width, num_classes):
        super(_Classifier, self).__init__()
        self.block = nn.HybridSequential()
        self.block.add(_conv(width, 3, pad=1), nn.BatchNorm(), nn.Activation("relu"), nn.Dropout(0.1),
                       _conv(num_classes, 1, bias=True))

    def hybrid_forward(self, F, x):
        return self.block(self.features(x))

    def features(self, x):
        return x


class _Pyramid(nn.HybridBlock):  # _PyramidPooling with branches of any width
    def __init__(self, branch_width, height, width_px):
        super(_Pyramid, self).__init__()
        self._size = {"height": height, "width": width_px}
        for index in range(1, 5):
            setattr(self, "conv%d" % index, _conv_bn_relu(branch_width, 1))

    def hybrid_forward(self, F, x):
        branches = [x]
        for index, bins in enumerate((1, 2, 3, 6), start=1):
            pooled = F.contrib.AdaptiveAvgPooling2D(x, output_size=bins)
            branches.append(F.contrib.BilinearResize2D(getattr(self, "conv%d" % index)(pooled), **self._size))
        return F.concat(*branches, dim=1)


class _PSPHead(_Classifier):
    def __init__(self, width, num_classes, in_channels, branch_width, height, width_px):
        super(_PSPHead, self).__init__(width, num_classes)
        if branch_width * 4 == in_channels:  # GluonCV's own
            self.psp = _PyramidPooling(in_channels, height=height, width=width_px, norm_layer=nn.BatchNorm,
                                       norm_kwargs=None)
        else:
            self.psp = _Pyramid(branch_width, height, width_px)

    def features(self, x):
        return self.psp(x)


class _ASPP(nn.HybridBlock):
    def __init__(self, width, height, width_px):
        super(_ASPP, self).__init__()
        self.concurent = HybridConcurrent(axis=1)
        self.concurent.add(_conv_bn_relu(width, 1))
        for rate in RATES:
            self.concurent.add(_ASPPConv(0, width, rate, nn.BatchNorm, None))
        self.concurent.add(_AsppPooling(0, width, nn.BatchNorm, None, height=height, width=width_px))
        self.project = nn.HybridSequential()
        self.project.add(_conv(width, 1), nn.BatchNorm(), nn.Activation("relu"), nn.Dropout(0.5))

    def hybrid_forward(self, F, x):
        return self.project(self.concurent(x))


class _DeepLabHead(_Classifier):
    def __init__(self, width, num_classes, aspp_width, height, width_px):
        super(_DeepLabHead, self).__init__(width, num_classes)
        self.aspp = _ASPP(aspp_width, height, width_px)

    def features(self, x):
        return self.aspp(x)


class CustomSegNet(nn.HybridBlock):
    """conv1, bn1, maxpool, layer1-4 (dilated), head, bilinear resize to height x width: SegBaseModel's forward."""

    def __init__(self, algorithm, shapes, height, width):
        super(CustomSegNet, self).__init__()
        self._size = {"height": height, "width": width}
        if "conv1.0.weight" in shapes:
            self.conv1 = nn.HybridSequential()
            self.conv1.add(_conv(shapes["conv1.0.weight"][0], 3, 2, 1), nn.BatchNorm(), nn.Activation("relu"),
                           _conv(shapes["conv1.3.weight"][0], 3, 1, 1), nn.BatchNorm(), nn.Activation("relu"),
                           _conv(shapes["conv1.6.weight"][0], 3, 1, 1))
        else:
            out, _, kernel, _ = shapes["conv1.weight"]
            self.conv1 = _conv(out, kernel, 2, kernel // 2)
        self.bn1 = nn.BatchNorm()
        self.relu = nn.Activation("relu")
        self.maxpool = nn.MaxPool2D(pool_size=3, strides=2, padding=1)
        bottleneck = "layer1.0.conv3.weight" in shapes
        for layer in range(1, 5):
            count = len({m.group(1) for m in (re.match(r"layer%d\.(\d+)\." % layer, n) for n in shapes) if m})
            setattr(self, "layer%d" % layer, self._layer(shapes, layer, count, bottleneck))
        c4 = shapes["layer4.0.conv3.weight" if bottleneck else "layer4.0.conv2.weight"][0]
        width_cls, classes = shapes["head.block.0.weight"][0], shapes["head.block.4.weight"][0]
        if algorithm == "psp":
            self.head = _PSPHead(width_cls, classes, c4, shapes["head.psp.conv1.0.weight"][0], height // 8, width // 8)
        elif algorithm == "deeplab":
            self.head = _DeepLabHead(width_cls, classes, shapes["head.aspp.project.0.weight"][0], height // 8, width // 8)
        else:
            self.head = _Classifier(width_cls, classes)

    @staticmethod
    def _layer(shapes, layer, count, bottleneck):
        stride, dilation = STRIDES[layer - 1], DILATIONS[layer - 1]
        layers = nn.HybridSequential()
        for index in range(count):
            prefix = "layer%d.%d." % (layer, index)
            planes = shapes[prefix + "conv1.weight"][0]
            downsample = None
            if prefix + "downsample.0.weight" in shapes:
                downsample = nn.HybridSequential()
                downsample.add(_conv(shapes[prefix + "downsample.0.weight"][0], 1, stride), nn.BatchNorm())
            block_type = BottleneckV1b if bottleneck else BasicBlockV1b
            first = 1 if dilation in (1, 2) else 2
            layers.add(block_type(planes, stride if index == 0 else 1, dilation=first if index == 0 else dilation,
                                  downsample=downsample, previous_dilation=dilation, norm_layer=nn.BatchNorm))
        return layers

    def hybrid_forward(self, F, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return (F.contrib.BilinearResize2D(self.head(x), **self._size),)
