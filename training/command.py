"""`roadedge train` (the demo model's recipe) and `roadedge eval` (detection metrics), each appearing once its module exists."""
import argparse
import importlib
import importlib.util

from roadedge.core.commands import lazy_handler


def register(subparsers):
    if importlib.util.find_spec("training.recipe") is not None:
        _register_train(subparsers)
    if importlib.util.find_spec("training.evaluate") is not None:
        _register_eval(subparsers)


def _register_train(subparsers):
    p = subparsers.add_parser(
        "train",
        help="train a demo model (road-damage SSD, or --task segmentation) the way SageMaker does, then convert and "
        "bundle it",
        description="The whole recipe in one command: render a synthetic road-damage set (roadedge synth), convert "
        "it to SageMaker channels (roadedge dataset convert), train an MXNet SSD with SageMaker's graph structure in "
        "the isolated MXNet environment, pack SageMaker's model.tar.gz, convert it (roadedge convert deploy + "
        "optimize --engine native) and evaluate it on a set rendered with another seed. With --task segmentation: "
        "the same for a GluonCV FCN on a small dilated ResNetV1b saved as SageMaker's semantic segmentation saves "
        "it (roadedge synth --segmentation, dataset convert-seg, convert optimize + verify, eval).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.set_defaults(handler=lazy_handler("training.recipe", "train_command"))
    importlib.import_module("training.recipe").add_arguments(p)


def _register_eval(subparsers):
    p = subparsers.add_parser(
        "eval",
        help="detection: per-class AP and COCO mAP; segmentation: mIoU, per-class IoU, pixel accuracy",
        description="Run an OpenVINO IR (with its metadata JSON) or an MXNet prefix over a VOC-XML folder or a "
        "SageMaker object-detection folder and print COCO-style metrics (the same numbers pycocotools gives). "
        "An IR whose metadata says task segmentation runs over a VOC 2012 segmentation tree or a SageMaker "
        "segmentation folder instead: per-class IoU, mIoU over the classes present and pixel accuracy (255 ignored).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.set_defaults(handler=lazy_handler("training.evaluate", "eval_command"))
    importlib.import_module("training.evaluate").add_arguments(p)

