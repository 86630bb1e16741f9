"""training/multibox_targets.py computes what MXNet's MultiBoxTarget computes: checked against the real operator
in the MXNet environment, and on cases small enough to work out by hand."""
import json
import os
import subprocess

import numpy as np

from converters.mxnet_env import venv_python
from tests.mxnet_oracle import require_mxnet
from training.multibox_targets import encode, lowest, multibox_targets, overlaps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ORACLE = r"""
import json, sys
import numpy as np
import mxnet as mx
from training.multibox_targets import multibox_targets
from training.mx_target_op import register, swap_targets
from training.network import ssd_symbol
from training.mx_train import make_initializer

rng = np.random.default_rng(int(sys.argv[1]))
report = {"cases": 0, "mismatches": [], "positives": 0, "negatives": 0}
maps = [mx.nd.contrib.MultiBoxPrior(mx.nd.zeros((1, 4, n, n)), sizes=[s], ratios=[1, 2, 0.5, 4])
        for s, n in ((0.05, 24), (0.1, 12), (0.3, 6))]
anchors = mx.nd.concat(*[m.reshape((-1, 4)) for m in maps], dim=0).reshape((1, -1, 4))
count = anchors.shape[1]


def random_labels(batch, rows):
    labels = np.full((batch, rows, 5), -1, np.float32)
    for b in range(batch):
        n = int(rng.integers(0, rows + 1))  # some images without any label
        corner = rng.uniform(0, 0.9, (n, 2)).astype(np.float32)
        size = rng.uniform(0.01, 0.5, (n, 2)).astype(np.float32)
        labels[b, :n, 0] = rng.integers(0, 6, n)
        labels[b, :n, 1:3], labels[b, :n, 3:5] = corner, np.minimum(corner + size, 1)
    return labels


for threshold, ratio in ((0.5, 3.0), (0.5, -1.0), (0.3, 2.5), (0.0, 500.0)):  # 0: bipartite matches only; most of the rest mined
    for trial in range(4):
        labels = random_labels(8, int(rng.integers(1, 6)))
        preds = rng.normal(0, 2, (8, 7, count)).astype(np.float32)
        options = dict(overlap_threshold=threshold, ignore_label=-1, negative_mining_ratio=ratio,
                       negative_mining_thresh=0.5, variances=(0.1, 0.1, 0.2, 0.2))
        expected = [o.asnumpy() for o in mx.nd.contrib.MultiBoxTarget(
            anchors, mx.nd.array(labels), mx.nd.array(preds), minimum_negative_samples=0, **options)]
        got = multibox_targets(anchors.asnumpy(), labels, preds, **options)
        report["cases"] += 1
        report["positives"] += int((expected[2] > 0).sum())
        report["negatives"] += int((expected[2] == 0).sum())
        if not (np.array_equal(expected[2], got[2]) and np.array_equal(expected[1], got[1])
                and np.allclose(expected[0], got[0], rtol=1e-5, atol=1e-6)):
            report["mismatches"].append([threshold, ratio, trial, int((expected[2] != got[2]).sum())])

# the training graph with the custom operator gives the original graph's outputs and, after one SGD step, weights
graph = ssd_symbol(6, "tiny")
graph_labels = random_labels(4, 3)
graph_labels[0, 0] = [1, 0.2, 0.2, 0.6, 0.5]  # at least one box
data = rng.uniform(0, 255, (4, 3, 128, 128)).astype(np.float32)
results = {}
register(mx)
for name, text in (("mxnet", graph.to_json()), ("numpy", swap_targets(graph.to_json()))):
    training = mx.sym.load_json(text)
    module = mx.mod.Module(mx.sym.Group([training[0], training[1], training[2]]), data_names=["data"],
                           label_names=["label"], context=mx.cpu())
    module.bind(data_shapes=[("data", (4, 3, 128, 128))], label_shapes=[("label", (4, 3, 5))])
    mx.random.seed(3)
    module.init_params(make_initializer(mx))
    module.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.1})
    module.forward(mx.io.DataBatch([mx.nd.array(data)], [mx.nd.array(graph_labels)]), is_train=True)
    results[name] = [o.asnumpy() for o in module.get_outputs()]
    module.backward()
    module.update()
    results[name] += [v.asnumpy() for _, v in sorted(module.get_params()[0].items())]
report["graph_ops"] = sorted({n["op"] for n in json.loads(swap_targets(graph.to_json()))["nodes"]} - {"null"})
report["graph_equal"] = len(results["mxnet"]) > 20 and all(
    np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(results["mxnet"], results["numpy"]))
report["graph_positives"] = int((results["mxnet"][2] > 0).sum())
print(json.dumps(report))
"""


