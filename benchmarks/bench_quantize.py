"""INT8 benchmark: `roadedge convert quantize` at its defaults, then benchmark_app on f32, bf16 and INT8.

    python3 benchmarks/bench_quantize.py [--models demo,resnet50-300] [--seconds 10] [--out DIR] [--work DIR]

Models: the bundled demo detector (256x256) and SageMaker's ResNet-50 SSD at 300x300 with seeded random weights
(benchmarks/_models.py; its accuracy figures mean nothing, only its speed does). Each is quantised by
`roadedge convert quantize` with the default sets (300 synthetic calibration frames, 200 validation frames of seed
12345 at 600x600, --max-drop 0.01; the ResNet-50 with --ignore-unknown --max-drop 1); then
`benchmark_app -d CPU -hint throughput` runs the f32 IR with -infer_precision f32 (what the runtime asks for) and bf16,
and the INT8 IR with f32 (its layers left in float run f32). Writes quantize.json and quantize.md. Run it on an idle
machine: the figures are throughput.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _models  # noqa: E402

MODELS = ("demo", "resnet50-300")
# the random-weight ResNet-50 knows one class (D40) and finds nothing: its accuracy cannot guide anything
OPTIONS = {"demo": [], "resnet50-300": ["--ignore-unknown", "--max-drop", "1"]}


def benchmark_app(xml, precision, seconds):
    tool = shutil.which("benchmark_app")
    if tool is None:
        raise SystemExit("benchmark_app not found on PATH (it comes with `pip install openvino`)")
    args = [tool, "-m", xml, "-d", "CPU", "-hint", "throughput", "-infer_precision", precision, "-t", str(seconds)]
    result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    text = result.stdout.decode(errors="replace")
    found = re.search(r"Throughput:\s+([\d.]+)\s*FPS", text)
    if result.returncode != 0 or not found:
        raise SystemExit("benchmark_app failed ({}):\n{}".format(" ".join(args), text[-3000:]))
    median = re.search(r"Median:\s+([\d.]+)\s*ms", text)
    return {"command": " ".join(["benchmark_app"] + args[1:]), "fps": float(found.group(1)),
            "median_ms": float(median.group(1)) if median else None}


def model_ir(name, work):
    if name == "demo":
        return _models.BUNDLED_XML
    return _models.resnet50_ir(work, "300")


def quantize(xml, out, options):
    if not os.path.isfile(os.path.join(out, os.path.basename(xml))):
        started = time.perf_counter()
        print("bench: roadedge convert quantize {} --output {}".format(xml, out), flush=True)
        _models.roadedge("convert", "quantize", xml, "--output", out, "--overwrite", *options)
        print("bench: quantised in {:.0f} s".format(time.perf_counter() - started), flush=True)
    return os.path.join(out, os.path.basename(xml))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--out", default=os.path.join(_models.REPO, "benchmarks", "results"))
    parser.add_argument("--work", default=os.path.expanduser("~/.cache/roadedge/bench"))
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        xml = model_ir(name, args.work)
        int8 = quantize(xml, os.path.join(args.work, "int8-" + name), OPTIONS[name])
        with open(int8[:-4] + ".json", encoding="utf-8") as handle:
            record = json.load(handle)["quantization"]
        row = {"model": name, "ir": xml, "int8_ir": int8, "accuracy": record["accuracy"],
               "int8_layers": record["int8_layers"], "f32_layers": record["kept_f32"]["layers"],
               "f32": benchmark_app(xml, "f32", args.seconds), "bf16": benchmark_app(xml, "bf16", args.seconds),
               "int8": benchmark_app(int8, "f32", args.seconds)}
        row["int8_over_f32"] = round(row["int8"]["fps"] / row["f32"]["fps"], 2)
        row["bf16_over_f32"] = round(row["bf16"]["fps"] / row["f32"]["fps"], 2)
        print(json.dumps(row, indent=1), flush=True)
        rows.append(row)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "quantize.json"), "w", encoding="utf-8") as handle:
        json.dump(rows, handle, indent=1)
    lines = ["| model | f32 FPS | bf16 FPS | INT8 FPS | INT8/f32 | bf16/f32 | mAP@0.5 f32 | INT8 | INT8 layers |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| {} | {:.0f} | {:.0f} | {:.0f} | {:.2f} | {:.2f} | {:.3f} | {:.3f} | {} of {} |".format(
            r["model"], r["f32"]["fps"], r["bf16"]["fps"], r["int8"]["fps"], r["int8_over_f32"], r["bf16_over_f32"],
            r["accuracy"]["f32"], r["accuracy"]["int8"], r["int8_layers"], r["int8_layers"] + len(r["f32_layers"])))
    with open(os.path.join(args.out, "quantize.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
