"""The native MXNet -> OpenVINO conversion, checked against real MXNet 1.9.1 (the isolated venv) as the oracle.

Per-op cases share one many-headed graph (one MXNet run); whole SSDs compare
detections: every MXNet detection scoring >= 0.05 must come out of OpenVINO
with the same class, box and score (within 1e-3), and nothing else may.
OpenVINO runs with f32 inference precision: on CPUs with bf16 support its
default would be bf16, which is not what is being checked here.
"""
import os
import time

import numpy as np
import openvino as ov
import pytest

from converters.openvino_native import convert_graph, multibox_prior
from converters.ssd_builder import GraphBuilder
from converters.ssd_deploy import to_deploy
from roadedge.core.errors import RoadedgeError
from roadedge.core.mxnet_params import dumps_params, split_arg_aux
from roadedge.core.mxnet_symbol import Graph, Node
from tests import ssd_models
from tests.mxnet_oracle import require_mxnet

F32 = {"INFERENCE_PRECISION_HINT": "f32"}


def run_openvino(model, image):
    compiled = ov.Core().compile_model(model, "CPU", F32)
    result = compiled(image)
    return [result[output] for output in compiled.outputs]


def run_mxnet(tmp_path, graph, params, image):
    from converters.mxnet_forward import mxnet_forward

    symbol, weights = str(tmp_path / "m-symbol.json"), str(tmp_path / "m-0000.params")
    with open(symbol, "w") as handle:
        handle.write(graph.to_json())
    with open(weights, "wb") as handle:
        handle.write(dumps_params(params))
    return mxnet_forward(symbol, weights, {"data": image})


# ---- per-op cases: one graph, one head per case ------------------------------------------------------------------

DATA = (2, 6, 10, 14)  # non-square, odd pooling sizes


