"""Stand-in for AWS DeepLens's `mo` module, the device's model optimizer, for tests off the device.

The API it reproduces is the one AWS documents in the AWS DeepLens Developer
Guide (github.com/awsdocs/aws-deeplens-user-guide, doc_source/
deeplens-model-optimizer-api-functions_and_objects.md, deeplens-model-optimizer-
api-methods.md and deeplens-optimize-model.md) and that DeepLens samples call:

    error, model_path = mo.optimize(model_name, input_width, input_height, platform, aux_inputs)

- model_name: str; the model is read from <--models-dir>/<model_name>-symbol.json
  and <model_name>-<epoch %04d>.params (MXNet; default folder /opt/awscam/artifacts)
- input_width, input_height: ints, at most 1024
- platform: optional, 'mx' (MXNet, the default), 'Caffe' or 'tf'
- aux_inputs: optional dict: '--img-format' (BGR), '--img-channels' (3),
  '--precision' (FP16; FP16/FP32/half/float), '--fuse' (ON/OFF), '--models-dir',
  '--output-dir' (both /opt/awscam/artifacts), MXNet: '--epoch' (0)
- returns (error, model_path): error 0 and the .xml path on success; on failure
  a non-zero code (the guide: 1 unsupported platform, 2 optimizer failed) or
  the optimizer's error text, and no path.

Like the device, which wraps Intel's Model Optimizer, this stand-in really
converts: with OpenVINO's Model Optimizer from the MXNet environment
(converters.engine_mo), and names the result as devices do
(mxnet_<model_name>_<precision>_FUSED.xml). Tests read `calls` (one dict per
call, with the models folder's listing at call time) and set `next_error` to
make the next call fail with that value. `reset()` clears both.
"""
import os

ARTIFACTS = "/opt/awscam/artifacts"
PLATFORMS = ("mx", "Caffe", "tf")
PRECISIONS = {"FP16": "FP16", "half": "FP16", "FP32": "FP32", "float": "FP32"}

calls = []
next_error = None


def reset():
    global next_error
    del calls[:]
    next_error = None


def optimize(model_name, input_width, input_height, platform="mx", aux_inputs=None):
    global next_error
    aux = dict(aux_inputs or {})
    models_dir = aux.get("--models-dir", ARTIFACTS)
    output_dir = aux.get("--output-dir", ARTIFACTS)
    calls.append({"model_name": model_name, "input_width": input_width, "input_height": input_height,
                  "platform": platform, "aux_inputs": aux,
                  "models_dir_listing": sorted(os.listdir(models_dir)) if os.path.isdir(models_dir) else None})
    if next_error is not None:
        error, next_error = next_error, None
        return error, ""
    if platform not in PLATFORMS:
        return 1, ""
    if platform != "mx":
        return "[ ERROR ] this stand-in converts MXNet models only (platform 'mx')", ""
    for value in (input_width, input_height):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 1024:
            return "[ ERROR ] input_width and input_height must be integers from 1 to 1024", ""
    precision = PRECISIONS.get(aux.get("--precision", "FP16"))
    if precision is None:
        return "[ ERROR ] Data type is unsupported: {}".format(aux.get("--precision")), ""
    epoch = int(aux.get("--epoch", 0))
    symbol = os.path.join(models_dir, model_name + "-symbol.json")
    params = os.path.join(models_dir, "%s-%04d.params" % (model_name, epoch))
    for path in (symbol, params):
        if not os.path.isfile(path):
            return "[ ERROR ] The following error happened while loading mxnet model {}: no such file".format(path), ""
    fused = "FUSED" if str(aux.get("--fuse", "ON")).upper() == "ON" else "UNFUSED"
    ir_name = "mxnet_{}_{}_{}".format(model_name, precision, fused)
    from converters import engine_mo
    from roadedge.core.errors import RoadedgeError

    try:
        xml = engine_mo.convert(symbol, params, (input_height, input_width), output_dir, ir_name, precision)
    except RoadedgeError as err:
        return "[ ERROR ] " + str(err), ""
    return 0, xml
