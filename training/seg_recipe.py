"""`roadedge train --task segmentation`: the bundled demo segmentation model's recipe, synthetic data to a checked IR.

Steps, each with the project's own tools:
  1. render the training set          roadedge synth --segmentation (a VOC 2012 segmentation tree)
  2. SageMaker channels               roadedge dataset convert-seg --classes <the synth segmentation labels>
  3. arrays for MXNet                 training.seg_arrays (frames stretched to the IR's input size, masks)
  4. train in the MXNet environment   python -m training.mx_train_seg (GluonCV FCN, SageMaker's model.tar.gz)
  5. OpenVINO IR                      roadedge convert optimize --engine native
  6. IR against MXNet                 roadedge convert verify (must agree)
  7. metrics on an unseen seed        roadedge synth --segmentation --seed EVAL_SEED + roadedge eval
  8. with --bundle: the IR and its metadata into edge/models, the card's metrics into edge/models/SEG_MODEL_CARD.md

OUT_DIR is built beside its final place and renamed into place when every step
has passed; OUT_DIR/summary.json records the settings, step times and metrics.
"""
import json
import os
import shutil
import sys
import time

from roadedge.core.errors import RoadedgeError
from training import recipe
from training.recipe import Steps, _cli

MODEL_NAME = "road-seg"
# size: the frames rendered (the sample drive's 640x360); input_size: the IR's input (W x H, the frame stretched to
# it, about 0.7 of the frame each way); crop_size: SageMaker's, the square training crops taken from those frames
DEFAULTS = {"images": 1500, "epochs": 60, "eval_images": 100, "batch_size": 8, "network": "tiny", "crop_size": 160,
            "size": "640x360", "input_size": "448x256", "learning_rate": 0.003, "validate_every": 800}
QUICK = {"images": 12, "epochs": 2, "eval_images": 4, "batch_size": 4, "network": "tiny", "crop_size": 64,
         "size": "160x96", "input_size": "96x64", "learning_rate": 0.003, "validate_every": 0, "max_iterations": 3}
POST_TRAINING_SECONDS = 120  # optimize, verify, render and evaluate the unseen set, bundle


def labels():
    """The synthetic segmentation class names, in class-index order."""
    from roadedge.core.seglabels import SYNTH_SEG_LABELS

    return list(SYNTH_SEG_LABELS)


def settings(args):
    """The run's settings: --quick's or the segmentation defaults, overridden by explicit options."""
    base = dict(QUICK if args.quick else DEFAULTS)
    for key in ("images", "epochs", "eval_images", "batch_size", "network", "crop_size", "size", "input_size",
                "learning_rate"):
        if getattr(args, key, None) is not None:
            base[key] = getattr(args, key)
    name = args.name or MODEL_NAME
    base.update(seed=args.seed, eval_seed=args.eval_seed, name=name,
                quick=bool(args.quick), time_budget_minutes=args.time_budget, task="segmentation")
    base.setdefault("max_iterations", 0)
    if args.seed == args.eval_seed:
        raise RoadedgeError("--eval-seed {} equals --seed: evaluate on frames the model was not trained on".format(
            args.seed))
    if base["images"] < 4 or base["eval_images"] < 1 or base["epochs"] < 1 or base["batch_size"] < 1:
        raise RoadedgeError("--images must be at least 4, --eval-images, --epochs and --batch-size at least 1")
    if not 32 <= base["crop_size"] <= 1024 or base["crop_size"] % 8:
        raise RoadedgeError("--crop-size {}: expected a multiple of 8 in 32..1024".format(base["crop_size"]))
    base["input_width"], base["input_height"] = input_size(base["input_size"])
    return base


