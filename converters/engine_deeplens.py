"""The `deeplens` engine: the device's own model optimizer, `mo.optimize`, on an AWS DeepLens.

The API (AWS DeepLens Developer Guide, "Model Optimization (mo) Module" /
"mo.optimize Method" / "Optimize a Custom Model"):

    import mo
    error, model_path = mo.optimize(model_name, input_width, input_height, platform, aux_inputs)

- the model is read from `<--models-dir>/<model_name>-symbol.json` and
  `<model_name>-<epoch as %04d>.params` (default folder /opt/awscam/artifacts);
- input_width / input_height are pixels, each at most 1024;
- platform: 'mx' for MXNet (the default), 'Caffe', 'tf';
- aux_inputs (all optional): '--img-format' (default BGR), '--img-channels' (3),
  '--precision' (FP16 default; FP16, FP32, half, float), '--fuse' (ON/OFF),
  '--models-dir', '--output-dir' (both default /opt/awscam/artifacts), and for
  MXNet '--epoch' (0);
- the result is (error, model_path): error is falsy on success (the guide's
  codes: 0 success, 1 unsupported platform, 2 optimizer failed; on devices the
  optimizer's own error text also comes back in it), model_path the written
  .xml (on devices named like mxnet_<model_name>_FP16_FUSED.xml).

`convert` stages the deploy graph as NAME-symbol.json / NAME-0000.params in a
temporary models folder, points --models-dir and --output-dir at temporary
folders (so /opt/awscam/artifacts is left alone), and copies the .xml/.bin
that comes back to output_dir/NAME.xml/.bin. --img-format and --fuse are left
at the device's defaults, as every DeepLens sample does; the channel order and
mean the model expects are recorded by `convert optimize` in the model
metadata, not baked into the IR here.

The optimizer on DeepLens is Intel's Model Optimizer of its time; Intel's MXNet
MultiBoxDetection mapping has set decrease_label_id (label == MXNet class_id)
since at least 2018, but older IRs may report class_id + 1, so callers should
read the offset off the written IR with `roadedge.core.model_metadata.ir_label_offset` (`roadedge convert optimize` does).
"""
import importlib.util
import os
import shutil
import tempfile

from converters.engine_common import check_engine_call
from roadedge.core.errors import RoadedgeError

AWSCAM_ROOT = "/opt/awscam"
ARTIFACTS = "/opt/awscam/artifacts"
MAX_SIDE = 1024
PLATFORM = "mx"
ERROR_CODES = {1: "the requested platform is not supported", 2: "the model optimizer failed"}


def is_deeplens(root=AWSCAM_ROOT):
    """True on an AWS DeepLens: /opt/awscam exists and the device's `mo` and `awscam` modules can be imported."""
    if not os.path.isdir(root):
        return False
    try:
        return all(importlib.util.find_spec(module) is not None for module in ("mo", "awscam"))
    except (ImportError, ValueError):
        return False


def one_line(error):
    """The optimizer's error (an int code, text or bytes) as one line."""
    if isinstance(error, bytes):
        error = error.decode("utf-8", "replace")
    if isinstance(error, bool) or not isinstance(error, (int, str)):
        return repr(error)
    if isinstance(error, int):
        return "error code {} ({})".format(error, ERROR_CODES.get(error, "unknown code"))
    text = " ".join(error.split())  # all whitespace, newlines included, becomes single spaces
    return text or "empty error message"


def aux_inputs(models_dir, output_dir, precision, epoch=0):
    return {"--models-dir": models_dir, "--output-dir": output_dir, "--epoch": int(epoch),
            "--precision": precision}


def _copy_result(model_path, output_dir, name):
    xml = model_path if model_path.endswith(".xml") else model_path + ".xml"
    binary = xml[:-len(".xml")] + ".bin"
    for path in (xml, binary):
        if not os.path.isfile(path):
            raise RoadedgeError("the DeepLens model optimizer reported success but {} does not exist".format(path))
    os.makedirs(output_dir, exist_ok=True)
    final = {}
    for source, suffix in ((binary, ".bin"), (xml, ".xml")):  # the .xml last: its presence means the pair is complete
        target = os.path.join(output_dir, name + suffix)
        tmp = target + ".partial"
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        final[suffix] = target
    return final[".xml"]


def convert(symbol_path, params_path, input_shape, output_dir, name, precision="FP32"):
    """Deploy graph (MXNet files) -> output_dir/NAME.xml + .bin with DeepLens's mo.optimize; returns the .xml path."""
    height, width = check_engine_call(symbol_path, params_path, input_shape, name, precision, MAX_SIDE,
                                      "the DeepLens model optimizer")
    try:
        import mo
    except ImportError as err:
        raise RoadedgeError("the DeepLens model optimizer (Python module `mo`) cannot be imported ({}); the deeplens "
                            "engine runs on an AWS DeepLens, elsewhere use --engine native or mo".format(err)) from None
    if not callable(getattr(mo, "optimize", None)):
        raise RoadedgeError("{}: this `mo` module has no optimize(); it is not DeepLens's model optimizer".format(
            getattr(mo, "__file__", "mo")))
    with tempfile.TemporaryDirectory(prefix="roadedge-deeplens-") as work:
        models_dir, ir_dir = os.path.join(work, "models"), os.path.join(work, "ir")
        os.makedirs(models_dir)
        os.makedirs(ir_dir)
        shutil.copyfile(symbol_path, os.path.join(models_dir, name + "-symbol.json"))
        shutil.copyfile(params_path, os.path.join(models_dir, name + "-0000.params"))
        try:
            result = mo.optimize(name, width, height, PLATFORM, aux_inputs(models_dir, ir_dir, precision))
        except Exception as err:  # the device's optimizer is a black box; whatever it raises is its error
            raise RoadedgeError("the DeepLens model optimizer failed on {}: {}: {}".format(
                name, type(err).__name__, one_line(str(err)))) from None
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise RoadedgeError("mo.optimize returned {!r}; expected (error, model_path)".format(result))
        error, model_path = result
        if error:
            raise RoadedgeError("the DeepLens model optimizer failed on {}: {}".format(name, one_line(error)))
        if isinstance(model_path, bytes):
            model_path = model_path.decode("utf-8", "replace")
        if not model_path or not isinstance(model_path, str):
            raise RoadedgeError("mo.optimize reported success but returned no model path ({!r})".format(model_path))
        return _copy_result(model_path, output_dir, name)
