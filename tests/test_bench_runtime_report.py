"""benchmarks/bench_runtime.py's tables come from its JSON alone: the README's block is `--table` of the saved result."""
import contextlib
import copy
import io
import json
import os
import shutil
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import _runtime_report  # noqa: E402
import bench_runtime  # noqa: E402

SAVED = os.path.join(REPO, "benchmarks", "results", "runtime.json")


def table_output(path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert bench_runtime.main(["--table", path]) == 0
    return out.getvalue()


def test_readme_block_is_the_table_of_the_saved_result():
    block = table_output(SAVED)
    with open(os.path.join(REPO, "benchmarks", "README.md"), encoding="utf-8") as handle:
        assert block in handle.read()
    assert "| model | precision | input |" in block and block.count("| f32 |") == 4

def unmeasured(report):
    """The saved report as a run before the RSS, first-result and MXNet columns would have written it."""
    report = copy.deepcopy(report)
    report["rows"] = [row for row in report["rows"] if row.get("precision", "f32") == "f32"]
    for row in report["rows"]:
        row.pop("mxnet", None)
        row["e2e"].pop("latency_warm_cache", None)
        for run in row["e2e"].values():
            for key in ("max_rss_mb", "first_line_s", "startup_seconds"):
                run.pop(key, None)
    return report


def test_new_columns_appear_when_measured(tmp_path):
    with open(SAVED, encoding="utf-8") as handle:
        report = unmeasured(json.load(handle))
    assert "peak RSS MB" not in _runtime_report.format_table(report, markdown=True)  # nobody measured it: left out
    row = copy.deepcopy(report["rows"][2])  # resnet50-300
    row["precision"] = "bf16"
    row["e2e"]["latency"].update(max_rss_mb=455.4, first_line_s=2.345, startup_seconds=0.61)
    row["e2e"]["latency_warm_cache"] = dict(row["e2e"]["latency"], max_rss_mb=431.0, first_line_s=1.5, startup_seconds=0.3)
    row["mxnet"] = {"fps": 7.25}
    report["rows"] = [report["rows"][2], row]
    path = tmp_path / "runtime.json"
    path.write_text(json.dumps(report))
    lines = table_output(str(path)).splitlines()
    assert lines[0].endswith("precisions f32, bf16")
    header = [cell.strip() for cell in lines[2].strip("|").split("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[4:6]]
    named = [dict(zip(header, r)) for r in cells]  # the duplicate names keep their last column: the warm-cache ones
    assert header.count("(warm cache)") == 2 and header.index("peak RSS MB") + 1 == header.index("(warm cache)")
    assert named[1]["precision"] == "bf16" and named[1]["mxnet FPS"] == "7.2" and named[0]["mxnet FPS"] == ""
    assert cells[1][header.index("peak RSS MB")] == "455" and cells[1][header.index("peak RSS MB") + 1] == "431"
    assert cells[1][header.index("1st result s")] == "2.35" and named[1]["(warm cache)"] == "1.50"
    assert cells[0][header.index("peak RSS MB")] == ""  # the old row did not measure it
    assert "resnet50-300 bf16  drive 1280x720   startup 0.61 s, first line 2.35 s; warm cache: startup 0.30 s, " \
           "first line 1.50 s" in "\n".join(lines)


def test_int8_irs_are_named_and_checked(tmp_path):
    ir = tmp_path / "q" / "model_algo_1.xml"
    ir.parent.mkdir()
    for ext in (".xml", ".bin"):
        shutil.copy(os.path.join(REPO, "edge", "models", "road-damage-ssd" + ext), str(ir)[:-4] + ext)
    with pytest.raises(SystemExit, match="no .*model_algo_1.json metadata next to the IR"):
        bench_runtime.int8_models([str(ir)])
    shutil.copy(os.path.join(REPO, "edge", "models", "road-damage-ssd.json"), str(ir)[:-4] + ".json")
    assert bench_runtime.int8_models([str(ir), "resnet50-300=" + str(ir)]) == [("model_algo_1", str(ir)),
                                                                               ("resnet50-300", str(ir))]
    with pytest.raises(SystemExit, match="--int8 a=nothing.xml: expected an OpenVINO IR"):
        bench_runtime.int8_models(["a=nothing.xml"])


def test_round_ratios_are_medians_of_ratios_taken_within_each_round():
    """Each ratio is taken within a round (the machine drifts between rounds), then the median over rounds."""
    def paired(e2e, steady, bapp, sync):
        return {"e2e": {"fps": e2e, "steady_fps": steady}, "benchmark_app": {"fps": bapp}, "sync_loop": {"fps": sync}}

    rounds = [paired(10.0, 11.0, 12.0, 10.0), paired(9.0, 9.5, 9.0, 9.5), paired(12.0, 12.0, 11.0, 10.0)]
    out = bench_runtime.round_ratios(rounds)
    assert out["ratio_e2e_tput_steady"] == round(sorted([11 / 12, 9.5 / 9, 12 / 11])[1], 3)
    assert out["ratio_e2e_sync_steady"] == round(sorted([11 / 10, 9.5 / 9.5, 12 / 10])[1], 3)
    assert out["ratio_e2e_tput"] == round(sorted([10 / 12, 9 / 9, 12 / 11])[1], 3)
    assert [r["steady_bapp"] for r in out["rounds"]] == [round(11 / 12, 3), round(9.5 / 9, 3), round(12 / 11, 3)]
    # the FPS ratio of the fastest runs (12 / 12) would have said 1.0: not what any round measured
    assert bench_runtime.round_ratios([paired(10.0, None, 12.0, 10.0)])["ratio_e2e_tput_steady"] is None


def test_targets_say_met_exactly_where_the_saved_ratios_reach_them():
    with open(SAVED, encoding="utf-8") as handle:
        report = json.load(handle)
    lines = _runtime_report.targets(report).splitlines()[1:]
    rows = [r for r in report["rows"] if r["model"].startswith("resnet50") and r["precision"] in ("f32", "int8")]
    assert len(lines) == len(rows) == 3
    for line, row in zip(lines, rows):
        goal = 0.95 if row["precision"] == "f32" else 0.9
        assert ("e2e/bapp {:.2f} (>= {:.2f}: {})".format(row["ratio_e2e_tput_steady"], goal, "met" if
                row["ratio_e2e_tput_steady"] >= goal else "NOT met")) in line
        if row["precision"] == "f32":
            sync = row["ratio_e2e_sync_steady"]
            assert "e2e/sync {:.2f} (>= 1.05: {})".format(sync, "met" if sync >= 1.05 else "NOT met") in line
        else:
            assert "e2e/sync" not in line.split(";")[0]
