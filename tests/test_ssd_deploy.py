"""Deploy rewrite: structure, files, errors, and MXNet itself as the oracle (deploy forward == training det_out)."""
import json
import os
import re
import tarfile

import numpy as np
import pytest

from converters.ssd_builder import GraphBuilder
from converters.ssd_deploy import graph_kind, to_deploy
from roadedge.cli import main
from roadedge.core.errors import RoadedgeError
from roadedge.core.mxnet_params import dumps_params, load_params
from roadedge.core.mxnet_symbol import attr_bool, attr_float, attr_int, attr_tuple, load_symbol
from tests import ssd_models
from tests.mxnet_oracle import require_mxnet

TRAINING_OPS = {"_contrib_MultiBoxTarget", "SoftmaxOutput", "smooth_l1", "MakeLoss"}


def param_shapes(graph):
    """{variable: shape} for the test recipes (Convolution, BatchNorm, declared __shape__), read off the attributes
    here, independently of converters.ssd_deploy (test_param_shapes_agree_with_mxnet checks both against MXNet)."""
    channels, shapes = {}, {}
    for index, node in enumerate(graph.nodes):
        if node.op == "null":
            channels[index] = 3 if node.name == "data" else None
            if "__shape__" in node.attrs:
                shapes[node.name] = attr_tuple(node, "__shape__", kind=int)
            continue
        names = [graph.nodes[entry[0]].name for entry in node.inputs]
        inbound = channels[node.inputs[0][0]] if node.inputs else None
        channels[index] = inbound
        if node.op == "Convolution":
            filters = attr_int(node, "num_filter", 0)
            shapes[names[1]] = (filters, inbound) + attr_tuple(node, "kernel", kind=int)
            if len(names) > 2:
                shapes[names[2]] = (filters,)
            channels[index] = filters
        elif node.op == "BatchNorm":
            shapes.update({name: (inbound,) for name in names[1:5]})
    return shapes


def fake_params(graph, seed=0):
    """Params of the right shapes whose values are irrelevant: one array per variable except data and label."""
    rng = np.random.default_rng(seed)
    shapes = param_shapes(graph)
    return {("aux:" if node.name.endswith(("moving_mean", "moving_var")) else "arg:") + node.name:
            rng.normal(size=shapes[node.name]).astype(np.float32)
            for node in graph.nodes if node.op == "null" and node.name not in ("data", "label")}


def write_model(folder, name, graph, params, hyperparams=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / (name + "-symbol.json")).write_text(graph.to_json())
    (folder / (name + "-0000.params")).write_bytes(dumps_params(params))
    if hyperparams is not None:
        (folder / "hyperparams.json").write_text(json.dumps(hyperparams))
    return str(folder / name)


@pytest.mark.parametrize("recipe", ["tiny", "resnet", "vgg", "sagemaker"])
def test_deploy_graph_structure(recipe):
    training = getattr(ssd_models, recipe)()
    deploy = to_deploy(training, nms=0.5, topk=200, force_suppress=True)
    assert graph_kind(training) == "training" and graph_kind(deploy) == "deploy"
    assert not deploy.ops() & TRAINING_OPS and "label" not in {n.name for n in deploy.nodes}
    head = deploy.nodes[deploy.heads[0][0]]
    assert len(deploy.heads) == 1 and head.op == "_contrib_MultiBoxDetection" and head.name == "detection"
    assert attr_float(head, "nms_threshold", 0) == 0.5 and attr_int(head, "nms_topk", 0) == 200
    assert attr_bool(head, "force_suppress", False) is True
    assert attr_tuple(head, "variances") == (0.1, 0.1, 0.2, 0.2)
    softmax = deploy.nodes[head.inputs[0][0]]
    assert softmax.op == "SoftmaxActivation" and softmax.attrs == {"mode": "channel"}
    assert deploy.nodes[softmax.inputs[0][0]].name == training.nodes[
        next(n for n in training.nodes if n.op == "_contrib_MultiBoxTarget").inputs[2][0]].name
    # every learned parameter of the training graph is still an input of the deploy graph
    trained = {n.name for n in training.nodes if n.op == "null"} - {"label"}
    assert {n.name for n in deploy.nodes if n.op == "null"} == trained
    assert to_deploy(deploy) is deploy


def test_not_an_ssd_and_num_class_mismatch():
    b = GraphBuilder()
    fc = b.op("FullyConnected", "fc1", [b.var("data"), b.var("fc1_weight"), b.var("fc1_bias")], num_hidden=10)
    message = r"classifier: not an SSD training or deploy graph: .* output is fc1 \(FullyConnected\)"
    with pytest.raises(RoadedgeError, match=message):
        graph_kind(b.graph([fc], source="classifier"))
    with pytest.raises(RoadedgeError, match=r"--num-class 5: the graph predicts 2 classes"):
        to_deploy(ssd_models.tiny(num_classes=2), num_class=5)


