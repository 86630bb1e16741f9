"""Runtime benchmark: `roadedge run` end to end vs OpenVINO's benchmark_app vs a plain synchronous loop vs MXNet.

    python3 benchmarks/bench_runtime.py [--frames N] [--out DIR] [--models bundled,resnet50-300,resnet50-512]
                                        [--precisions f32,bf16] [--int8 [KEY=]IR ...] [--seconds 15] [--repeat 1]
                                        [--quiet-wait 60] [--work DIR] [--quick]
    python3 benchmarks/bench_runtime.py --table DIR/runtime.json    # the Markdown table (runtime.md) of a saved result

For every model and precision, on the same IR: `roadedge run` (LATENCY hint with 2 requests, and THROUGHPUT with
--requests 0: 4 x the device's optimal number of requests; and LATENCY again with a warm model cache), with each
run's peak RSS and time to its first result; benchmark_app with the throughput and the latency hint (on the bare IR,
and with the THROUGHPUT hint on the model as the runtime compiles it: resize/colour/layout folded in), a DeepLens-style
synchronous loop, and (ResNet-50, f32) MXNet's forward pass in the MXNet venv. Everything it reads is in this
repository (the bundled model and sample, the SageMaker symbol in tests/fixtures; the drive is rendered by `roadedge
synth`); it writes runtime.json, runtime.md, runtime.png to --out, by default outside the checkout. See
benchmarks/README.md.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _measure  # noqa: E402
import _models  # noqa: E402
import _mxnet_fps  # noqa: E402
import _runtime_report  # noqa: E402

MODELS = ("bundled", "resnet50-300", "resnet50-512")
FRAMES = {"bundled": 450, "resnet50-300": 150, "resnet50-512": 150}  # the drive video has 150 frames (--loop beyond)
PRECISIONS = ("f32", "bf16")
DEFAULT_OUT = os.path.join("/tmp", "roadedge-bench", "runtime")  # outside the checkout: a run never dirties it
QUIET = 0.3  # cores other processes may use during a measurement before it counts as disturbed
TARGET = 0.95  # end-to-end >= 0.95 x benchmark_app throughput in steady state where inference dominates (ResNet-50, f32)
TARGET_SYNC = 1.05  # ... and >= 1.05 x the synchronous loop it replaces


def int8_models(specs):
    """--int8 [KEY=]IR values -> [(key, xml)]; KEY defaults to the IR's file name without .xml."""
    out = []
    for spec in specs:
        key, _, path = spec.rpartition("=") if "=" in spec and not os.path.exists(spec) else ("", "", spec)
        path = os.path.abspath(os.path.expanduser(path))
        if not path.endswith(".xml") or not os.path.isfile(path):
            raise SystemExit("--int8 {}: expected an OpenVINO IR (.xml, with its .bin and .json metadata)".format(spec))
        if not os.path.isfile(os.path.splitext(path)[0] + ".json"):
            raise SystemExit("--int8 {}: no {} metadata next to the IR (`roadedge convert` writes it)".format(
                spec, os.path.splitext(path)[0] + ".json"))
        out.append((key or os.path.splitext(os.path.basename(path))[0], path))
    return out


def cases(models, work, frames, quick, precisions=("f32",), int8=()):
    """(model key, IR .xml, video label, video path, frames, precision) rows; int8: int8_models' [(key, xml)]."""
    drive = _models.drive_video(work)
    rows = []
    for key in models:
        if key == "bundled":
            rows.append((key, _models.BUNDLED_XML, "drive", drive))
            if not quick:
                rows.append((key, _models.BUNDLED_XML, "sample", _models.SAMPLE_VIDEO))
        elif key.startswith("resnet50-") and key[len("resnet50-"):].isdigit():
            rows.append((key, _models.resnet50_ir(work, int(key[len("resnet50-"):])), "drive", drive))
        else:
            raise SystemExit("--models: unknown model {!r}; expected {}".format(key, ", ".join(MODELS)))
    out = [row + (frames or FRAMES.get(row[0], 150), precision) for row in rows for precision in precisions]
    return out + [(key, xml, "drive", drive, frames or FRAMES.get(key, 150), "int8") for key, xml in int8]


def resnet50_size(key):
    suffix = key[len("resnet50-"):]
    return int(suffix) if key.startswith("resnet50-") and suffix.isdigit() else None


def best(runs, key="fps"):
    return max(runs, key=lambda r: r[key] or 0.0)


