"""SageMaker semantic-segmentation artefacts with seeded random weights, written with numpy alone (no MXNet).

`write_artefact(path, "psp", "resnet-50", num_classes=21, crop_size=240)`
writes model.tar.gz (or a folder) with hyperparams.json (string values, as
SageMaker writes them) and model_algo-1: the Gluon parameters of GluonCV's
network under their structural names and shapes (`conv1.0.weight`, ...,
`head.block.4.bias`, and the training-only `auxlayer.*`), in the NDArray
.params container. BatchNorm statistics are not trivial: running mean and
variance, gamma and beta are all random. Used by the tests and the benchmarks;
tests/test_seg_convert.py checks the names and shapes against GluonCV's.
"""
import io
import json
import os
import tarfile
from collections import OrderedDict

import numpy as np

from roadedge.core.mxnet_params import dumps_params

# GluonCV's resnet50_v1s / resnet101_v1s (deep stem of width 64, bottlenecks), and a small demo-like backbone of the
# same structure (plain stem, basic blocks, narrow widths) that GluonCV itself does not offer
BACKBONES = {
    "resnet-50": dict(block="bottleneck", blocks=(3, 4, 6, 3), stem="deep", stem_width=64, planes=(64, 128, 256, 512)),
    "resnet-101": dict(block="bottleneck", blocks=(3, 4, 23, 3), stem="deep", stem_width=64, planes=(64, 128, 256, 512)),
    "resnet-tiny": dict(block="basic", blocks=(1, 2, 1, 1), stem="plain", stem_width=16, planes=(16, 24, 32, 48),
                        head_width=32, psp_branch_width=16),
}


def _bn(shapes, name, channels):
    for suffix in ("gamma", "beta", "running_mean", "running_var"):
        shapes["{}.{}".format(name, suffix)] = (channels,)


def _conv(shapes, name, out, inp, kernel, bias=False):
    shapes[name + ".weight"] = (out, inp, kernel, kernel)
    if bias:
        shapes[name + ".bias"] = (out,)


def backbone_shapes(spec):
    """(OrderedDict name -> shape, layer3 channels, layer4 channels) of a ResNetV1b backbone spec."""
    shapes = OrderedDict()
    if spec["stem"] == "deep":
        width = spec["stem_width"]
        _conv(shapes, "conv1.0", width, 3, 3)
        _bn(shapes, "conv1.1", width)
        _conv(shapes, "conv1.3", width, width, 3)
        _bn(shapes, "conv1.4", width)
        _conv(shapes, "conv1.6", width * 2, width, 3)
        inplanes = width * 2
    else:
        inplanes = spec["stem_width"]
        _conv(shapes, "conv1", inplanes, 3, 7)
    _bn(shapes, "bn1", inplanes)
    expansion = 4 if spec["block"] == "bottleneck" else 1
    outputs = []
    for layer, (count, planes) in enumerate(zip(spec["blocks"], spec["planes"]), start=1):
        for index in range(count):
            prefix = "layer{}.{}.".format(layer, index)
            if spec["block"] == "bottleneck":
                _conv(shapes, prefix + "conv1", planes, inplanes, 1)
                _bn(shapes, prefix + "bn1", planes)
                _conv(shapes, prefix + "conv2", planes, planes, 3)
                _bn(shapes, prefix + "bn2", planes)
                _conv(shapes, prefix + "conv3", planes * 4, planes, 1)
                _bn(shapes, prefix + "bn3", planes * 4)
            else:
                _conv(shapes, prefix + "conv1", planes, inplanes, 3)
                _bn(shapes, prefix + "bn1", planes)
                _conv(shapes, prefix + "conv2", planes, planes, 3)
                _bn(shapes, prefix + "bn2", planes)
            if index == 0 and (layer == 2 or inplanes != planes * expansion):  # layer2 strides: always projected
                _conv(shapes, prefix + "downsample.0", planes * expansion, inplanes, 1)
                _bn(shapes, prefix + "downsample.1", planes * expansion)
            inplanes = planes * expansion
        outputs.append(inplanes)
    return shapes, outputs[2], outputs[3]


