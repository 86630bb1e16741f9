"""Deploy rewrite: structure, files, errors, and MXNet itself as the oracle (deploy forward == training det_out)."""
import json
import os
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


def fake_params(graph, seed=0):
    """Params whose values are irrelevant: one small array per variable except data and label."""
    rng = np.random.default_rng(seed)
    return {("aux:" if node.name.endswith(("moving_mean", "moving_var")) else "arg:") + node.name:
            rng.normal(size=(2,)).astype(np.float32)
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
