"""Item 3: n submissions autograded one after the other and `workers` at a time, by plain
nbgrader and by the sandboxed grader (rnngrading, the console script rnncourse-grade)."""

import concurrent.futures
import shutil
import sys
import time
from pathlib import Path

from rnngrading.course import FIXTURES

from .courses import autograde_scores, make_course, timed_nbgrader
from .machine import log, run_timed
from .profiling import profile_command
from .stats import ratio_stats, summarize

ASSIGNMENT, STUDENTS, WORKERS = "jacobian", 20, 2
# rnncourse-grade, run by this interpreter (the console script calls the same main)
GRADE_COMMAND = (sys.executable, "-m", "rnngrading.cli")
# (label, file name ending, function name): parts of a grade-one profile, by cumulative time
SANDBOX_PARTS = [
    ("grade_one, the whole submission", "rnngrading/runner.py", "grade_one"),
    ("  import nbformat (first thing grade_one does)", "nbformat/__init__.py", "<module>"),
    ("  import nbgrader (for its Gradebook)", "nbgrader/__init__.py", "<module>"),
    ("  pre-checks of the notebook", "rnngrading/prechecks.py", "precheck"),
    ("  start the zygote (a process that imports nbgrader once)", "rnngrading/zygote.py",
     "__init__"),
    ("  the forked, sandboxed `nbgrader autograde` (kernel, cells, nbgrader's work)",
     "rnngrading/zygote.py", "run"),
]


def class_of(n_students, assignment=ASSIGNMENT):
    """{student id: fixture case}: n students cycling through the assignment's cases."""
    cases = sorted(p.name for p in (FIXTURES / assignment).iterdir() if p.is_dir())
    return {f"student-{i + 1:02d}": cases[i % len(cases)] for i in range(n_students)}


def sandboxed_grade(root, assignment, workers, command=GRADE_COMMAND):
    """`rnncourse-grade grade ASSIGNMENT ROOT/submitted --workers N --course ROOT`, timed;
    command: the grader's command line before its arguments. returns the wall in seconds"""
    return run_timed([*command, "grade", assignment, str(Path(root) / "submitted"),
                      "--workers", str(workers), "--course", str(root)])


def split_course(template, groups, dest):
    """One scratch copy of the course per group of students, each with only their work.

    returns [(course root, [student ids])]
    """
    out = []
    for i, group in enumerate(groups):
        root = Path(dest) / f"worker-{i}"
        shutil.copytree(template, root, ignore=_only_submissions(template, set(group)))
        out.append((root, list(group)))
    return out


def _only_submissions(template, keep):
    """shutil.copytree ignore function: leave out every submission but those of `keep`."""
    submitted = Path(template) / "submitted"

    def ignore(folder, names):
        if Path(folder) == submitted:
            return [n for n in names if n not in keep]
        return []

    return ignore


def autograde_in_parallel(jobs, assignment, workers):
    """Run `nbgrader autograde` once per (course root, students) job, `workers` at a time.

    Each job is one nbgrader process (so one Python start-up and import per job); the
    thread pool only waits on the processes. returns the wall time in seconds
    """
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = []
        for root, students in jobs:
            only = ["--student", students[0]] if len(students) == 1 else []
            futures.append(pool.submit(timed_nbgrader, root, "autograde", assignment, *only))
        for future in futures:
            future.result()
    return time.perf_counter() - start


def bench_parallel(runs, scratch, n_students=STUDENTS, workers=WORKERS):
    """n submissions of one assignment, graded one after the other and `workers` at a time.

    Two graders, each both ways, back to back in every run:
    nbgrader:   sequential = one `nbgrader autograde` over all of them in one course;
                parallel = the students split into `workers` groups, one nbgrader process
                per group in its own scratch course, all groups at once
    sandboxed:  `rnncourse-grade grade ASSIGNMENT FOLDER` with --workers 1 (one after the
                other, in one process) and --workers N (Dask)
    Every way must give the same scores.
    """
    assignment = ASSIGNMENT
    students = class_of(n_students)
    template = make_course(Path(scratch) / "parallel-template", assignment, students)
    names = list(students)
    ways = ("nbgrader_seq", "nbgrader_par", "sandbox_seq", "sandbox_par")
    walls = {w: [] for w in ways}
    scores = {}
    for run in range(runs):
        base = Path(scratch) / f"parallel-run-{run}"
        # scratch courses are made before the clock starts (copies take milliseconds)
        roots = {w: base / w for w in ways if w != "nbgrader_par"}
        for root in roots.values():
            shutil.copytree(template, root)
        groups = split_course(template, [names[i::workers] for i in range(workers)],
                              base / "nbgrader_par")
        walls["nbgrader_seq"].append(timed_nbgrader(roots["nbgrader_seq"], "autograde",
                                                    assignment))
        scores["nbgrader_seq"] = autograde_scores(roots["nbgrader_seq"], assignment)
        walls["nbgrader_par"].append(autograde_in_parallel(groups, assignment, workers))
        merged = {}
        for root, group in groups:
            graded = autograde_scores(root, assignment)
            merged.update({s: graded[s] for s in group})
        scores["nbgrader_par"] = merged
        for way, n_workers in (("sandbox_seq", 1), ("sandbox_par", workers)):
            walls[way].append(sandboxed_grade(roots[way], assignment, n_workers))
            graded = autograde_scores(roots[way], assignment)
            scores[way] = {s: graded.get(s) for s in names}
        log(f"autograde of {n_students} submissions, run {run + 1}/{runs}: "
            + ", ".join(f"{w} {walls[w][-1]:.1f} s" for w in ways))
        shutil.rmtree(base)
    failures = [w for w in scores if scores[w] != scores["nbgrader_seq"]]
    # one sandboxed submission under cProfile: where its seconds go
    root = Path(scratch) / "sandbox-profile"
    shutil.copytree(template, root)
    one = root / "submitted" / names[0] / assignment / f"{assignment}.ipynb"
    profile = profile_command(
        [*GRADE_COMMAND[1:], "grade-one", assignment, names[0], str(one), "--course",
         str(root), "--json"], root, Path(scratch) / "sandbox.prof", SANDBOX_PARTS)
    log(f"profiled one sandboxed submission: {profile['wall']:.1f} s")
    return {
        "sandbox_profile": profile,
        "assignment": assignment,
        "students": n_students,
        "workers": workers,
        "cases": sorted(set(students.values())),
        **{w: summarize(v) for w, v in walls.items()},
        "speedup_nbgrader": ratio_stats(walls["nbgrader_seq"], walls["nbgrader_par"]),
        "speedup_sandbox": ratio_stats(walls["sandbox_seq"], walls["sandbox_par"]),
        "isolation_cost": ratio_stats(walls["sandbox_seq"], walls["nbgrader_seq"]),
        "sandbox_par_vs_nbgrader_seq": ratio_stats(walls["nbgrader_seq"], walls["sandbox_par"]),
        "same_scores": not failures,
        "different_scores": failures,
        "scores": scores["nbgrader_seq"],
    }
