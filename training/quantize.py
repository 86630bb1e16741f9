"""`roadedge convert quantize IR --output DIR`: INT8 post-training quantisation of a detection IR, accuracy-aware.

NNCF's quantize_with_accuracy_control calibrates on the calibration frames (fed exactly as the evaluator feeds the IR:
training.detectors.OpenVinoDetector.network_input), measures mAP@0.5 with the evaluator's metric (training.metrics,
detections with score >= 0.01 as `roadedge eval` keeps them) and puts the layers that cost most accuracy back to f32
until the drop is within --max-drop. DetectionOutput and the ops between the prediction convolutions and it (reshapes,
transposes, the concatenation, the class softmax) stay f32: the decoder compares scores against thresholds and
decodes boxes from offsets and priors, where a quantisation step moves boxes and reorders NMS. The figures written to
the metadata come from a separate run of the evaluator (training.evaluate.evaluate_model, what `roadedge eval` runs)
over the written IRs, not from NNCF's own bookkeeping.
"""
import contextlib
import json
import os
import sys
import tempfile

from roadedge.core.errors import RoadedgeError, openvino_reason

MIN_SCORE = 0.01  # `roadedge eval`'s default --min-score: detections kept for AP
DECODER_PATH_TYPES = ("Reshape", "Transpose", "Concat", "Softmax", "SoftMax", "Sigmoid", "Squeeze", "Unsqueeze", "Convert",
                      "Flatten")
WEIGHTED_TYPES = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData")


def decoder_scope(model):
    """Names of the DetectionOutput ops and of the layout ops that carry the prediction heads' outputs to them."""
    names, seen = [], set()
    stack = [op for op in model.get_ops() if op.get_type_name() == "DetectionOutput"]
    names.extend(op.get_friendly_name() for op in stack)
    while stack:
        op = stack.pop()
        for value in op.input_values():
            source = value.get_node()
            if source.get_friendly_name() in seen or source.get_type_name() not in DECODER_PATH_TYPES:
                continue
            seen.add(source.get_friendly_name())
            names.append(source.get_friendly_name())
            stack.append(source)
    return names


def weighted_ops(model):
    """{name: True when its activation input comes through a FakeQuantize (runs INT8)} for convolutions and matmuls."""
    found = {}
    for op in model.get_ops():
        if op.get_type_name() in WEIGHTED_TYPES:
            found[op.get_friendly_name()] = op.input_value(0).get_node().get_type_name() == "FakeQuantize"
    return found


def _read_ir(path):
    from roadedge.core.model_metadata import check_ir_weights
    from roadedge.core.openvino_core import shared_core

    check_ir_weights(path)
    try:
        return shared_core().read_model(path)
    except RuntimeError as err:
        raise RoadedgeError("{}: OpenVINO cannot read the IR ({})".format(path, openvino_reason(err))) from None


def open_detection_ir(path):
    """(OpenVinoDetector, ov.Model) for a f32 detection IR with its metadata; one-line errors for anything else."""
    from training.detectors import OpenVinoDetector

    if not path.endswith(".xml"):
        raise RoadedgeError("{}: expected an OpenVINO IR (.xml with .bin and .json beside it)".format(path))
    detector = OpenVinoDetector(path)  # IR and metadata checked as `roadedge eval` checks them
    task = detector.meta.get("task") or "detection"
    if task != "detection":
        raise RoadedgeError("{}: task {}: quantize handles detection IRs (DetectionOutput) only".format(
            path[:-4] + ".json", task))
    model = _read_ir(path)
    types = {op.get_type_name() for op in model.get_ops()}
    if "DetectionOutput" not in types:
        raise RoadedgeError("{}: no DetectionOutput op; expected a detection IR from `roadedge convert optimize`".format(path))
    if "FakeQuantize" in types:
        raise RoadedgeError("{}: already quantised (it has FakeQuantize ops); quantize the f32 IR".format(path))
    return detector, model


def map50(compiled, items, detector):
    """The evaluator's mAP@0.5 of a compiled IR over items (network input, width, height, ground truth); 0 when undefined."""
    from converters.verify import openvino_rows
    from training.detectors import to_pixels
    from training.metrics import evaluate

    output = compiled.outputs[0]
    truth, found = [], []
    for tensor, width, height, ground_truth in items:
        rows = to_pixels(openvino_rows(compiled({0: tensor})[output], MIN_SCORE, detector.label_offset), width, height)
        found.append([(int(r[0]), float(r[1]), [float(v) for v in r[2:]]) for r in rows])
        truth.append(ground_truth)
    value = evaluate(truth, found, len(detector.labels))["map50"]
    return 0.0 if value is None else value


def run_nncf(model, detector, calibration_paths, validation_items, kept, args):
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    from training.evaluate import _read_frame

    nncf.set_log_level(40)  # errors only: NNCF's progress is not this command's output
    calibration = nncf.Dataset(calibration_paths, lambda path: detector.network_input(_read_frame(path)))
    validation = nncf.Dataset(validation_items, lambda item: item[0])
    restorer = AdvancedAccuracyRestorerParameters()
    if args.max_iterations is not None:
        restorer.max_num_iterations = args.max_iterations
    return nncf.quantize_with_accuracy_control(
        model, calibration, validation, lambda compiled, items: (map50(compiled, items, detector), None),
        max_drop=args.max_drop, drop_type=nncf.DropType.ABSOLUTE, preset=nncf.QuantizationPreset(args.preset),
        target_device=nncf.TargetDevice.CPU, subset_size=len(calibration_paths),
        ignored_scope=nncf.IgnoredScope(names=kept, types=["DetectionOutput"]),
        advanced_accuracy_restorer_parameters=restorer)


