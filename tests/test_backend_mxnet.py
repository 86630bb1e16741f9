"""The optional MXNet backend, run by real MXNet (the isolated venv), against the OpenVINO backend on the IR our
converter makes from the same model: the same detections on the same frame."""
import contextlib
import io
import json
import os
import subprocess

import numpy as np

from converters.mxnet_env import venv_python
from edge.backends import openvino as openvino_backend
from edge.processing.geometry import Resize
from edge.tasks import detection
from roadedge.cli import main
from tests.mxnet_oracle import require_mxnet
from tests.ssd_models import write_random_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = """
import json, sys
import numpy as np
from edge.backends import mxnet as backend
from edge.processing.geometry import Resize
from edge.tasks import detection
options = {name: option.default for name, option in backend.OPTIONS.items()}
options.update(model=sys.argv[1], input_size=[96, 96])
opened = backend.open(options)
decode = detection.decoder(opened.model, {"min_score": 0.2, "class_thresholds": {}, "top_k": 0})
raw, _ = opened.collect(opened.submit(np.load(sys.argv[2])))
found = decode(raw, Resize((96, 96), opened.model.input_size))
print(json.dumps([[d.class_index, d.label, d.score, list(d.box)] for d in found]))
"""


def test_mxnet_backend_matches_the_openvino_backend(tmp_path):
    require_mxnet()
    prefix = write_random_model(str(tmp_path), "vgg", (1, 3, 96, 96), seed=3,
                                hyperparams={"num_classes": "2", "image_shape": "96", "class_names": '["D40", "D20"]'})
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["convert", "optimize", prefix, "--input-shape", "96", "96", "--output", str(tmp_path / "ir"),
                     "--engine", "native"]) == 0
    frame = np.random.default_rng(5).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    np.save(str(tmp_path / "frame.npy"), frame)
    result = subprocess.run([venv_python(), "-c", SCRIPT, prefix, str(tmp_path / "frame.npy")], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    theirs = json.loads(result.stdout.decode().strip().splitlines()[-1])
    options = {name: option.default for name, option in openvino_backend.OPTIONS.items()}
    options["model"] = str(tmp_path / "ir" / "model_algo_1.xml")
    backend = openvino_backend.open(options)
    decode = detection.decoder(backend.model, {"min_score": 0.2, "class_thresholds": {}, "top_k": 0})
    ours = decode(backend.infer(frame), Resize((96, 96), backend.model.input_size))
    assert len(theirs) >= 3 and len(ours) == len(theirs)
    unmatched = list(ours)
    for index, code, score, box in theirs:  # equal scores come in either order: match each row
        match = next((d for d in unmatched if (d.class_index, d.label) == (index, code) and abs(d.score - score) < 1e-3
                      and np.allclose(d.box, box, atol=1e-3)), None)
        assert match is not None, (index, code, score, box)
        unmatched.remove(match)


def test_without_mxnet_the_backend_says_what_to_do(tmp_path, capsys):
    try:
        import mxnet  # noqa: F401
    except ImportError:
        pass
    else:
        return  # MXNet is installed in this environment: nothing to check
    (tmp_path / "model.tar.gz").write_bytes(b"")
    settings = tmp_path / "mxnet.yaml"
    settings.write_text("backend:\n  type: mxnet\n  model: %s\n" % (tmp_path / "model.tar.gz"))
    assert main(["run", "--config", str(settings), "--no-preview"]) == 2
    err = capsys.readouterr().err
    assert "backend.type mxnet: MXNet is not installed" in err and "Traceback" not in err
