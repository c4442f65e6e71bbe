"""The benchmarks package's cheap parts, so that it cannot rot between full runs.

`python -m benchmarks` itself (minutes of notebooks and grading) never runs here: only its
pure helpers, the BPTT timing on a tiny shape with one repeat, and the report rendered from
made-up measurements.
"""

import dataclasses
import json
from collections import Counter

import numpy as np
import pytest

from benchmarks.__main__ import class_sizes
from benchmarks.autograde import parse_importtime
from benchmarks.bptt import time_grid
from benchmarks.classscale import (
    HOSTILE,
    apportion,
    batch_numbers,
    check_class,
    class_mix,
    fixture_cases,
    hostile_notebook,
    landing_seconds,
    parse_output,
)
from benchmarks.notebooks import cell_seconds
from benchmarks.report import render
from benchmarks.stats import fmt_num, fmt_stats, percentile, ratio_stats, summarize, verdict
from rnngrading.course import REPO
from rnngrading.runner import Result


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


def test_percentile_interpolates_between_ranks_as_numpy_does():
    values = [7.0, 1.0, 3.0, 10.0, 4.5, 2.0]
    for q in (0, 50, 90, 95, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))
    assert percentile([5.0], 95) == 5.0 and percentile([], 95) is None


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


def test_apportion_gives_largest_remainders_the_seats_left():
    assert apportion({"a": 6, "b": 4, "c": 2}, 24) == {"a": 12, "b": 8, "c": 4}
    assert apportion({"a": 1, "b": 1, "c": 1}, 4) == {"a": 2, "b": 1, "c": 1}  # tie: first
    assert apportion({"a": 6, "b": 1}, 3) == {"a": 3, "b": 0}  # 2.57 and 0.43


def test_a_class_holds_every_case_in_proportion_and_two_percent_hostile():
    mix = class_mix("jacobian", 300)
    counts = Counter(mix.values())
    assert len(mix) == 300 and list(mix)[:2] == ["student-001", "student-002"]
    assert counts["infinite_loop"] == counts["memory_bomb"] == 3  # 2% of 300, taking turns
    # the 294 honest ones split reference 6 : alternative 4 : partial 2 : blank 1 : 2 for
    # each other case (a mistake or another way), each count within 1 of its exact share
    weight = {"reference": 6, "alternative": 4, "partial": 2, "blank": 1}
    cases = fixture_cases("jacobian")
    parts = sum(weight.get(c, 2) for c in cases)
    assert sum(counts[c] for c in cases) == 294
    for case in cases:
        assert abs(counts[case] - 294 * weight.get(case, 2) / parts) < 1, case
    assert counts["reference"] > counts["alternative"] > counts["partial"] > counts["blank"] > 0
    small = Counter(class_mix("copy_task", 60).values())
    assert small["infinite_loop"] == small["memory_bomb"] == 1  # 1.2 rounded up to 2
    assert set(fixture_cases("copy_task")) <= set(small)


def test_a_class_is_the_same_for_the_same_seed_and_shuffled_by_another():
    assert class_mix("eigenvalues", 50) == class_mix("eigenvalues", 50)
    other = class_mix("eigenvalues", 50, seed=1)
    assert other != class_mix("eigenvalues", 50)
    assert Counter(other.values()) == Counter(class_mix("eigenvalues", 50).values())
    # one hostile student in a small class: the kind the adversarial corpus aims at it
    assert "memory_bomb" in class_mix("eigenvalues", 12).values()
    assert "infinite_loop" in class_mix("jacobian", 12).values()


@pytest.mark.parametrize("assignment, kind, cell, first_line", [
    ("jacobian", "infinite_loop", "textbook", "while True:"),  # the corpus's own cell
    ("eigenvalues", "memory_bomb", "eigenvalues", "x = [bytearray(2**26)"),
    ("copy_task", "infinite_loop", "copy_task_batch", "while True:"),  # first answer cell
])
def test_a_hostile_notebook_is_the_blank_one_with_the_attack_first(assignment, kind, cell,
                                                                   first_line):
    nb = hostile_notebook(REPO, assignment, kind)  # the repository holds source/ and release/
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    assert cells[cell].source.startswith(first_line)
    assert "NotImplementedError" in cells[cell].source  # the rest of it as released


