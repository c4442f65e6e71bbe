"""The benchmarks package's cheap parts, so that it cannot rot between full runs.

`python -m benchmarks` itself (minutes of notebooks and grading) never runs here: only its
pure helpers, the BPTT timing on a tiny shape with one repeat, and the report rendered from
made-up measurements.
"""

import pytest

from benchmarks.autograde import parse_importtime
from benchmarks.bptt import time_grid
from benchmarks.notebooks import cell_seconds
from benchmarks.report import render
from benchmarks.stats import fmt_num, fmt_stats, ratio_stats, summarize, verdict


def test_summary_is_the_median_with_min_and_max():
    stats = summarize([3.0, 1.0, 2.0, 10.0])
    assert (stats["median"], stats["min"], stats["max"], stats["n"]) == (2.5, 1.0, 10.0, 4)
    assert summarize([]) is None


def test_a_value_is_written_as_median_then_range_and_runs():
    assert fmt_stats(summarize([12.34, 11.9, 12.8]), "s") == "12.3 s (11.9-12.8, n=3)"
    assert fmt_stats(summarize([0.5]), "s") == "0.5 s (n=1)"
    assert fmt_stats(None) == "n/a"
    assert fmt_num(1234.4) == "1234"
    assert fmt_num(0.001234) == "1.23e-03"


def test_targets_pass_at_the_limit_and_miss_beyond_it():
    assert verdict(90.0, 90.0) == "PASS"
    assert verdict(90.1, 90.0) == "MISS"
    assert verdict(1.6, 1.6, at_least=True) == "PASS"
    assert verdict(1.59, 1.6, at_least=True) == "MISS"
    assert verdict(None, 1.0) == "MISS"


def test_a_ratio_is_taken_run_by_run():
    r = ratio_stats([4.0, 6.0, 5.0], [1.0, 2.0, 2.0])  # 4, 3, 2.5
    assert (r["median"], r["min"], r["max"], r["n"]) == (3.0, 2.5, 4.0, 3)
    with pytest.raises(ValueError, match="not paired"):
        ratio_stats([1.0, 2.0], [1.0])


def test_cell_time_comes_from_nbclient_timing_metadata():
    cell = {"metadata": {"execution": {
        "iopub.status.busy": "2026-11-21T06:00:00.250000Z",
        "shell.execute_reply": "2026-11-21T06:00:02.000000Z",
    }}}
    assert cell_seconds(cell) == pytest.approx(1.75)
    assert cell_seconds({"metadata": {}}) is None


def test_importtime_lines_give_top_level_packages_only():
    text = "\n".join([
        "import time: self [us] | cumulative | imported package",
        "import time:      1000 |       1500 |     lark.lexer",
        "import time:       300 |    1778409 |   rfc3987_syntax",
        "import time:       283 |    1873605 | jsonschema",
    ])
    assert parse_importtime(text) == {"rfc3987_syntax": 1.778409, "jsonschema": 1.873605}


def test_bptt_timing_runs_on_a_tiny_shape_and_the_sides_agree():
    rows, settings = time_grid("tiny", min_rounds=1, max_time=0.01)
    assert settings["tool"].startswith("pytest-benchmark ")
    assert [row["dtype"] for row in rows] == ["float64", "float32"]
    for row in rows:
        for side in ("numpy", "torch_nn", "torch_loop"):
            assert row[side]["n"] >= 1 and 0 < row[side]["min"] <= row[side]["median"]
    assert rows[0]["max_grad_diff"] < 1e-10 and rows[1]["max_grad_diff"] < 1e-5


