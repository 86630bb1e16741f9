"""The detectors `roadedge eval` and `roadedge convert quantize` run over a data set: an OpenVINO IR, or an MXNet SSD
in the isolated MXNet environment (all images in one process). Each gives, per image, rows of
[class id, score, x1, y1, x2, y2] in image pixels.
"""
import os
import sys

import numpy as np

from roadedge.core.errors import RoadedgeError


def to_pixels(rows, width, height):
    """Normalised rows -> boxes in image pixels, clipped to the image."""
    rows = np.array(rows, dtype=np.float64).reshape(-1, 6)
    rows[:, [2, 4]] = np.clip(rows[:, [2, 4]] * width, 0, width)
    rows[:, [3, 5]] = np.clip(rows[:, [3, 5]] * height, 0, height)
    return rows


class OpenVinoDetector:
    def __init__(self, xml_path, labels=None):
        from converters.verify import read_metadata

        if not xml_path.endswith(".xml") or not os.path.isfile(xml_path):
            raise RoadedgeError("{}: IR not found".format(xml_path))
        self.path = xml_path
        self.meta = read_metadata(xml_path)
        try:
            self.labels = list(self.meta["labels"])
            self.height, self.width = int(self.meta["input"]["height"]), int(self.meta["input"]["width"])
            self.preprocessing = dict(self.meta["preprocessing"])
            self.label_offset = int(self.meta.get("output", {}).get("label_offset", 0))
        except (KeyError, TypeError, ValueError) as err:
            raise RoadedgeError("{}: metadata field {} missing or invalid (rewrite it with `roadedge convert optimize`)".format(
                xml_path[:-4] + ".json", err)) from None
        if self.preprocessing.get("resize", "stretch") != "stretch":
            raise RoadedgeError("{}: preprocessing.resize {!r} is not supported (expected 'stretch')".format(
                xml_path[:-4] + ".json", self.preprocessing["resize"]))
        self.labels = _override_labels(self.labels, labels)
        self.compiled = None

    def network_input(self, frame):
        """The tensor the IR itself takes for a BGR frame (also what `convert quantize` calibrates with)."""
        import cv2

        from converters.verify import mxnet_input

        if self.preprocessing.get("embedded"):
            return frame[None]  # the IR resizes, reorders and normalises BGR uint8 frames itself
        resized = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        return mxnet_input(resized, self.preprocessing)

    def detect_all(self, images, min_score, progress=None):
        from converters.verify import openvino_rows
        from roadedge.core.openvino_core import shared_core

        core = shared_core()
        self.compiled = core.compile_model(core.read_model(self.path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        request = self.compiled.create_infer_request()
        output = self.compiled.outputs[0]
        results = []
        for image in progress(images) if progress else images:
            frame = image.read()
            height, width = frame.shape[:2]
            raw = request.infer({0: self.network_input(frame)})[output]
            results.append(to_pixels(openvino_rows(raw, min_score, self.label_offset), width, height))
        return results


class MXNetDetector:
    """An MXNet SSD run by real MXNet in the isolated environment: one process, the model bound once."""

    def __init__(self, path, labels=None, input_shape=None, epoch=0):
        from converters.ssd_deploy import num_classes, to_deploy
        from roadedge.core.model_metadata import default_preprocessing, hyperparams_input_size, labels_for
        from roadedge.core.sagemaker_model import load_model

        self.path = path
        self.model = load_model(path, epoch)
        hyper = self.model.hyperparams
        self.deploy = to_deploy(self.model.graph, nms=float(hyper.get("nms_threshold", 0.45)), topk=400)
        head = self.deploy.nodes[self.deploy.heads[0][0]]
        classes = num_classes(self.deploy, head.inputs[0]) if head.inputs else None
        self.labels = _override_labels(labels_for(classes or 0, None, hyper), labels)
        if input_shape is None:
            width, height = hyperparams_input_size(hyper) or (300, 300)
            input_shape = (height, width)
        self.height, self.width = input_shape
        if not (0 < self.height <= 4096 and 0 < self.width <= 4096):
            raise RoadedgeError("--input-shape {} {}: expected a height and width in 1..4096".format(*input_shape))
        self.preprocessing = default_preprocessing(self.deploy)

    def detect_all(self, images, min_score, progress=None, batch=8):
        import tempfile

        import cv2

        from converters.mxnet_env import run_in_venv, venv_python
        from converters.ssd_deploy import write_deploy
        from converters.verify import mxnet_input

        venv_python()  # a clear error when the environment is missing
        with tempfile.TemporaryDirectory(prefix="roadedge-eval-") as tmp:
            symbol_path, params_path = write_deploy(self.deploy, self.model.params, tmp, self.model.name, 0)
            inputs_path, out_path = os.path.join(tmp, "inputs.npy"), os.path.join(tmp, "rows.npy")
            inputs = np.lib.format.open_memmap(inputs_path, mode="w+", dtype=np.float32,
                                               shape=(len(images), 3, self.height, self.width))
            sizes = []
            for index, image in enumerate(progress(images) if progress else images):
                frame = image.read()
                sizes.append(frame.shape[1::-1])
                resized = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
                inputs[index] = mxnet_input(resized, self.preprocessing)[0]
            inputs.flush()
            del inputs
            result = run_in_venv(["-m", "training.detectors", "--mxnet-worker", symbol_path, params_path, inputs_path,
                                  out_path, repr(float(min_score)), str(batch)])
            if result.returncode != 0:
                lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
                raise RoadedgeError("MXNet run of {} failed: {}".format(self.path, lines[-1] if lines else "no message"))
            rows = np.load(out_path)
        return [to_pixels(rows[rows[:, 0] == index, 1:], width, height) for index, (width, height) in enumerate(sizes)]


def _mxnet_worker(symbol_path, params_path, inputs_path, out_path, min_score, batch):  # runs inside the MXNet venv
    import mxnet as mx

    inputs = np.load(inputs_path, mmap_mode="r")
    batch = max(1, min(int(batch), len(inputs)))
    saved = mx.nd.load(params_path)
    executor = mx.sym.load(symbol_path).simple_bind(mx.cpu(), grad_req="null", data=(batch,) + inputs.shape[1:])
    for name, array in executor.arg_dict.items():
        if name != "data":
            saved["arg:" + name].copyto(array)
    for name, array in executor.aux_dict.items():
        saved["aux:" + name].copyto(array)
    found = [np.zeros((0, 7), np.float32)]
    for start in range(0, len(inputs), batch):
        chunk = np.zeros((batch,) + inputs.shape[1:], np.float32)
        count = min(batch, len(inputs) - start)
        chunk[:count] = inputs[start:start + count]
        executor.arg_dict["data"][:] = chunk
        out = executor.forward(is_train=False)[0].asnumpy()
        for offset in range(count):
            rows = out[offset]
            rows = rows[(rows[:, 0] >= 0) & (rows[:, 1] >= float(min_score))]
            found.append(np.column_stack([np.full(len(rows), start + offset, np.float32), rows]))
    np.save(out_path, np.concatenate(found).astype(np.float32))


def _override_labels(labels, spec):
    if spec is None:
        return list(labels)
    from converters.classmap import read_name_list

    names = read_name_list(spec)
    if len(names) != len(labels):
        raise RoadedgeError("--labels: {} names given, the model predicts {} classes".format(len(names), len(labels)))
    return names


def open_detector(model_path, labels=None, input_shape=None, epoch=0):
    if model_path.endswith(".xml"):
        return OpenVinoDetector(model_path, labels)
    if input_shape is None and os.path.isfile(model_path + ".xml"):
        return OpenVinoDetector(model_path + ".xml", labels)
    return MXNetDetector(model_path, labels, input_shape, epoch)


if __name__ == "__main__" and len(sys.argv) == 8 and sys.argv[1] == "--mxnet-worker":
    _mxnet_worker(*sys.argv[2:])