def _zoo():
    """(graph, params) with a head per case; params hold 'arg:'/'aux:' names as MXNet saves them."""
    rng = np.random.default_rng(7)
    b = GraphBuilder()
    params = {}
    heads = []
    data = b.var("data")

    def weight(name, shape, scale=0.3, kind="arg", shape_attr=False):
        params["{}:{}".format(kind, name)] = (rng.normal(0, scale, size=shape)).astype(np.float32)
        return b.var(name, shape=shape if shape_attr else None)

    def head(op, name, inputs, **attrs):
        heads.append(b.op(op, name, inputs, **attrs))

    def conv(name, num_filter, kernel, **attrs):
        channels = DATA[1] // attrs.get("num_group", 1)
        inputs = [data, weight(name + "_weight", (num_filter, channels) + kernel)]
        if not attrs.get("no_bias"):
            inputs.append(weight(name + "_bias", (num_filter,)))
        head("Convolution", name, inputs, kernel=kernel, num_filter=num_filter, **attrs)

    conv("conv_plain", 5, (3, 3), pad=(1, 1))
    conv("conv_dilated_grouped", 4, (3, 3), pad=(2, 1), stride=(1, 2), dilate=(2, 2), num_group=2)
    conv("conv_depthwise_nobias", 6, (3, 3), stride=(2, 2), num_group=6, no_bias=True)

    def batchnorm(name, **attrs):
        gamma = weight(name + "_gamma", (6,), 1.0)
        params["arg:" + name + "_gamma"] += 1.5  # far from 1, so an ignored gamma shows
        beta = weight(name + "_beta", (6,))
        mean = weight(name + "_moving_mean", (6,), kind="aux")
        var = weight(name + "_moving_var", (6,), kind="aux")
        params["aux:" + name + "_moving_var"] = rng.uniform(1e-4, 2e-3, size=(6,)).astype(np.float32)  # eps matters
        head("BatchNorm", name, [data, gamma, beta, (mean[0], 0, 1), (var[0], 0, 1)], **attrs)

    batchnorm("bn_defaults")  # fix_gamma True, eps 1e-3
    batchnorm("bn_learned_gamma", fix_gamma=False, eps=1e-5)
    batchnorm("bn_global_stats", fix_gamma=False, use_global_stats=True)

    for name, attrs in [
        ("pool_max_valid", dict(kernel=(3, 3), stride=(2, 2), pool_type="max")),
        ("pool_max_full", dict(kernel=(3, 3), stride=(2, 2), pool_type="max", pooling_convention="full")),
        ("pool_max_full_pad", dict(kernel=(2, 2), stride=(2, 2), pad=(1, 1), pool_type="max", pooling_convention="full")),
        ("pool_avg_pad", dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg")),
        ("pool_avg_pad_exclude", dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", count_include_pad=False)),
        ("pool_avg_full_pad", dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", pooling_convention="full")),
        ("pool_avg_full_exclude", dict(kernel=(3, 3), stride=(2, 2), pool_type="avg", pooling_convention="full",
                                       count_include_pad=False)),
        ("pool_sum_full", dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="sum", pooling_convention="full")),
        ("pool_global_avg", dict(kernel=(1, 1), pool_type="avg", global_pool=True)),
        ("pool_global_max", dict(kernel=(1, 1), pool_type="max", global_pool=True)),
    ]:
        head("Pooling", name, [data], **attrs)

    for name, shape, reverse in [("reshape_keep_infer", (0, -1), False), ("reshape_merge_rest", (-3, -2), False),
                                 ("reshape_split", (0, -4, 2, -1, 0, 0), False), ("reshape_reverse", (-1, 0), True),
                                 ("reshape_positive", (4, 3, -1), False)]:
        head("Reshape", name, [data], shape=shape, **({"reverse": True} if reverse else {}))

    for mode in (None, "channel", "spatial"):
        head("L2Normalization", "l2norm_" + (mode or "default"), [data], **({"mode": mode} if mode else {}))
    head("L2Normalization", "l2norm_eps", [data], mode="channel", eps=0.5)
    scale = weight("l2_scale", (1, 6, 1, 1), 5.0, shape_attr=True)
    head("broadcast_mul", "broadcast_mul_scale", [b.op("L2Normalization", "l2n", [data], mode="channel"), scale])

    head("_contrib_MultiBoxPrior", "prior_default_steps", [data], sizes=(0.3, 0.5), ratios=(1, 2, 0.5))
    head("_contrib_MultiBoxPrior", "prior_first_ratio_2", [data], sizes=(0.3, 0.5), ratios=(2, 1, 0.5), clip=False)
    head("_contrib_MultiBoxPrior", "prior_steps_offsets_clip", [data], sizes=(0.6,), ratios=(1, 3), clip=True,
         steps=(0.1, 0.07), offsets=(0.3, 0.6))

    for act in ("relu", "sigmoid", "tanh", "softrelu"):
        head("Activation", "act_" + act, [data], act_type=act)
    head("LeakyReLU", "leaky_default", [data])
    head("LeakyReLU", "leaky_elu", [data], act_type="elu", slope=0.3)
    head("LeakyReLU", "leaky_prelu", [data, weight("prelu_gamma", (6,))], act_type="prelu")

    head("SoftmaxActivation", "softmax_act_channel", [data], mode="channel")
    head("SoftmaxActivation", "softmax_act_instance", [data])
    head("softmax", "softmax_axis2", [data], axis=2)
    head("softmax", "softmax_default_axis", [data])
    params["arg:softmax_label"] = np.zeros((2, 140), np.float32)  # MXNet binds it; inference ignores it
    head("SoftmaxOutput", "softmax_output_multi", [data, b.var("softmax_label")], multi_output=True)
    params["arg:softmax_label2"] = np.zeros((2, 6, 10), np.float32)
    head("SoftmaxOutput", "softmax_output_plain", [data, b.var("softmax_label2")])

    relu = b.op("Activation", "relu_side", [data], act_type="relu")
    for op in ("elemwise_add", "elemwise_sub", "elemwise_mul", "_plus", "_minus"):
        head(op, op + "_case", [data, relu])
    head("broadcast_add", "broadcast_add_case", [data, weight("bias_row", (1, 1, 1, 14), shape_attr=True)])
    for op, value in (("_plus_scalar", 2.5), ("_minus_scalar", 1.5), ("_rminus_scalar", 1.5), ("_mul_scalar", -3.0),
                      ("_div_scalar", 4.0)):
        head(op, op + "_case", [data], scalar=value)
    head("Concat", "concat_dim2", [data, relu], dim=2, num_args=2)
    head("Concat", "concat_default", [data, relu], num_args=2)
    head("Flatten", "flatten_case", [data])
    head("transpose", "transpose_default", [data])
    head("transpose", "transpose_axes", [data], axes=(0, 2, 3, 1))
    head("_copy", "copy_case", [data])
    head("FullyConnected", "fc_case", [data, weight("fc_weight", (5, 840), 0.05), weight("fc_bias", (5,))], num_hidden=5)
    # GluonCV's segmentation ops: bilinear resize (up, down, both corner conventions) and adaptive average pooling
    head("_contrib_BilinearResize2D", "resize_up_align_corners", [data], height=23, width=31)
    head("_contrib_BilinearResize2D", "resize_down_align_corners", [data], height=4, width=5, align_corners=True)
    head("_contrib_BilinearResize2D", "resize_half_pixel", [data], height=7, width=20, align_corners=False)
    head("_contrib_BilinearResize2D", "resize_down_half_pixel", [data], height=4, width=5, align_corners=False)
    head("_contrib_BilinearResize2D", "resize_scales", [data], scale_height=2.0, scale_width=0.5)
    for size in ((1,), (3,), (2, 5), (6, 4)):
        head("_contrib_AdaptiveAvgPooling2D", "adaptive_avg_" + "x".join(map(str, size)), [data], output_size=size)
    head("Dropout", "dropout_case", [data], p=0.5)
    return b.graph(heads, source="zoo"), params


ZOO_GRAPH, ZOO_PARAMS = _zoo()
ZOO_CASES = [ZOO_GRAPH.nodes[index].name for index, _ in ZOO_GRAPH.heads]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    require_mxnet()
    image = np.random.default_rng(3).normal(0, 1, size=DATA).astype(np.float32)
    expected = run_mxnet(tmp_path_factory.mktemp("zoo"), ZOO_GRAPH, ZOO_PARAMS, image)
    args, aux = split_arg_aux(ZOO_PARAMS)
    model = convert_graph(ZOO_GRAPH, args, aux, DATA, name="zoo")
    assert [output.get_any_name() for output in model.outputs] == ZOO_CASES
    return dict(zip(ZOO_CASES, zip(expected, run_openvino(model, image))))


@pytest.mark.parametrize("case", ZOO_CASES)
def test_op_matches_mxnet(zoo, case):
    expected, actual = zoo[case]
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(expected).max())))