def made_up_results():
    """Results shaped as a full run makes them, from invented numbers."""
    s = summarize
    ms = {"numpy": 6.0, "torch_nn": 2.0, "torch_loop": 4.0}  # per call, as pytest-benchmark
    bptt = {side: {"median": v / 1e3, "min": v / 1e3, "max": v / 1e3, "n": 50}
            for side, v in ms.items()}
    return {
        "quick": False, "runs": 3, "load_start": [0.5, 0.4, 0.3], "load_end": [2.0, 1.0, 0.5],
        "duration_s": 600.0, "notes": ["made up"],
        "machine": {"cpu": "CPU", "cores": 2, "memory_gb": 8, "os": "os", "python": "3.11",
                    "torch": "2", "numpy": "2", "nbgrader": "0.9", "nbclient": "0.11",
                    "commit": "abc", "date": "today"},
        "notebooks": {"kernel_start": s([1.0]), "notebooks": {"01.ipynb": {
            "wall": s([95.0, 80.0, 85.0]), "cells_total": s([80.0]),
            "slowest_cell": {"index": 2, "first_line": "train()", **s([31.0, 29.0, 32.0])},
            "errors": []}}},
        "autograde": {"jacobian": {
            "autograde": s([7.0]), "plain": s([1.0]), "plain_hidden": s([2.0]),
            "autograde_cells": s([1.5]), "plain_cells": s([0.2]), "kernel_start": s([0.9]),
            "batch": s([2.8]), "batch_size": 5, "ratio": ratio_stats([7.0], [2.0]),
            "ratio_batch": ratio_stats([2.8], [2.0]),
            "ratio_as_handed_in": ratio_stats([7.0], [1.0]), "score": 9,
            "batch_scores": [9], "max_score": 9}},
        "imports": {"interpreter": s([0.02]), "nbgrader": s([1.2]),
                    "packages": {"nbgrader": 1.0}},
        "parallel": {"assignment": "jacobian", "students": 20, "workers": 2, "cases": ["a"],
                     "nbgrader_seq": s([80.0]), "nbgrader_par": s([45.0]),
                     "sandbox_seq": s([100.0]), "sandbox_par": s([70.0]),
                     "speedup_nbgrader": ratio_stats([80.0], [45.0]),
                     "speedup_sandbox": ratio_stats([100.0], [70.0]),
                     "isolation_cost": ratio_stats([100.0], [80.0]),
                     "sandbox_par_vs_nbgrader_seq": ratio_stats([80.0], [70.0]),
                     "same_scores": True, "different_scores": [],
                     "sandbox_profile": {"wall": 20.0, "profiled_total": 19.0, "top": [],
                                         "parts": {"grade_one, the whole submission": 19.0}}},
        "bptt": [{"N": 32, "T": 100, "H": 64, "dtype": "float64", "max_grad_diff": 1e-16,
                  **bptt}],
        "bptt_timing": {"tool": "pytest-benchmark 5", "min_rounds": 5, "max_time": 1.0},
        "copy": [{"steps": 450, "seconds": 2.7, "held_out": 0.5, "limit": 0.56,
                  "baseline": 0.59, "budget": 2000, "delay": 15, "hidden": 64, "batch": 32,
                  "lr": 0.02, "seeds": [0, 1]},
                 {"steps": None, "seconds": 12.0, "held_out": 0.6, "limit": 0.56,
                  "baseline": 0.59, "budget": 2000, "delay": 15, "hidden": 64, "batch": 32,
                  "lr": 0.02, "seeds": [1, 1]}],
    }


def test_the_report_states_each_target_with_pass_or_miss():
    text = render(made_up_results())
    for heading in ("## Machine", "## 1.", "## 2.", "## 3.", "## 4.", "## 5."):
        assert heading in text
    row = next(line for line in text.splitlines() if line.startswith("| 01.ipynb"))
    assert "85 s (80-95, n=3)" in row and "PASS" in row and "MISS" in row  # wall ok, cell not
    ag = next(line for line in text.splitlines() if line.startswith("| jacobian | 7 s"))
    assert "| 3.5 (n=1) | MISS |" in ag and "| 1.4 (n=1) | PASS |" in ag  # one-off, batch
    sandboxed = next(line for line in text.splitlines() if line.startswith("| sandboxed |"))
    assert "1.43" in sandboxed and "MISS" in sandboxed
    plain = next(line for line in text.splitlines() if line.startswith("| nbgrader |"))
    assert "1.78" in plain and "PASS" in plain
    assert "rfc3987_syntax whenever it is installed" in text  # absent from the imports
    assert "19.00 s  grade_one, the whole submission" in text
    assert "1 of 2 runs beat the baseline within the budget (MISS)" in text
    key = next(line for line in text.splitlines() if line.startswith("| 32, 100, 64 |"))
    assert key == ("| 32, 100, 64 | float64 | 6 (6-6, n=50) | 2 (2-2, n=50) | 4 (4-4, n=50) "
                   "| 3 | 1.5 | 1e-16 | <= 3: PASS |")  # ratios of medians, the target met
    assert "Load average" in text and "[0.5, 0.4, 0.3]" in text
    assert "No other work: 1-minute load at most 0.5" in text


def test_a_busy_machine_is_said_so():
    results = made_up_results()
    results["load_sections"] = {"parallel": [2.4, 1.0, 0.5]}
    assert "shared: 1-minute load up to 2.4" in render(results)
