"""Forward passes through real MXNet, the oracle conversions are checked against.

Host side, `mxnet_forward(symbol_path, params_path, inputs)` runs this
module inside the isolated MXNet environment (see mxnet_env) and returns the
graph's outputs as numpy arrays. Inside the venv, `python -m
converters.mxnet_forward SYMBOL PARAMS IN.npz OUT.npz` binds the symbol on
the CPU with the params and the inputs' shapes and runs it in inference mode.
"""
import os
import sys
import tempfile

import numpy as np

from roadedge.core.errors import RoadedgeError


def mxnet_forward(symbol_path, params_path, inputs, timeout=1800):
    """`inputs`: {name: array}. Returns the list of output arrays (float32 as MXNet computed them)."""
    from converters.mxnet_env import run_in_venv

    with tempfile.TemporaryDirectory(prefix="roadedge-mx-") as tmp:
        in_path, out_path = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(in_path, **{name: np.asarray(value) for name, value in inputs.items()})
        result = run_in_venv(["-m", "converters.mxnet_forward", symbol_path, params_path, in_path, out_path], timeout=timeout)
        if result.returncode != 0:
            lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
            raise RoadedgeError("MXNet forward of {} failed: {}".format(symbol_path, lines[-1] if lines else "no message"))
        with np.load(out_path) as outputs:
            return [outputs["output%d" % i] for i in range(len(outputs.files))]


def mxnet_param_shapes(symbol_path, data_shape, timeout=600):
    """{'arg:NAME': shape, 'aux:NAME': shape} for every parameter, as MXNet infers them from the data shape."""
    import json

    from converters.mxnet_env import run_in_venv

    shape = ",".join(str(int(v)) for v in data_shape)
    result = run_in_venv(["-m", "converters.mxnet_forward", "--shapes", symbol_path, shape], timeout=timeout)
    if result.returncode != 0:
        lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RoadedgeError("MXNet shape inference of {} failed: {}".format(symbol_path, lines[-1] if lines else "no message"))
    return {name: tuple(value) for name, value in json.loads(result.stdout.decode("utf-8").splitlines()[-1]).items()}


def _shapes(symbol_path, shape_text):  # runs inside the MXNet venv
    import json

    import mxnet as mx

    symbol = mx.sym.load(symbol_path)
    args, _, aux = symbol.infer_shape(data=tuple(int(v) for v in shape_text.split(",")))
    shapes = {"arg:" + n: s for n, s in zip(symbol.list_arguments(), args) if n != "data"}
    shapes.update({"aux:" + n: s for n, s in zip(symbol.list_auxiliary_states(), aux)})
    print(json.dumps(shapes, allow_nan=False))


def _main(symbol_path, params_path, in_path, out_path):  # runs inside the MXNet venv
    import mxnet as mx

    symbol = mx.sym.load(symbol_path)
    saved = mx.nd.load(params_path)
    args = {k[4:]: v for k, v in saved.items() if k.startswith("arg:")}
    aux = {k[4:]: v for k, v in saved.items() if k.startswith("aux:")}
    with np.load(in_path) as data:
        feeds = {name: mx.nd.array(data[name], dtype=data[name].dtype) for name in data.files}
    shapes = {name: value.shape for name, value in feeds.items()}
    executor = symbol.simple_bind(mx.cpu(), grad_req="null", **shapes)
    for name, array in executor.arg_dict.items():
        if name in feeds:
            feeds[name].copyto(array)
        elif name in args:
            args[name].copyto(array)
        else:
            raise SystemExit("argument {} has no value in the params or inputs".format(name))
    for name, array in executor.aux_dict.items():
        aux[name].copyto(array)
    outputs = executor.forward(is_train=False)
    np.savez(out_path, **{"output%d" % i: out.asnumpy() for i, out in enumerate(outputs)})


if __name__ == "__main__":
    if sys.argv[1] == "--shapes":
        _shapes(*sys.argv[2:4])
    else:
        _main(*sys.argv[1:5])