def test_cases_are_not_trivial(zoo):
    """Guards the per-op cases themselves: the settings they test make a difference in MXNet's output."""
    def mx(name):
        return zoo[name][0]
    assert mx("pool_max_full").shape[2:] == (5, 7) and mx("pool_max_valid").shape[2:] == (4, 6)
    assert not np.allclose(mx("pool_avg_pad"), mx("pool_avg_pad_exclude"))
    assert not np.allclose(mx("bn_defaults"), mx("bn_learned_gamma"))
    assert mx("reshape_split").shape == (2, 2, 3, 10, 14) and mx("reshape_reverse").shape == (120, 14)
    assert mx("prior_default_steps").shape == (1, 10 * 14 * 4, 4)
    assert not np.allclose(mx("l2norm_default"), mx("l2norm_channel"))
    assert mx("resize_up_align_corners").shape[2:] == (23, 31) and mx("resize_scales").shape[2:] == (20, 7)
    assert not np.allclose(mx("resize_down_align_corners"), mx("resize_down_half_pixel"))
    assert mx("adaptive_avg_6x4").shape[2:] == (6, 4) and mx("adaptive_avg_1").shape[2:] == (1, 1)


def test_multibox_prior_numpy_matches_mxnet(zoo):
    expected = zoo["prior_default_steps"][0]
    np.testing.assert_allclose(multibox_prior(10, 14, (0.3, 0.5), (1, 2, 0.5)), expected, atol=1e-6)
    # steps -1: the centres step 1/10 down and 1/14 across, independently
    centres = (expected[0, ::4, :2] + expected[0, ::4, 2:]) / 2
    np.testing.assert_allclose(np.unique(centres[:, 0].round(6)), (np.arange(14) + 0.5) / 14, atol=1e-6)
    np.testing.assert_allclose(np.unique(centres[:, 1].round(6)), (np.arange(10) + 0.5) / 10, atol=1e-6)


# ---- whole SSDs ----------------------------------------------------------------------------------------------------

_SHAPES = {}