def machine():
    import cv2
    import openvino as ov

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "openvino": ov.get_version(), "opencv": cv2.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def measure(args, work):
    cache = {}

    def quiet(fn, *fn_args):
        """fn(*fn_args), best of --repeat runs undisturbed by other processes (other load < 0.3 cores meanwhile; up to
        --retries more runs when disturbed). Records the other load seen during each kept run."""
        clean, disturbed = [], []
        while len(clean) < args.repeat and len(clean) + len(disturbed) < args.repeat + args.retries:
            result = _measure.quiet_run(args.quiet_wait, fn, *fn_args)
            (clean if result["other_load_cores"] < QUIET else disturbed).append(result)
        return best(clean or disturbed)

    rows = []
    for key, xml, video_name, video, frames, precision in cases(args.models, work, args.frames, args.quick,
                                                                args.precisions, args.int8):
        width, height, length = _measure.video_info(video)
        meta = _models.metadata(xml)
        label = "{} {}x{}".format(video_name, width, height)
        print("bench: {} {} ({}x{}) on {}, {} frames".format(key, precision, meta["input"]["width"], meta["input"]["height"],
                                                             label, frames), flush=True)
        row = {"model": key, "precision": precision, "ir": xml,
               "input": "{}x{}".format(meta["input"]["width"], meta["input"]["height"]),
               "video": label, "video_path": video, "frames": frames, "e2e": {}}
        loop = frames > length
        row["e2e"]["latency"] = quiet(_measure.run_e2e, xml, video, frames, "latency", work, loop, precision)
        row["e2e"]["latency_warm_cache"] = quiet(warm_cache_run, xml, video, frames, work, loop, precision,
                                                 "{}-{}-{}".format(key, precision, video_name))
        if (xml, "latency", precision) not in cache:
            cache[xml, "latency", precision] = quiet(_measure.benchmark_app, xml, "latency", args.seconds, None, precision)
        runtime_xml = _measure.runtime_model(xml, work)
        if (runtime_xml, precision) not in cache:
            cache[runtime_xml, precision] = quiet(_measure.benchmark_app, runtime_xml, "throughput", args.seconds, None,
                                                  precision)
        paired = [paired_round(args, xml, video, frames, work, loop, precision) for _ in range(max(1, args.rounds))]
        row["e2e"]["throughput"] = best([r["e2e"] for r in paired])
        row["benchmark_app"] = {"throughput": best([r["benchmark_app"] for r in paired]),
                                "latency": cache[xml, "latency", precision],
                                "throughput_runtime_model": cache[runtime_xml, precision]}
        row["sync_loop"] = best([r["sync_loop"] for r in paired])
        row.update(round_ratios(paired))
        size = resnet50_size(key)
        row["mxnet"] = None  # MXNet runs the SageMaker model it was converted from, in f32: ResNet-50 rows only
        if size and precision == "f32" and not args.no_mxnet and _mxnet_fps.available():
            if ("mxnet", size) not in cache:
                cache["mxnet", size] = quiet(_mxnet_fps.mxnet_fps, _models.sagemaker_tarball(work), size, args.seconds)
            row["mxnet"] = cache["mxnet", size]
        rows.append(row)
    return rows


def paired_round(args, xml, video, frames, work, loop, precision):
    """One round of the three throughputs the targets compare, back to back: `roadedge run` (THROUGHPUT hint, 4 x the
    optimal requests), benchmark_app -hint throughput on the bare IR, and the synchronous loop. This machine's speed
    drifts by +-10 % over minutes, more than the differences measured, so ratios are taken within a round."""
    return {"e2e": _measure.quiet_run(args.quiet_wait, _measure.run_e2e, xml, video, frames, "throughput", work, loop,
                                      precision),
            "benchmark_app": _measure.quiet_run(args.quiet_wait, _measure.benchmark_app, xml, "throughput", args.seconds,
                                                None, precision),
            "sync_loop": _measure.quiet_run(args.quiet_wait, _measure.sync_loop, xml, video, frames, precision)}


def round_ratios(paired):
    """The medians over rounds of e2e / benchmark_app and e2e / sync loop (as reported and in steady state), with each
    round's values."""
    def median(values):
        values = [v for v in values if v is not None]
        return round(statistics.median(values), 3) if values else None

    per_round = [{"e2e_fps": r["e2e"]["fps"], "e2e_steady_fps": r["e2e"]["steady_fps"], "bapp_fps": r["benchmark_app"]["fps"],
                  "sync_fps": r["sync_loop"]["fps"]} for r in paired]
    for r in per_round:
        steady = r["e2e_steady_fps"]
        r.update(e2e_bapp=round(r["e2e_fps"] / r["bapp_fps"], 3), e2e_sync=round(r["e2e_fps"] / r["sync_fps"], 3),
                 steady_bapp=round(steady / r["bapp_fps"], 3) if steady else None,
                 steady_sync=round(steady / r["sync_fps"], 3) if steady else None)
    return {"rounds": per_round, "ratio_e2e_tput": median(r["e2e_bapp"] for r in per_round),
            "ratio_e2e_tput_steady": median(r["steady_bapp"] for r in per_round),
            "ratio_e2e_sync": median(r["e2e_sync"] for r in per_round),
            "ratio_e2e_sync_steady": median(r["steady_sync"] for r in per_round)}


