"""`roadedge convert ...`: SageMaker SSD -> deploy symbol -> OpenVINO IR, and checks against MXNet."""
import argparse
import importlib
import importlib.util

from roadedge.core.commands import lazy_handler


def register(subparsers):
    convert = subparsers.add_parser(
        "convert",
        help="convert a SageMaker SSD to a deploy graph and an OpenVINO IR",
        description="Turn a SageMaker object-detection model (training symbol + params, or model.tar.gz) into "
        "an MXNet deploy graph and an OpenVINO IR, and check the IR against MXNet.",
    )
    commands = convert.add_subparsers(dest="convert_command", metavar="SUBCOMMAND")
    commands.required = True
    convert.roadedge_subcommands = commands  # for add_subcommand: higher layers (training) add theirs here
    for module, add in (("converters.ssd_deploy", _register_deploy), ("converters.optimize", _register_optimize),
                        ("converters.mxnet_env", _register_setup_mo), ("converters.verify", _register_verify)):
        if importlib.util.find_spec(module) is not None:  # a subcommand appears once its module exists
            add(commands)


def add_subcommand(subparsers, name, **kwargs):
    """Add `roadedge convert NAME` from a module of a higher layer (training's `quantize` needs the evaluator, which
    converters may not import); the `convert` command must be registered first (COMMAND_MODULES' order)."""
    convert = subparsers.choices.get("convert")
    if convert is None or not hasattr(convert, "roadedge_subcommands"):
        raise RuntimeError("`roadedge convert` is not registered yet: list converters.convert_command first")
    return convert.roadedge_subcommands.add_parser(name, **kwargs)


def _register_deploy(commands):
    p = commands.add_parser(
        "deploy",
        help="training symbol -> deploy symbol (what MXNet's example/ssd deploy.py does)",
        description="Drop the training heads (MultiBoxTarget, SoftmaxOutput, smooth_l1, MakeLoss), add a channel "
        "softmax (SoftmaxActivation mode=channel) and MultiBoxDetection, keep every learned parameter, and write "
        "deploy_PREFIX-symbol.json and deploy_PREFIX-EPOCH.params. A deploy graph is passed through unchanged.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("prefix", metavar="PREFIX", help="model prefix (PREFIX-symbol.json, PREFIX-EPOCH.params) or model.tar.gz")
    p.add_argument("--epoch", type=int, default=0, help="params epoch")
    p.add_argument("--num-class", type=int, default=None, help="number of object classes (default: from the graph)")
    p.add_argument("--data-shape", type=int, default=None, help="input size, checked against hyperparams.json if given")
    p.add_argument("--nms", type=float, default=0.45, help="NMS IoU threshold")
    p.add_argument("--topk", type=int, default=400, help="detections kept before NMS (nms_topk)")
    p.add_argument("--force-suppress", action="store_true", help="suppress across classes")
    p.add_argument("--output-dir", default=None, help="where to write (default: beside PREFIX)")
    p.set_defaults(handler=lazy_handler("converters.ssd_deploy", "deploy_command"))


def _register_optimize(commands):
    p = commands.add_parser(
        "optimize",
        help="MXNet SSD or SageMaker segmentation model -> OpenVINO IR (.xml/.bin/.json)",
        description="Convert a training prefix, deploy prefix or SageMaker model.tar.gz to an OpenVINO IR. "
        "Engines: native (this project's converter, no MXNet or MO needed), mo (OpenVINO's Model Optimizer in "
        "the isolated MXNet environment), deeplens (mo.optimize on the device); auto picks deeplens on a "
        "DeepLens, else native. A SageMaker semantic-segmentation model (model.tar.gz or a folder with "
        "hyperparams.json and model_algo-1: GluonCV FCN, PSPNet or DeepLabV3) converts with native or mxnet "
        "(GluonCV in the MXNet environment exports the network); its input size defaults to crop_size.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", metavar="PREFIX_OR_TARBALL")
    p.add_argument("--input-shape", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="input height and width (required for detection; segmentation: default crop_size)")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="output folder for NAME.xml/.bin/.json")
    p.add_argument("--engine", choices=("auto", "deeplens", "mo", "native", "mxnet"), default="auto",
                   help="mxnet: segmentation models only")
    p.add_argument("--argmax", action="store_true",
                   help="segmentation: fold the class argmax into the IR (output: an int32 [1, 1, H, W] mask)")
    p.add_argument("--precision", choices=("FP32", "FP16"), default="FP32", help="weight precision in the IR")
    p.add_argument("--epoch", type=int, default=0)
    p.add_argument("--name", default=None, help="IR file name (default: from the model)")
    p.add_argument("--labels", default=None, help="class names, comma-separated or a file (default: hyperparams.json)")
    p.add_argument("--embed-preprocessing", action="store_true",
                   help="fold resize, colour order, mean and scale into the IR (input: BGR uint8 NHWC frames)")
    p.add_argument("--package", action="store_true", help="also write DIR/model.tar.gz with the IR pair")
    p.add_argument("--nms", type=float, default=0.45)
    p.add_argument("--topk", type=int, default=400)
    p.add_argument("--force-suppress", action="store_true")
    p.set_defaults(handler=lazy_handler("converters.optimize", "optimize_command"))


def _register_setup_mo(commands):
    p = commands.add_parser(
        "setup-mo",
        help="create the isolated MXNet + Model Optimizer environment",
        description="Create (or reuse) a virtual environment with mxnet 1.9.1, numpy 1.23.5, openvino-dev "
        "2024.4 (Model Optimizer with its MXNet frontend) and gluoncv 0.10.5.post0, used by --engine mo and mxnet "
        "and by `convert verify`. An environment whose packages already satisfy every pin is adopted. "
        "Location: $ROADEDGE_MXNET_VENV or ~/.cache/roadedge/mxnet-venv.",
    )
    p.add_argument("--recreate", action="store_true", help="delete and rebuild the environment")
    p.set_defaults(handler=lazy_handler("converters.mxnet_env", "setup_command"))


def _register_verify(commands):
    p = commands.add_parser(
        "verify",
        help="run MXNet and OpenVINO on the same input and compare detections or masks",
        description="Run the MXNet deploy graph (in the isolated MXNet environment) and the IR at f32 on the same "
        "image and report matched detections and the largest box and score differences; exit 1 on mismatch. For a "
        "SageMaker segmentation model, GluonCV's network runs instead, and the per-pixel argmax agreement and the "
        "largest logit difference (relative to the logits' range) are reported; exit 1 below --min-agreement.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL_PREFIX", help="MXNet prefix (training or deploy) or model.tar.gz")
    p.add_argument("ir", metavar="IR_XML")
    p.add_argument("--epoch", type=int, default=0)
    p.add_argument("--image", action="append", default=None,
                   help="input image (default: a seeded synthetic road frame); segmentation: may be repeated")
    p.add_argument("--min-agreement", type=float, default=0.999,
                   help="segmentation: the share of pixels whose class must agree")
    p.add_argument("--min-score", type=float, default=0.05, help="detections compared")
    p.add_argument("--tolerance", type=float, default=1e-3, help="largest allowed box/score difference")
    p.set_defaults(handler=lazy_handler("converters.verify", "verify_command"))