def ssd_case(tmp_path, recipe, shape, variants=None, seed=1, head_scale=0.1):
    """Deploy graph of a test recipe (plus extra MultiBoxDetection heads `variants`: name -> attrs), seeded weights,
    an image; returns (graph, args, aux, image, MXNet outputs)."""
    from converters.mxnet_forward import mxnet_param_shapes

    graph = to_deploy(getattr(ssd_models, recipe)())
    if recipe not in _SHAPES:  # the weights' shapes do not depend on the image size
        symbol = tmp_path / "shapes-symbol.json"
        symbol.write_text(graph.to_json())
        _SHAPES[recipe] = mxnet_param_shapes(str(symbol), (1, 3, 64, 64) if recipe != "sagemaker" else (1, 3, 300, 300))
    params = ssd_models.random_params(_SHAPES[recipe], seed=seed, head_scale=head_scale)
    if variants:
        graph = with_detection_variants(graph, variants)
    image = np.random.default_rng(seed + 1).uniform(0, 255, size=shape).astype(np.float32)
    expected = run_mxnet(tmp_path, graph, params, image)
    args, aux = split_arg_aux(params)
    return graph, args, aux, image, expected


def with_detection_variants(graph, variants):
    """The graph with copies of its MultiBoxDetection head, attributes changed, as extra heads."""
    index = graph.heads[0][0]
    original = graph.nodes[index]
    nodes = list(graph.nodes)
    heads = list(graph.heads)
    for name, attrs in variants.items():
        changed = dict(original.attrs)
        changed.update({key: str(value) for key, value in attrs.items()})
        nodes.append(Node(original.op, name, changed, original.inputs))
        heads.append((len(nodes) - 1, 0))
    return Graph(nodes, heads, graph.source, graph.extra)


def detections_of(rows, image):
    """OpenVINO rows [image_id, label, conf, x1, y1, x2, y2] up to the image_id -1 terminator -> (label, conf, box...)."""
    rows = rows.reshape(-1, 7)
    ends = np.nonzero(rows[:, 0] == -1)[0]
    assert len(ends), "no terminating image_id -1 row"
    rows = rows[:ends[0]]
    assert set(np.unique(rows[:, 0])) <= set(range(64))
    return rows[rows[:, 0] == image][:, 1:]


def assert_same_detections(expected, actual_rows, min_score=0.05, tol=1e-3):
    """expected: MXNet's [batch, anchors, 6]; checks each image; returns how many detections were compared."""
    compared = 0
    for image in range(expected.shape[0]):
        theirs = expected[image][expected[image][:, 0] >= 0]
        mine = detections_of(actual_rows, image)
        assert np.all(mine[:, 0] == np.round(mine[:, 0])), "labels must be class ids"

        used = np.zeros(len(mine), bool)
        for row in theirs[np.argsort(-theirs[:, 1], kind="stable")]:  # one-to-one: each OpenVINO row used once
            distance = np.abs(mine[:, 1:] - row[1:])
            close = np.nonzero(~used & (mine[:, 0] == row[0]) & (distance.max(axis=1) <= tol))[0]
            if len(close):
                used[close[np.argmin(distance[close].sum(axis=1))]] = True
            else:
                assert row[1] < min_score, "MXNet detection {} not reproduced".format(row)
        extra = mine[~used & (mine[:, 1] >= min_score)]
        assert not len(extra), "OpenVINO detections that MXNet does not make: {}".format(extra[:3])
        assert len(mine) == len(theirs)  # below min_score too: the same number of detections survive NMS
        compared += int((theirs[:, 1] >= min_score).sum())
    kept = expected[expected[:, :, 0] >= 0]
    if len(kept) > 1:  # the reference itself is a fair test: scores spread out, not saturated; real boxes
        assert kept[:, 1].max() < 0.999 and kept[:, 1].max() - kept[:, 1].min() > 0.01, "MXNet's scores do not spread"
        areas = (kept[:, 4] - kept[:, 2]) * (kept[:, 5] - kept[:, 3])
        assert np.mean(areas > 1e-4) > 0.9, "MXNet's boxes are mostly degenerate"
    return compared


def test_tiny_ssd_batch_of_two_and_detection_settings(tmp_path):
    require_mxnet()
    variants = {
        "det_force_suppress": {"force_suppress": True},
        "det_topk_20": {"nms_topk": 20, "nms_threshold": 0.3},
        "det_no_nms": {"nms_threshold": 1.5},  # MXNet skips sorting, top-k and NMS outside (0, 1]
        "det_threshold_noclip": {"threshold": 0.12, "clip": False, "variances": (0.2, 0.2, 0.3, 0.3)},
        "det_force_no_nms": {"force_suppress": True, "nms_threshold": 0.0},
    }
    graph, args, aux, image, expected = ssd_case(tmp_path, "tiny", (2, 3, 64, 96), variants)
    model = convert_graph(graph, args, aux, image.shape, name="tiny")
    names = ["detection"] + list(variants)
    assert [output.get_any_name() for output in model.outputs] == names
    actual = run_openvino(model, image)
    counts = {name: assert_same_detections(e, a) for name, e, a in zip(names, expected, actual)}
    assert counts["detection"] >= 20 and counts["det_topk_20"] <= 2 * 20
    assert counts["det_no_nms"] > counts["detection"] > counts["det_force_suppress"]
    assert counts["det_threshold_noclip"] < counts["detection"]
    boxes = expected[4][:, :, 2:][expected[4][:, :, 0] >= 0]
    assert boxes.min() < 0 or boxes.max() > 1  # unclipped boxes were compared
    assert actual[0].shape == (1, 1, 2 * 401, 7)  # (top-k + terminator) rows per image


