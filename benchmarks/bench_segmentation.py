"""Segmentation benchmark: `roadedge run` end to end vs OpenVINO's benchmark_app on the same IR.

    python3 benchmarks/bench_segmentation.py [--models psp-r50-240,demo] [--frames N] [--seconds 15] [--out DIR]
                                             [--work DIR] [--quick]

Models: a SageMaker PSPNet ResNet-50 at 240x240 with seeded random weights (tests/seg_artefacts.py, 21 classes,
converted by `roadedge convert optimize --engine native`), and the bundled demo model (edge/models/road-seg.xml);
each as converted (logits out, the runtime takes the argmax) and with the argmax folded into the IR (`--argmax`).
For each: `roadedge run` on the 1280x720 drive video with the THROUGHPUT hint and the device's optimal number of
requests and benchmark_app -hint throughput on the bare IR, back to back in --repeat rounds (the ratio e2e /
benchmark_app is the median of the rounds'; target >= 0.9), benchmark_app on the IR with colour, mean/scale and
layout compiled in (`backend.preprocess: device`, "+ppp"), and the mask post-processing's
milliseconds per frame (the runtime's `decode` stage: argmax, shares, drivable share, free distance). Writes
segmentation.json and segmentation.md. See benchmarks/README.md.
"""
import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _measure  # noqa: E402
import _models  # noqa: E402

MODELS = ("psp-r50-240", "demo")
FRAMES = {"psp-r50-240": 90, "demo": 450}
TARGET = 0.9
DEMO_XML = os.path.join(_models.REPO, "edge", "models", "road-seg.xml")


def psp_r50_ir(work, argmax):
    """work/psp-r50-240/ir[-argmax]/psp.xml from a seeded PSPNet ResNet-50 artefact (SageMaker's layout)."""
    from tests.seg_artefacts import write_artefact

    folder = os.path.join(work, "psp-r50-240")
    tarball = os.path.join(folder, "model.tar.gz")
    if not os.path.isfile(tarball):
        os.makedirs(folder, exist_ok=True)
        print("bench: writing a seeded PSPNet ResNet-50 (240, 21 classes) artefact", flush=True)
        write_artefact(tarball + ".part", "psp", "resnet-50", num_classes=21, crop_size=240, seed=_models.WEIGHT_SEED)
        os.replace(tarball + ".part", tarball)
    out = os.path.join(folder, "ir-argmax" if argmax else "ir")
    xml = os.path.join(out, "psp.xml")
    if not os.path.isfile(xml):
        args = ["convert", "optimize", tarball, "--engine", "native", "--name", "psp", "--output", out]
        print("bench: roadedge " + " ".join(args + (["--argmax"] if argmax else [])), flush=True)
        _models.roadedge(*(args + (["--argmax"] if argmax else [])))
    return xml


def demo_ir(work, argmax):
    """The bundled demo model; with `argmax`, a copy whose output is the argmax over classes (the converter's fold)."""
    if not os.path.isfile(DEMO_XML):
        raise SystemExit("{}: no bundled demo segmentation model (roadedge train --task segmentation --bundle)".format(DEMO_XML))
    if not argmax:
        return DEMO_XML
    import openvino as ov

    from converters.gluoncv_seg.build import MASK, finish_model

    xml = os.path.join(work, "demo-argmax", "road-seg.xml")
    if not os.path.isfile(xml):
        os.makedirs(os.path.dirname(xml), exist_ok=True)
        model = ov.Core().read_model(DEMO_XML)  # the converter's own argmax fold, on the bundled IR's logits
        folded = finish_model(model.get_results()[0].input_value(0), True, model.get_parameters(), "road-seg")
        ov.save_model(folded, xml, compress_to_fp16=False)
        meta = _models.metadata(DEMO_XML)
        meta["output"] = dict(meta["output"], name=MASK, format="segmentation_mask")
        with open(xml[:-4] + ".json", "w", encoding="utf-8") as handle:
            json.dump(meta, handle, indent=2)
    return xml


def quiet_best(args, fn, *fn_args):
    """fn(*fn_args), best of --repeat quiet runs."""
    return max((_measure.quiet_run(args.quiet_wait, fn, *fn_args) for _ in range(max(1, args.repeat))),
               key=lambda r: r.get("fps") or 0.0)


def paired(args, work, xml, video, frames, loop):
    """--repeat rounds of `roadedge run` and benchmark_app on the bare IR back to back: (best e2e run, best benchmark_app
    run, the median of the rounds' e2e / benchmark_app ratios, and of their steady-state ratios). This machine's speed
    drifts by up to +-10 % over minutes, so a ratio of two runs taken apart says less than one of neighbours."""
    import statistics

    rounds = []
    for _ in range(max(1, args.repeat)):
        e2e = _measure.quiet_run(args.quiet_wait, _measure.run_e2e, xml, video, frames, "throughput", work, loop)
        bapp = _measure.quiet_run(args.quiet_wait, _measure.benchmark_app, xml, "throughput", args.seconds)
        rounds.append((e2e, bapp))
    ratios = [e2e["fps"] / bapp["fps"] for e2e, bapp in rounds]
    steady = [e2e["steady_fps"] / bapp["fps"] for e2e, bapp in rounds if e2e.get("steady_fps")]
    return (max((e for e, _ in rounds), key=lambda r: r["fps"]), max((b for _, b in rounds), key=lambda r: r["fps"]),
            statistics.median(ratios), statistics.median(steady) if steady else None, ratios)


def videos(key, work):
    """[(name, path)]: the 1280x720 drive for every model; the demo model also on the 640x360 sample drive, the frame
    size of the RC car's camera it was made for (448x256 input)."""
    drive = [("drive", _models.drive_video(work))]
    return drive + [("sample", _models.SAMPLE_VIDEO)] if key == "demo" else drive


