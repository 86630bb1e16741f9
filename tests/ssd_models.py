"""SSD test models of known structure, built without MXNet, with seeded random weights.

Recipes: `tiny` (three plain convolutions, two feature maps), `resnet`
(SageMaker's input block data -> _copy -> bn_data with fix_gamma, a 7x7 stem,
max pooling and pre-activation residual units), `vgg` (MXNet example/ssd style:
pooling_convention 'full' and an L2Normalization with a learned scale), and
`sagemaker` (the real training symbol in tests/fixtures). Random weights are
drawn so that the network stays in range and the detections have a spread of
scores: He-scaled convolutions, unit-ish BatchNorm statistics (image statistics
for bn_data, which sees raw 0-255 pixels), prediction heads scaled down and a
background bias.
"""
import os

import numpy as np

from converters.ssd_builder import GraphBuilder, ssd_training_graph
from roadedge.core.mxnet_symbol import load_symbol

SAGEMAKER_SYMBOL = os.path.join(os.path.dirname(__file__), "fixtures", "sagemaker-ssd-resnet50-training-symbol.json")


def tiny(num_classes=2):
    b = GraphBuilder()
    x = b.relu("relu0", b.conv("conv0", b.var("data"), 16, stride=(2, 2)))
    f1 = b.relu("relu1", b.conv("conv1", x, 24, stride=(2, 2)))
    f2 = b.relu("relu2", b.conv("conv2", f1, 32, stride=(2, 2)))
    return ssd_training_graph(b, [f1, f2], num_classes, [(0.2, 0.3), (0.5, 0.7)], [(1, 2, 0.5), (1, 2, 0.5, 3)], source="tiny")


def resnet(num_classes=3):
    b = GraphBuilder()
    data = b.op("_copy", "id", [b.var("data")])
    x = b.batchnorm("bn_data", data, fix_gamma=True)
    x = b.conv("conv0", x, 16, kernel=(7, 7), stride=(2, 2), pad=(3, 3), no_bias=True)
    x = b.relu("relu0", b.batchnorm("bn0", x))
    x = b.op("Pooling", "pooling0", [x], kernel=(3, 3), pad=(1, 1), pool_type="max", stride=(2, 2))
    features = []
    for unit, (filters, stride) in enumerate([(16, 1), (32, 2), (48, 2)]):
        name = "stage%d_unit1" % (unit + 1)
        act = b.relu(name + "_relu1", b.batchnorm(name + "_bn1", x))
        y = b.conv(name + "_conv1", act, filters, stride=(stride, stride), no_bias=True)
        y = b.relu(name + "_relu2", b.batchnorm(name + "_bn2", y))
        y = b.conv(name + "_conv2", y, filters, no_bias=True)
        shortcut = x if stride == 1 and unit == 0 and filters == 16 else b.conv(
            name + "_sc", act, filters, kernel=(1, 1), stride=(stride, stride), pad=(0, 0), no_bias=True)
        x = b.op("elemwise_add", "_plus%d" % unit, [y, shortcut])
        if unit:
            features.append(b.relu("feat_relu%d" % unit, b.batchnorm("feat_bn%d" % unit, x)))
    extra = b.relu("multi_feat_2_conv_1x1_relu", b.conv("multi_feat_2_conv_1x1", x, 16, kernel=(1, 1), pad=(0, 0)))
    features.append(b.relu("multi_feat_2_conv_3x3_relu", b.conv("multi_feat_2_conv_3x3", extra, 32, stride=(2, 2))))
    sizes = [(0.1, 0.141), (0.2, 0.272), (0.37, 0.447)]
    ratios = [(1, 2, 0.5), (1, 2, 0.5, 3, 1.0 / 3), (1, 2, 0.5)]
    return ssd_training_graph(b, features, num_classes, sizes, ratios, source="resnet")