def test_the_targets_equal_mxnets_multibox_target_and_so_does_the_training_graph():
    require_mxnet()
    result = subprocess.run([venv_python(), "-c", ORACLE, "11"], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    report = json.loads(result.stdout.decode().strip().splitlines()[-1])
    assert report["cases"] == 16 and report["mismatches"] == []
    assert report["positives"] > 100 and report["negatives"] > 300  # the cases exercise matching and mining
    assert "Custom" in report["graph_ops"] and "_contrib_MultiBoxTarget" not in report["graph_ops"]
    assert report["graph_equal"] and report["graph_positives"] > 0


def test_a_box_equal_to_an_anchor_is_its_positive_with_zero_offsets():
    anchors = np.array([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.9], [0.0, 0.0, 0.05, 0.05]], np.float32)
    labels = np.array([[[2, 0.5, 0.5, 0.9, 0.9], [-1, -1, -1, -1, -1]]], np.float32)
    preds = np.zeros((1, 3, 3), np.float32)
    loc, mask, cls = multibox_targets(anchors, labels, preds, negative_mining_ratio=-1)
    assert cls.tolist() == [[0, 3, 0]]  # class 2 + 1; without mining every other anchor is a negative
    assert mask.reshape(3, 4).tolist() == [[0] * 4, [1] * 4, [0] * 4]
    assert np.allclose(loc.reshape(3, 4)[1], 0) and not loc.reshape(3, 4)[[0, 2]].any()


def test_mining_keeps_three_negatives_per_positive_with_the_lowest_background_probability():
    anchors = np.array([[i / 10.0, 0, i / 10.0 + 0.1, 0.1] for i in range(9)], np.float32)
    labels = np.array([[[0, 0.0, 0.0, 0.1, 0.1]]], np.float32)  # exactly anchor 0
    background = np.array([0, 5, -1, 4, -2, 3, -3, 2, 1], np.float32)  # logit of class 0; class 1's logit is 0
    preds = np.stack([background, np.zeros(9, np.float32)])[None]
    _, _, cls = multibox_targets(anchors, labels, preds, negative_mining_ratio=3)
    assert cls[0, 0] == 1
    assert sorted(np.flatnonzero(cls[0] == 0).tolist()) == [2, 4, 6]  # the three most confident non-background
    assert (cls[0, [1, 3, 5, 7, 8]] == -1).all()


def test_an_image_without_labels_is_ignored_whole():
    anchors = np.array([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], np.float32)
    labels = np.full((2, 2, 5), -1, np.float32)
    labels[1, 0] = [1, 0, 0, 0.5, 0.5]
    loc, mask, cls = multibox_targets(anchors, labels, np.zeros((2, 2, 2), np.float32), negative_mining_ratio=3)
    assert cls[0].tolist() == [-1, -1] and not mask[0].any() and not loc[0].any()
    assert cls[1].tolist() == [2, 0]


def test_overlaps_and_encoding():
    anchors = np.array([[0, 0, 2, 2], [1, 1, 3, 3]], np.float32)
    iou = overlaps(anchors, np.array([[1, 1, 3, 3], [5, 5, 6, 6]], np.float32))
    assert np.allclose(iou, [[1 / 7.0, 0], [1, 0]])
    box = np.array([[1, 1, 5, 3]], np.float32)  # centre (3, 2) against (1, 1) of a 2x2 anchor; twice as wide, as high
    assert np.allclose(encode(anchors[1:] - 1, box, (0.1, 0.1, 0.2, 0.2)), [[1 / 0.1, 0.5 / 0.1, np.log(2) / 0.2, 0]])


def test_lowest_is_a_stable_sorts_first_entries():
    rng = np.random.default_rng(5)
    for size, count in ((50, 7), (50, 0), (50, 50), (50, 80), (1000, 120)):
        values = rng.integers(0, 6, size).astype(np.float32)  # many ties
        index = rng.permutation(size) + 1000
        expected = index[np.argsort(values, kind="stable")[:count]]
        assert sorted(lowest(values, index, count).tolist()) == sorted(expected.tolist())
