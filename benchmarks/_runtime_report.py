"""The runtime benchmark's tables and chart, made from its JSON (runtime.json) alone, so that a README table can be
regenerated from a saved result: `python3 benchmarks/bench_runtime.py --table runtime.json`.

Columns no row has a value for (an older runtime.json without peak RSS, a machine without the MXNet venv) are left out.
"""
COLUMNS = ("model", "precision", "input", "video", "frames", "e2e lat FPS", "e2e tput FPS", "(steady)", "bapp tput FPS",
           "bapp lat FPS (ms)", "bapp tput +ppp", "sync FPS", "mxnet FPS", "e2e/bapp", "(steady)", "e2e/sync (steady)",
           "peak RSS MB", "(warm cache)", "1st result s", "(warm cache)", "e2e tput stages, mean ms")
STAGE_SHORT = (("capture", "cap"), ("preprocess", "pre"), ("infer", "inf"), ("decode", "dec"), ("annotate", "ann"),
               ("sinks", "snk"))
BLANK = ""


def _fmt(value, spec="{:.1f}"):
    return BLANK if value is None else spec.format(value)


def row_precision(report, row):
    return row.get("precision") or report.get("precision") or "f32"


def table_rows(report):
    out = []
    for r in report["rows"]:
        lat, tput = r["e2e"]["latency"], r["e2e"]["throughput"]
        warm = r["e2e"].get("latency_warm_cache") or {}
        bapp = r["benchmark_app"]
        stages = tput["stages_ms"]
        out.append([r["model"], row_precision(report, r), r["input"], r["video"], str(r["frames"]), _fmt(lat["fps"]),
                    _fmt(tput["fps"]), _fmt(tput["steady_fps"] or 0), _fmt(bapp["throughput"]["fps"]),
                    "{:.1f} ({:.1f})".format(bapp["latency"]["fps"], bapp["latency"]["median_ms"] or 0),
                    _fmt(bapp["throughput_runtime_model"]["fps"]), _fmt(r["sync_loop"]["fps"]),
                    _fmt((r.get("mxnet") or {}).get("fps")),
                    "{:.2f}".format(r["ratio_e2e_tput"]), "{:.2f}".format(r["ratio_e2e_tput_steady"] or 0),
                    _fmt(r.get("ratio_e2e_sync_steady"), "{:.2f}"),
                    _fmt(lat.get("max_rss_mb"), "{:.0f}"), _fmt(warm.get("max_rss_mb"), "{:.0f}"),
                    _fmt(lat.get("first_line_s"), "{:.2f}"), _fmt(warm.get("first_line_s"), "{:.2f}"),
                    " ".join("{} {:.1f}".format(short, stages[s]["mean"]) for s, short in STAGE_SHORT if s in stages)])
    return out


def _filled(report):
    """(columns, rows) without the columns every row leaves blank."""
    body = table_rows(report)
    keep = [i for i in range(len(COLUMNS)) if any(cells[i] != BLANK for cells in body)] if body else list(range(len(COLUMNS)))
    return [COLUMNS[i] for i in keep], [[cells[i] for i in keep] for cells in body]


def format_table(report, markdown=False):
    columns, body = _filled(report)
    if markdown:
        lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)) for cells in body]
    return "\n".join(lines)


def _name(report, r):
    precision = row_precision(report, r)
    return "{:<18} {:<16}".format(r["model"] if precision == "f32" else "{} {}".format(r["model"], precision), r["video"])


def sync_table(report):
    rows = report["rows"]
    lines = ["sync loop, mean ms per frame (read = decoding the video alone):"]
    for r in rows:
        s = r["sync_loop"]
        lines.append("  {} ".format(_name(report, r)) + " ".join(
            "{} {:.2f}".format(k, v) for k, v in s["stages_ms"].items()) + "  (compile {:.2f} s)".format(s["compile_s"]))
    lines.append("e2e startup (summary seconds minus the steady-state span; compile + first inference):")
    for r in rows:
        lines.append("  {} ".format(_name(report, r)) + "  ".join(
            "{} {:.2f} s".format(mode, r["e2e"][mode]["startup_s"] or 0) for mode in ("latency", "throughput")))
    if any("latency_warm_cache" in r["e2e"] for r in rows):
        lines.append("time to first result, LATENCY hint (startup_seconds: pipeline start to the first finished frame; "
                     "first line: process start to the first JSON line on stdout), without and with a warm model cache:")
        for r in rows:
            cold, warm = r["e2e"]["latency"], r["e2e"].get("latency_warm_cache") or {}
            lines.append("  {} startup {} s, first line {} s; warm cache: startup {} s, first line {} s".format(
                _name(report, r), _fmt(cold.get("startup_seconds"), "{:.2f}"), _fmt(cold.get("first_line_s"), "{:.2f}"),
                _fmt(warm.get("startup_seconds"), "{:.2f}"), _fmt(warm.get("first_line_s"), "{:.2f}")))
    return "\n".join(lines)