def test_each_submission_is_timed_from_its_worker_s_previous_landing():
    # one worker: the gaps between landings (the first from the batch's start)
    one = landing_seconds({"a": (2.0, 5.0), "b": (6.0, 9.0), "c": (10.0, 12.5)}, 1)
    assert one == {"a": 5.0, "b": 4.0, "c": 3.5}
    # two workers taking the next submission when free: A grades a1 0-4, a2 4-8, a3 8-12,
    # B grades b1 0-10, b2 10-13; each one's first cell runs a second after it starts
    spans = {"a1": (1, 4), "b1": (1, 10), "a2": (5, 8), "a3": (9, 12), "b2": (11, 13)}
    assert landing_seconds(spans, 2) == {"a1": 4, "b1": 10, "a2": 4, "a3": 4, "b2": 3}


def test_status_lines_and_json_lines_give_each_student_s_result():
    results = [Result("student-001", "jacobian", "ok", {}, 9.0, 9.0, 4.2),
               Result("student-002", "jacobian", "timeout in cell textbook; 2 parts wrong", {},
                      0.0, 9.0, 160.0),
               Result("student-003", "jacobian", "grader failed (boom): not graded", {}, 0.0,
                      0.0, 1.0, graded=False)]
    lines = [(1.0 + i, r.line()) for i, r in enumerate(results)]
    lines.append((5.0, "jacobian: 2 graded, 1 not graded, 3 in all, in 5.0 s"))
    found, last = parse_output(lines)
    assert last == 5.0
    assert found["student-001"] == {"graded": True, "total": 9.0, "status": "ok",
                                    "seconds": None, "line_at": 1.0}
    assert found["student-002"]["status"] == "timeout in cell textbook; 2 parts wrong"
    assert found["student-003"]["graded"] is False and found["student-003"]["total"] is None
    as_json = [(2.0, json.dumps(dataclasses.asdict(r))) for r in results]
    found, _ = parse_output(as_json)
    assert found["student-002"]["seconds"] == 160.0 and found["student-002"]["total"] == 0.0
    assert found["student-003"]["total"] is None


def test_a_batch_s_numbers_and_its_honest_part():
    mix = {f"s{i}": "reference" for i in range(9)} | {"s9": "infinite_loop"}
    per = {s: {"seconds": 8.0, "landed": 10.0 + i} for i, s in enumerate(mix)}
    per["s9"] = {"seconds": 40.0, "landed": 95.0}
    b = batch_numbers(per, mix, workers=2, wall=100.0, last_line=99.0)
    assert b["per_minute"] == 6.0 and b["hostile_seconds"] == {"infinite_loop": [40.0]}
    # the honest part: 9 submissions of 8 s on 2 workers, 36 s, so 15 a minute
    assert b["honest_wall"] == 36.0 and b["honest_per_minute"] == 15.0
    assert b["seconds"]["median"] == 8.0 and b["seconds"]["p95"] == pytest.approx(
        np.percentile([8.0] * 9 + [40.0], 95))
    assert (b["last_honest_graded"], b["last_graded"], b["gradebook_at"]) == (18.0, 95.0, 99.0)


def test_class_checks_catch_changed_scores_credit_and_lost_isolation():
    mix = {"s1": "reference", "s2": "reference", "s3": "memory_bomb"}
    ok = {"graded": True, "status": "ok"}
    per = {"s1": {**ok, "total": 9.0}, "s2": {**ok, "total": 9.0},
           "s3": {"graded": True, "total": 0.0, "status": "memory limit hit in cell x"}}
    scores = {"s1": 9.0, "s2": 9.0, "s3": 0.0}
    good = check_class(mix, {1: per, 2: per}, {1: scores, 2: scores})
    assert good["same_scores"] and good["hostile_ok"] and good["cases_alike"]
    assert good["isolated"]
    bad_per = {**per, "s2": {"graded": True, "total": 7.0, "status": "NOT ISOLATED: ok"},
               "s3": {"graded": True, "total": 3.0, "status": "ok"}}
    bad = check_class(mix, {1: per, 2: bad_per}, {1: scores, 2: {**scores, "s2": 7.0}})
    assert bad["different"] == ["s2"] and bad["hostile_wrong"] == ["s3"]
    assert bad["status_differs"] == ["s2", "s3"]
    assert bad["cases_differ"] == ["reference"] and bad["not_isolated"] == ["s2"]
    assert set(HOSTILE) == {"infinite_loop", "memory_bomb"}


def test_class_sizes_come_from_the_option_the_rest_from_the_default():
    assert class_sizes("", quick=False) == {"jacobian": 300, "eigenvalues": 300, "copy_task": 60}
    assert class_sizes("copy_task=0", quick=True) == {"jacobian": 12, "eigenvalues": 12,
                                                      "copy_task": 0}
    with pytest.raises(ValueError, match="ASSIGNMENT=N"):
        class_sizes("rnn=3", quick=False)


