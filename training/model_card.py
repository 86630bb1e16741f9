"""The detection demo model's card: its metrics section (stills and unseen drives) and the bundle into edge/models."""
import os
import shutil

MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "edge", "models")
CARD_START, CARD_END = "<!-- metrics:start -->", "<!-- metrics:end -->"
DRIVE_EVAL = {"size": "640x360", "every": 2, "min_size": 8}  # unseen drives (seeds after --eval-seed), as one set


def input_size(s):
    """(width, height) of the network input in a run's settings (square `image_shape` in summaries before
    --input-size)."""
    return s.get("input_width", s["image_shape"]), s.get("input_height", s["image_shape"])


def figure(value):
    """A metric for a table: 3 decimals, or '-' where it is undefined (no ground truth)."""
    return "-" if value is None else "{:.3f}".format(value)


def drives_markdown(drives, s):
    """The model card's table of the unseen drives: AP@0.5 per class over all labelled boxes and over the resolved."""
    every, min_size = DRIVE_EVAL["every"], DRIVE_EVAL["min_size"]
    lines = ["On {} rendered drives it was not trained on (`roadedge synth --video --seed N --duration {} --size {}`, "
             "seeds {}), one frame in {}, as one set: all labelled boxes, and only those at least {} px wide and high "
             "at the model's input (`roadedge eval ... --every {} --min-size {}`; smaller ones are damage far "
             "ahead, a few pixels at {}x{}).".format(len(drives["seeds"]), s["eval_drive_seconds"], DRIVE_EVAL["size"],
                                                     ", ".join(map(str, drives["seeds"])), every, min_size, every,
                                                     min_size, *input_size(s)),
             "", "| class | boxes | AP@0.5 | boxes >= {} px | AP@0.5 |".format(min_size), "|---|---:|---:|---:|---:|"]
    for every_box, resolved in zip(drives["all"]["classes"], drives["resolved"]["classes"]):
        lines.append("| {} | {} | {} | {} | {} |".format(every_box["name"], every_box["gt"], figure(every_box["ap50"]),
                                                         resolved["gt"], figure(resolved["ap50"])))
    lines += ["", "**Drives: mAP@0.5 {}** over all labelled boxes, **{}** over those of at least {} px.".format(
        figure(drives["all"]["map50"]), figure(drives["resolved"]["map50"]), min_size)]
    return lines


def metrics_markdown(report, summary):
    """The model card's metrics section (between the markers) for an evaluation report."""
    s = summary["settings"]
    lines = [CARD_START, "",
             "Measured by `roadedge train` on {} synthetic frames rendered with seed {} (the training set used seed {}), "
             "{}x{} resized to {}x{}, with the OpenVINO IR (FP32, CPU); difficult objects ignored.".format(
                 report["images"], s["eval_seed"], s["seed"], *s["size"].split("x"), *input_size(s)),
             "", "| class | objects | AP@0.5 | precision@0.5 | recall@0.5 |", "|---|---:|---:|---:|---:|"]
    for entry in report["classes"]:
        lines.append("| {} | {} | {} | {} | {} |".format(entry["name"], entry["gt"], *(
            figure(entry[key]) for key in ("ap50", "precision", "recall"))))
    lines += ["", "**mAP@0.5 {:.3f}**, mAP@[.5:.95] {:.3f}; precision and recall at score >= {:g}.".format(
        report["map50"], report["map"], report["score_threshold"]), "",
        "Recipe time {:.1f} min on this machine ({} CPU cores), training {:.1f} min ({} iterations, {} epochs); "
        "IR weights {:.2f} MB.".format(summary["seconds"] / 60, os.cpu_count(), summary["training"]["seconds"] / 60,
                                      summary["training"]["iterations"], summary["training"]["epochs"],
                                      summary["ir_bytes"] / 1e6), ""]
    if summary.get("drives"):
        lines += drives_markdown(summary["drives"], s) + [""]
    return "\n".join(lines + [CARD_END])


def bundle(ir_dir, name, report, summary, models_dir=MODELS_DIR):
    """Copy NAME.xml/.bin/.json into edge/models and rewrite the metrics section of MODEL_CARD.md."""
    from roadedge.core.fsutil import atomic_file

    os.makedirs(models_dir, exist_ok=True)
    for suffix in (".bin", ".xml", ".json"):
        with open(os.path.join(ir_dir, name + suffix), "rb") as source, \
                atomic_file(os.path.join(models_dir, name + suffix)) as target:
            shutil.copyfileobj(source, target)
    card_path = os.path.join(models_dir, "MODEL_CARD.md")
    card = open(card_path, encoding="utf-8").read() if os.path.isfile(card_path) else \
        "# {}\n\n## Metrics\n\n{}\n{}\n".format(name, CARD_START, CARD_END)
    start, end = card.find(CARD_START), card.find(CARD_END)
    if start < 0 or end < start:
        card = card.rstrip("\n") + "\n\n## Metrics\n\n" + CARD_START + "\n" + CARD_END + "\n"
        start, end = card.find(CARD_START), card.find(CARD_END)
    card = card[:start] + metrics_markdown(report, summary) + card[end + len(CARD_END):]
    with atomic_file(card_path, "w") as handle:
        handle.write(card)
    return card_path