def measure(args, work):
    rows, cache = [], {}
    for key, argmax in [(key, argmax) for key in args.models for argmax in (False, True)]:
        xml = psp_r50_ir(work, argmax) if key == "psp-r50-240" else demo_ir(work, argmax)
        meta = _models.metadata(xml)
        for video_name, video in videos(key, work):
            width, height, length = _measure.video_info(video)
            frames = args.frames or FRAMES[key]
            print("bench: {}{} ({}x{}, {} classes) on {} {}x{}, {} frames".format(
                key, " --argmax" if argmax else "", meta["input"]["width"], meta["input"]["height"],
                len(meta["labels"]), video_name, width, height, frames), flush=True)
            e2e, bapp, ratio, ratio_steady, ratios = paired(args, work, xml, video, frames, frames > length)
            runtime_xml = _measure.runtime_model(xml, work)
            if runtime_xml not in cache:
                cache[runtime_xml] = quiet_best(args, _measure.benchmark_app, runtime_xml, "throughput", args.seconds)
            bapp_ppp = cache[runtime_xml]
            rows.append({
                "model": key, "argmax_in_ir": argmax, "ir": xml, "output": meta["output"]["format"],
                "input": "{}x{}".format(meta["input"]["width"], meta["input"]["height"]), "classes": len(meta["labels"]),
                "video": "{} {}x{}".format(video_name, width, height), "frames": frames, "e2e_throughput": e2e,
                "benchmark_app": {"throughput": bapp, "throughput_runtime_model": bapp_ppp},
                "mask_postprocess_ms": e2e["stages_ms"].get("decode", {}).get("mean"),
                "ratio_e2e_tput": round(ratio, 3), "ratio_e2e_tput_steady": round(ratio_steady, 3) if ratio_steady else None,
                "ratio_rounds": [round(r, 3) for r in ratios],
            })
    return rows


COLUMNS = ("model", "argmax in IR", "input", "video", "e2e FPS", "(steady)", "bapp FPS", "bapp +ppp FPS", "e2e/bapp", "(steady)",
           "mask post ms", "infer ms")


def table(rows, markdown=False):
    lines = []
    for r in rows:
        e2e = r["e2e_throughput"]
        lines.append([r["model"], "yes" if r["argmax_in_ir"] else "no", r["input"], r["video"], "{:.1f}".format(e2e["fps"]),
                      "{:.1f}".format(e2e["steady_fps"] or 0.0), "{:.1f}".format(r["benchmark_app"]["throughput"]["fps"]),
                      "{:.1f}".format(r["benchmark_app"]["throughput_runtime_model"]["fps"]),
                      "{:.2f}".format(r["ratio_e2e_tput"]), "{:.2f}".format(r["ratio_e2e_tput_steady"] or 0.0),
                      "{:.2f}".format(r["mask_postprocess_ms"] or 0.0),
                      "{:.1f}".format(e2e["stages_ms"].get("infer", {}).get("mean", 0.0))])
    if markdown:
        return "\n".join(["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
                         + ["| " + " | ".join(line) + " |" for line in lines])
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(COLUMNS)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)) for line in [list(COLUMNS)] + lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--frames", type=int, help="frames per end-to-end run (default: 90 PSPNet, 450 demo)")
    parser.add_argument("--seconds", type=int, default=15, help="benchmark_app -t (default 15)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of e2e + benchmark_app back to back per row; the "
                        "ratio is the rounds' median, the FPS the fastest (default 3)")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="wait up to this long for other load to settle")
    parser.add_argument("--out", help="folder for segmentation.json/.md (default benchmarks/results; --quick: WORK/quick)")
    parser.add_argument("--work", default=os.path.join(os.path.expanduser("~"), ".cache", "roadedge", "bench"),
                        help="cache of the video and converted models (default ~/.cache/roadedge/bench)")
    parser.add_argument("--quick", action="store_true", help="smoke check: 20 frames, benchmark_app -t 3")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        raise SystemExit("--models: unknown {}; expected {}".format(", ".join(unknown), ", ".join(MODELS)))
    if shutil.which("benchmark_app") is None:
        raise SystemExit("benchmark_app not found on PATH (it comes with `pip install openvino`)")
    if args.quick:
        args.frames, args.seconds, args.quiet_wait = args.frames or 20, 3, min(args.quiet_wait, 2.0)
    args.out = args.out or (os.path.join(args.work, "quick") if args.quick
                            else os.path.join(_models.REPO, "benchmarks", "results"))
    os.makedirs(args.out, exist_ok=True)
    started = time.time()
    rows = measure(args, args.work)
    report = {"schema": "roadedge.bench.segmentation/1", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
              "precision": _measure.PRECISION, "quick": args.quick, "benchmark_app_seconds": args.seconds,
              "target_ratio": TARGET, "rows": rows, "bench_seconds": round(time.time() - started, 1)}
    with open(os.path.join(args.out, "segmentation.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    with open(os.path.join(args.out, "segmentation.md"), "w", encoding="utf-8") as handle:
        handle.write(table(rows, markdown=True) + "\n")
    print()
    print(table(rows))
    for r in rows:
        print("target {}{} on {}: e2e / benchmark_app = {:.2f} ({:.2f} steady) -> {}".format(
            r["model"], " --argmax" if r["argmax_in_ir"] else "", r["video"], r["ratio_e2e_tput"],
            r["ratio_e2e_tput_steady"] or 0.0,
            "met" if max(r["ratio_e2e_tput"], r["ratio_e2e_tput_steady"] or 0.0) >= TARGET else "NOT met"))
    print("bench: wrote {} in {:.0f} s".format(os.path.join(args.out, "segmentation.json"), time.time() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
