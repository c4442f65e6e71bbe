"""Item 6: a whole class graded by the sandboxed grader, with 1 worker and with 2.

Per assignment, a scratch course holds a class of fixture submissions: every fixture case
in fixed proportions (class_mix), shuffled with a fixed seed, and 2% hostile students (an
endless loop, a memory bomb: the adversarial corpus's code, tests/adversarial/cases.py).
Each class is graded twice by the real command, `rnncourse-grade grade ASSIGNMENT FOLDER
--workers N --course ROOT`, in a fresh copy of the course each time.

Measured per batch: submissions per minute (n / wall), the time per submission (median,
95th percentile), when the last submission was graded and when the gradebook held every
score, and an estimate of the honest part's throughput. Checked: the same scores with 1
and 2 workers, every student of one fixture case scored alike, every hostile submission
0 or not graded, no status line that says NOT ISOLATED.

The time per submission comes from the grader's own Result.seconds when `grade` prints one
JSON line per submission (--json); without that option it is reconstructed from the graded
notebooks (landing_seconds): when each was written and when its first cell ran.
"""

import datetime
import json
import math
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rnngrading.course import FIXTURES, REPO
from rnngrading.fixtures import build_submission
from rnngrading.limits import limits_file, load_limits

from .courses import autograde_scores, make_course, max_code_score
from .machine import log
from .parallel import GRADE_COMMAND, SANDBOX_PARTS
from .profiling import profile_command
from .stats import percentile

SIZES = {"jacobian": 300, "eigenvalues": 300, "copy_task": 60}  # the class
QUICK_SIZES = {"jacobian": 12, "eigenvalues": 12, "copy_task": 3}  # a development run
WORKER_COUNTS = (1, 2)
SEED = 0
HOSTILE_SHARE = 0.02  # of each class, rounded up
# How often each fixture case is handed in, relative to each other; every other case (a
# typical mistake, or another correct way) weighs OTHER_WEIGHT.
CASE_WEIGHTS = {"reference": 6, "alternative": 4, "partial": 2, "blank": 1}
OTHER_WEIGHT = 2
# Hostile students: cases of the adversarial corpus, their code put into the blank fixture,
# so that any point one of them gets is undeserved.
HOSTILE = ("infinite_loop", "memory_bomb")
HOSTILE_BASE = "blank"
NOT_ISOLATED = "NOT ISOLATED"
# Result.line(): student, assignment, "X / Y" or "not graded", two spaces, the status
STATUS_LINE = re.compile(r"^(?P<student>\S+)\s+(?P<assignment>\S+)\s+"
                         r"(?:(?P<total>[-+.\deE]+) / [-+.\deE]+|not graded)  (?P<status>.*)$")


