"""`roadedge train`: the bundled demo model's whole recipe, from synthetic data to a checked OpenVINO IR.

Steps, each with the project's own tools:
  1. render the training set          edge.synth (roadedge synth)
  2. SageMaker channels               roadedge dataset convert --classes synth
  3. arrays for MXNet                 training.data (JSON annotations -> normalised labels, decoded images)
  4. train in the MXNet environment   python -m training.mx_train (SageMaker's training graph and artifacts)
  5. deploy graph                     roadedge convert deploy model.tar.gz
  6. OpenVINO IR                      roadedge convert optimize --engine native
  7. IR against MXNet                 roadedge convert verify (must match)
  8. metrics on an unseen seed        roadedge synth --seed EVAL_SEED + training.evaluate (roadedge eval)
  9. with --bundle: the IR and its metadata into edge/models, metrics into edge/models/MODEL_CARD.md

OUT_DIR is built beside its final place and renamed into place when every
step has passed; OUT_DIR/summary.json records the settings, step times and
metrics.
"""
import json
import os
import shutil
import subprocess
import sys
import time

from roadedge.core.catalog import SYNTH_CLASSES
from roadedge.core.errors import RoadedgeError
from training.model_card import CARD_END, CARD_START, DRIVE_EVAL, MODELS_DIR, bundle, figure, metrics_markdown  # noqa: F401

MODEL_NAME = "road-damage-ssd"
DEFAULTS = {"images": 2400, "drive_images": 0, "epochs": 60, "eval_images": 200, "batch_size": 32, "network": "tiny",
            "eval_drives": 3, "eval_drive_seconds": 20}
DRIVE_EVERY = 5  # drive frames for training: every 5th frame of 20 s drives (roadedge synth --drive-frames)
POST_TRAINING_SECONDS = 90  # deploy, optimize, verify, render and evaluate the unseen set, bundle
QUICK = {"images": 40, "drive_images": 0, "epochs": 1, "eval_images": 6, "batch_size": 8, "network": "tiny",
         "max_iterations": 3, "eval_drives": 1, "eval_drive_seconds": 2}


