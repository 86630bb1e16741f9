"""The demo segmentation model's bundle: IR + metadata into edge/models and the metrics section of its card."""
import os
import shutil

from training.model_card import CARD_END, CARD_START, MODELS_DIR

CARD = "SEG_MODEL_CARD.md"


def _figure(value):
    return "-" if value is None else "{:.3f}".format(value)


def metrics_markdown(report, summary):
    """The card's metrics section (between the markers) for a segmentation evaluation report."""
    s = summary["settings"]
    t = summary["training"]
    width, height = s["size"].split("x")
    lines = [CARD_START, "",
             "Measured by `roadedge train --task segmentation` on {} synthetic frames rendered with seed {} (the "
             "training set used seed {}), {}x{} stretched to {}, with the OpenVINO IR (FP32, CPU); the mask is "
             "resized back to the frame (nearest) and compared with the rendered ground truth; void pixels (255) "
             "ignored.".format(report["images"], s["eval_seed"], s["seed"], width, height, s["input_size"]),
             "", "| class | pixels | IoU |", "|---|---:|---:|"]
    for entry in report["classes"]:
        lines.append("| {} | {} | {} |".format(entry["name"], entry["gt_pixels"], _figure(entry["iou"])))
    lines += ["", "**Pixel accuracy {:.3f}, mIoU {:.3f}** (mean over the {} classes present in the ground truth; "
              "{:.3f} over the {} present in the ground truth or the prediction).".format(
                  report["pixel_accuracy"], report["miou_gt"], report["miou_gt_classes"], report["miou"],
                  report["miou_classes"]), ""]
    verify = summary.get("verify")
    if verify:
        lines += ["IR against MXNet/GluonCV (`roadedge convert verify`): {}.".format(verify), ""]
    validation = t.get("validation") or {}
    lines += ["Recipe time {:.1f} min on this machine ({} CPU cores), training {:.1f} min ({} iterations, {} epochs, "
              "mini-batch {}, crops {}x{}){}; IR weights {:.2f} MB.".format(
                  summary["seconds"] / 60, os.cpu_count(), t["seconds"] / 60, t["iterations"], t["epochs"],
                  s["batch_size"], s["crop_size"], s["crop_size"],
                  "; validation split at {}: pixel accuracy {:.3f}, mIoU {:.3f}".format(
                      s["input_size"], validation["pixel_accuracy"], validation["miou"]) if validation else "",
                  summary["ir_bytes"] / 1e6), "", CARD_END]
    return "\n".join(lines)


def bundle(ir_dir, name, report, summary, models_dir=None):
    """Copy NAME.xml/.bin/.json into edge/models and rewrite the metrics section of SEG_MODEL_CARD.md."""
    from roadedge.core.fsutil import atomic_file

    models_dir = models_dir or MODELS_DIR
    os.makedirs(models_dir, exist_ok=True)
    for suffix in (".bin", ".xml", ".json"):
        with open(os.path.join(ir_dir, name + suffix), "rb") as source, \
                atomic_file(os.path.join(models_dir, name + suffix)) as target:
            shutil.copyfileobj(source, target)
    card_path = os.path.join(models_dir, CARD)
    card = open(card_path, encoding="utf-8").read() if os.path.isfile(card_path) else ""
    start, end = card.find(CARD_START), card.find(CARD_END)
    if start < 0 or end < start:
        card = (card.rstrip("\n") or "# " + name) + "\n\n## Metrics\n\n" + CARD_START + "\n" + CARD_END + "\n"
        start, end = card.find(CARD_START), card.find(CARD_END)
    card = card[:start] + metrics_markdown(report, summary) + card[end + len(CARD_END):]
    with atomic_file(card_path, "w") as handle:
        handle.write(card)
    return card_path
