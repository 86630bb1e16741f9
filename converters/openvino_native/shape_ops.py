"""Shape ops (Flatten, Concat, Reshape with MXNet's special codes, transpose), pass-throughs and arithmetic."""
import numpy as np
import openvino.opset13 as ops

from converters.openvino_native.core import const, converts, ints, shape_text


@converts("_copy", "identity", "BlockGrad", "stop_gradient", "Dropout")
def identity(ctx, node):
    """Copies, gradient blockers and (at inference) Dropout pass their input through."""
    return [ctx.data(node, 0)]


@converts("Flatten", "flatten")
def flatten(ctx, node):
    data = ctx.data(node, 0)
    shape = ctx.shape(data)
    return [ops.reshape(data, ints([shape[0], int(np.prod(shape[1:]))]), False)]


@converts("Concat", "concat")
def concat(ctx, node):
    inputs = [ctx.data(node, i) for i in range(len(node.inputs))]
    rank = len(ctx.shape(inputs[0]))
    dim = ctx.attr(node, "dim", 1, "int")
    if not -rank <= dim < rank:
        raise ctx.fail(node, "dim {} is out of range for {}-d inputs".format(dim, rank))
    return [ops.concat(inputs, dim)]


@converts("transpose")
def transpose(ctx, node):
    data = ctx.data(node, 0)
    rank = len(ctx.shape(data))
    axes = ctx.attr(node, "axes", None, "ints")
    if not axes:
        axes = tuple(reversed(range(rank)))
    axes = [a + rank if a < 0 else a for a in axes]
    if sorted(axes) != list(range(rank)):
        raise ctx.fail(node, "axes {} is not a permutation of {} axes".format(shape_text(axes), rank))
    return [ops.transpose(data, ints(axes))]


def mxnet_reshape(source, spec, reverse=False):
    """MXNet's Reshape shape inference: 0 copy a dim, -1 infer one, -2 copy the rest, -3 merge two, -4 split one into
    the next two values (one may be -1). Returns the new shape, or raises ValueError with the reason."""
    source, spec = list(source), list(spec)
    if reverse:
        source, spec = source[::-1], spec[::-1]
    result, at, infer, i = [], 0, None, 0

    def take():
        nonlocal at
        if at >= len(source):
            raise ValueError("shape {} asks for more dimensions than the input has".format(shape_text(spec)))
        at += 1
        return source[at - 1]

    while i < len(spec):
        code = spec[i]
        if code == 0:
            result.append(take())
        elif code == -1:
            if infer is not None:
                raise ValueError("shape {} has more than one -1".format(shape_text(spec)))
            infer = len(result)
            result.append(1)
            at += 1
        elif code == -2:
            result.extend(source[at:])
            at = len(source)
        elif code == -3:
            result.append(take() * take())
        elif code == -4:
            if i + 2 >= len(spec):
                raise ValueError("-4 in shape {} needs two values after it".format(shape_text(spec)))
            whole, first, second = take(), spec[i + 1], spec[i + 2]
            if first == -1 and second > 0:
                first = whole // second
            if second == -1 and first > 0:
                second = whole // first
            if first <= 0 or second <= 0 or first * second != whole:
                raise ValueError("-4 cannot split {} into {} x {}".format(whole, spec[i + 1], spec[i + 2]))
            result.extend([first, second])
            i += 2
        elif code > 0:
            result.append(code)
            at += 1
        else:
            raise ValueError("shape {} has an unknown code {}".format(shape_text(spec), code))
        i += 1
    total = int(np.prod(source))
    if infer is not None:
        known = int(np.prod(result))
        if known == 0 or total % known:
            raise ValueError("cannot infer the -1 in {} from an input of shape {}".format(shape_text(spec), shape_text(source)))
        result[infer] = total // known
    if int(np.prod(result)) != total:
        raise ValueError("cannot reshape {} ({} values) to {} ({} values)".format(
            shape_text(source[::-1] if reverse else source), total, shape_text(result[::-1] if reverse else result),
            int(np.prod(result))))
    return result[::-1] if reverse else result