def test_cli_writes_deploy_files_as_deploy_py_names_them(tmp_path, capsys):
    training = ssd_models.tiny()
    params = fake_params(training)
    prefix = write_model(tmp_path / "model", "model_algo_1", training, params)
    assert main(["convert", "deploy", prefix, "--epoch", "0", "--nms", "0.4", "--topk", "100"]) == 0
    assert "deploy_model_algo_1-symbol.json" in capsys.readouterr().out
    deploy = load_symbol(str(tmp_path / "model" / "deploy_model_algo_1-symbol.json"))
    assert attr_float(deploy.nodes[deploy.heads[0][0]], "nms_threshold", 0) == 0.4
    saved = load_params(str(tmp_path / "model" / "deploy_model_algo_1-0000.params"))
    assert list(saved) == list(params) and all(np.array_equal(saved[k], params[k]) for k in params)
    # a deploy graph passes through unchanged
    deploy_prefix = str(tmp_path / "model" / "deploy_model_algo_1")
    assert main(["convert", "deploy", deploy_prefix, "--output-dir", str(tmp_path / "again")]) == 0
    assert "already a deploy graph" in capsys.readouterr().out
    again = (tmp_path / "again" / "deploy_deploy_model_algo_1-symbol.json").read_text()
    assert json.loads(again) == json.loads((tmp_path / "model" / "deploy_model_algo_1-symbol.json").read_text())


def test_cli_reads_a_sagemaker_model_tar_gz(tmp_path):
    training = ssd_models.tiny()
    write_model(tmp_path / "job", "model_algo_1", training, fake_params(training), {"num_classes": "2", "image_shape": "300"})
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("model_algo_1-symbol.json", "model_algo_1-0000.params", "hyperparams.json"):
            tar.add(tmp_path / "job" / name, arcname=name)
    assert main(["convert", "deploy", str(archive), "--output-dir", str(tmp_path / "out")]) == 0
    assert graph_kind(load_symbol(str(tmp_path / "out" / "deploy_model_algo_1-symbol.json"))) == "deploy"


def one_error_line(capsys):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    return lines[0]


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_output_dir_that_is_a_file_is_refused_before_anything_is_written(tmp_path, capsys, where):
    training = ssd_models.tiny()
    prefix = write_model(tmp_path / "model", "m", training, fake_params(training))
    (tmp_path / "taken").write_text("not a folder")
    output = tmp_path / "taken" if where == "file" else tmp_path / "taken" / "sub"
    assert main(["convert", "deploy", prefix, "--output-dir", str(output)]) == 2
    expected = "it" if where == "file" else str(tmp_path / "taken")
    assert one_error_line(capsys) == "roadedge: error: --output-dir {}: {} is a file; expected a folder (created if " \
                                     "missing)".format(output, expected)
    assert (tmp_path / "taken").read_text() == "not a folder" and sorted(os.listdir(tmp_path)) == ["model", "taken"]


