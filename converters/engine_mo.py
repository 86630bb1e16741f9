"""The `mo` engine: OpenVINO's Model Optimizer (openvino-dev 2024.4, MXNet frontend) run in the MXNet venv.

`convert(symbol, params, (H, W), output_dir, name, precision)` writes
output_dir/NAME.xml + .bin. The command line (`mo_arguments`):

    <venv>/bin/mo --framework mxnet
        --input_model STAGE/model-0000.params --input_symbol STAGE/model-symbol.json
        --input data --input_shape [1,3,H,W]
        --output_dir STAGE/ir --model_name NAME
        --compress_to_fp16=False            (FP32; FP16: --compress_to_fp16=True)

What MO 2024.4 expects and does, as checked against MXNet 1.9.1 in
tests/test_engine_mo.py:

- File names: MO takes the epoch from the params file name (`PREFIX-NNNN.params`,
  "Input model name ... is not in an expected format, cannot extract iteration
  number" otherwise), so the files are staged (linked, else copied) as
  model-symbol.json / model-0000.params in a temporary folder.
- Precision: MO 2024.4 compresses weights to FP16 *by default*; FP32 has to say
  `--compress_to_fp16=False`. (`--data_type FP16` of older MOs is gone.) With
  FP16 the .bin holds f16 constants followed by Convert nodes; activations stay f32.
- Input: `--input data` keeps MXNet's `data` as the only Parameter, f32 NCHW
  [1,3,H,W]; no --mean_values / --scale_values / --reverse_input_channels, so
  nothing is folded in (checked on the written IR).
- Output: MultiBoxDetection becomes DetectionOutput with background_label_id=0
  and decrease_label_id=true (MXNet mode: one class per anchor, per-class NMS),
  output [1,1,K,7] rows [image_id, label, conf, x1, y1, x2, y2] ending with a
  row whose image_id is -1. The label EQUALS MXNet's class_id (0-based,
  background excluded): LABEL_OFFSET = 0. An IR whose DetectionOutput has
  decrease_label_id=false (Caffe mode) reports class_id + 1 (`ir_label_offset`).
- MO silently ignores some MXNet attributes, so those graphs are refused here
  (`unsupported_reasons`) rather than converted into an IR that disagrees with
  MXNet: MultiBoxDetection force_suppress=True (MO does per-class NMS only),
  MultiBoxDetection variances other than (0.1, 0.1, 0.2, 0.2) (MO hard-codes
  them in PriorBox), MultiBoxPrior steps or offsets that differ between y and x
  (MO keeps only the x value), and explicit MultiBoxPrior steps on a non-square
  input (MO turns the step into pixels with the input height for both axes;
  default steps, -1, and square inputs are right). The native engine handles
  all of these.
- `--legacy_mxnet_model` is passed only for symbols saved by MXNet < 1.0
  (their `mxnet_version` attribute); SageMaker's are 1.3+.
"""
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET

from converters.engine_common import check_engine_call
from roadedge.core.errors import RoadedgeError
from roadedge.core.mxnet_symbol import attr_bool, attr_tuple, load_symbol

LABEL_OFFSET = 0  # DetectionOutput label - MXNet class_id, for IRs this engine writes
STAGED_PREFIX = "model"
DEFAULT_VARIANCES = (0.1, 0.1, 0.2, 0.2)
TIMEOUT = 1800


def mo_arguments(symbol, params, input_shape, output_dir, name, precision="FP32", legacy=False):
    """The Model Optimizer command line after the executable."""
    height, width = input_shape
    args = ["--framework", "mxnet",
            "--input_model", params, "--input_symbol", symbol,
            "--input", "data", "--input_shape", "[1,3,{},{}]".format(int(height), int(width)),
            "--output_dir", output_dir, "--model_name", name,
            "--compress_to_fp16={}".format(precision == "FP16")]
    if legacy:
        args.append("--legacy_mxnet_model")
    return args


def unsupported_reasons(graph, input_shape=None):
    """What in a deploy graph MO would silently get wrong, one message per node; input_shape is (H, W)."""
    reasons = []
    for node in graph.nodes:
        if node.op == "_contrib_MultiBoxDetection":
            if attr_bool(node, "force_suppress", False):
                reasons.append("MultiBoxDetection node {!r} has force_suppress=True, which Model Optimizer ignores (its "
                               "DetectionOutput suppresses within each class only, so the IR would keep boxes MXNet "
                               "drops)".format(node.name))
            variances = attr_tuple(node, "variances", DEFAULT_VARIANCES)
            if tuple(round(v, 6) for v in variances) != DEFAULT_VARIANCES:
                reasons.append("MultiBoxDetection node {!r} has variances={}, which Model Optimizer ignores (it always "
                               "decodes with (0.1, 0.1, 0.2, 0.2))".format(node.name, node.attrs.get("variances")))
        elif node.op == "_contrib_MultiBoxPrior":
            steps = attr_tuple(node, "steps", (-1.0, -1.0))
            offsets = attr_tuple(node, "offsets", (0.5, 0.5))
            if len(offsets) == 2 and offsets[0] != offsets[1]:
                reasons.append("MultiBoxPrior node {!r} has offsets={} with different y and x values; Model Optimizer "
                               "keeps only the x value".format(node.name, node.attrs.get("offsets")))
            if len(steps) == 2 and steps[0] != steps[1]:
                reasons.append("MultiBoxPrior node {!r} has steps={} with different y and x values; Model Optimizer "
                               "keeps only the x value".format(node.name, node.attrs.get("steps")))
            elif steps[0] > 0 and input_shape is not None and input_shape[0] != input_shape[1]:
                reasons.append("MultiBoxPrior node {!r} has steps={} and the input is not square ({}x{}): Model "
                               "Optimizer scales the step by the input height along both axes, so the anchor centres "
                               "would be wrong across the width".format(node.name, node.attrs.get("steps"), *input_shape))
    return reasons