def validation_items(detector, data, ground_truth):
    items = []
    for image, truth in zip(data.images, ground_truth):  # read once, in order (a drive's frames decode in order)
        frame = image.read()
        items.append((detector.network_input(frame), frame.shape[1], frame.shape[0], truth))
    return items


def _check_args(args):
    from training.quantize_data import check_count, parse_size

    if not -1.0 <= args.max_drop <= 1.0:  # also refuses NaN
        raise RoadedgeError("--max-drop {:g}: expected an absolute mAP@0.5 drop in -1..1 (below 0: INT8 must beat f32 by "
                            "that much)".format(args.max_drop))
    if args.max_iterations is not None and args.max_iterations < 1:
        raise RoadedgeError("--max-iterations {}: expected a positive number".format(args.max_iterations))
    check_count("calibration-size", args.calibration_size)
    check_count("validation-size", args.validation_size)
    return parse_size(args.synth_size)


def _nncf_version():
    try:
        import nncf
    except ImportError:
        raise RoadedgeError("convert quantize needs NNCF: pip install 'roadedge[quantize]' (or pip install nncf)") from None
    return nncf.__version__


def quantize_command(args):
    import openvino as ov

    from roadedge.core.fsutil import atomic_dir, atomic_file, sha256_file
    from training.evaluate import evaluate_model
    from training.quantize_data import SYNTH, calibration_images, validation_set

    size = _check_args(args)
    version = _nncf_version()
    ir = args.ir
    detector, model = open_detection_ir(ir)
    stem = ir[:-4]
    inputs = [ir, stem + ".bin", stem + ".json"] + [p for p in (args.calibration, args.validation) if p != SYNTH]
    name = os.path.basename(stem)
    with tempfile.TemporaryDirectory(prefix="roadedge-quantize-") as work, \
            atomic_dir(args.output, args.overwrite, inputs) as out:
        say("calibration frames ...")
        calibration_paths, calibration_record = calibration_images(
            args.calibration, args.calibration_size, args.calibration_seed, size, work)
        say("validation frames ...")
        data, ground_truth, validation_record = validation_set(
            args.validation, args.validation_size, args.validation_seed, size, work, detector.labels, args.ignore_unknown)
        say("quantising {} on {} calibration frames, checking mAP@0.5 on {} validation frames ...".format(
            ir, len(calibration_paths), len(data.images)))
        kept = decoder_scope(model)
        with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars: stdout keeps only the result
            quantized = run_nncf(model, detector, calibration_paths, validation_items(detector, data, ground_truth), kept,
                                 args)
        placed = weighted_ops(quantized)
        if not any(placed.values()):
            raise RoadedgeError("no INT8 layer is left within --max-drop {:g}: every layer had to go back to f32 (measure "
                                "with a larger --max-drop or another calibration set)".format(args.max_drop), exit_code=1)
        xml = os.path.join(out, name + ".xml")
        ov.save_model(quantized, xml, compress_to_fp16=False)  # f32 stays f32: priors and the decoder are exact
        meta = dict(detector.meta)
        meta["precision"] = "INT8"
        meta["sources"] = {os.path.basename(p): sha256_file(p) for p in (ir, stem + ".bin")}
        _write_json(atomic_file, os.path.join(out, name + ".json"), meta)
        say("measuring both IRs with the evaluator ...")
        options = {"limit": args.validation_size, "ignore_unknown": args.ignore_unknown}
        before = evaluate_model(ir, data.root, min_score=MIN_SCORE, **options)["map50"]
        after = evaluate_model(xml, data.root, min_score=MIN_SCORE, **options)["map50"]
        drop = (before or 0.0) - (after or 0.0)
        if drop > args.max_drop + 1e-9:
            raise RoadedgeError("mAP@0.5 dropped by {:.4f} (f32 {:.4f}, INT8 {:.4f}) on {} validation frames: more than "
                                "--max-drop {:g}; nothing written".format(drop, before or 0.0, after or 0.0,
                                                                          len(data.images), args.max_drop), exit_code=1)
        meta["quantization"] = {
            "tool": "nncf " + version, "method": "post-training quantisation with accuracy control",
            "preset": args.preset, "max_drop": args.max_drop, "drop_type": "absolute",
            "calibration": calibration_record, "validation": validation_record,
            "accuracy": {"metric": "mAP@0.5", "min_score": MIN_SCORE, "f32": before, "int8": after, "drop": drop},
            "kept_f32": {"decoder": kept, "layers": sorted(n for n, q in placed.items() if not q)},
            "int8_layers": sum(1 for q in placed.values() if q),
        }
        _write_json(atomic_file, os.path.join(out, name + ".json"), meta)
    print("{}: INT8, {} of {} layers; mAP@0.5 {:.4f} (f32 {:.4f}, drop {:.4f}) on {} validation frames".format(
        os.path.join(args.output, name + ".xml"), meta["quantization"]["int8_layers"], len(placed), after or 0.0,
        before or 0.0, drop, len(data.images)))
    return 0


def _write_json(atomic_file, path, meta):
    with atomic_file(path, "w") as handle:
        json.dump(meta, handle, indent=2)
        handle.write("\n")


def say(text):
    print("quantize: " + text, file=sys.stderr, flush=True)
