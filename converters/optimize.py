"""`roadedge convert optimize`: MXNet SSD (training prefix, deploy prefix or model.tar.gz) -> OpenVINO IR + metadata.

Engines share one interface: they get a deploy graph and return NAME.xml/.bin
in a staging folder; this module adds the metadata JSON, optional embedded
preprocessing and model.tar.gz, then moves everything into --output at once.
"""
import json
import os
import shutil
import tarfile
import time

from converters.ssd_deploy import check_output_dir, check_params, check_ssd_flags, naming, num_classes, to_deploy, write_deploy
from roadedge.core.errors import RoadedgeError
from roadedge.core.fsutil import check_not_overlapping, staging_dir
from roadedge.core.model_metadata import default_preprocessing, ir_label_offset, labels_for, model_metadata
from roadedge.core.mxnet_params import split_arg_aux
from roadedge.core.mxnet_symbol import attr_bool, attr_float, attr_int
from roadedge.core.sagemaker_model import load_model

ENGINES = ("native", "mo", "deeplens")


def choose_engine(requested):
    if requested != "auto":
        return requested
    from converters.engine_deeplens import is_deeplens

    return "deeplens" if is_deeplens() else "native"


def run_engine(engine, deploy, params, input_shape, staging, name, precision, params_source=None):
    """Write staging/NAME.xml + .bin with `engine`; returns its path. `params_source` names the params in errors."""
    height, width = input_shape
    if engine == "native":
        import openvino as ov

        from converters.openvino_native import convert_graph

        arg_params, aux_params = split_arg_aux(params)
        model = convert_graph(deploy, arg_params, aux_params, (1, 3, height, width), name, params_source)
        xml = os.path.join(staging, name + ".xml")
        ov.save_model(model, xml, compress_to_fp16=(precision == "FP16"))
        return xml
    module = __import__("converters.engine_" + engine, fromlist=["convert"])
    folder = os.path.join(staging, "deploy")
    symbol_path, params_path = write_deploy(deploy, params, folder, name, 0)
    xml = module.convert(symbol_path, params_path, (height, width), staging, name, precision)
    shutil.rmtree(folder, ignore_errors=True)
    return xml


def embed_preprocessing(xml, preprocessing, precision):
    """Fold resize, BGR->RGB, mean and scale into the IR: its input becomes BGR uint8 NHWC frames of any size."""
    import openvino as ov

    from roadedge.core.openvino_preprocessing import add_preprocessing

    model = add_preprocessing(ov.Core().read_model(xml), preprocessing)
    os.remove(xml)
    os.remove(xml[:-4] + ".bin")
    ov.save_model(model, xml, compress_to_fp16=(precision == "FP16"))


def _output_name(xml):
    import openvino as ov

    return ov.Core().read_model(xml).outputs[0].get_any_name()


def _labels_option(spec):
    if spec is None:
        return None
    from converters.classmap import read_name_list

    return read_name_list(spec)


def check_detection_flags(args):
    """What only segmentation models take, and what detection models need."""
    if getattr(args, "input_shape", None) is None:
        raise RoadedgeError("--input-shape H W: required for object detection models (segmentation models default to "
                            "their crop_size)")
    if getattr(args, "argmax", False):
        raise RoadedgeError("--argmax: only for segmentation models (SageMaker's model.tar.gz with hyperparams.json and "
                            "model_algo-1); {} is a detection model".format(args.model))
    if args.engine == "mxnet":
        raise RoadedgeError("--engine mxnet: only for segmentation models; detection models convert with native, mo "
                            "or deeplens")


def model_files(model, epoch):
    """The files a model argument reads: the tarball, or the prefix's symbol, params and hyperparams.json."""
    if os.path.isfile(model):
        return [model]
    files = [model + "-symbol.json", "%s-%04d.params" % (model, epoch),
             os.path.join(os.path.dirname(model) or ".", "hyperparams.json")]
    return [path for path in files if os.path.exists(path)]


def optimize_command(args):
    from converters.gluoncv_seg.artefact import is_segmentation_artefact

    if is_segmentation_artefact(args.model):  # SageMaker semantic segmentation: hyperparams.json + model_algo-1
        from converters.gluoncv_seg.optimize import optimize_segmentation

        return optimize_segmentation(args)
    check_detection_flags(args)
    started = time.time()
    height, width = args.input_shape
    if not (0 < height <= 4096 and 0 < width <= 4096):
        raise RoadedgeError("--input-shape {} {}: expected a height and width in 1..4096".format(height, width))
    check_ssd_flags(args)
    check_not_overlapping(args.output, model_files(args.model, args.epoch))
    check_output_dir(args.output, "--output")
    model = load_model(args.model, args.epoch)
    deploy = to_deploy(model.graph, nms=args.nms, topk=args.topk, force_suppress=args.force_suppress)
    check_params(deploy, model.params, model.params_source, model.graph)
    head = deploy.nodes[deploy.heads[0][0]]
    classes = num_classes(deploy, head.inputs[0]) if head.inputs else None
    labels = labels_for(classes or 0, _labels_option(args.labels), model.hyperparams)
    if classes is not None and len(labels) != classes:
        raise RoadedgeError("--labels: {} names given, the model predicts {} classes".format(len(labels), classes))
    engine = choose_engine(args.engine)
    name = args.name or model.name
    with staging_dir(os.path.join(args.output, name)) as staging:
        xml = run_engine(engine, deploy, model.params, (height, width), staging, name, args.precision,
                         model.params_source)
        label_offset = ir_label_offset(xml) or 0  # read off the IR: engines (and DeepLens optimizer versions) differ
        preprocessing = default_preprocessing(deploy)
        preprocessing["embedded"] = bool(args.embed_preprocessing)
        if args.embed_preprocessing:
            embed_preprocessing(xml, preprocessing, args.precision)
        with naming(deploy.source):
            nms = {"threshold": attr_float(head, "nms_threshold", 0.5), "topk": attr_int(head, "nms_topk", -1),
                   "force_suppress": attr_bool(head, "force_suppress", False)}
        metadata = model_metadata(name, labels, (1, 3, height, width), preprocessing, _output_name(xml), label_offset,
                                  nms, engine, args.precision, model.sources)
        with open(os.path.join(staging, name + ".json"), "w", encoding="utf-8") as handle:
            json.dump(metadata, handle, indent=2, allow_nan=False)
            handle.write("\n")
        produced = [name + ".xml", name + ".bin", name + ".json"]
        if args.package:
            with tarfile.open(os.path.join(staging, "model.tar.gz"), "w:gz") as archive:
                for file_name in produced[:2]:
                    archive.add(os.path.join(staging, file_name), arcname=file_name)
            produced.append("model.tar.gz")
        for file_name in produced:
            os.replace(os.path.join(staging, file_name), os.path.join(args.output, file_name))
    print("wrote {} ({} engine, {}, input {}x{}, {} classes{}) in {:.1f} s".format(
        os.path.join(args.output, name + ".xml"), engine, args.precision, height, width, len(labels),
        ", preprocessing embedded" if args.embed_preprocessing else "", time.time() - started))
    return 0