@converts("Reshape", "reshape")
def reshape(ctx, node):
    data = ctx.data(node, 0)
    shape = ctx.shape(data)
    spec = ctx.attr(node, "shape", None, "ints")
    target = ctx.attr(node, "target_shape", None, "ints")
    if not spec:
        if target and any(target):
            raise ctx.fail(node, "the deprecated target_shape attribute is not supported; use shape")
        raise ctx.fail(node, "attribute shape is missing")
    try:
        new_shape = mxnet_reshape(shape, spec, ctx.attr(node, "reverse", False, "bool"))
    except ValueError as err:
        raise ctx.fail(node, str(err)) from None
    return [ops.reshape(data, ints(new_shape), False)]


_BINARY = {
    "add": ops.add, "sub": ops.subtract, "mul": ops.multiply, "div": ops.divide,
    "maximum": ops.maximum, "minimum": ops.minimum, "power": ops.power,
}
_ELEMWISE = {"elemwise_add": "add", "elemwise_sub": "sub", "elemwise_mul": "mul", "elemwise_div": "div",
             "_plus": "add", "_Plus": "add", "_add": "add", "_minus": "sub", "_Minus": "sub", "_sub": "sub",
             "_mul": "mul", "_Mul": "mul", "_div": "div", "_Div": "div", "_maximum": "maximum", "_minimum": "minimum",
             "_power": "power"}
_BROADCAST = {"broadcast_add": "add", "broadcast_plus": "add", "broadcast_sub": "sub", "broadcast_minus": "sub",
              "broadcast_mul": "mul", "broadcast_div": "div", "broadcast_maximum": "maximum",
              "broadcast_minimum": "minimum", "broadcast_power": "power"}


@converts(*_ELEMWISE)
def elemwise(ctx, node):
    left, right = ctx.data(node, 0), ctx.data(node, 1)
    if ctx.shape(left) != ctx.shape(right):
        raise ctx.fail(node, "inputs of shapes {} and {} differ (elementwise ops need equal shapes)".format(
            shape_text(ctx.shape(left)), shape_text(ctx.shape(right))))
    return [_BINARY[_ELEMWISE[node.op]](left, right)]


@converts(*_BROADCAST)
def broadcast(ctx, node):
    left, right = ctx.data(node, 0), ctx.data(node, 1)
    a, b = ctx.shape(left), ctx.shape(right)
    if len(a) == len(b) and any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
        raise ctx.fail(node, "shapes {} and {} do not broadcast".format(shape_text(a), shape_text(b)))
    return [_BINARY[_BROADCAST[node.op]](left, right)]


@converts("add_n", "ElementWiseSum", "_contrib_add_n")
def add_n(ctx, node):
    out = ctx.data(node, 0)
    for i in range(1, len(node.inputs)):
        out = ops.add(out, ctx.data(node, i))
    return [out]


_SCALAR = {
    "_plus_scalar": lambda x, s: ops.add(x, s), "_PlusScalar": lambda x, s: ops.add(x, s),
    "_minus_scalar": lambda x, s: ops.subtract(x, s), "_MinusScalar": lambda x, s: ops.subtract(x, s),
    "_rminus_scalar": lambda x, s: ops.subtract(s, x), "_RMinusScalar": lambda x, s: ops.subtract(s, x),
    "_mul_scalar": lambda x, s: ops.multiply(x, s), "_MulScalar": lambda x, s: ops.multiply(x, s),
    "_div_scalar": lambda x, s: ops.divide(x, s), "_DivScalar": lambda x, s: ops.divide(x, s),
    "_rdiv_scalar": lambda x, s: ops.divide(s, x), "_RDivScalar": lambda x, s: ops.divide(s, x),
    "_maximum_scalar": lambda x, s: ops.maximum(x, s), "_minimum_scalar": lambda x, s: ops.minimum(x, s),
    "_power_scalar": lambda x, s: ops.power(x, s),
}


@converts(*_SCALAR)
def scalar(ctx, node):
    value = ctx.attr(node, "scalar", None, "float")
    if value is None:
        raise ctx.fail(node, "attribute scalar is missing")
    return [_SCALAR[node.op](ctx.data(node, 0), const(value))]
