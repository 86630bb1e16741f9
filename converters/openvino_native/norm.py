"""BatchNorm, L2Normalization, activations and the softmax family."""
import numpy as np
import openvino.opset13 as ops

from converters.openvino_native.core import const, converts, ints


def batch_norm_affine(data, gamma, beta, mean, var, eps, axis=1, rank=4):
    """Inference BatchNorm as one multiply and one add (computed in float64): (x - mean) / sqrt(var + eps) * gamma + beta."""
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
    broadcast = [1] * rank
    broadcast[axis] = len(scale)
    return ops.add(ops.multiply(data, const(scale.reshape(broadcast))), const(shift.reshape(broadcast)))


@converts("BatchNorm")
def batch_norm(ctx, node):
    """Inference form: (x - moving_mean) / sqrt(moving_var + eps) * gamma + beta, gamma = 1 under fix_gamma (the default)."""
    data = ctx.data(node, 0)
    shape = ctx.shape(data)
    axis = ctx.attr(node, "axis", 1, "int")
    axis = axis + len(shape) if axis < 0 else axis
    if not 0 <= axis < len(shape):
        raise ctx.fail(node, "axis {} is out of range for a {}-d input".format(axis, len(shape)))
    channels = (shape[axis],)
    eps = ctx.attr(node, "eps", 1e-3, "float")
    fix_gamma = ctx.attr(node, "fix_gamma", True, "bool")
    gamma = np.ones(channels, np.float32) if fix_gamma else ctx.weight(node, 1, channels)
    beta = ctx.weight(node, 2, channels)
    mean = ctx.weight(node, 3, channels)
    var = ctx.weight(node, 4, channels)
    out = batch_norm_affine(data, gamma, beta, mean, var, eps, axis, len(shape))
    return [out, const(mean), const(var)]  # outputs 1 and 2 (mean, var) are hidden in MXNet; given for completeness


@converts("L2Normalization")
def l2_normalization(ctx, node):
    """x / sqrt(sum(x^2) + eps) over: all but the batch axis (instance, the default), axis 1 (channel), axes 2.. (spatial)."""
    data = ctx.data(node, 0)
    rank = len(ctx.shape(data))
    mode = ctx.attr(node, "mode", "instance")
    axes = {"instance": list(range(1, rank)), "channel": [1], "spatial": list(range(2, rank))}.get(mode)
    if axes is None:
        raise ctx.fail(node, "mode {!r} is not one of instance, channel, spatial".format(mode))
    eps = ctx.attr(node, "eps", 1e-10, "float")
    return [ops.normalize_l2(data, ints(axes), eps, "add")]


@converts("Activation")
def activation(ctx, node):
    data = ctx.data(node, 0)
    kind = ctx.attr(node, "act_type", None)
    if kind == "relu":
        return [ops.relu(data)]
    if kind == "sigmoid":
        return [ops.sigmoid(data)]
    if kind == "tanh":
        return [ops.tanh(data)]
    if kind == "softrelu":
        return [ops.softplus(data)]
    if kind == "softsign":
        return [ops.softsign(data)]
    raise ctx.fail(node, "act_type {!r} is not supported (relu, sigmoid, tanh, softrelu, softsign)".format(kind))


@converts("LeakyReLU")
def leaky_relu(ctx, node):
    data = ctx.data(node, 0)
    kind = ctx.attr(node, "act_type", "leaky")
    slope = ctx.attr(node, "slope", 0.25, "float")
    if kind == "leaky":
        return [ops.prelu(data, const([slope]))]
    if kind == "rrelu":  # inference: the mean of the random slope's range
        lower, upper = ctx.attr(node, "lower_bound", 0.125, "float"), ctx.attr(node, "upper_bound", 0.334, "float")
        return [ops.prelu(data, const([(lower + upper) / 2.0]))]
    if kind == "prelu":
        channels = ctx.shape(data)[1]
        gamma = ctx.weight(node, 1)
        if gamma.shape not in ((channels,), (1,)):
            raise ctx.fail(node, "weight {!r} has shape {} in the params but the graph needs ({},)".format(
                ctx.input_node(node, 1).name, tuple(gamma.shape), channels), about_weights=True)
        rank = len(ctx.shape(data))
        return [ops.prelu(data, const(gamma.reshape((1, -1) + (1,) * (rank - 2))))]
    if kind == "elu":
        return [ops.elu(data, slope)]
    if kind == "selu":
        return [ops.selu(data, const([1.6732632423543772]), const([1.0507009873554805]))]
    if kind == "gelu":
        return [ops.gelu(data, "erf")]
    raise ctx.fail(node, "act_type {!r} is not supported (leaky, prelu, rrelu, elu, selu, gelu)".format(kind))


@converts("SoftmaxActivation")
def softmax_activation(ctx, node):
    data = ctx.data(node, 0)
    mode = ctx.attr(node, "mode", "instance")
    if mode == "channel":
        return [ops.softmax(data, 1)]
    if mode == "instance":  # MXNet flattens to (everything else, last axis): a softmax over the last axis
        return [ops.softmax(data, -1)]
    raise ctx.fail(node, "mode {!r} is not one of instance, channel".format(mode))


def _scaled(ctx, node, data):
    temperature = ctx.attr(node, "temperature", None, "float")
    if ctx.attr(node, "use_length", False, "bool"):
        raise ctx.fail(node, "use_length=True is not supported")
    return data if temperature in (None, 1.0) else ops.divide(data, const(temperature))


@converts("softmax")
def softmax(ctx, node):
    data = ctx.data(node, 0)
    return [ops.softmax(_scaled(ctx, node, data), ctx.attr(node, "axis", -1, "int"))]


@converts("log_softmax")
def log_softmax(ctx, node):
    data = ctx.data(node, 0)
    return [ops.log_softmax(_scaled(ctx, node, data), ctx.attr(node, "axis", -1, "int"))]


@converts("SoftmaxOutput", "Softmax")
def softmax_output(ctx, node):
    """Inference: a softmax (the label input is unused) over axis 1 with multi_output, else over the last axis
    (MXNet 1.9 does so with and without preserve_shape)."""
    data = ctx.data(node, 0)
    return [ops.softmax(data, 1 if ctx.attr(node, "multi_output", False, "bool") else -1)]