def param_shapes(algorithm, backbone="resnet-50", num_classes=21, aux=True):
    """OrderedDict structural name -> shape of GluonCV's `algorithm` network on `backbone` (aux: with auxlayer.*)."""
    spec = BACKBONES[backbone]
    shapes, c3, c4 = backbone_shapes(spec)
    if algorithm == "fcn":
        width, classifier_in = c4 // 4, c4
    elif algorithm == "psp":
        branch_width = spec.get("psp_branch_width", c4 // 4)
        width, classifier_in = spec.get("head_width", 512), c4 + 4 * branch_width
        for branch in range(1, 5):
            _conv(shapes, "head.psp.conv{}.0".format(branch), branch_width, c4, 1)
            _bn(shapes, "head.psp.conv{}.1".format(branch), branch_width)
    elif algorithm == "deeplab":
        width = spec.get("head_width", 256)
        classifier_in = width
        prefix = "head.aspp.concurent."
        _conv(shapes, prefix + "0.0", width, c4, 1)
        _bn(shapes, prefix + "0.1", width)
        for branch in (1, 2, 3):
            _conv(shapes, "{}{}.0".format(prefix, branch), width, c4, 3)
            _bn(shapes, "{}{}.1".format(prefix, branch), width)
        _conv(shapes, prefix + "4.gap.1", width, c4, 1)
        _bn(shapes, prefix + "4.gap.2", width)
        _conv(shapes, "head.aspp.project.0", width, width * 5, 1)
        _bn(shapes, "head.aspp.project.1", width)
    else:
        raise ValueError(algorithm)
    _conv(shapes, "head.block.0", width, classifier_in, 3)
    _bn(shapes, "head.block.1", width)
    _conv(shapes, "head.block.4", num_classes, width, 1, bias=True)
    if aux:
        _conv(shapes, "auxlayer.block.0", c3 // 4, c3, 3)
        _bn(shapes, "auxlayer.block.1", c3 // 4)
        _conv(shapes, "auxlayer.block.4", num_classes, c3 // 4, 1, bias=True)
    return shapes


def random_params(shapes, seed=0):
    """Seeded weights: He-scaled convolutions, random biases and BatchNorm gamma, beta, running mean and variance."""
    rng = np.random.default_rng(seed)
    f32 = np.float32

    def uniform(low, high, shape):
        return f32(low) + f32(high - low) * rng.random(shape, dtype=f32)

    params = OrderedDict()
    for name, shape in shapes.items():
        kind = name.rsplit(".", 1)[1]
        if kind == "weight":
            fan_in = int(np.prod(shape[1:]))
            value = rng.standard_normal(shape, dtype=f32) * f32(np.sqrt(2.0 / fan_in))
        elif kind == "gamma":
            value = uniform(0.4, 1.2, shape)
        elif kind == "running_var":
            value = uniform(0.5, 2.0, shape)
        elif kind in ("beta", "running_mean"):
            value = rng.standard_normal(shape, dtype=f32) * f32(0.2)
        else:  # bias
            value = rng.standard_normal(shape, dtype=f32) * f32(0.1)
        params[name] = value
    return params


def hyperparams(algorithm, backbone, num_classes, crop_size, **extra):
    values = {"algorithm": algorithm, "backbone": backbone, "num_classes": str(num_classes), "crop_size": str(crop_size),
              "use_pretrained_model": "True", "epochs": "10", "learning_rate": "0.001", "mini_batch_size": "16"}
    values.update({key: str(value) for key, value in extra.items()})
    return values


def write_artefact(path, algorithm="psp", backbone="resnet-50", num_classes=21, crop_size=240, seed=0, folder=False,
                   params=None, hyper=None):
    """Write model.tar.gz at `path` (or, folder=True, the two files into folder `path`); returns `path`.

    `params` / `hyper` replace the generated parameters / hyperparameters (bad-input tests)."""
    if params is None:
        params = random_params(param_shapes(algorithm, backbone, num_classes), seed)
    files = {"hyperparams.json": json.dumps(hyper if hyper is not None else hyperparams(
        algorithm, backbone, num_classes, crop_size)).encode("utf-8"), "model_algo-1": dumps_params(params)}
    if folder:
        os.makedirs(path, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(path, name), "wb") as handle:
                handle.write(data)
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:  # random weights do not compress: be quick
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path