def targets(report):
    """The issue's targets for the ResNet-50 rows, from the rounds' median ratios (steady state: compile and first
    inference left out): f32 >= 0.95 x benchmark_app and >= 1.05 x the sync loop; INT8 >= 0.9 x benchmark_app."""
    lines = ["targets (medians of {} paired rounds, steady state):".format(report.get("rounds", 1))]
    for r in report["rows"]:
        precision = row_precision(report, r)
        if not r["model"].startswith("resnet50") or precision not in ("f32", "int8"):
            continue
        bapp_goal = report.get("target_ratio", 0.95) if precision == "f32" else 0.9
        checks = [("e2e/bapp", r.get("ratio_e2e_tput_steady"), bapp_goal)]
        if precision == "f32":
            checks.append(("e2e/sync", r.get("ratio_e2e_sync_steady"), report.get("target_sync_ratio", 1.05)))
        lines.append("  {} ".format(_name(report, r)) + "  ".join(
            "{} {} (>= {:.2f}: {})".format(name, _fmt(value, "{:.2f}"), goal, "met" if value and value >= goal else "NOT met")
            for name, value, goal in checks) + rounds_text(r))
    return "\n".join(lines) if len(lines) > 1 else ""


def rounds_text(r):
    rounds = r.get("rounds") or []
    if not rounds:
        return ""
    return "; rounds e2e/bapp {}, e2e/sync {}".format(", ".join(_fmt(x.get("steady_bapp"), "{:.2f}") for x in rounds),
                                                     ", ".join(_fmt(x.get("steady_sync"), "{:.2f}") for x in rounds))


def heading(report):
    precisions = []
    for r in report["rows"]:
        if row_precision(report, r) not in precisions:
            precisions.append(row_precision(report, r))
    return "{cpu}, {cores} cores, OpenVINO {openvino}, ".format(**report["machine"]) + "precision{} {}".format(
        "s" if len(precisions) > 1 else "", ", ".join(precisions or ["f32"]))


def markdown(report):
    """runtime.md: the heading, the table and the text block below it."""
    goals = targets(report)
    text = sync_table(report) + ("\n" + goals if goals else "")
    return "{}\n\n{}\n\n```\n{}\n```\n".format(heading(report), format_table(report, markdown=True), text)


def chart(report, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib is not installed (pip install -e '.[bench]'); no chart written", flush=True)
        return None
    rows = report["rows"]
    series = (("roadedge run, LATENCY", lambda r: r["e2e"]["latency"]["fps"]),
              ("roadedge run, THROUGHPUT", lambda r: r["e2e"]["throughput"]["fps"]),
              ("benchmark_app throughput", lambda r: r["benchmark_app"]["throughput"]["fps"]),
              ("benchmark_app throughput, runtime model (+resize)",
               lambda r: r["benchmark_app"]["throughput_runtime_model"]["fps"]),
              ("benchmark_app latency", lambda r: r["benchmark_app"]["latency"]["fps"]),
              ("sync loop (DeepLens style)", lambda r: r["sync_loop"]["fps"]),
              ("MXNet forward, batch 1", lambda r: (r.get("mxnet") or {}).get("fps") or float("nan")))
    fig, ax = plt.subplots(figsize=(max(8, 2.4 * len(rows)) + 3, 5))
    width = 0.8 / len(series)
    for i, (name, value) in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2.0) * width for j in range(len(rows))]
        values = [value(r) for r in rows]
        bars = ax.bar(xs, values, width, label=name)
        ax.bar_label(bars, labels=["" if not v > 0 else "{:.0f}".format(v) if v >= 10 else "{:.1f}".format(v) for v in values],
                     fontsize=7)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(["{} {}\n{} on {}".format(r["model"], row_precision(report, r), r["input"], r["video"]) for r in rows],
                       fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("frames per second (log scale)")
    ax.set_title("roadedge runtime vs benchmark_app, OpenVINO CPU", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
