"""A GluonCV FCN on a dilated ResNetV1b of any width and depth, described by a small structure dict.

GluonCV's segmentation networks (`gluoncv.model_zoo.FCN` & co.) hard-code the
ResNet widths (64..512 planes, a 2048-channel head input). The demo model needs
the same structure at a fraction of the width, so this module builds it from
GluonCV's own blocks (`BasicBlockV1b` / `BottleneckV1b`, `_FCNHead`) with the
children GluonCV's `SegBaseModel` has: `conv1` (the deep "v1s" stem: 3x3 convs
at stride 2, 1, 1 with BatchNorm + ReLU between), `bn1`, `relu`, `maxpool`,
`layer1`..`layer4` (layer3 dilated 2, layer4 dilated 4: output stride 8, as
GluonCV's `dilated=True`) and `head`. Its `save_parameters` names are therefore
GluonCV's (`conv1.0.weight`, `layer1.0.bn1.running_mean`,
`layer2.0.downsample.0.weight`, `head.block.4.bias`, ...), and the forward pass
ends, like GluonCV's, in `contrib.BilinearResize2D` to the input size (here in
its `like` mode, so one network trains on crops and validates on whole frames;
GluonCV's `predict` does the same by resetting its target size).

The converters rebuild it independently, from the parameter names and shapes
alone (converters.gluoncv_seg), so `roadedge convert verify` compares two
constructions of the network.

    structure = {"stem": [16, 16, 32], "block": "basic", "planes": [32, 64, 96, 128],
                 "layers": [1, 1, 1, 1], "head_channels": 32, "num_classes": 15}
"""
from roadedge.core.errors import RoadedgeError

BLOCKS = ("basic", "bottleneck")


def check_structure(structure):
    """The structure dict, checked: RoadedgeError naming the field otherwise."""
    try:
        stem, planes, layers = list(structure["stem"]), list(structure["planes"]), list(structure["layers"])
        block, head, classes = structure["block"], int(structure["head_channels"]), int(structure["num_classes"])
    except (KeyError, TypeError, ValueError) as err:
        raise RoadedgeError("segmentation network structure: missing or invalid field ({})".format(err)) from None
    if len(stem) != 3 or len(planes) != 4 or len(layers) != 4 or block not in BLOCKS:
        raise RoadedgeError("segmentation network structure: expected stem [3 widths], planes [4], layers [4] and "
                            "block basic|bottleneck, got stem {}, planes {}, layers {}, block {}".format(
                                stem, planes, layers, block))
    if min(stem + planes + layers + [head]) < 1 or classes < 2:
        raise RoadedgeError("segmentation network structure: widths, block counts and head channels must be positive, "
                            "num_classes at least 2")
    return {"stem": [int(v) for v in stem], "block": block, "planes": [int(v) for v in planes],
            "layers": [int(v) for v in layers], "head_channels": head, "num_classes": classes}


def build_fcn(structure):
    """The network as a Gluon HybridBlock (runs where mxnet and gluoncv are installed: the MXNet environment)."""
    from gluoncv.model_zoo.fcn import _FCNHead
    from gluoncv.model_zoo.resnetv1b import BasicBlockV1b, BottleneckV1b
    from mxnet.gluon import nn

    s = check_structure(structure)
    if s["head_channels"] != s["planes"][3] * (4 if s["block"] == "bottleneck" else 1) // 4:
        raise RoadedgeError("segmentation network structure: head_channels {} is not a quarter of layer4's output "
                            "(GluonCV's FCN head)".format(s["head_channels"]))
    block = BasicBlockV1b if s["block"] == "basic" else BottleneckV1b

    class ResNetV1bFCN(nn.HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.conv1 = nn.HybridSequential(prefix="conv1")
                for index, width in enumerate(s["stem"]):
                    self.conv1.add(nn.Conv2D(width, 3, strides=2 if index == 0 else 1, padding=1, use_bias=False))
                    if index < 2:
                        self.conv1.add(nn.BatchNorm(), nn.Activation("relu"))
                self.bn1 = nn.BatchNorm()
                self.relu = nn.Activation("relu")
                self.maxpool = nn.MaxPool2D(pool_size=3, strides=2, padding=1)
                inplanes = s["stem"][2]
                # (stride, dilation) per layer, as GluonCV's ResNetV1b(dilated=True)
                for index, (stride, dilation) in enumerate(((1, 1), (2, 1), (1, 2), (1, 4))):
                    layer, inplanes = _make_layer(nn, block, inplanes, s["planes"][index], s["layers"][index], stride,
                                                  dilation, index + 1)
                    setattr(self, "layer%d" % (index + 1), layer)
                self.head = _FCNHead(inplanes, s["num_classes"])  # conv3x3 to in // 4, BN, ReLU, Dropout, conv1x1

        def hybrid_forward(self, F, x):
            features = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            features = self.layer4(self.layer3(self.layer2(self.layer1(features))))
            return F.contrib.BilinearResize2D(self.head(features), x, mode="like")

    return ResNetV1bFCN()


def _make_layer(nn, block, inplanes, planes, blocks, stride, dilation, index):
    """GluonCV's ResNetV1b._make_layer with settable planes: (the layer, its output channels)."""
    out = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.HybridSequential(prefix="down%d_" % index)
        with downsample.name_scope():
            downsample.add(nn.Conv2D(channels=out, kernel_size=1, strides=stride, use_bias=False))
            downsample.add(nn.BatchNorm(in_channels=out))
    layer = nn.HybridSequential(prefix="layers%d_" % index)
    with layer.name_scope():
        first = 2 if dilation == 4 else 1  # GluonCV: the first block of a dilation-4 layer uses dilation 2
        layer.add(block(planes, stride, dilation=first, downsample=downsample, previous_dilation=dilation,
                        norm_layer=nn.BatchNorm, norm_kwargs={}))
        for _ in range(1, blocks):
            layer.add(block(planes, dilation=dilation, previous_dilation=dilation, norm_layer=nn.BatchNorm,
                            norm_kwargs={}))
    return layer, out
