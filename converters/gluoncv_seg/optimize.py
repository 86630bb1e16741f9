"""`roadedge convert optimize` for SageMaker segmentation artefacts: DIR/NAME.xml/.bin/.json (task segmentation).

Engines: native (converters.gluoncv_seg.build: no MXNet), mxnet (GluonCV in
the MXNet environment builds the network, loads model_algo-1 and exports a
symbol, which the native symbol converter turns into the IR); auto = native.
--argmax folds the class argmax into the IR (int32 [1, 1, H, W] mask);
--embed-preprocessing folds resize, BGR->RGB, mean and per-channel scale in.
"""
import os
import tempfile
import time

import openvino as ov

from converters.gluoncv_seg.artefact import HYPERPARAMS, PARAMS, load_artefact
from converters.gluoncv_seg.build import LOGITS, MASK, build_model, check_input_size, finish_model
from converters.gluoncv_seg.gluon_net import run_job
from converters.openvino_native import convert_graph
from converters.optimize import embed_preprocessing, labels_option, publish_ir
from converters.ssd_deploy import check_output_dir
from roadedge import __version__
from roadedge.core.errors import RoadedgeError
from roadedge.core.fsutil import check_not_overlapping, staging_dir
from roadedge.core.model_metadata import SCHEMA, labels_for
from roadedge.core.mxnet_params import load_params, split_arg_aux
from roadedge.core.mxnet_symbol import load_symbol
from roadedge.core.seglabels import voc_palette

ENGINES = ("native", "mxnet")
# GluonCV's normalisation: RGB / 255, minus mean, over std = (RGB - 255 * mean) * 1 / (255 * std)
GLUONCV_MEAN = (0.485, 0.456, 0.406)
GLUONCV_STD = (0.229, 0.224, 0.225)


def gluoncv_preprocessing(embedded=False):
    return {"color_order": "RGB", "mean": [round(255.0 * m, 6) for m in GLUONCV_MEAN],
            "scale": [1.0 / (255.0 * s) for s in GLUONCV_STD], "resize": "stretch", "embedded": bool(embedded)}


def input_size(artefact, input_shape):
    """(H, W): --input-shape, else crop_size from hyperparams.json."""
    if input_shape:
        height, width = (int(v) for v in input_shape)
        check_input_size(artefact, height, width)
        return height, width
    if artefact.crop_size is None:
        raise RoadedgeError("{}: field 'crop_size' missing; give the input size with --input-shape H W".format(
            artefact.hyperparams_source))
    check_input_size(artefact, artefact.crop_size, artefact.crop_size,
                     "{} {}".format(artefact.where("crop_size"), artefact.crop_size))
    return artefact.crop_size, artefact.crop_size


def segmentation_metadata(name, labels, palette, height, width, preprocessing, output_name, argmax, artefact, engine,
                          precision):
    embedded = preprocessing["embedded"]
    return {
        "schema": SCHEMA, "name": name, "task": "segmentation", "labels": labels, "num_classes": len(labels),
        "palette": [list(color) for color in palette],
        "input": {"name": "data", "height": height, "width": width,
                  "shape": [1, -1, -1, 3] if embedded else [1, 3, height, width], "layout": "NHWC" if embedded else "NCHW",
                  "dtype": "uint8" if embedded else "float32", "color_order": "BGR" if embedded else "RGB"},
        "preprocessing": preprocessing,
        "output": {"name": output_name, "format": "segmentation_mask" if argmax else "segmentation_logits",
                   "label_offset": 0},
        "segmentation": {"algorithm": artefact.algorithm, "backbone": artefact.backbone,
                         "crop_size": artefact.crop_size},
        "engine": engine, "precision": precision, "converter": "roadedge " + __version__, "sources": artefact.sources,
    }


def mxnet_engine_model(artefact, height, width, argmax, name):
    """GluonCV (in the MXNet environment) exports the network; the symbol converter makes the OpenVINO model."""
    with tempfile.TemporaryDirectory(prefix="roadedge-seg-mx-") as tmp:
        prefix = os.path.join(tmp, "gluoncv")
        run_job(artefact, height, width, export_prefix=prefix)
        graph = load_symbol(prefix + "-symbol.json")
        arg_params, aux_params = split_arg_aux(load_params(prefix + "-0000.params"))
        model = convert_graph(graph, arg_params, aux_params, (1, 3, height, width), name, artefact.params_source)
    if len(model.outputs) != 1:
        raise RoadedgeError("{}: GluonCV's exported network has {} outputs; expected the logits alone".format(
            artefact.params_source, len(model.outputs)))
    return finish_model(model.get_results()[0].input_value(0), argmax, model.get_parameters(), name)


def segmentation_model(path, input_shape=None, labels=None, argmax=False, engine="native", name=None,
                       precision="FP32", embedded=False):
    """(openvino.Model, its roadedge.model/1 metadata) of a SageMaker segmentation artefact: `roadedge convert
    optimize` writes them, `roadedge run --model model.tar.gz` runs them in memory (edge.conversion)."""
    artefact = load_artefact(path)
    height, width = input_size(artefact, input_shape)
    classes = int(artefact.params["head.block.4.weight"].shape[0]) if "head.block.4.weight" in artefact.params \
        else artefact.num_classes or 0
    names = labels_for(classes, labels, artefact.hyperparams)
    if len(names) != classes:
        raise RoadedgeError("{}: {} names given, the model predicts {} classes".format(
            "--labels" if labels else artefact.where("class_names"), len(names), classes))
    name = name or artefact.name
    build = build_model if engine == "native" else mxnet_engine_model
    model = build(artefact, height, width, argmax, name)
    metadata = segmentation_metadata(name, names, voc_palette(len(names)), height, width,
                                     gluoncv_preprocessing(embedded), MASK if argmax else LOGITS, argmax, artefact,
                                     engine, precision)
    return model, metadata


def optimize_segmentation(args):
    started = time.time()
    inputs = [os.path.join(args.model, n) for n in (HYPERPARAMS, PARAMS)] if os.path.isdir(args.model) else [args.model]
    check_not_overlapping(args.output, inputs)  # an output folder beside the two files of a model folder is fine
    check_output_dir(args.output, "--output")
    engine = "native" if args.engine == "auto" else args.engine
    if engine not in ENGINES:
        raise RoadedgeError("--engine {}: segmentation models convert with {} (or auto)".format(
            engine, " or ".join(ENGINES)))
    model, metadata = segmentation_model(args.model, args.input_shape, labels_option(args.labels), args.argmax,
                                         engine, args.name, args.precision, args.embed_preprocessing)
    name, labels, preprocessing = metadata["name"], metadata["labels"], metadata["preprocessing"]
    height, width = metadata["input"]["height"], metadata["input"]["width"]
    segmentation = metadata["segmentation"]
    with staging_dir(os.path.join(args.output, name)) as staging:
        xml = os.path.join(staging, name + ".xml")
        ov.save_model(model, xml, compress_to_fp16=(args.precision == "FP16"))
        if args.embed_preprocessing:
            embed_preprocessing(xml, preprocessing, args.precision)
        publish_ir(staging, args.output, name, metadata, args.package)
    print("wrote {} ({} engine, {}, {} {} on {}, input {}x{}, {} classes, {}{}) in {:.1f} s".format(
        os.path.join(args.output, name + ".xml"), engine, args.precision, segmentation["algorithm"], "segmentation",
        segmentation["backbone"], height, width, len(labels), "argmax mask" if args.argmax else "logits",
        ", preprocessing embedded" if args.embed_preprocessing else "", time.time() - started))
    return 0