def _mxnet_version(graph):
    version = graph.extra.get("mxnet_version") if graph.extra else None
    if isinstance(version, (list, tuple)) and len(version) == 2:
        version = version[1]
    try:
        return int(version)
    except (TypeError, ValueError):
        return None


def mo_error_text(output):
    """MO's own error, one line: its '[ ERROR ]' lines without the FAQ pointers, else the last lines it printed."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.startswith("[ ERROR ]")), None)
    if start is None:
        chosen = [line for line in lines if not line.startswith(("[ INFO ]", "[ WARNING ]"))][-3:]
    else:
        chosen = [line for line in lines[start:] if not line.startswith(("For more information", "[ INFO ]"))]
    text = " ".join(line.replace("[ ERROR ]", "").strip() for line in chosen)
    text = re.sub(r"\s*For more information please refer to Model Conversion API FAQ.*?(\)|$)", "", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text or "no error message"


def _stage(path, folder, name):
    """`path` as folder/name (a symlink, else a copy)."""
    target = os.path.join(folder, name)
    try:
        os.symlink(os.path.abspath(path), target)
    except OSError:
        shutil.copyfile(path, target)
    return target


def _check_ir_input(xml_path, input_shape):
    """The IR must take MXNet's `data` unchanged: one f32 Parameter [1,3,H,W] named data."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as err:
        raise RoadedgeError("{}: Model Optimizer wrote an unreadable IR: {}".format(xml_path, err)) from None
    parameters = [layer for layer in root.iter("layer") if layer.get("type") == "Parameter"]
    expected = "1,3,{},{}".format(*input_shape)
    found = [(p.get("name"), (p.find("data").get("shape") or "").replace(" ", ""), p.find("data").get("element_type"))
             for p in parameters]
    if found != [("data", expected, "f32")]:
        raise RoadedgeError("{}: expected one f32 input 'data' [{}] in the IR, Model Optimizer wrote {}".format(
            xml_path, expected, found))


def convert(symbol_path, params_path, input_shape, output_dir, name, precision="FP32"):
    """Deploy graph (MXNet files) -> output_dir/NAME.xml + .bin with Model Optimizer; returns the .xml path."""
    from converters.mxnet_env import clean_env, mo_executable, venv_dir

    height, width = check_engine_call(symbol_path, params_path, input_shape, name, precision, tool="Model Optimizer")
    graph = load_symbol(symbol_path)
    if graph.find("data") is None or graph.nodes[graph.find("data")].op != "null":
        raise RoadedgeError("{}: the graph has no input named 'data' (Model Optimizer's MXNet frontend takes 'data' as "
                            "the input)".format(symbol_path))
    reasons = unsupported_reasons(graph, (height, width))
    if reasons:
        raise RoadedgeError("{}: {}; convert it with --engine native".format(symbol_path, "; ".join(reasons)))
    mo = mo_executable()
    if not os.path.isfile(mo):
        raise RoadedgeError("{}: no Model Optimizer (the mo engine runs OpenVINO's Model Optimizer from the MXNet "
                            "environment); create it with `roadedge convert setup-mo`".format(venv_dir()))
    version = _mxnet_version(graph)
    os.makedirs(output_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".mo-" + name + ".", dir=output_dir)
    try:
        staged_symbol = _stage(symbol_path, work, STAGED_PREFIX + "-symbol.json")
        staged_params = _stage(params_path, work, STAGED_PREFIX + "-0000.params")
        ir_dir = os.path.join(work, "ir")
        args = [mo] + mo_arguments(staged_symbol, staged_params, (height, width), ir_dir, name, precision,
                                   legacy=version is not None and version < 10000)
        try:
            result = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env=clean_env(), timeout=TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise RoadedgeError("Model Optimizer did not finish converting {} within {} s".format(
                symbol_path, TIMEOUT)) from None
        except OSError as err:
            raise RoadedgeError("cannot run {}: {}".format(mo, err.strerror or err)) from None
        output = result.stdout.decode("utf-8", "replace")
        xml, binary = os.path.join(ir_dir, name + ".xml"), os.path.join(ir_dir, name + ".bin")
        if result.returncode != 0:
            raise RoadedgeError("Model Optimizer failed on {}: {}".format(symbol_path, mo_error_text(output)))
        if not (os.path.isfile(xml) and os.path.isfile(binary)):
            raise RoadedgeError("Model Optimizer exited 0 but wrote no {}.xml/.bin: {}".format(name, mo_error_text(output)))
        _check_ir_input(xml, (height, width))
        final_xml = os.path.join(output_dir, name + ".xml")
        os.replace(binary, os.path.join(output_dir, name + ".bin"))
        os.replace(xml, final_xml)
        return final_xml
    finally:
        shutil.rmtree(work, ignore_errors=True)