@pytest.mark.parametrize("recipe,shape", [("resnet", (1, 3, 256, 320)), ("vgg", (1, 3, 64, 64))])
def test_small_ssds_match_mxnet(tmp_path, recipe, shape):
    """resnet: data -> _copy -> bn_data (fix_gamma) on raw pixels, three classes, non-square input;
    vgg: 'full' pooling, L2Normalization with a learned scale, explicit MultiBoxPrior steps (which fit 64 x 64)."""
    require_mxnet()
    graph, args, aux, image, expected = ssd_case(tmp_path, recipe, shape, {"det_force": {"force_suppress": True}})
    ov.save_model(convert_graph(graph, args, aux, shape, name=recipe), str(tmp_path / "ir.xml"), compress_to_fp16=False)
    actual = run_openvino(ov.Core().read_model(str(tmp_path / "ir.xml")), image)  # through the IR files
    assert assert_same_detections(expected[0], actual[0]) >= 10
    assert assert_same_detections(expected[1], actual[1]) >= 10


def test_sagemaker_resnet50_ssd_at_300_and_512(tmp_path):
    """The real SageMaker training symbol, deployed, with seeded weights, at both of SageMaker's input sizes."""
    require_mxnet()
    for size in (300, 512):
        folder = tmp_path / str(size)
        folder.mkdir()
        # head_scale: ResNet-50's random features are large; smaller heads keep the scores from saturating at 1
        graph, args, aux, image, expected = ssd_case(folder, "sagemaker", (1, 3, size, size), seed=5, head_scale=1e-3)
        model = convert_graph(graph, args, aux, image.shape, name="sagemaker-ssd")
        xml = str(folder / "model.xml")
        ov.save_model(model, xml, compress_to_fp16=False)
        anchors = {300: 2268, 512: 6132}[size]
        assert expected[0].shape == (1, anchors, 6)
        saved = ov.Core().read_model(xml)
        assert [p.get_any_name() for p in saved.inputs] == ["data"] and list(saved.inputs[0].get_shape()) == [1, 3, size, size]
        assert saved.inputs[0].get_element_type() == ov.Type.f32 and saved.outputs[0].get_any_name() == "detection"
        weights = [op for op in saved.get_ops() if op.get_type_name() == "Constant" and op.get_output_size()
                   and int(np.prod(list(op.get_output_shape(0)) or [1])) > 1000]
        assert weights and all(op.get_output_element_type(0) == ov.Type.f32 for op in weights)
        assert assert_same_detections(expected[0], run_openvino(saved, image)[0]) >= 10
        # every BatchNorm after a convolution is folded into its weights (fold_scale.py): no scale left to fuse
        after_conv = [n for n in graph.nodes if n.op == "BatchNorm" and graph.nodes[n.inputs[0][0]].op == "Convolution"]
        scaled_convs = [op for op in saved.get_ops() if op.get_type_name() == "Multiply"
                        and any(i.get_source_output().get_node().get_type_name() == "Convolution" for i in op.inputs())]
        assert len(after_conv) >= 30 and scaled_convs == []


# ---- errors --------------------------------------------------------------------------------------------------------

def _small_net(extra_op=None):
    b = GraphBuilder()
    x = b.conv("conv0", b.var("data"), 4)
    if extra_op:
        x = b.op(extra_op, "odd_node", [x], scale=2)
    return b.graph([b.relu("relu0", x)], source="small")


