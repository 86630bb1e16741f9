"""Defects on two passes over one rendered road: how many, how often seen, how far from where they are.

    python3 benchmarks/bench_defects.py [--duration 40] [--road-seed 21] [--seeds 1,2] [--min-score 0.5]
                                        [--out /tmp/roadedge-bench/defects] [--work DIR]

Renders two passes over one road (`roadedge synth --video --road-seed R --seed A|B`: the same damages, another
light, camera mounting and sway), then fills two registries:
- `labels`: each pass's labelled boxes through the runtime's chain after the detector (places on the road, the
  tracker, events, the registry; tests/drive_replay.py), so the figures are the chain's;
- `model`: `roadedge run --source drive.mp4 --config drive.yaml --defects REG` with the bundled demo detector, as a
  crew would run it.
Each registry is compared with the renderer's truth (drive.json): the damages the passes could place (seen in two
frames, one of them near enough and not cut by the frame's edge), the defects, defects per damage, passes per defect,
the defects matching no damage, and the distance from each defect to its damage's near edge (median, max).
Writes defects.json and defects.md into --out (outside the checkout by default).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from edge.defects.registry import DefectRegistry, read_defects  # noqa: E402
from tests.drive_replay import compare, placeable, replay_labels  # noqa: E402


def roadedge(*argv):
    done = subprocess.run([sys.executable, "-m", "roadedge"] + [str(a) for a in argv], cwd=REPO, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit("roadedge {} failed: {}".format(" ".join(map(str, argv[:2])), done.stderr.strip()[-400:]))
    return done


def summarise(name, defects, damages, both, rendered):
    """`damages`: those the passes could place; `rendered`: every damage of drive.json (a defect matching none of
    them is a false one; one matching a damage the passes could hardly place is not)."""
    result = compare(defects, damages)
    result["extra"] = compare(defects, rendered)["extra"]
    on_both = [result["passes_of"].get(t) for t in sorted(both)]
    row = {"registry": name, "placeable_damages": len(damages), "placeable_on_both": len(both),
           "defects": result["defects"], "matched_damages": result["matched_damages"],
           "defects_per_damage": result["defects_per_damage"], "extra_defects": len(result["extra"]),
           "seen_on_both_passes": sum(1 for p in on_both if p == 2), "missed": result["missed"],
           "median_error_m": result["median_error_m"], "max_error_m": result["max_error_m"]}
    errors = sorted(round(e, 2) for e in result.get("errors", []))
    if errors:
        row["errors_m"] = errors
    return row


def table(rows):
    lines = ["| registry | damages placeable (on both) | defects | damages found | defects per damage | "
             "extra defects | seen on both passes | median error m | max error m |", "|---" * 9 + "|"]
    for r in rows:
        lines.append("| {registry} | {placeable_damages} ({placeable_on_both}) | {defects} | {matched_damages} | "
                     "{per} | {extra_defects} | {seen_on_both_passes} of {placeable_on_both} | {med} | {max} |".format(
                         per=", ".join(map(str, r["defects_per_damage"])) or "-",
                         med="-" if r["median_error_m"] is None else "%.2f" % r["median_error_m"],
                         max="-" if r["max_error_m"] is None else "%.2f" % r["max_error_m"], **r))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of each pass (12 m/s)")
    parser.add_argument("--road-seed", type=int, default=21)
    parser.add_argument("--seeds", default="1,2", help="the two passes' seeds")
    parser.add_argument("--min-score", type=float, default=0.5, help="the demo detector's threshold")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "roadedge-bench", "defects"))
    parser.add_argument("--work", default=None, help="where the passes are rendered (default: a temporary folder)")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="roadedge-defects-")
    folders = []
    for seed in args.seeds.split(","):
        folder = os.path.join(work, "pass" + seed)
        if not os.path.exists(os.path.join(folder, "drive.json")):
            roadedge("synth", "--video", folder, "--seed", seed, "--road-seed", args.road_seed, "--duration",
                     args.duration, "--overwrite")
        folders.append(folder)
    damages, per_pass = placeable(folders)
    both = per_pass[0] & per_pass[1]
    rows = []
    labels_path = os.path.join(work, "labels.sqlite")
    for path in (labels_path, os.path.join(work, "model.sqlite")):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    with DefectRegistry(labels_path) as registry:
        for index, folder in enumerate(folders):
            replay_labels(folder, registry, boot_id="labels-pass{}".format(index))
    with open(os.path.join(folders[0], "drive.json")) as handle:
        rendered = json.load(handle)["damages"]
    rows.append(summarise("labels", read_defects(labels_path), damages, both, rendered))
    model_path = os.path.join(work, "model.sqlite")
    for folder in folders:
        roadedge("run", "--source", os.path.join(folder, "drive.mp4"), "--config", os.path.join(folder, "drive.yaml"),
                 "--no-realtime", "--no-preview", "--defects", model_path, "--min-score", args.min_score, "--quiet",
                 "--output", "jsonl:" + os.path.join(folder, "run.jsonl"), "--device-name", "bench")
    rows.append(summarise("model (bundled demo detector, min-score {})".format(args.min_score), read_defects(model_path),
                          damages, both, rendered))
    os.makedirs(args.out, exist_ok=True)
    report = {"duration_s": args.duration, "road_seed": args.road_seed, "seeds": args.seeds, "work": work, "rows": rows,
              "damages": damages}
    with open(os.path.join(args.out, "defects.json"), "w") as handle:
        json.dump(report, handle, indent=1)
    markdown = table(rows)
    with open(os.path.join(args.out, "defects.md"), "w") as handle:
        handle.write(markdown + "\n")
    print(markdown)
    print("missed damages (track ids):", {r["registry"]: r["missed"] for r in rows})
    print("wrote", os.path.join(args.out, "defects.json"), "and defects.md; passes in", work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
