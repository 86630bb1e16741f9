"""Per-channel scales after convolutions are folded into the weights: the same outputs, one Multiply fewer each."""
import numpy as np
import openvino as ov
import openvino.opset13 as ops
from hypothesis import given, settings
from hypothesis import strategies as st

from converters.openvino_native.fold_scale import fold_channel_scales

CORE = ov.Core()


def _const(values):
    return ops.constant(np.asarray(values, dtype=np.float32))


def _conv(data, rng, channels_in, channels_out, groups):
    if groups == 1:
        weights = rng.standard_normal((channels_out, channels_in, 3, 3))
        return ops.convolution(data, _const(weights), [1, 1], [1, 1], [1, 1], [1, 1])
    weights = rng.standard_normal((groups, channels_out // groups, channels_in // groups, 3, 3))
    return ops.group_convolution(data, _const(weights), [1, 1], [1, 1], [1, 1], [1, 1])


def _outputs(model, image):
    return CORE.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})({0: image})[0]


def _count(model, kind):
    return sum(op.get_type_name() == kind for op in model.get_ordered_ops())


SCALE_SHAPES = {"1C11": lambda c: (1, c, 1, 1), "C11": lambda c: (c, 1, 1), "scalar": lambda c: (), "one": lambda c: (1,)}


@settings(max_examples=25, deadline=None)
@given(groups=st.sampled_from([1, 2, 3]), per_group=st.integers(1, 3), scale_shape=st.sampled_from(sorted(SCALE_SHAPES)),
       scale_first=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_folded_scale_gives_the_same_outputs(groups, per_group, scale_shape, scale_first, seed):
    rng = np.random.default_rng(seed)
    channels = groups * per_group
    data = ops.parameter([1, channels, 7, 9], np.float32)
    conv = _conv(data, rng, channels, channels, groups)
    scale = _const(rng.uniform(-2, 2, SCALE_SHAPES[scale_shape](channels)))
    scaled = ops.multiply(scale, conv) if scale_first else ops.multiply(conv, scale)
    out = ops.add(scaled, _const(rng.standard_normal((1, channels, 1, 1))))
    model = ov.Model([ops.result(out)], [data])
    image = rng.standard_normal((1, channels, 7, 9)).astype(np.float32)
    expected = _outputs(model, image)

    assert fold_channel_scales(model) == 1
    assert _count(model, "Multiply") == 0
    np.testing.assert_allclose(_outputs(model, image), expected, rtol=1e-5, atol=1e-5)


def test_what_cannot_be_folded_is_left_alone():
    rng = np.random.default_rng(1)
    data = ops.parameter([1, 4, 6, 6], np.float32)
    shared = _conv(data, rng, 4, 4, 1)  # also read by the Add: scaling its weights would change that branch
    both = ops.add(ops.multiply(shared, _const(rng.uniform(1, 2, (1, 4, 1, 1)))), shared)
    spatial = ops.multiply(_conv(both, rng, 4, 4, 1), _const(rng.uniform(1, 2, (1, 1, 6, 6))))  # per pixel
    activation = ops.multiply(ops.relu(spatial), _const(rng.uniform(1, 2, (1, 4, 1, 1))))  # not a convolution's
    model = ov.Model([ops.result(activation)], [data])
    image = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    expected = _outputs(model, image)

    assert fold_channel_scales(model) == 0
    assert _count(model, "Multiply") == 3
    np.testing.assert_array_equal(_outputs(model, image), expected)


def test_a_shared_weights_constant_keeps_its_other_reader():
    rng = np.random.default_rng(2)
    data = ops.parameter([1, 3, 5, 5], np.float32)
    weights = _const(rng.standard_normal((3, 3, 1, 1)))
    first = ops.convolution(data, weights, [1, 1], [0, 0], [0, 0], [1, 1])
    second = ops.convolution(data, weights, [1, 1], [0, 0], [0, 0], [1, 1])
    model = ov.Model([ops.result(ops.multiply(first, _const([[[[2.0]], [[3.0]], [[4.0]]]]))), ops.result(second)], [data])
    image = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    compiled = CORE.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    expected = [compiled({0: image})[i] for i in range(2)]

    assert fold_channel_scales(model) == 1
    compiled = CORE.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    for index in range(2):
        np.testing.assert_allclose(compiled({0: image})[index], expected[index], rtol=1e-6, atol=1e-6)