def add_arguments(p):
    from training.seg_recipe import DEFAULTS as SEG  # segmentation's defaults, named in the help

    p.add_argument("out_dir", metavar="OUT_DIR", nargs="?", default="roadedge-train",
                   help="work and output folder (synthetic data, channels, model.tar.gz, IR, metrics)")
    p.add_argument("--images", type=int, default=None,
                   help="training images to render (default: %d; segmentation %d)" % (DEFAULTS["images"], SEG["images"]))
    p.add_argument("--drive-images", type=int, default=None,
                   help="detection: also train on this many frames of rendered drives (every %dth frame, 640x360, drive "
                   "seeds from --seed + 1000; default: %d)" % (DRIVE_EVERY, DEFAULTS["drive_images"]))
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: %d; segmentation %d)" % (DEFAULTS["epochs"], SEG["epochs"]))
    p.add_argument("--seed", type=int, default=1, help="seed of the training set (and of the training run)")
    p.add_argument("--eval-seed", type=int, default=12345, help="seed of the evaluation set; must differ from --seed")
    p.add_argument("--eval-images", type=int, default=None,
                   help="evaluation images (default: %d; segmentation %d)" % (DEFAULTS["eval_images"], SEG["eval_images"]))
    p.add_argument("--eval-drives", type=int, default=None, metavar="N",
                   help="detection: also evaluate on N unseen rendered drives, 640x360, one set (default: %d; 0: none)"
                   % DEFAULTS["eval_drives"])
    p.add_argument("--task", choices=("detection", "segmentation"), default="detection",
                   help="detection: the road-damage SSD (road-damage-ssd); segmentation: a GluonCV FCN as SageMaker's "
                   "semantic segmentation saves it (road-seg, training/seg_recipe.py)")
    p.add_argument("--size", default=None, metavar="WxH",
                   help="size the synthetic frames are rendered at (default: 600x600; 640x360 for segmentation)")
    p.add_argument("--image-shape", type=int, default=256, help="network input size (square; detection)")
    p.add_argument("--crop-size", type=int, default=None,
                   help="segmentation: SageMaker's crop_size, the square training crops (default: 160)")
    p.add_argument("--input-size", default=None, metavar="WxH",
                   help="the IR's input size, frames are stretched to it (detection: default --image-shape square, "
                   "multiples of 32; segmentation: default 448x256)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="mini-batch size (default: %d; segmentation %d)" % (DEFAULTS["batch_size"], SEG["batch_size"]))
    p.add_argument("--learning-rate", type=float, default=None,
                   help="Adam learning rate (default: 0.002, cosine schedule; segmentation 0.003, poly schedule)")
    p.add_argument("--network", choices=("tiny", "small", "base"), default=None,
                   help="body size, see training/network.py (default: %s; segmentation: the backbone widths in "
                   "training/mx_train_seg.py, default %s)" % (DEFAULTS["network"], SEG["network"]))
    p.add_argument("--validation-fraction", type=float, default=0.1, help="share of the rendered images for validation")
    p.add_argument("--name", default=None, help="IR file name (default: %s; road-seg for segmentation)" % MODEL_NAME)
    p.add_argument("--quick", action="store_true",
                   help="a tiny run for smoke tests: %d images, a few iterations (the model detects nothing useful)"
                   % QUICK["images"])
    p.add_argument("--bundle", action="store_true",
                   help="copy the IR and its metadata into edge/models and write the model card's metrics")
    p.add_argument("--time-budget", type=float, default=28.0, metavar="MINUTES",
                   help="wall time for the whole recipe: training anneals and stops early enough to fit (0: no limit)")
    p.add_argument("--keep-arrays", action="store_true", help="keep the decoded training arrays (OUT_DIR/arrays, ~0.5 GB)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    p.add_argument("--workers", type=int, default=None, help="render processes for the synthetic sets")


def settings(args):
    """The run's settings: --quick's or the defaults, overridden by explicit options."""
    base = dict(QUICK if args.quick else DEFAULTS)
    for key in ("images", "drive_images", "epochs", "eval_images", "eval_drives", "batch_size", "network"):
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    base.update(seed=args.seed, eval_seed=args.eval_seed, size=args.size or "600x600", image_shape=args.image_shape,
                learning_rate=args.learning_rate or 0.002, validation_fraction=args.validation_fraction,
                name=args.name or MODEL_NAME,
                quick=bool(args.quick), time_budget_minutes=args.time_budget)
    base.setdefault("max_iterations", 0)
    if args.seed == args.eval_seed:
        raise RoadedgeError("--eval-seed {} equals --seed: evaluate on frames the model was not trained on".format(
            args.seed))
    if base["drive_images"] < 0 or base["eval_drives"] < 0:
        raise RoadedgeError("--drive-images and --eval-drives must be 0 or more")
    if base["images"] < 8 or base["eval_images"] < 1 or base["epochs"] < 1 or base["batch_size"] < 1:
        raise RoadedgeError("--images must be at least 8, --eval-images, --epochs and --batch-size at least 1")
    if not 64 <= args.image_shape <= 1024 or args.image_shape % 32:
        raise RoadedgeError("--image-shape {}: expected a multiple of 32 in 64..1024".format(args.image_shape))
    base["input_width"] = base["input_height"] = args.image_shape
    if args.input_size:  # a network input of the camera's shape (SageMaker's image_shape is square)
        from training.seg_recipe import input_size

        width, height = input_size(args.input_size)
        if width % 32 or height % 32:
            raise RoadedgeError("--input-size {}: expected WxH, multiples of 32 (the SSD's feature strides)".format(
                args.input_size))
        base["input_width"], base["input_height"] = width, height
    return base


class Steps:
    """Numbered steps with their wall time, printed as they finish."""

    def __init__(self, total):
        self.total, self.count, self.times = total, 0, {}

    def run(self, name, function, *args):
        self.count += 1
        print("[{}/{}] {}".format(self.count, self.total, name), file=sys.stderr, flush=True)
        started = time.time()
        result = function(*args)
        self.times[name] = round(time.time() - started, 1)
        print("[{}/{}] {}: done in {:.1f} s".format(self.count, self.total, name, self.times[name]), file=sys.stderr,
              flush=True)
        return result


def _cli(argv):
    """Run a roadedge subcommand of this installation (a child process: training sits below the command line);
    RoadedgeError unless it exits 0."""
    import subprocess

    code = subprocess.call([sys.executable, "-m", "roadedge"] + [str(a) for a in argv])
    if code != 0:
        raise RoadedgeError("`roadedge {}` failed with exit code {}".format(" ".join(argv), code))


def _synth(out_dir, count, seed, size, workers, extra=()):
    _cli(["synth", out_dir, "--count", str(count), "--seed", str(seed), "--size", size] + list(extra)
         + (["--workers", str(workers)] if workers else []))


def decode_channels(channels, arrays, prepare):
    """Decode the train and validation channels into arrays/<channel> with a progress bar each;
    prepare(channel, destination, update) -> images decoded. Returns {channel: count}."""
    from tqdm import tqdm

    os.makedirs(arrays)
    counts = {}
    for channel in ("train", "validation"):
        total = len(os.listdir(os.path.join(channels, channel + "_annotation")))
        with tqdm(total=total, desc="decoding " + channel, unit="img", disable=None, file=sys.stderr) as bar:
            counts[channel] = prepare(channel, os.path.join(arrays, channel), bar.update) if total else 0
    return counts


def _arrays(channels, arrays, s):
    from training.data import prepare_channel

    return decode_channels(channels, arrays, lambda channel, destination, update: prepare_channel(
        channels, channel, (s["input_width"], s["input_height"]), destination, len(SYNTH_CLASSES), update))


def run_in_mxnet(arguments, log_path, on_event, per_device=False):
    """`python ARGUMENTS` in the MXNet environment (this repository importable), its JSON events to `on_event`.

    Threads: one OpenMP team over all cores and one engine worker (a single CPU context), or with `per_device` one
    engine worker per core and one OpenMP thread each, for a batch split over one CPU context per core (the detection
    SSD: 0.90 s an iteration against 1.27 s with the shared team, whose small convolutions and single-threaded
    MultiBoxTarget left cores idle)."""
    from converters.mxnet_env import REPO_ROOT, venv_python

    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cores = str(os.cpu_count() or 2)
    env.setdefault("OMP_NUM_THREADS", "1" if per_device else cores)
    env.setdefault("MXNET_CPU_WORKER_NTHREADS", cores if per_device else "1")
    return run_json_process([venv_python()] + list(arguments), env, log_path, on_event)


def train_arguments(arrays, model_dir, s, has_validation=True, deadline=0.0):
    args = ["-m", "training.mx_train", "--train", os.path.join(arrays, "train"), "--output", model_dir,
            "--class-names", ",".join(SYNTH_CLASSES), "--network", s["network"], "--image-shape", str(s["input_height"]),
            "--image-width", str(s["input_width"]),
            "--batch-size", str(s["batch_size"]), "--epochs", str(s["epochs"]), "--learning-rate", str(s["learning_rate"]),
            "--seed", str(s["seed"]), "--max-iterations", str(s["max_iterations"]), "--deadline", "%.0f" % deadline]
    if has_validation:
        args += ["--validation", os.path.join(arrays, "validation")]
    return args


def run_json_process(command, env, log_path, on_event):
    """Run a training process that prints JSON-line events; on_event(event) for each; the events go to LOG_PATH,
    its stderr to LOG_PATH.stderr. Returns its 'done' event; RoadedgeError when it fails."""
    done, events = None, []
    with open(log_path + ".stderr", "wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env)
        try:
            for raw in process.stdout:
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                events.append(event)
                on_event(event)
                if event.get("event") == "done":
                    done = event
            code = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    with open(log_path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(event) + "\n" for event in events)
    if code != 0 or done is None:
        with open(log_path + ".stderr", "rb") as handle:
            lines = [line for line in handle.read().decode("utf-8", "replace").splitlines() if line.strip()]
        raise RoadedgeError("training in the MXNet environment failed (exit {}): {} (log: {}.stderr)".format(
            code, lines[-1] if lines else "no message", log_path))
    return done


def _train(arrays, model_dir, s, log_path, has_validation, deadline):
    """Run training.mx_train in the MXNet environment; a progress bar over its iterations. Returns its 'done' event."""
    from tqdm import tqdm

    state = {"bar": None}

    def on_event(event):
        kind, bar = event.get("event"), state["bar"]
        if kind == "start":
            state["bar"] = tqdm(total=event["iterations"], desc="training", unit="it", disable=None, file=sys.stderr)
        elif kind == "iteration" and bar is not None:
            bar.update(event["iteration"] - bar.n)
            bar.set_postfix(epoch=event["epoch"], ce="%.3f" % event["cross_entropy"], l1="%.3f" % event["smooth_l1"],
                            refresh=False)
        elif kind == "epoch" and event.get("validation") and bar is not None:
            bar.write("epoch {}: validation mAP@0.5 {:.3f}".format(event["epoch"], event["validation"]["map"]))
        elif kind == "done" and bar is not None and event.get("deadline_hit"):  # annealed early to fit --time-budget
            bar.total = event["iterations"]
            bar.update(event["iterations"] - bar.n)

    try:
        return run_in_mxnet(train_arguments(arrays, model_dir, s, has_validation, deadline), log_path, on_event,
                            per_device=True)
    finally:
        if state["bar"] is not None:
            state["bar"].close()


def _evaluate(ir_xml, voc_dir, s, workers):
    from tqdm import tqdm

    from training.evaluate import evaluate_model, format_report

    _synth(voc_dir, s["eval_images"], s["eval_seed"], s["size"], workers)
    report = evaluate_model(ir_xml, voc_dir, progress=lambda items: tqdm(
        items, desc="evaluating", unit="img", disable=None, file=sys.stderr))
    print(format_report(report), file=sys.stderr)
    return report


def _evaluate_drives(ir_xml, folder, s, workers):
    """mAP on `eval_drives` unseen rendered drives (seeds eval_seed + 1, ...) as one set, every DRIVE_EVAL["every"]
    frame: all labelled boxes, and those of at least DRIVE_EVAL["min_size"] px at the model's input."""
    from training.evaluate import evaluate_model

    seeds = [s["eval_seed"] + 1 + i for i in range(s["eval_drives"])]
    drives = []
    for seed in seeds:
        drives.append(os.path.join(folder, "drive-%d" % seed))
        _cli(["synth", drives[-1], "--video", "--seed", str(seed), "--duration", str(s["eval_drive_seconds"]),
              "--size", DRIVE_EVAL["size"]] + (["--workers", str(workers)] if workers else []))
    reports = {}
    for key, min_size in (("all", 0.0), ("resolved", float(DRIVE_EVAL["min_size"]))):
        reports[key] = evaluate_model(ir_xml, drives, every=DRIVE_EVAL["every"], min_size=min_size)
        print("drives {}, min-size {:g}: mAP@0.5 {}".format(", ".join(map(str, seeds)), min_size,
                                                           figure(reports[key]["map50"])), file=sys.stderr)
    reports["seeds"] = seeds
    return reports


def train_command(args):
    from roadedge.core.fsutil import atomic_dir

    if args.task == "segmentation":
        from training import seg_recipe

        if args.drive_images:
            raise RoadedgeError("--drive-images: detection only (segmentation renders its own frames)")
        return seg_recipe.train_command(args)
    s = settings(args)
    started = time.time()
    steps = Steps((9 if args.bundle else 8) + (1 if s["drive_images"] else 0) + (1 if s["eval_drives"] else 0))
    out_dir = os.path.abspath(args.out_dir)
    # --bundle writes into edge/models during the work: an OUT_DIR around it would take it away at the final swap
    with atomic_dir(out_dir, args.overwrite, inputs=[MODELS_DIR] if args.bundle else []) as work:
        voc, channels, arrays = (os.path.join(work, n) for n in ("voc-train", "sagemaker", "arrays"))
        model_dir, ir_dir, eval_voc = (os.path.join(work, n) for n in ("model", "ir", "voc-eval"))
        os.makedirs(voc)
        steps.run("render %d training frames (seed %d)" % (s["images"], s["seed"]), _synth, os.path.join(voc, "stills"),
                  s["images"], s["seed"], s["size"], args.workers)
        if s["drive_images"]:  # what the camera sees on the road: near and far damage, the drive's light
            steps.run("render %d drive frames (drive seeds from %d)" % (s["drive_images"], s["seed"] + 1000), _synth,
                      os.path.join(voc, "drive"), s["drive_images"], s["seed"] + 1000, "640x360", args.workers,
                      ["--drive-frames", str(DRIVE_EVERY)])
        steps.run("SageMaker channels", _cli, ["dataset", "convert", voc, channels, "--classes", "synth", "--link",
                                               "--validation-fraction", str(s["validation_fraction"]),
                                               "--seed", str(s["seed"])])
        counts = steps.run("decode and resize to %dx%d" % (s["input_width"], s["input_height"]), _arrays, channels,
                           arrays, s)
        deadline = max(60.0, s["time_budget_minutes"] * 60 - (time.time() - started) - POST_TRAINING_SECONDS) \
            if s["time_budget_minutes"] else 0.0
        done = steps.run("train (MXNet, SageMaker's SSD graph)", _train, arrays, model_dir, s,
                         os.path.join(work, "train-log.jsonl"), counts["validation"] > 0, deadline)
        done["model"] = os.path.relpath(done["model"], work)
        if not args.keep_arrays:
            shutil.rmtree(arrays)
        tarball = os.path.join(model_dir, "model.tar.gz")
        steps.run("deploy graph", _cli, ["convert", "deploy", tarball, "--output-dir", model_dir])
        steps.run("OpenVINO IR", _cli, ["convert", "optimize", tarball, "--input-shape", str(s["input_height"]),
                                        str(s["input_width"]), "--output", ir_dir, "--name", s["name"], "--engine",
                                        "native", "--labels", ",".join(SYNTH_CLASSES)])
        ir_xml = os.path.join(ir_dir, s["name"] + ".xml")
        steps.run("verify the IR against MXNet", _cli, ["convert", "verify", tarball, ir_xml])
        report = steps.run("evaluate on %d frames of seed %d" % (s["eval_images"], s["eval_seed"]), _evaluate, ir_xml,
                           eval_voc, s, args.workers)
        drives = steps.run("evaluate on %d unseen drives" % s["eval_drives"], _evaluate_drives, ir_xml,
                           os.path.join(work, "drives-eval"), s, args.workers) if s["eval_drives"] else None
        summary = {"schema": "roadedge.train/1", "settings": s, "argv": sys.argv,
                   "images": counts, "training": done, "steps": steps.times,
                   "ir_bytes": os.path.getsize(ir_xml[:-4] + ".bin"),
                   "metrics": {"map50": report["map50"], "map": report["map"],
                               "ap50": {e["name"]: e["ap50"] for e in report["classes"]}}}
        if drives:
            summary["drives"] = drives
            summary["metrics"]["drives_map50"] = drives["all"]["map50"]
            summary["metrics"]["drives_map50_resolved"] = drives["resolved"]["map50"]
        with open(os.path.join(work, "eval.json"), "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
        summary["seconds"] = round(time.time() - started, 1)
        if args.bundle:
            card = steps.run("bundle into " + MODELS_DIR, bundle, ir_dir, s["name"], report, summary)
            print("wrote " + card, file=sys.stderr)
            summary["seconds"] = round(time.time() - started, 1)
        with open(os.path.join(work, "summary.json"), "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
    print("wrote {}: mAP@0.5 {:.3f}, mAP@[.5:.95] {:.3f} on {} unseen frames; IR {} ({:.2f} MB weights); {:.1f} min".format(
        out_dir, report["map50"], report["map"], report["images"], os.path.join(out_dir, "ir", s["name"] + ".xml"),
        summary["ir_bytes"] / 1e6, summary["seconds"] / 60))
    return 0
