"""GluonCV's segmentation network in the MXNet environment: the reference forward pass and the mxnet engine's export.

Host side, `run_job(...)` writes a job (JSON) and runs
`python -m converters.gluoncv_seg.gluon_net JOB.json` in the venv (mxnet_env),
which builds the network, loads model_algo-1 (auxlayer.* ignored), and then
runs it on the given NCHW inputs (logits into an .npz) and/or hybridizes and
exports PREFIX-symbol.json + PREFIX-0000.params.

The network: GluonCV's own FCN / PSPNet / DeepLabV3 classes (pretrained_base
off, aux off, height/width = the input) for its backbones (resnet-50 ->
resnet50_v1s, resnet-101 -> resnet101_v1s); for a backbone of its own (a demo
model in the same structure), the same network is assembled from GluonCV's
parts (BasicBlockV1b / BottleneckV1b, _FCNHead, _PyramidPooling, _ASPPConv,
_AsppPooling) with the widths of the parameters (gluon_custom).
"""
import json
import os
import sys
import tempfile

import numpy as np

from roadedge.core.errors import RoadedgeError


def run_job(artefact, height, width, inputs=None, export_prefix=None, timeout=1800):
    """Host side. `inputs`: float32 [N, 3, H, W] (or None); returns the logits [N, C, H, W] (or None)."""
    from converters.mxnet_env import run_in_venv

    with tempfile.TemporaryDirectory(prefix="roadedge-gluon-") as tmp:
        params_path = os.path.join(tmp, "model_algo-1")
        with open(params_path, "wb") as handle:
            handle.write(artefact.params_bytes)
        job = {"algorithm": artefact.algorithm, "backbone": artefact.gluoncv_backbone, "num_classes": _classes(artefact),
               "height": int(height), "width": int(width), "params": params_path, "inputs": None,
               "outputs": os.path.join(tmp, "out.npz"), "export": export_prefix}
        if inputs is not None:
            job["inputs"] = os.path.join(tmp, "in.npz")
            np.savez(job["inputs"], data=np.asarray(inputs, np.float32))
        job_path = os.path.join(tmp, "job.json")
        with open(job_path, "w", encoding="utf-8") as handle:
            json.dump(job, handle)
        result = run_in_venv(["-m", "converters.gluoncv_seg.gluon_net", job_path], timeout=timeout)
        if result.returncode != 0:
            lines = [line for line in result.stderr.decode("utf-8", "replace").strip().splitlines() if line.strip()]
            raise RoadedgeError("{}: GluonCV could not build or run the {} network in the MXNet environment: {}".format(
                artefact.params_source, artefact.algorithm, lines[-1].strip() if lines else "no message"))
        if inputs is None:
            return None
        with np.load(job["outputs"]) as outputs:
            return outputs["logits"]


def _classes(artefact):
    shape = getattr(artefact.params.get("head.block.4.weight"), "shape", None)
    return int(shape[0]) if shape else int(artefact.num_classes or 0)


def build_network(job):  # runs inside the venv
    import mxnet as mx

    if job["backbone"]:
        from gluoncv.model_zoo.deeplabv3 import DeepLabV3
        from gluoncv.model_zoo.fcn import FCN
        from gluoncv.model_zoo.pspnet import PSPNet

        cls = {"fcn": FCN, "psp": PSPNet, "deeplab": DeepLabV3}[job["algorithm"]]
        stdout, sys.stdout = sys.stdout, sys.stderr  # PSPNet prints its crop size
        try:
            net = cls(job["num_classes"], backbone=job["backbone"], aux=False, pretrained_base=False,
                      crop_size=job["height"], height=job["height"], width=job["width"])
        finally:
            sys.stdout = stdout
    else:
        from converters.gluoncv_seg.gluon_custom import CustomSegNet

        shapes = {name: tuple(value.shape) for name, value in mx.nd.load(job["params"]).items()}
        net = CustomSegNet(job["algorithm"], shapes, job["height"], job["width"])
    net.load_parameters(job["params"], ctx=mx.cpu(), allow_missing=False, ignore_extra=True)
    return net


def _main(job_path):  # runs inside the venv
    import mxnet as mx

    with open(job_path, encoding="utf-8") as handle:
        job = json.load(handle)
    net = build_network(job)
    if job["inputs"]:
        with np.load(job["inputs"]) as data:
            images = data["data"]
        logits = [net(mx.nd.array(image[None]))[0].asnumpy() for image in images]
        np.savez(job["outputs"], logits=np.concatenate(logits, axis=0))
    if job["export"]:
        net.hybridize()
        net(mx.nd.zeros((1, 3, job["height"], job["width"])))
        net.export(job["export"], epoch=0)


if __name__ == "__main__":
    _main(sys.argv[1])