def input_size(text):
    """(width, height) of a WxH input size; both multiples of 8 in 32..1024 (the network's output stride)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        width = height = 0
    if not (32 <= width <= 1024 and 32 <= height <= 1024) or width % 8 or height % 8:
        raise RoadedgeError("--input-size {}: expected WxH, multiples of 8 in 32..1024, e.g. 448x256".format(text))
    return width, height


def _synth(out_dir, count, seed, size, workers):
    recipe._synth(out_dir, count, seed, size, workers, extra=["--segmentation"])


def _arrays(channels, arrays, s):
    from training.seg_arrays import prepare_seg_channel

    return recipe.decode_channels(channels, arrays, lambda channel, destination, update: prepare_seg_channel(
        channels, channel, (s["input_width"], s["input_height"]), destination, len(labels()), update))


def train_arguments(arrays, model_dir, s, has_validation=True, deadline=0.0):
    args = ["-m", "training.mx_train_seg", "--train", os.path.join(arrays, "train"), "--output", model_dir,
            "--class-names", ",".join(labels()), "--network", s["network"], "--crop-size", str(s["crop_size"]),
            "--batch-size", str(s["batch_size"]), "--epochs", str(s["epochs"]), "--learning-rate",
            str(s["learning_rate"]), "--seed", str(s["seed"]), "--max-iterations", str(s["max_iterations"]),
            "--deadline", "%.0f" % deadline, "--validate-every", str(s["validate_every"])]
    if has_validation:
        args += ["--validation", os.path.join(arrays, "validation")]
    return args


def _train(arrays, model_dir, s, log_path, has_validation, deadline):
    """Run training.mx_train_seg in the MXNet environment with a progress bar; returns its 'done' event."""
    from tqdm import tqdm

    state = {"bar": None}

    def on_event(event):
        kind, bar = event.get("event"), state["bar"]
        if kind == "start":
            state["bar"] = tqdm(total=event["iterations"], desc="training", unit="it", disable=None, file=sys.stderr)
        elif kind == "iteration" and bar is not None:
            bar.update(event["iteration"] - bar.n)
            bar.set_postfix(epoch=event["epoch"], loss="%.3f" % event["loss"], refresh=False)
        elif kind == "validation" and bar is not None:
            bar.write("iteration {}: validation pixel accuracy {:.3f}, mIoU {:.3f}".format(
                event["iteration"], event["pixel_accuracy"], event["miou"]), file=sys.stderr)
        elif kind == "done" and bar is not None:
            if event.get("deadline_hit"):
                bar.total = event["iterations"]
                bar.update(event["iterations"] - bar.n)
            if event.get("validation"):
                bar.write("validation: pixel accuracy {:.3f}, mIoU {:.3f}".format(
                    event["validation"]["pixel_accuracy"], event["validation"]["miou"]), file=sys.stderr)

    try:
        return recipe.run_in_mxnet(train_arguments(arrays, model_dir, s, has_validation, deadline), log_path, on_event)
    finally:
        if state["bar"] is not None:
            state["bar"].close()


def _verify(tarball, ir_xml):
    """`roadedge convert verify`, its output passed through; returns that output (the agreement figures) as one line."""
    import subprocess

    result = subprocess.run([sys.executable, "-m", "roadedge", "convert", "verify", tarball, ir_xml],
                            stdout=subprocess.PIPE)
    text = result.stdout.decode("utf-8", "replace")
    sys.stderr.write(text)
    if result.returncode != 0:
        raise RoadedgeError("`roadedge convert verify {} {}` failed with exit code {}".format(tarball, ir_xml,
                                                                                            result.returncode))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines)


def _evaluate(ir_xml, voc_dir, s, workers):
    from tqdm import tqdm

    from training.evaluate_seg import evaluate_segmentation, format_report

    _synth(voc_dir, s["eval_images"], s["eval_seed"], s["size"], workers)
    report = evaluate_segmentation(ir_xml, voc_dir, split="all", progress=lambda items: tqdm(
        items, desc="evaluating", unit="img", disable=None, file=sys.stderr))
    print(format_report(report), file=sys.stderr)
    return report


def train_command(args):
    from roadedge.core.fsutil import atomic_dir
    from training.seg_card import bundle

    s = settings(args)
    started = time.time()
    steps = Steps(8 if args.bundle else 7)
    out_dir = os.path.abspath(args.out_dir)
    with atomic_dir(out_dir, args.overwrite, inputs=[recipe.MODELS_DIR] if args.bundle else []) as work:
        voc, channels, arrays = (os.path.join(work, n) for n in ("voc-train", "sagemaker", "arrays"))
        model_dir, ir_dir, eval_voc = (os.path.join(work, n) for n in ("model", "ir", "voc-eval"))
        steps.run("render %d training frames with masks (seed %d)" % (s["images"], s["seed"]), _synth, voc,
                  s["images"], s["seed"], s["size"], args.workers)
        steps.run("SageMaker channels", _cli, ["dataset", "convert-seg", voc, channels, "--classes", ",".join(labels())])
        counts = steps.run("decode and resize to " + s["input_size"], _arrays, channels, arrays, s)
        deadline = max(60.0, s["time_budget_minutes"] * 60 - (time.time() - started) - POST_TRAINING_SECONDS) \
            if s["time_budget_minutes"] else 0.0
        done = steps.run("train (MXNet, GluonCV FCN, SageMaker's artefact)", _train, arrays, model_dir, s,
                         os.path.join(work, "train-log.jsonl"), counts["validation"] > 0, deadline)
        done["model"] = os.path.relpath(done["model"], work)
        if not args.keep_arrays:
            shutil.rmtree(arrays)
        tarball = os.path.join(model_dir, "model.tar.gz")
        steps.run("OpenVINO IR", _cli, ["convert", "optimize", tarball, "--input-shape", str(s["input_height"]),
                                        str(s["input_width"]), "--output", ir_dir, "--name", s["name"], "--engine",
                                        "native", "--labels", ",".join(labels())])
        ir_xml = os.path.join(ir_dir, s["name"] + ".xml")
        verify = steps.run("verify the IR against MXNet", _verify, tarball, ir_xml)
        report = steps.run("evaluate on %d frames of seed %d" % (s["eval_images"], s["eval_seed"]), _evaluate, ir_xml,
                           eval_voc, s, args.workers)
        summary = {"schema": "roadedge.train/1", "settings": s, "argv": sys.argv, "images": counts, "training": done,
                   "steps": steps.times, "verify": verify, "ir_bytes": os.path.getsize(ir_xml[:-4] + ".bin"),
                   "metrics": {"pixel_accuracy": report["pixel_accuracy"], "miou": report["miou_gt"],
                               "miou_gt_or_predicted": report["miou"],
                               "iou": {e["name"]: e["iou"] for e in report["classes"]}}}
        with open(os.path.join(work, "eval.json"), "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
        summary["seconds"] = round(time.time() - started, 1)
        if args.bundle:
            card = steps.run("bundle into " + recipe.MODELS_DIR, bundle, ir_dir, s["name"], report, summary)
            print("wrote " + card, file=sys.stderr)
            summary["seconds"] = round(time.time() - started, 1)
        with open(os.path.join(work, "summary.json"), "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
    print("wrote {}: pixel accuracy {:.3f}, mIoU {:.3f} on {} unseen frames; IR {} ({:.2f} MB weights); {:.1f} min".format(
        out_dir, report["pixel_accuracy"], report["miou_gt"], report["images"], os.path.join(out_dir, "ir", s["name"] + ".xml"),
        summary["ir_bytes"] / 1e6, summary["seconds"] / 60))
    return 0
