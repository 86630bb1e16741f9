"""The parameters of a Gluon network and the layers GluonCV's segmentation networks are made of, as OpenVINO ops.

`Layers` hands out parameters by structural name (`layer1.0.conv1.weight`),
checks each against the shape the tensor it meets implies, remembers which
were used, and builds Conv2D (no bias unless the network has one), BatchNorm
(Gluon's: learned gamma and beta, running statistics, eps 1e-5), ReLU and
pooling. Every problem is one RoadedgeError naming the parameters file and
the parameter.
"""
import numpy as np
import openvino as ov
import openvino.opset13 as ops

from converters.openvino_native.core import const, shape_text
from roadedge.core.errors import RoadedgeError, printable

BN_EPS = 1e-5  # gluon.nn.BatchNorm's epsilon, which GluonCV keeps


class Layers:
    def __init__(self, params, source, what="the network"):
        self.params = params  # name -> numpy array (structural names)
        self.source = source  # the parameters file, named in errors
        self.what = what  # e.g. "a GluonCV psp on resnet-50", for the errors
        self.used = set()

    # ---- parameters -------------------------------------------------------------------------------------------
    def has(self, name):
        return name in self.params

    def shape_of(self, name):
        """The stored shape of a parameter that must exist."""
        return tuple(self.get(name).shape)

    def get(self, name, shape=None, needed_by=None):
        """float32 value of parameter `name`, checked against `shape` (None: any)."""
        if name not in self.params:
            raise RoadedgeError("{}: parameter {} missing; {} needs it{}".format(
                self.source, printable(name), self.what, " ({})".format(needed_by) if needed_by else ""))
        value = np.asarray(self.params[name])
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise RoadedgeError("{}: parameter {} has shape {}, but {} needs {}{}".format(
                self.source, printable(name), shape_text(value.shape), self.what, shape_text(shape),
                " ({})".format(needed_by) if needed_by else ""))
        if value.dtype.kind != "f":
            raise RoadedgeError("{}: parameter {} is {}; expected floating-point weights".format(
                self.source, printable(name), value.dtype))
        self.used.add(name)
        return np.ascontiguousarray(value, dtype=np.float32)

    def check_all_used(self, ignored_prefixes=("auxlayer.",)):
        """Parameters the network did not use (other than training-only ones) mean another network's file."""
        extra = sorted(name for name in self.params if name not in self.used and not name.startswith(ignored_prefixes))
        if extra:
            raise RoadedgeError("{}: {} parameter(s) {} does not have, e.g. {}; is the file another network's (check "
                                "algorithm and backbone in hyperparams.json)?".format(
                                    self.source, len(extra), self.what, ", ".join(printable(n) for n in extra[:3])))

    # ---- layers -----------------------------------------------------------------------------------------------
    def conv(self, x, name, stride=1, pad=None, dilation=1, kernel=None, bias=False):
        """Gluon Conv2D `name` (weight `name.weight`, bias `name.bias`) on NCHW `x`; pad defaults to dilation * (k // 2)."""
        channels = channels_of(x)
        weight = self.get(name + ".weight")
        if weight.ndim != 4 or weight.shape[1] != channels or (kernel and weight.shape[2:] != tuple(kernel)):
            expected = "(out, {}, {}, {})".format(channels, *(kernel or ("kh", "kw")))
            raise RoadedgeError("{}: parameter {} has shape {}, but {} needs {} (the layer before it gives {} "
                                "channels)".format(self.source, printable(name + ".weight"), shape_text(weight.shape),
                                                   self.what, expected, channels))
        kh, kw = weight.shape[2:]
        if pad is None:
            pad = (dilation * (kh // 2), dilation * (kw // 2))
        pad = list(pad) if isinstance(pad, (tuple, list)) else [pad, pad]
        out = ops.convolution(x, const(weight), [stride, stride], pad, pad, [dilation, dilation])
        if bias:
            out = ops.add(out, const(self.get(name + ".bias", (weight.shape[0],)).reshape(1, -1, 1, 1)))
        return out.output(0)

    def batch_norm(self, x, name):
        """Gluon BatchNorm `name` at inference: (x - running_mean) / sqrt(running_var + eps) * gamma + beta."""
        channels = (channels_of(x),)
        gamma, beta = self.get(name + ".gamma", channels), self.get(name + ".beta", channels)
        mean, var = self.get(name + ".running_mean", channels), self.get(name + ".running_var", channels)
        scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + BN_EPS)
        shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
        return ops.add(ops.multiply(x, const(scale.reshape(1, -1, 1, 1))), const(shift.reshape(1, -1, 1, 1))).output(0)

    def conv_bn_relu(self, x, conv_name, bn_name, **conv_options):
        return relu(self.batch_norm(self.conv(x, conv_name, **conv_options), bn_name))


def relu(x):
    return ops.relu(x).output(0)


def max_pool(x, kernel=3, stride=2, pad=1):
    """Gluon MaxPool2D (floor rounding, as ceil_mode=False)."""
    return ops.max_pool(x, [stride, stride], [1, 1], [pad, pad], [pad, pad], [kernel, kernel], "floor").output(0)


def output_of(x):
    """An ov.Output for a node or an output."""
    return x.output(0) if isinstance(x, ov.Node) else x


def channels_of(x):
    return int(output_of(x).get_partial_shape()[1].get_length())


def spatial_of(x):
    shape = output_of(x).get_partial_shape()
    return int(shape[2].get_length()), int(shape[3].get_length())