@pytest.mark.parametrize("other,message", [
    # the same network for three classes: the class-prediction convolutions have other shapes
    (lambda: fake_params(ssd_models.tiny(num_classes=3)),
     r"m-0000.params: parameter 'feat0_cls_pred_conv_weight' has shape \(16, 24, 3, 3\), but Convolution "
     r"'feat0_cls_pred_conv' in .*m-symbol.json needs \(12, 24, 3, 3\); are these another model's params\?"),
    # another network altogether: the first of its parameters the symbol needs is missing
    (lambda: fake_params(ssd_models.vgg()),
     r"m-0000.params: parameter 'conv0_weight' \(input of Convolution 'conv0'\) of .*m-symbol.json is missing; are these "
     r"another model's params\?"),
    # every parameter right, and one more
    (lambda: dict(fake_params(ssd_models.tiny()), **{"arg:fc9_weight": np.zeros((4, 4), np.float32)}),
     r"m-0000.params: 'arg:fc9_weight' is not a parameter of .*m-symbol.json; are these another model's params\?"),
    # right names, a first convolution for grey (1-channel) images
    (lambda: dict(fake_params(ssd_models.tiny()), **{"arg:conv0_weight": np.zeros((16, 1, 3, 3), np.float32)}),
     r"m-0000.params: parameter 'conv0_weight' has shape \(16, 1, 3, 3\), but Convolution 'conv0' in .* needs "
     r"\(16, 3, 3, 3\); are these another model's params\?"),
], ids=["other classes", "other network", "extra parameter", "grey input"])
def test_deploy_refuses_another_models_params_naming_the_file_and_the_parameter(tmp_path, capsys, other, message):
    prefix = write_model(tmp_path, "m", ssd_models.tiny(), other())
    assert main(["convert", "deploy", prefix, "--output-dir", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert re.match("^roadedge: error: " + re.escape(str(tmp_path)) + "/" + message + "$", line), line
    assert not (tmp_path / "out").exists()


def test_a_failed_write_leaves_neither_file(tmp_path, monkeypatch):
    from converters import ssd_deploy

    training = ssd_models.tiny()
    deploy = to_deploy(training)

    def fail():
        raise RoadedgeError("symbol cannot be written")

    monkeypatch.setattr(deploy, "to_json", fail)
    with pytest.raises(RoadedgeError, match="symbol cannot be written"):
        ssd_deploy.write_deploy(deploy, fake_params(training), str(tmp_path), "m", 0)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("recipe,size", [("tiny", 64), ("resnet", 64), ("vgg", 64), ("sagemaker", 300)])
def test_param_shapes_agree_with_mxnet(tmp_path, recipe, size):
    """converters.ssd_deploy.expected_param_shapes (no MXNet, no input size) against MXNet's own shape inference."""
    require_mxnet()
    from converters.mxnet_forward import mxnet_param_shapes
    from converters.ssd_deploy import expected_param_shapes

    deploy = to_deploy(getattr(ssd_models, recipe)())
    (tmp_path / "d-symbol.json").write_text(deploy.to_json())
    mxnet = {name.split(":", 1)[1]: shape for name, shape in
             mxnet_param_shapes(str(tmp_path / "d-symbol.json"), (1, 3, size, size)).items()}
    ours = {name: shape for name, (shape, _) in expected_param_shapes(deploy).items()}
    assert set(ours) == set(mxnet)  # every parameter of these networks is checked, each with its full shape
    assert ours == mxnet
    assert ours == param_shapes(deploy)  # and the tests' own fake params have them too


def set_attr(path, op, key, value):
    """The symbol file with attribute `key` of every `op` node set to `value`."""
    data = json.loads(path.read_text())
    for node in data["nodes"]:
        if node["op"] == op:
            node.setdefault("attrs", {})[key] = value
    path.write_text(json.dumps(data))


def cut_nodes(path, keep_row_ptr):
    """The symbol file with its node list cut to 20 nodes (and node_row_ptr, arg_nodes dropped unless kept)."""
    data = json.loads(path.read_text())
    data["nodes"] = data["nodes"][:20]
    if not keep_row_ptr:
        del data["node_row_ptr"], data["arg_nodes"]
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("setup,message", [
    (lambda d: os.remove(d / "m-0000.params"), r"m-0000.params: params file \(check --epoch\) not found"),
    (lambda d: (d / "m-0000.params").write_bytes(b"\x12\x01" + bytes(20)), r"m-0000.params: truncated MXNet params file"),
    (lambda d: (d / "m-symbol.json").write_text('{"nodes": []}'), r"m-symbol.json: not an MXNet symbol file"),
    (lambda d: cut_nodes(d / "m-symbol.json", keep_row_ptr=True), r"m-symbol.json: node_row_ptr has \d+ entries for 20 nodes"),
    (lambda d: cut_nodes(d / "m-symbol.json", keep_row_ptr=False), r"m-symbol.json: head \d+ points past the end of the node "
                                                                    r"list \(20 nodes; cut short\?\)"),
    (lambda d: set_attr(d / "m-symbol.json", "Reshape", "shape", '(0, -1, "3")'),
     r"m-symbol.json: node '\w+': attribute shape='\(0, -1, \"3\"\)' is not a tuple of numbers"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, setup, message):
    training = ssd_models.tiny()
    prefix = write_model(tmp_path, "m", training, fake_params(training))
    setup(tmp_path)
    assert main(["convert", "deploy", prefix]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "deploy_m-symbol.json").exists()


@pytest.mark.parametrize("recipe,shape,head_scale", [("tiny", (1, 3, 64, 64), 0.1), ("vgg", (1, 3, 64, 64), 0.1),
                                                      ("sagemaker", (1, 3, 300, 300), 1e-3)])
def test_mxnet_runs_the_deploy_graph_exactly_like_the_training_graphs_own_detection_head(tmp_path, recipe, shape, head_scale):
    require_mxnet()
    from converters.mxnet_forward import mxnet_forward, mxnet_param_shapes

    training = getattr(ssd_models, recipe)()
    deploy = to_deploy(training)
    (tmp_path / "deploy-symbol.json").write_text(deploy.to_json())
    (tmp_path / "train-symbol.json").write_text(training.to_json())
    params = ssd_models.random_params(mxnet_param_shapes(str(tmp_path / "deploy-symbol.json"), shape), seed=1,
                                      head_scale=head_scale)
    (tmp_path / "m-0000.params").write_bytes(dumps_params(params))
    image = np.random.default_rng(2).uniform(0, 255, size=shape).astype(np.float32)
    detections = mxnet_forward(str(tmp_path / "deploy-symbol.json"), str(tmp_path / "m-0000.params"), {"data": image})[0]
    no_objects = -np.ones((1, 2, 5), np.float32)
    training_outputs = mxnet_forward(str(tmp_path / "train-symbol.json"), str(tmp_path / "m-0000.params"),
                                     {"data": image, "label": no_objects})
    assert len(training_outputs) == 4  # cls_prob, loc_loss, cls_label, det_out
    kept = detections[0][detections[0][:, 0] >= 0]
    assert len(kept) >= 10 and 0.05 <= kept[:, 1].max() < 0.99  # a real, unsaturated spread of detections
    np.testing.assert_array_equal(detections, training_outputs[3])