def _small_params():
    rng = np.random.default_rng(0)
    return {"conv0_weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "conv0_bias": np.zeros(4, np.float32)}


def _one_line_error(graph, args, shape=(1, 3, 16, 16), params_source=None):
    with pytest.raises(RoadedgeError) as info:
        convert_graph(graph, args, {}, shape, params_source=params_source)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unsupported_op_names_node_op_and_what_is_supported():
    message = _one_line_error(_small_net("UpSampling"), _small_params())
    assert message.startswith("small: node 'odd_node' (op UpSampling): unsupported op; supported: ")
    assert "Convolution" in message and "_contrib_MultiBoxDetection" in message


def test_training_graph_points_to_the_deploy_rewrite():
    message = _one_line_error(ssd_models.tiny(), {})
    assert "(op _contrib_MultiBoxTarget): unsupported op (a training-only op: convert the deploy graph" in message


def test_missing_weight_names_the_params_file():
    params = _small_params()
    del params["conv0_bias"]
    message = _one_line_error(_small_net(), params, params_source="m-0000.params")
    assert message == "m-0000.params: node 'conv0' (op Convolution): weight 'conv0_bias' is missing from the params"
    # without a params file, the symbol is named
    assert _one_line_error(_small_net(), params).startswith("small: node 'conv0' (op Convolution): weight 'conv0_bias'")


def test_weight_shape_mismatch_names_both_shapes():
    message = _one_line_error(_small_net(), _small_params(), shape=(1, 1, 16, 16),  # a grey input for an RGB network
                              params_source="m-0000.params")
    assert message == ("m-0000.params: node 'conv0' (op Convolution): weight 'conv0_weight' has shape (4, 3, 3, 3) in the "
                       "params but the graph needs (4, 1, 3, 3)")


def test_a_head_past_a_nodes_outputs_is_one_line():
    graph = _small_net()
    graph.heads = [(graph.heads[0][0], 2)]
    assert _one_line_error(graph, _small_params()) == "small: node 'relu0' (op Activation): a head is its output 2, but " \
                                                      "it has 1 output(s)"


def test_bad_reshape_and_too_small_input_are_one_line_errors():
    b = GraphBuilder()
    bad = b.op("Reshape", "bad_reshape", [b.var("data")], shape=(0, 5, -1))
    assert "node 'bad_reshape' (op Reshape): cannot infer the -1" in _one_line_error(b.graph([bad]), {})
    b = GraphBuilder()
    unpadded = b.conv("conv0", b.var("data"), 4, pad=(0, 0))
    assert "the input image is too small" in _one_line_error(b.graph([unpadded]), _small_params(), shape=(1, 3, 2, 2))


def test_speed_of_a_large_graph_without_mxnet(tmp_path):
    """ResNet-50 SSD at 512 (the SageMaker symbol), weights shaped without MXNet: conversion + save < 10 s."""
    from roadedge.core.mxnet_symbol import load_symbol

    graph = to_deploy(load_symbol(ssd_models.SAGEMAKER_SYMBOL))
    args, aux = _constant_weights(graph)
    started = time.perf_counter()
    model = convert_graph(graph, args, aux, (1, 3, 512, 512), name="ssd")
    ov.save_model(model, str(tmp_path / "ssd.xml"), compress_to_fp16=False)
    assert time.perf_counter() - started < 10
    assert os.path.getsize(str(tmp_path / "ssd.bin")) > 4 * 20e6  # ~25M float32 weights, not FP16


def _constant_weights(graph):
    """Weights of the right shapes for a graph built from Convolution/BatchNorm (read off the attributes)."""
    from roadedge.core.mxnet_symbol import attr_int, attr_tuple

    args, aux, channels = {}, {}, {}
    for index, node in enumerate(graph.nodes):
        if node.op == "null":
            continue
        source = node.inputs[0][0] if node.inputs else None
        inbound = channels.get(source, 3)
        if node.op == "Convolution":
            filters = attr_int(node, "num_filter", 0)
            shape = (filters, inbound) + attr_tuple(node, "kernel", kind=int)
            # distinct values per layer: OpenVINO stores identical weights once
            args[graph.nodes[node.inputs[1][0]].name] = np.full(shape, 1e-3 * (index + 1), np.float32)
            if len(node.inputs) > 2:
                args[graph.nodes[node.inputs[2][0]].name] = np.zeros((filters,), np.float32)
            channels[index] = filters
        elif node.op == "BatchNorm":
            for position, store in ((1, args), (2, args), (3, aux), (4, aux)):
                store[graph.nodes[node.inputs[position][0]].name] = np.ones((inbound,), np.float32)
            channels[index] = inbound
        else:
            channels[index] = inbound
    return args, aux