def vgg(num_classes=2):
    b = GraphBuilder()
    x = b.relu("relu1_1", b.conv("conv1_1", b.var("data"), 16))
    x = b.op("Pooling", "pool1", [x], kernel=(2, 2), stride=(2, 2), pool_type="max", pooling_convention="full")
    x = b.relu("relu2_1", b.conv("conv2_1", x, 24))
    x = b.op("Pooling", "pool2", [x], kernel=(3, 3), stride=(2, 2), pool_type="max", pooling_convention="full")
    x = b.relu("relu3_1", b.conv("conv3_1", x, 32))
    norm = b.op("L2Normalization", "relu3_1_norm", [x], mode="channel")
    scale = b.var("relu3_1_scale", shape=(1, 32, 1, 1))
    f1 = b.op("broadcast_mul", "relu3_1_scale_mul", [norm, scale])
    x = b.op("Pooling", "pool3", [x], kernel=(2, 2), stride=(2, 2), pool_type="avg")
    f2 = b.relu("fc7_relu", b.conv("fc7", x, 32, dilate=(2, 2), pad=(2, 2)))
    return ssd_training_graph(b, [f1, f2], num_classes, [(0.1, 0.2), (0.35, 0.5)], [(1, 2, 0.5), (1, 2, 0.5, 3)],
                              steps=[(0.0625, 0.0625), (0.125, 0.125)], source="vgg")


def sagemaker():
    return load_symbol(SAGEMAKER_SYMBOL)


def random_params(shapes, seed, head_scale=0.1, background_bias=2.0, input_convs=("conv0", "conv1_1")):
    """Seeded weights for {'arg:x': shape, 'aux:y': shape} (see the module docstring for why these scales).

    Without bn_data the first convolution (`input_convs`) sees raw 0-255 pixels, so its weights are scaled by 1/128.
    """
    rng = np.random.default_rng(seed)
    raw_pixels = "arg:bn_data_gamma" not in shapes
    params = {}
    for name in sorted(shapes):
        shape = shapes[name]
        plain = name.split(":", 1)[1]
        if plain.endswith("_weight"):
            fan_in = int(np.prod(shape[1:]))
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
            if "_pred" in plain:
                value *= head_scale
            if raw_pixels and plain[: -len("_weight")] in input_convs:
                value /= 128.0
        elif plain.endswith("_bias"):
            value = rng.normal(0.0, 0.05, size=shape)
            if "cls_pred" in plain:
                per_cell = value.reshape(-1)
                classes = _classes_per_anchor(name, shapes)
                per_cell[::classes] += background_bias
        elif plain.startswith("bn_data"):
            value = {"gamma": np.ones(shape), "beta": np.zeros(shape), "moving_mean": np.full(shape, 110.0),
                     "moving_var": np.full(shape, 60.0 ** 2)}[plain[len("bn_data_"):]]
        elif plain.endswith("_gamma"):
            value = rng.uniform(0.8, 1.2, size=shape)
        elif plain.endswith("_beta"):
            value = rng.normal(0.0, 0.1, size=shape)
        elif plain.endswith("_moving_mean"):
            value = rng.normal(0.0, 0.2, size=shape)
        elif plain.endswith("_moving_var"):
            value = rng.uniform(0.5, 2.0, size=shape)
        elif plain.endswith("_scale"):  # L2Normalization scale, as example/ssd initialises it
            value = np.full(shape, 20.0)
        else:
            raise ValueError("no initialiser for " + name)
        params[name] = value.astype(np.float32)
    return params


def _classes_per_anchor(bias_name, shapes):
    """C+1 for a cls_pred bias: its length divided by the anchors per cell of the matching loc_pred."""
    loc = bias_name.replace("cls_pred", "loc_pred")
    anchors = shapes[loc][0] // 4 if loc in shapes else 1
    return shapes[bias_name][0] // anchors


def write_random_model(folder, recipe, data_shape, seed=1, name="model_algo_1", hyperparams=None):
    """A training prefix on disk (symbol + seeded params, shapes inferred by MXNet); returns the prefix."""
    import json

    from converters.mxnet_forward import mxnet_param_shapes
    from converters.ssd_deploy import to_deploy
    from roadedge.core.mxnet_params import dumps_params

    os.makedirs(folder, exist_ok=True)
    training = globals()[recipe]()
    prefix = os.path.join(folder, name)
    deploy_path = prefix + "-shapes-symbol.json"
    with open(deploy_path, "w", encoding="utf-8") as handle:
        handle.write(to_deploy(training).to_json())
    params = random_params(mxnet_param_shapes(deploy_path, data_shape), seed)
    os.remove(deploy_path)
    with open(prefix + "-symbol.json", "w", encoding="utf-8") as handle:
        handle.write(training.to_json())
    with open(prefix + "-0000.params", "wb") as handle:
        handle.write(dumps_params(params))
    if hyperparams is not None:
        with open(os.path.join(folder, "hyperparams.json"), "w", encoding="utf-8") as handle:
            json.dump(hyperparams, handle)
    return prefix