def warm_cache_run(xml, video, frames, work, loop, precision, name):
    """`roadedge run` (LATENCY) with backend.cache_dir warmed by a 3-frame run before (not measured)."""
    import shutil

    cache_dir = os.path.join(work, "model-cache", name)
    shutil.rmtree(cache_dir, ignore_errors=True)
    os.makedirs(cache_dir)
    _measure.run_e2e(xml, video, min(frames, 3), "latency", work, False, precision, cache_dir)
    if not os.listdir(cache_dir):
        raise SystemExit("bench: the warm-up run left no compiled model in {}".format(cache_dir))
    return _measure.run_e2e(xml, video, frames, "latency", work, loop, precision, cache_dir)


def print_table(path):
    """--table: runtime.md's content (heading, Markdown table, text block) from a saved runtime.json."""
    with open(path, encoding="utf-8") as handle:
        report = json.load(handle)
    print(_runtime_report.markdown(report), end="")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, help="frames per end-to-end run and sync loop (default: 450 bundled, 150 others)")
    parser.add_argument("--out", help="folder for runtime.json/.md/.png (default {}; with --quick {}-quick)".format(
        DEFAULT_OUT, DEFAULT_OUT))
    parser.add_argument("--models", help="comma-separated: {} (default all; with --quick bundled)".format(", ".join(MODELS)))
    parser.add_argument("--precisions", help="comma-separated CPU inference precisions: f32, bf16 (default f32,bf16; "
                        "with --quick f32)")
    parser.add_argument("--int8", action="append", default=[], metavar="[KEY=]IR",
                        help="also measure this INT8 IR (e.g. from `roadedge convert quantize`) as KEY (default: its file "
                        "name), on the drive video; repeatable")
    parser.add_argument("--no-mxnet", action="store_true", help="leave out MXNet's forward speed (needs the MXNet venv)")
    parser.add_argument("--table", metavar="RUNTIME_JSON", help="print the Markdown table of a saved runtime.json and exit")
    parser.add_argument("--seconds", type=int, default=15, help="benchmark_app -t (default 15)")
    parser.add_argument("--repeat", type=int, default=1, help="repeat each other measurement and keep the fastest (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of e2e THROUGHPUT, benchmark_app throughput and the sync "
                        "loop back to back; the ratios are the rounds' medians, the FPS the fastest (default 3)")
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="before each measurement wait up to this many seconds for other load to settle (default 60)")
    parser.add_argument("--retries", type=int, default=3, help="extra runs allowed when others disturbed one (default 3)")
    parser.add_argument("--work", default=os.path.join(os.path.expanduser("~"), ".cache", "roadedge", "bench"),
                        help="cache of the video and converted models (default ~/.cache/roadedge/bench)")
    parser.add_argument("--quick", action="store_true", help="smoke check: bundled model only, 30 frames, benchmark_app -t 3")
    args = parser.parse_args(argv)
    if args.table:
        return print_table(args.table)
    args.models = [m.strip() for m in (args.models or ("bundled" if args.quick else ",".join(MODELS))).split(",") if m.strip()]
    args.precisions = [p.strip() for p in (args.precisions or ("f32" if args.quick else ",".join(PRECISIONS))).split(",")
                       if p.strip()]
    for precision in args.precisions:
        if precision not in PRECISIONS:
            raise SystemExit("--precisions: {!r} is not one of {} (int8: give the quantized IR with --int8)".format(
                precision, ", ".join(PRECISIONS)))
    args.int8 = int8_models(args.int8)
    if args.quick:
        args.frames, args.seconds, args.repeat, args.rounds = args.frames or 30, 3, 1, 1
        args.quiet_wait, args.retries = min(args.quiet_wait, 2.0), 0
    if not args.out:
        args.out = DEFAULT_OUT + ("-quick" if args.quick else "")
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    started = time.time()
    info = machine()
    rows = measure(args, args.work)
    report = {"schema": "roadedge.bench.runtime/1", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
              "machine": info, "precisions": sorted({r["precision"] for r in rows}), "quick": args.quick,
              "benchmark_app_seconds": args.seconds, "repeat": args.repeat, "rounds": args.rounds,
              "target_ratio": TARGET, "target_sync_ratio": TARGET_SYNC, "rows": rows,
              "bench_seconds": round(time.time() - started, 1)}
    from roadedge.core.fsutil import atomic_file

    with atomic_file(os.path.join(args.out, "runtime.json"), "w") as handle:
        json.dump(report, handle, indent=2)
    with atomic_file(os.path.join(args.out, "runtime.md"), "w") as handle:
        handle.write(_runtime_report.markdown(report))
    print()
    print(_runtime_report.heading(report))
    print(_runtime_report.format_table(report))
    print(_runtime_report.sync_table(report))
    print(_runtime_report.targets(report))
    written = _runtime_report.chart(report, os.path.join(args.out, "runtime.png"))
    print("bench: wrote {} (and runtime.md){} in {:.0f} s".format(os.path.join(args.out, "runtime.json"),
                                                 " and " + written if written else "", time.time() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