def _adversarial_cases():
    """CASES of tests/adversarial/cases.py. The tests folder is not a package: its modules
    import each other by top-level name (as pytest finds them), so it goes on sys.path, last."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.append(tests)
    from adversarial.cases import CASES

    return CASES


def fixture_cases(assignment):
    """The fixture cases of an assignment, sorted."""
    return sorted(p.name for p in (FIXTURES / assignment).iterdir() if p.is_dir())


def apportion(weights, n):
    """n split in proportion to weights, largest remainders first (ties: in weights' order).

    weights: {name: weight}; returns {name: count}, counts summing to n
    """
    total = sum(weights.values())
    exact = {k: n * w / total for k, w in weights.items()}
    counts = {k: math.floor(v) for k, v in exact.items()}
    order = sorted(weights, key=lambda k: -(exact[k] - counts[k]))  # sorted() is stable
    for k in order[:n - sum(counts.values())]:
        counts[k] += 1
    return counts


def hostile_kinds(assignment):
    """HOSTILE with the one the adversarial corpus aims at this assignment first."""
    cases = _adversarial_cases()
    return sorted(HOSTILE, key=lambda kind: cases[kind][0] != assignment)


def class_mix(assignment, n, seed=SEED):
    """A class of n students: {student id: fixture case, or a HOSTILE kind}.

    ceil(HOSTILE_SHARE * n) hostile students, the kinds taking turns; the rest split between
    the fixture cases by CASE_WEIGHTS; the order shuffled by a generator seeded with seed
    and the assignment, so the same arguments give the same class.
    """
    n_hostile = math.ceil(HOSTILE_SHARE * n)
    kinds = hostile_kinds(assignment)
    weights = {c: CASE_WEIGHTS.get(c, OTHER_WEIGHT) for c in fixture_cases(assignment)}
    handed_in = [case for case, k in apportion(weights, n - n_hostile).items()
                 for _ in range(k)]
    handed_in += [kinds[i % len(kinds)] for i in range(n_hostile)]
    random.Random(f"{seed}-{assignment}").shuffle(handed_in)
    return {f"student-{i + 1:03d}": case for i, case in enumerate(handed_in)}


def hostile_notebook(course, assignment, kind):
    """A hostile student's notebook: the blank fixture with the adversarial case's code put
    first in an answer cell (the case's own cell where this assignment has it, else the first
    answer cell), as tests/adversarial/cases.py does. returns a NotebookNode"""
    (grade_id, code), = _adversarial_cases()[kind][2].items()
    name = f"{assignment}.ipynb"
    nb = build_submission(Path(course) / "source" / assignment / name,
                          Path(course) / "release" / assignment / name,
                          FIXTURES / assignment / HOSTILE_BASE)
    answers = [c for c in nb.cells if c.cell_type == "code"
               and c.metadata.get("nbgrader", {}).get("solution")]
    cell = next((c for c in answers if c.metadata["nbgrader"].get("grade_id") == grade_id),
                answers[0])
    cell.source = code + "\n" + cell.source
    return nb


def make_class_course(root, assignment, mix):
    """A released scratch course with the class `mix` in submitted/; returns its root."""
    import nbformat

    honest = {s: (HOSTILE_BASE if case in HOSTILE else case) for s, case in mix.items()}
    root = make_course(root, assignment, honest)
    for student, case in mix.items():
        if case in HOSTILE:
            nbformat.write(hostile_notebook(root, assignment, case),
                           root / "submitted" / student / assignment / f"{assignment}.ipynb")
    return root


def grade_offers_json():
    """Whether `rnncourse-grade grade` can print one JSON line per submission (--json)."""
    proc = subprocess.run([*GRADE_COMMAND, "grade", "--help"], capture_output=True, text=True)
    return "--json" in proc.stdout


def run_grade(root, assignment, workers, json_lines=False):
    """`rnncourse-grade grade ASSIGNMENT ROOT/submitted --workers N --course ROOT`, its
    stdout read line by line as it comes.

    returns (start, wall, [(seconds since start, line)]): start in seconds since the epoch
    (the clock of file times), wall in seconds
    """
    cmd = [*GRADE_COMMAND, "grade", assignment, str(Path(root) / "submitted"),
           "--workers", str(workers), "--course", str(root), *(["--json"] if json_lines else [])]
    lines = []
    with tempfile.TemporaryFile("w+") as stderr:
        start, clock = time.time(), time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
        for line in proc.stdout:
            lines.append((time.perf_counter() - clock, line.rstrip("\n")))
        status = proc.wait()
        wall = time.perf_counter() - clock
        if status != 0:
            stderr.seek(0)
            raise RuntimeError(f"rnncourse-grade grade {assignment} --workers {workers} failed "
                               f"(exit status {status}):\n{stderr.read()[-3000:]}")
    return start, wall, lines


def parse_output(lines):
    """What the grade command printed: {student: {"graded", "total", "status", "seconds",
    "line_at"}} ("seconds" from a JSON line, else None) and when its last line came.

    lines: [(seconds since start, line)] as run_grade returns them
    """
    found, last = {}, 0.0
    for at, line in lines:
        last = max(last, at)
        if line.startswith("{"):
            r = json.loads(line)
            found[r["student"]] = {"graded": r["graded"], "total": r["total"] if r["graded"]
                                   else None, "status": r["status"], "seconds": r["seconds"],
                                   "line_at": at}
            continue
        match = STATUS_LINE.match(line)
        if match:
            total = match["total"]
            found[match["student"]] = {"graded": total is not None,
                                       "total": float(total) if total is not None else None,
                                       "status": match["status"], "seconds": None,
                                       "line_at": at}
    return found, last


def _stamp(text):
    """Seconds since the epoch of an ISO time nbclient wrote (UTC, ending in Z)."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def graded_notebook_times(path):
    """(written, first cell's start, last cell's end) of an autograded notebook, in seconds
    since the epoch; the cells' from nbclient's timing metadata (None where it has none)."""
    nb = json.loads(Path(path).read_text())
    starts, ends = [], []
    for cell in nb["cells"]:
        execution = cell.get("metadata", {}).get("execution", {})
        if execution.get("iopub.status.busy"):
            starts.append(_stamp(execution["iopub.status.busy"]))
        if execution.get("iopub.status.idle"):
            ends.append(_stamp(execution["iopub.status.idle"]))
    return (Path(path).stat().st_mtime, min(starts, default=None), max(ends, default=None))


def landing_seconds(spans, workers):
    """Each submission's own seconds, from when it landed, in a batch of `workers` workers.

    spans: {student: (began, landed)}, seconds since the batch started; began is a time
    known to fall inside its grading (its first cell's start), landed when it finished.
    A worker grades one submission after another, so each submission, in the order they
    began, is given to the worker that has been free the longest, and its time is from that
    worker's previous landing (the batch's start for its first) to its own. With 1 worker
    that is the gap between landings; with more it is exact when every worker takes the next
    submission as soon as it is free. returns {student: seconds}
    """
    free = [0.0] * workers
    seconds = {}
    for student, (_, landed) in sorted(spans.items(), key=lambda kv: kv[1][0]):
        i = free.index(min(free))
        seconds[student] = landed - free[i]
        free[i] = landed
    return seconds


def batch_numbers(per, mix, workers, wall, last_line):
    """The numbers of one batch from its submissions.

    per: {student: {"seconds", "landed", ...}}; mix: {student: case}; last_line: when the
    command printed its last line, after merging the scores into the gradebook
    returns {"workers", "n", "wall", "per_minute", "seconds": {"median", "p95", "max",
    "timed"}, "last_graded", "last_honest_graded", "gradebook_at", "honest_in_gradebook"
    (when the last honest score's line came: with --json, after its merge), "hostile_seconds":
    {kind: [seconds or None]}, "honest_wall", "honest_per_minute"}
    honest_wall: the honest submissions' own seconds shared among the workers, what a batch
    without the hostile ones would take if no worker waited (an estimate); honest_per_minute
    counts the honest submissions that were timed
    """
    seconds = [p["seconds"] for p in per.values() if p["seconds"] is not None]
    hostile = {kind: [per[s]["seconds"] for s in per if mix[s] == kind]
               for kind in HOSTILE if kind in mix.values()}
    honest = [p for s, p in per.items() if mix[s] not in HOSTILE]
    honest_seconds = [p["seconds"] for p in honest if p["seconds"] is not None]
    honest_wall = sum(honest_seconds) / workers
    landed = [p["landed"] for p in per.values() if p["landed"] is not None]
    return {
        "workers": workers, "n": len(per), "wall": wall, "per_minute": 60 * len(per) / wall,
        "seconds": {"median": statistics.median(seconds) if seconds else None,
                    "p95": percentile(seconds, 95), "max": max(seconds, default=None),
                    "timed": len(seconds)},
        "last_graded": max(landed, default=None),
        "last_honest_graded": max((p["landed"] for p in honest if p["landed"] is not None),
                                  default=None),
        "gradebook_at": last_line,
        # with --json the command prints a submission's line once its score is merged
        "honest_in_gradebook": max((p["line_at"] for p in honest
                                    if p.get("line_at") is not None), default=None),
        "hostile_seconds": hostile, "honest_wall": honest_wall,
        "honest_per_minute": 60 * len(honest_seconds) / honest_wall if honest_wall else None,
    }


def grade_class(template, assignment, workers, mix, scratch, json_lines):
    """Grade a fresh copy of the class course; returns (batch numbers, per submission, scores
    in the gradebook)."""
    root = Path(scratch) / f"class-{assignment}-{workers}w"
    shutil.copytree(template, root)
    start, wall, lines = run_grade(root, assignment, workers, json_lines)
    printed, last_line = parse_output(lines)
    per, spans = {}, {}
    for student in mix:
        said = printed.get(student, {"graded": False, "total": None, "seconds": None,
                                     "status": "no line printed", "line_at": None})
        graded = root / "autograded" / student / assignment / f"{assignment}.ipynb"
        landed = began = cells = None
        if graded.is_file():
            written, first, end = graded_notebook_times(graded)
            landed = written - start
            began = (first - start) if first is not None else landed
            cells = (end - first) if first is not None and end is not None else None
            spans[student] = (began, landed)
        per[student] = {**said, "landed": landed, "cells": cells}
    if not json_lines:  # the grader's own seconds are not printed: from the graded notebooks
        for student, seconds in landing_seconds(spans, workers).items():
            per[student]["seconds"] = seconds
    scores = autograde_scores(root, assignment)
    shutil.rmtree(root, ignore_errors=True)
    return batch_numbers(per, mix, workers, wall, last_line), per, scores


def check_class(mix, per_batch, scores_batch):
    """What must hold for one assignment's batches.

    per_batch, scores_batch: {workers: per submission}, {workers: gradebook code scores}
    returns {"same_scores", "different", "status_differs", "hostile_ok", "hostile_wrong",
    "cases_alike", "cases_differ", "isolated", "not_isolated"}
    """
    first, *others = sorted(scores_batch)
    different = sorted({s for w in others for s in mix
                        if scores_batch[w].get(s) != scores_batch[first].get(s)})
    hostile_wrong, not_isolated, by_case = set(), set(), {}
    for per in per_batch.values():
        for student, p in per.items():
            if NOT_ISOLATED in p["status"]:
                not_isolated.add(student)
            if mix[student] in HOSTILE:
                if p["graded"] and p["total"] != 0:
                    hostile_wrong.add(student)
            else:
                by_case.setdefault(mix[student], set()).add(p["total"] if p["graded"] else None)
    differ = sorted(case for case, totals in by_case.items() if len(totals) > 1)
    said = {s: {per[s]["status"] for per in per_batch.values()} for s in mix}
    return {"same_scores": not different, "different": different,
            "status_differs": sorted(s for s, statuses in said.items() if len(statuses) > 1),
            "hostile_ok": not hostile_wrong, "hostile_wrong": sorted(hostile_wrong),
            "cases_alike": not differ, "cases_differ": differ,
            "isolated": not not_isolated, "not_isolated": sorted(not_isolated)}


def cells_share(per, mix):
    """Medians over the honest submissions: their own seconds and their cells' seconds."""
    honest = [p for s, p in per.items() if mix[s] not in HOSTILE
              and p["seconds"] is not None and p["cells"] is not None]
    if not honest:
        return None
    return {"seconds": statistics.median(p["seconds"] for p in honest),
            "cells": statistics.median(p["cells"] for p in honest), "n": len(honest)}


def profile_one(template, assignment, student, scratch):
    """cProfile of one `rnncourse-grade grade-one` of a student of the class course."""
    root = Path(scratch) / f"class-{assignment}-profile"
    shutil.copytree(template, root)
    one = root / "submitted" / student / assignment / f"{assignment}.ipynb"
    try:
        return profile_command(
            [*GRADE_COMMAND[1:], "grade-one", assignment, student, str(one), "--course",
             str(root), "--json"], root, Path(scratch) / "class.prof", SANDBOX_PARTS)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _n(value):
    return "n/a" if value is None else f"{value:.1f}"


def _s(seconds):
    return "n/a" if seconds is None else f"{seconds:.1f} s"


def _rounded(p):
    """A submission's times for results.json: seconds, landed and cells, to 10 ms."""
    return {k: None if p[k] is None else round(p[k], 2) for k in ("seconds", "landed", "cells")}


def bench_class(scratch, sizes=SIZES, seed=SEED, workers=WORKER_COUNTS):
    """Each assignment's class graded with each worker count; see the module's docstring.

    sizes: {assignment: class size} (0 leaves it out); returns the results' "class_scale"
    """
    json_lines = grade_offers_json()
    limits = load_limits(limits_file(REPO))
    out = {"sizes": dict(sizes), "seed": seed, "workers": list(workers),
           "hostile_share": HOSTILE_SHARE, "hostile_base": HOSTILE_BASE,
           "case_weights": CASE_WEIGHTS, "other_weight": OTHER_WEIGHT,
           "timing": "json" if json_lines else "notebooks",
           "limits": {"cell_timeout": limits.cell_timeout, "notebook_wall": limits.notebook_wall,
                      "memory_mb": limits.memory_mb},
           "assignments": {}, "profile": None}
    for assignment, n in sizes.items():
        if not n:
            continue
        mix = class_mix(assignment, n, seed)
        template = make_class_course(Path(scratch) / f"class-{assignment}", assignment, mix)
        counts = {c: list(mix.values()).count(c) for c in sorted(set(mix.values()))}
        log(f"class {assignment}: {n} submissions made ("
            + ", ".join(f"{c} {k}" for c, k in counts.items()) + ")")
        batches, per_batch, scores_batch = {}, {}, {}
        for w in workers:
            batch, per, scores = grade_class(template, assignment, w, mix, scratch, json_lines)
            batches[str(w)], per_batch[w], scores_batch[w] = batch, per, scores
            sec = batch["seconds"]
            log(f"class {assignment}, {n} on {w} worker(s): {_s(batch['wall'])}, "
                f"{batch['per_minute']:.1f} a minute ({_n(batch['honest_per_minute'])} honest, "
                f"estimate); per submission median {_s(sec['median'])}, p95 {_s(sec['p95'])};"
                f" last graded at {_s(batch['last_graded'])}, in the gradebook at "
                f"{_s(batch['gradebook_at'])}")
        checks = check_class(mix, per_batch, scores_batch)
        honest = next((s for s, c in mix.items() if c == "reference"), None)
        if assignment == "jacobian" and honest and out["profile"] is None:
            out["profile"] = {"assignment": assignment,
                              **profile_one(template, assignment, honest, scratch)}
            log(f"class: profiled one {assignment} grade-one: {out['profile']['wall']:.1f} s")
        out["assignments"][assignment] = {
            "n": n, "mix": counts, "students": mix,
            "max_score": max_code_score(template, assignment),
            "batches": batches, **checks,
            "cells_share": {str(w): cells_share(per, mix) for w, per in per_batch.items()},
            "hostile_status": {str(w): sorted({per[s]["status"] for s in per
                                               if mix[s] in HOSTILE})
                               for w, per in per_batch.items()},
            "per_submission": {str(w): {s: _rounded(per[s]) for s in per}
                               for w, per in per_batch.items()},
        }
        shutil.rmtree(template, ignore_errors=True)
    return out