def made_up_class(sizes=None):
    """The class item's results, invented: jacobian misses its target, the rest pass."""
    def batch(w, wall, honest, seconds):
        return {"workers": w, "n": 300, "wall": wall, "per_minute": 300 * 60 / wall,
                "seconds": {"median": seconds, "p95": seconds * 1.5, "max": 160.0,
                            "timed": 300},
                "last_honest_graded": wall - 160, "last_graded": wall - 2,
                "gradebook_at": wall - 1,
                "hostile_seconds": {"infinite_loop": [158.0, 157.0, 159.0],
                                    "memory_bomb": [15.0, 16.0, 14.0]},
                "honest_wall": honest, "honest_per_minute": 294 * 60 / honest}  # 1 s start
    jacobian = {"n": 300, "mix": {"reference": 84, "infinite_loop": 3}, "max_score": 9.0,
                "batches": {"1": batch(1, 1800.0, 1280.0, 4.0),
                            "2": batch(2, 900.0, 640.0, 4.2)},
                "same_scores": True, "different": [], "status_differs": [],
                "hostile_ok": True, "hostile_wrong": [],
                "cases_alike": True, "cases_differ": [], "isolated": True, "not_isolated": [],
                "cells_share": {"1": {"seconds": 4.0, "cells": 1.5, "n": 294},
                                "2": {"seconds": 4.2, "cells": 1.6, "n": 294}},
                "hostile_status": {"1": ["timeout in cell textbook"],
                                   "2": ["timeout in cell textbook"]},
                "students": {}, "per_submission": {}}
    eigenvalues = {**jacobian, "same_scores": False, "different": ["student-007"],
                   "status_differs": ["student-007"],
                   "hostile_status": {"1": ["kernel died"], "2": ["memory limit hit"]}}
    return {"sizes": sizes or {"jacobian": 300, "eigenvalues": 300, "copy_task": 60},
            "seed": 0, "workers": [1, 2], "hostile_share": 0.02, "hostile_base": "blank",
            "case_weights": {"reference": 6, "alternative": 4, "partial": 2, "blank": 1},
            "other_weight": 2, "timing": "notebooks",
            "limits": {"cell_timeout": 150, "notebook_wall": 600, "memory_mb": 4096},
            "assignments": {"jacobian": jacobian, "eigenvalues": eigenvalues},
            "profile": {"assignment": "jacobian", "wall": 12.0, "profiled_total": 11.0,
                        "top": [], "parts": {"grade_one, the whole submission": 9.5}}}


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
        "class_scale": made_up_class(),
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


def test_the_class_section_gives_each_batch_and_marks_each_target():
    text = render(made_up_results())
    section = text[text.index("## 6."):]
    assert "DEVELOPMENT SIZE" not in section
    row = next(line for line in section.splitlines() if line.startswith("| jacobian | 2 |"))
    # 300 in 900 s: 20 a minute; the honest part 294 in 640 s: 27.6 a minute
    assert "| 900 s | 20 | 4.2 s | 6.3 s | 740 s | 898 s | 899 s | 27.6 |" in row
    assert "endless loop 158, 157, 159 s; memory bomb 15, 16, 14 s" in row
    target = next(line for line in section.splitlines() if "at least 60 submissions" in line)
    assert target.endswith("| 27.6 (whole batch: 20) | MISS |")
    same = next(line for line in section.splitlines() if "same scores with 1 and 2" in line)
    assert "eigenvalues differ: student-007" in same and same.endswith("| MISS |")
    assert "no isolation given up" in section and "| PASS |" in section
    # the miss explained: 2 s a submission allowed, 4.2 s taken, 1.6 s of it the cells
    assert "may take 2 s of a worker" in section and "took 4.2 s (median)" in section
    assert "the rest, 2.6 s of grading around the cells" in section
    assert "9.50 s  grade_one, the whole submission" in section
    # the honest scores waited for the hostile ones to reach the gradebook
    assert "all graded at 740 s but reached the gradebook at 899 s" in section
    assert ('eigenvalues: the hostile students\' status lines: "kernel died" with 1 worker, '
            '"memory limit hit" with 2; status lines that differ between 1 and 2 workers: '
            'student-007.') in section


def test_a_small_class_is_marked_as_a_development_size():
    results = made_up_results()
    results["class_scale"] = made_up_class({"jacobian": 12, "eigenvalues": 12, "copy_task": 0})
    section = render(results)[render(results).index("## 6."):]
    assert "DEVELOPMENT SIZE (jacobian 12, eigenvalues 12)" in section

