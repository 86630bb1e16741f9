"""MXNet's own forward speed on the benchmark's ResNet-50 SSD: the deploy graph (DetectionOutput included), batch 1, on
the CPU, in the isolated MXNet environment of `roadedge convert setup-mo`.

Host side, `mxnet_fps(tarball, size, seconds)` writes the SageMaker model's deploy symbol and params and runs this
file in the venv: `python _mxnet_fps.py SYMBOL PARAMS SIZE SECONDS` binds the symbol for (1, 3, SIZE, SIZE), runs 3
warm-up forwards, then forwards (each waited for: asnumpy) for SECONDS on one random input, and prints JSON.
"""
import json
import os
import sys
import tempfile
import time


def available():
    from converters.mxnet_env import venv_python

    return venv_python(required=False) is not None


def mxnet_fps(tarball, size, seconds):
    """{fps, forwards, seconds, median_ms, ...} of MXNet on the model at SIZE x SIZE; raises SystemExit on failure."""
    from converters.mxnet_env import run_in_venv
    from converters.ssd_deploy import to_deploy, write_deploy
    from roadedge.core.sagemaker_model import load_model

    model = load_model(tarball, 0)
    deploy = to_deploy(model.graph, nms=float(model.hyperparams.get("nms_threshold", 0.45)), topk=400)
    with tempfile.TemporaryDirectory(prefix="roadedge-bench-mx-") as tmp:
        symbol_path, params_path = write_deploy(deploy, model.params, tmp, "deploy", 0)
        result = run_in_venv([os.path.abspath(__file__), symbol_path, params_path, str(int(size)), str(float(seconds))],
                             timeout=600 + 4 * seconds)
    if result.returncode != 0:
        raise SystemExit("MXNet forward benchmark failed:\n" + result.stderr.decode(errors="replace")[-3000:])
    report = json.loads(result.stdout.decode().strip().splitlines()[-1])
    report["command"] = "MXNet {} simple_bind(data=(1, 3, {}, {})) forward(is_train=False), batch 1".format(
        report.pop("mxnet"), size, size)
    return report


def _main(symbol_path, params_path, size, seconds):  # runs inside the MXNet venv
    import mxnet as mx
    import numpy as np

    size, seconds = int(size), float(seconds)
    saved = mx.nd.load(params_path)
    started = time.perf_counter()
    executor = mx.sym.load(symbol_path).simple_bind(mx.cpu(), grad_req="null", data=(1, 3, size, size))
    for name, array in executor.arg_dict.items():
        if name != "data":
            saved["arg:" + name].copyto(array)
    for name, array in executor.aux_dict.items():
        saved["aux:" + name].copyto(array)
    executor.arg_dict["data"][:] = np.random.RandomState(0).uniform(-2, 2, (1, 3, size, size)).astype(np.float32)
    for _ in range(3):
        executor.forward(is_train=False)[0].asnumpy()
    bind_s = time.perf_counter() - started
    times = []
    begin = time.perf_counter()
    while time.perf_counter() - begin < seconds or len(times) < 3:
        t0 = time.perf_counter()
        executor.forward(is_train=False)[0].asnumpy()
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - begin
    print(json.dumps({"fps": round(len(times) / total, 2), "forwards": len(times), "seconds": round(total, 3),
                      "median_ms": round(float(np.median(times)) * 1000.0, 2), "bind_and_warmup_s": round(bind_s, 3),
                      "mxnet": mx.__version__, "omp_threads": os.environ.get("OMP_NUM_THREADS")}))


if __name__ == "__main__":
    _main(*sys.argv[1:5])
