"""`roadedge convert optimize` for SageMaker segmentation artefacts: DIR/NAME.xml/.bin/.json (task segmentation).

Engines: native (converters.gluoncv_seg.build: no MXNet), mxnet (GluonCV in
the MXNet environment builds the network, loads model_algo-1 and exports a
symbol, which the native symbol converter turns into the IR); auto = native.
--argmax folds the class argmax into the IR (int32 [1, 1, H, W] mask);
--embed-preprocessing folds resize, BGR->RGB, mean and per-channel scale in.
"""
import json
import os
import tarfile
import tempfile
import time

import openvino as ov

from converters.gluoncv_seg.artefact import load_artefact
from converters.gluoncv_seg.build import LOGITS, MASK, build_model, check_input_size, finish_model
from converters.gluoncv_seg.gluon_net import run_job
from converters.openvino_native import convert_graph
from converters.optimize import _labels_option, embed_preprocessing
from converters.ssd_deploy import check_output_dir
from edge.tasks.segmentation import voc_palette
from roadedge import __version__
from roadedge.core.errors import RoadedgeError
from roadedge.core.fsutil import check_not_overlapping, staging_dir
from roadedge.core.model_metadata import SCHEMA, labels_for
from roadedge.core.mxnet_params import load_params, split_arg_aux
from roadedge.core.mxnet_symbol import load_symbol

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
    check_input_size(artefact, artefact.crop_size, artefact.crop_size, where=artefact.where("crop_size"))
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


def optimize_segmentation(args):
    started = time.time()
    check_not_overlapping(args.output, [args.model])
    check_output_dir(args.output, "--output")
    artefact = load_artefact(args.model)
    height, width = input_size(artefact, args.input_shape)
    engine = "native" if args.engine == "auto" else args.engine
    if engine not in ENGINES:
        raise RoadedgeError("--engine {}: segmentation models convert with {} (or auto)".format(
            engine, " or ".join(ENGINES)))
    classes = int(artefact.params["head.block.4.weight"].shape[0]) if "head.block.4.weight" in artefact.params \
        else artefact.num_classes or 0
    labels = labels_for(classes, _labels_option(args.labels), artefact.hyperparams)
    if len(labels) != classes:
        raise RoadedgeError("{}: {} names given, the model predicts {} classes".format(
            "--labels" if args.labels else artefact.where("class_names"), len(labels), classes))
    name = args.name or artefact.name
    build = build_model if engine == "native" else mxnet_engine_model
    model = build(artefact, height, width, args.argmax, name)
    preprocessing = gluoncv_preprocessing(args.embed_preprocessing)
    with staging_dir(os.path.join(args.output, name)) as staging:
        xml = os.path.join(staging, name + ".xml")
        ov.save_model(model, xml, compress_to_fp16=(args.precision == "FP16"))
        if args.embed_preprocessing:
            embed_preprocessing(xml, preprocessing, args.precision)
        metadata = segmentation_metadata(name, labels, voc_palette(len(labels)), height, width, preprocessing,
                                         MASK if args.argmax else LOGITS, args.argmax, artefact, engine, args.precision)
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
    print("wrote {} ({} engine, {}, {} {} on {}, input {}x{}, {} classes, {}{}) in {:.1f} s".format(
        os.path.join(args.output, name + ".xml"), engine, args.precision, artefact.algorithm, "segmentation",
        artefact.backbone, height, width, len(labels), "argmax mask" if args.argmax else "logits",
        ", preprocessing embedded" if args.embed_preprocessing else "", time.time() - started))
    return 0
