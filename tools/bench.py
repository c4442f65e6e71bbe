"""Benchmarks of the course: how long students wait and how long grading takes, on this machine.

    python tools/bench.py            the full run (every item at least 3 times), writes
                                     benchmarks/RESULTS.md and benchmarks/results.json
    python tools/bench.py --quick    one run of each, a small grid: for development; prints
                                     the results file instead of writing it (unless --out)
    python tools/bench.py --only bptt,copy   some items only (same rule as --quick)

Items (each with its target, PASS or MISS in the results file):
    notebooks   every course notebook run top to bottom with nbclient in a temp copy:
                wall time (< 90 s) and slowest cell (< 30 s)
    autograde   nbgrader autograde of each assignment's reference solution in a temp
                course, alone and in a batch of 5, against plain nbclient on the same
                cells (ratio <= 1.5)
    parallel    20 submissions autograded one after the other and two at a time, by
                nbgrader and by the sandboxed `make grade` (speedup >= 1.6 on 2 cores)
    bptt        rnncourse.rnn.rnn_loss (NumPy forward + BPTT) against torch autograd on
                the same model and shapes, float64 and float32 (within 3x at N=32, T=100, H=64)
    copy        training time until the LSTM beats the memoryless baseline on the copy
                task, with the assignment's own code, delay, model size and budget

Progress goes to stderr, one summary line per measurement. Everything the run writes
(Jupyter, IPython and matplotlib settings, scratch courses, kernels' files) lives in a
temp folder removed at the end; only the results files are written in the repository.
Not part of the test suite: tests/test_bench.py checks the cheap parts only.
"""

import argparse
import concurrent.futures
import contextlib
import datetime
import importlib.util
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COURSE = REPO / "course"
ASSIGNMENTS = ("jacobian", "eigenvalues", "copy_task")
FIXTURES = REPO / "tests" / "fixtures" / "submissions"
OUT = REPO / "benchmarks"

TARGETS = {
    "notebook_wall_s": 90.0,  # each notebook, top to bottom
    "slowest_cell_s": 30.0,  # its slowest cell
    "autograde_ratio": 1.5,  # autograde wall / plain nbclient wall, at most
    "parallel_speedup": 1.6,  # sequential / parallel, at least, on 2 cores
    "bptt_ratio": 3.0,  # NumPy / torch autograd at the key shape, at most
}
BPTT_KEY = (32, 100, 64)  # (N, T, H) of the BPTT target
BPTT_D = BPTT_V = 10  # one-hot inputs and 10 classes, as in the copy task
BPTT_GRID_FULL = [(1, 100, 64), (32, 20, 64), (32, 100, 16), BPTT_KEY, (32, 100, 256),
                  (128, 100, 64)]
BPTT_GRID_QUICK = [(1, 100, 64), BPTT_KEY]
PARALLEL_ASSIGNMENT, PARALLEL_STUDENTS, PARALLEL_WORKERS = "jacobian", 20, 2
AUTOGRADE_BATCH = 5  # submissions autograded in one command, for the per-submission cost
COPY_EVAL_EVERY = 50  # steps between held-out checks while racing the baseline
SCRATCH_VARS = {
    "HOME": "home",
    "JUPYTER_CONFIG_DIR": "jupyter-config",
    "JUPYTER_DATA_DIR": "jupyter-data",
    "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
    "IPYTHONDIR": "ipython",
    "MPLCONFIGDIR": "matplotlib",
    "XDG_CACHE_HOME": "cache",
}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_START = time.perf_counter()


# ------------------------------------------------------------------ small pure helpers


def log(message):
    """Progress on stderr, stamped with the seconds since the run started."""
    print(f"[bench {time.perf_counter() - _START:7.1f} s] {message}", file=sys.stderr, flush=True)


def summarize(values):
    """{"median", "min", "max", "n", "values"} of a list of numbers (None if empty)."""
    values = [float(v) for v in values]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": values}


def fmt_num(value):
    """A number with 3 significant figures, no exponent for everyday sizes."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 0.01:
        return f"{value:.3g}"
    return f"{value:.2e}"


def fmt_stats(stats, unit=""):
    """'12.3 s (11.9-12.8, n=3)': the median, then min-max and the number of runs."""
    if stats is None:
        return "n/a"
    unit = f" {unit}" if unit else ""
    median = fmt_num(stats["median"])
    if stats["n"] == 1:
        return f"{median}{unit} (n=1)"
    return f"{median}{unit} ({fmt_num(stats['min'])}-{fmt_num(stats['max'])}, n={stats['n']})"


def verdict(value, limit, at_least=False):
    """PASS or MISS of a measured value against its target (at most, or at least, limit)."""
    if value is None:
        return "MISS"
    ok = value >= limit if at_least else value <= limit
    return "PASS" if ok else "MISS"


def ratio_stats(numerators, denominators):
    """A ratio taken run by run (the two sides of run i were measured back to back),
    summarised like any value: median, min, max of the per-run ratios."""
    if len(numerators) != len(denominators):
        raise ValueError(f"{len(numerators)} runs against {len(denominators)}: not paired")
    return summarize([a / b for a, b in zip(numerators, denominators, strict=True)])


# ------------------------------------------------------------------ machine and scratch


def machine_info():
    """What the numbers were measured on."""
    import nbclient
    import nbgrader
    import numpy
    import torch

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = int(line.split()[1]) / 1024**2
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_gb, 1) if mem_gb else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "nbgrader": nbgrader.__version__,
        "nbclient": nbclient.__version__,
        "commit": commit,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def load_average():
    """The 1, 5 and 15 minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]


def point_home_at(scratch):
    """Jupyter, IPython, matplotlib and caches write under scratch; children inherit it."""
    for var, sub in SCRATCH_VARS.items():
        os.makedirs(os.path.join(scratch, sub), exist_ok=True)
        os.environ[var] = os.path.join(scratch, sub)
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    sys.dont_write_bytecode = True
    # nbgrader calls the `alembic` executable of its own environment
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")


# ------------------------------------------------------------------ notebooks (nbclient)


def cell_seconds(cell):
    """Wall time of one executed cell from nbclient's timing metadata, or None."""
    execution = cell.get("metadata", {}).get("execution", {})
    start = execution.get("iopub.status.busy") or execution.get("iopub.execute_input")
    end = execution.get("shell.execute_reply") or execution.get("iopub.status.idle")
    if not (start and end):
        return None
    parse = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def execute_notebook(path, workdir, timeout=600):
    """Run a copy of the notebook at `path` in `workdir` with nbclient, kernel start included.

    returns (wall seconds, [seconds per code cell, in order], error text or None)
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / Path(path).name
    shutil.copy2(path, copy)
    nb = nbformat.read(copy, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    error = None
    start = time.perf_counter()
    try:  # the kernel's own log (a TCP warning on every start) goes to a file, not our stderr
        with open(workdir / "kernel.log", "w") as kernel_log:
            client.execute(stderr=kernel_log)
    except CellExecutionError as exc:
        text = str(exc).strip()
        error = text.splitlines()[-1][:200] if text else "CellExecutionError"
    wall = time.perf_counter() - start
    cells = [cell_seconds(c) for c in nb.cells if c.cell_type == "code"]
    return wall, cells, error


def first_line(path, code_index):
    """First non-blank line of the code cell with this index, for the report."""
    import nbformat

    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    lines = [line for line in code[code_index].source.splitlines() if line.strip()]
    return (lines[0] if lines else "")[:60]


def bench_notebooks(runs, scratch):
    """Every course notebook, `runs` times, runs interleaved so load spreads evenly."""
    notebooks = sorted(COURSE.glob("*.ipynb"))
    raw = {nb.name: {"walls": [], "cells": [], "errors": []} for nb in notebooks}
    empty = _empty_notebook(scratch)
    kernel = []
    execute_notebook(empty, Path(scratch) / "warm-up")  # first kernel start warms the caches
    for run in range(runs):
        wall, _, _ = execute_notebook(empty, Path(scratch) / f"empty-{run}")
        kernel.append(wall)
        log(f"notebooks run {run + 1}/{runs}: empty notebook (kernel start) {wall:.2f} s")
        for nb in notebooks:
            wall, cells, error = execute_notebook(nb, Path(scratch) / f"nb-{run}-{nb.stem}")
            raw[nb.name]["walls"].append(wall)
            raw[nb.name]["cells"].append(cells)
            if error:
                raw[nb.name]["errors"].append(error)
            slow = max((s or 0.0) for s in cells) if cells else 0.0
            log(f"notebook {nb.name} run {run + 1}/{runs}: {wall:.1f} s, slowest cell "
                f"{slow:.1f} s" + (f", ERROR {error}" if error else ""))
    results = {"kernel_start": summarize(kernel), "notebooks": {}}
    for nb in notebooks:
        r = raw[nb.name]
        per_cell = list(zip(*r["cells"], strict=True))
        medians = [statistics.median([s or 0.0 for s in c]) for c in per_cell]
        slowest = max(range(len(medians)), key=medians.__getitem__) if medians else None
        results["notebooks"][nb.name] = {
            "wall": summarize(r["walls"]),
            "cells_total": summarize([sum(s or 0.0 for s in run) for run in r["cells"]]),
            "slowest_cell": None if slowest is None else {
                "index": slowest,
                "first_line": first_line(nb, slowest),
                **summarize([s or 0.0 for s in per_cell[slowest]]),
            },
            "errors": r["errors"],
        }
    return results


def _empty_notebook(scratch):
    """A notebook with one empty code cell: its run time is the kernel's start and stop."""
    import nbformat

    path = Path(scratch) / "empty.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("pass"))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


# ------------------------------------------------------------------ nbgrader courses


def load_instructor():
    """tools/instructor.py as a module (its fixture submission builder is reused)."""
    spec = importlib.util.spec_from_file_location("instructor", REPO / "tools" / "instructor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nbgrader(root, *args):
    """Run one nbgrader command in the course root; returns its wall time in seconds."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed in {root}:\n{proc.stderr[-3000:]}")
    return wall


def make_course(root, assignment, students):
    """A released course with one assignment and fixture submissions, in a temp folder.

    students: {student id: fixture case name}; returns the course root
    """
    instructor = load_instructor()
    root = Path(root)
    root.mkdir(parents=True)
    shutil.copy2(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copytree(REPO / "source" / assignment, root / "source" / assignment)
    nbgrader(root, "generate_assignment", assignment, "--force", "--log-level=ERROR")
    roster = root / "students.csv"
    roster.write_text("id\n" + "".join(f"{s}\n" for s in students))
    nbgrader(root, "db", "student", "import", str(roster), "--log-level=ERROR")
    name = f"{assignment}.ipynb"
    for student, case in students.items():
        nb = instructor.build_submission(root / "source" / assignment / name,
                                         root / "release" / assignment / name,
                                         FIXTURES / assignment / case)
        folder = root / "submitted" / student / assignment
        folder.mkdir(parents=True)
        import nbformat

        nbformat.write(nb, folder / name)
    return root


def autograde_scores(root, assignment):
    """{student: autograded code score} from the course's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{Path(root) / 'gradebook.db'}") as gb:
        return {s.student.id: s.code_score for s in gb.assignment_submissions(assignment)}


def max_code_score(root, assignment):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{Path(root) / 'gradebook.db'}") as gb:
        return gb.find_assignment(assignment).max_code_score


def autograded_cell_seconds(root, assignment, student):
    """Sum of the cell times nbgrader's own execution recorded in the autograded notebook."""
    import nbformat

    path = Path(root) / "autograded" / student / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(path, as_version=4)
    return sum(cell_seconds(c) or 0.0 for c in nb.cells if c.cell_type == "code")


def import_times(runs):
    """What starting an nbgrader command costs before it does anything.

    returns {"interpreter": stats of `python -c pass`, "nbgrader": stats of
    `python -c "import nbgrader.apps"`, "packages": {top-level package: median
    cumulative seconds from -X importtime, for those >= 0.1 s}}
    """
    interpreter, full, packages = [], [], {}
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        interpreter.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import nbgrader.apps"], check=True,
                       capture_output=True)
        full.append(time.perf_counter() - start)
        proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import nbgrader.apps"],
                              check=True, capture_output=True, text=True)
        for name, seconds in parse_importtime(proc.stderr).items():
            packages.setdefault(name, []).append(seconds)
    medians = {k: statistics.median(v) for k, v in packages.items()}
    return {"interpreter": summarize(interpreter), "nbgrader": summarize(full),
            "packages": {k: v for k, v in sorted(medians.items(), key=lambda kv: -kv[1])
                         if v >= 0.1}}


def parse_importtime(text):
    """{top-level module: cumulative seconds} from python -X importtime's stderr.

    Each line reads "import time: self [us] | cumulative | name"; nested imports are
    indented. A top-level name is counted where it was first imported, so the numbers
    nest (rfc3987_syntax's time is inside jsonschema's, inside nbformat's).
    """
    found = {}
    for line in text.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:"):].split("|")
        try:
            cumulative = int(parts[1]) / 1e6
        except ValueError:
            continue  # the header line
        name = parts[2].strip()
        if "." not in name:
            found[name] = max(found.get(name, 0.0), cumulative)
    return found


def bench_autograde(runs, scratch, batch=AUTOGRADE_BATCH):
    """Per assignment: autograde of the reference submission against plain nbclient.

    Per run, back to back: an empty notebook (the kernel's start); `nbgrader autograde`
    of one submission (a fresh nbgrader process, as an instructor grades one student);
    plain nbclient on that autograded notebook (the same cells nbgrader ran, hidden
    tests included) and on the notebook as handed in (no hidden tests); and, except for
    the copy task, `batch` copies of the submission autograded in one command (how a
    class is graded), per submission.
    """
    results = {}
    for assignment in ASSIGNMENTS:
        student = "bench-reference"
        root = make_course(Path(scratch) / f"course-{assignment}", assignment,
                           {student: "reference"})
        in_batch = assignment != "copy_task"  # 5 x 25 s of training: not run
        batch_root = (make_course(Path(scratch) / f"batch-{assignment}", assignment,
                                  {f"bench-{i + 1:02d}": "reference" for i in range(batch)})
                      if in_batch else None)
        submission = root / "submitted" / student / assignment / f"{assignment}.ipynb"
        graded = root / "autograded" / student / assignment / f"{assignment}.ipynb"
        args = ("autograde", assignment, "--student", student, "--force", "--log-level=ERROR")
        r = {k: [] for k in ("autograde", "plain", "plain_hidden", "autograde_cells",
                             "plain_cells", "kernel_start", "batch")}
        empty = _empty_notebook(scratch)
        for run in range(runs):
            r["kernel_start"].append(execute_notebook(
                empty, Path(scratch) / f"empty-{assignment}-{run}")[0])
            r["autograde"].append(nbgrader(root, *args))
            r["autograde_cells"].append(autograded_cell_seconds(root, assignment, student))
            copy = Path(scratch) / f"graded-{assignment}.ipynb"
            shutil.copy2(graded, copy)
            hidden, _, error = execute_notebook(copy, Path(scratch) / f"hidden-{assignment}-{run}")
            if error:
                raise RuntimeError(f"the graded {assignment} failed under nbclient: {error}")
            r["plain_hidden"].append(hidden)
            plain, cells, error = execute_notebook(submission,
                                                   Path(scratch) / f"plain-{assignment}-{run}")
            if error:
                raise RuntimeError(f"the reference {assignment} failed under nbclient: {error}")
            r["plain"].append(plain)
            r["plain_cells"].append(sum(s or 0.0 for s in cells))
            if in_batch:
                wall = nbgrader(batch_root, "autograde", assignment, "--force",
                                "--log-level=ERROR")
                r["batch"].append(wall / batch)
            log(f"autograde {assignment} run {run + 1}/{runs}: one submission "
                f"{r['autograde'][-1]:.1f} s; plain nbclient, same cells {hidden:.1f} s "
                f"(ratio {r['autograde'][-1] / hidden:.2f}), as handed in {plain:.1f} s"
                + (f"; {batch} in one command {r['batch'][-1]:.2f} s each (ratio "
                   f"{r['batch'][-1] / hidden:.2f})" if in_batch else ""))
        batch_scores = set(autograde_scores(batch_root, assignment).values()) if in_batch else set()
        results[assignment] = {
            **{k: summarize(v) for k, v in r.items()},
            "ratio": ratio_stats(r["autograde"], r["plain_hidden"]),
            "ratio_batch": ratio_stats(r["batch"], r["plain_hidden"]) if in_batch else None,
            "ratio_as_handed_in": ratio_stats(r["autograde"], r["plain"]),
            "batch_size": batch if in_batch else 0,
            "score": autograde_scores(root, assignment)[student],
            "batch_scores": sorted(batch_scores),
            "max_score": max_code_score(root, assignment),
        }
    return results


def profile_command(args, cwd, prof, parts):
    """Run `python -m cProfile ARGS` and summarise the profile by `parts` (see below)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), *args], cwd=cwd,
                   check=True, capture_output=True)
    return {"wall": time.perf_counter() - start, **summarize_profile(prof, parts)}


def profile_autograde(scratch, assignment="jacobian"):
    """cProfile of one nbgrader autograde: where a submission's seconds go."""
    root = Path(scratch) / f"course-{assignment}"
    if not root.exists():
        root = make_course(root, assignment, {"bench-reference": "reference"})
    args = ["-m", "nbgrader", "autograde", assignment, "--student", "bench-reference",
            "--force", "--log-level=ERROR"]
    return {"assignment": assignment,
            **profile_command(args, root, Path(scratch) / "autograde.prof", AUTOGRADE_PARTS)}


# (label, file name ending, function name): parts of a profile, by cumulative time
AUTOGRADE_PARTS = [
    ("import nbgrader, before the command starts", "nbgrader/__init__.py", "<module>"),
    ("  of which rfc3987_syntax (via nbformat, jsonschema)", "rfc3987_syntax/__init__.py",
     "<module>"),
    ("the autograde command, after the imports", "nbgrader/apps/autogradeapp.py", "start"),
    ("  assignment and student set-up in the gradebook", "nbgrader/converters/autograde.py",
     "init_assignment"),
    ("  notebook execution (Execute preprocessor)", "nbconvert/preprocessors/execute.py",
     "preprocess"),
    ("    kernel start, wait and shutdown (nbclient setup_kernel)", "nbclient/client.py",
     "setup_kernel"),
    ("  cell metadata validation (CheckCellMetadata)",
     "nbgrader/preprocessors/checkcellmetadata.py", "preprocess"),
    ("  SQLAlchemy queries", "sqlalchemy/orm/session.py", "execute"),
]
SANDBOX_PARTS = [
    ("grade_one, the whole submission", "tools/sandbox.py", "grade_one"),
    ("  import nbformat (first thing grade_one does)", "nbformat/__init__.py", "<module>"),
    ("  import nbgrader (for its Gradebook)", "nbgrader/__init__.py", "<module>"),
    ("  pre-checks of the notebook", "tools/sandbox.py", "precheck"),
    ("  start the zygote (a process that imports nbgrader once)", "tools/sandbox.py",
     "__init__"),
    ("  the forked, sandboxed `nbgrader autograde` (kernel, cells, nbgrader's work)",
     "tools/sandbox.py", "run"),
]


def summarize_profile(prof, parts):
    """Cumulative seconds of the named parts, and the top functions by own time."""
    stats = pstats.Stats(str(prof), stream=io.StringIO())
    total = max(v[3] for v in stats.stats.values())
    found = {}
    for label, ending, function in parts:
        hits = [v[3] for (f, _, n), v in stats.stats.items()
                if f.endswith(ending) and n == function]
        if hits:
            found[label] = max(hits)
    top = []
    for (f, line, n), v in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:12]:
        short = "/".join(Path(f).parts[-2:]) if f != "~" else ""
        top.append(f"{v[2]:6.2f} s own, {v[0]:7d} calls  {short}:{line}({n})")
    return {"profiled_total": total, "parts": found, "top": top}


# ------------------------------------------------------------------ sequential vs parallel


SANDBOX = REPO / "tools" / "sandbox.py"


def run_timed(cmd, cwd=None):
    """Run a command, raise with its stderr if it fails; returns the wall time in seconds."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} ... failed:\n{proc.stderr[-3000:]}")
    return wall


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
            futures.append(pool.submit(nbgrader, root, "autograde", assignment, *only,
                                       "--log-level=ERROR"))
        for future in futures:
            future.result()
    return time.perf_counter() - start


def bench_parallel(runs, scratch, n_students=PARALLEL_STUDENTS, workers=PARALLEL_WORKERS):
    """n submissions of one assignment, graded one after the other and `workers` at a time.

    Two graders, each both ways, back to back in every run:
    nbgrader:   sequential = one `nbgrader autograde` over all of them in one course;
                parallel = the students split into `workers` groups, one nbgrader process
                per group in its own scratch course, all groups at once
    sandboxed:  issue 7's command, `tools/sandbox.py grade ASSIGNMENT FOLDER`, with
                --workers 1 (one after the other, in one process) and --workers N (Dask)
    Every way must give the same scores.
    """
    assignment = PARALLEL_ASSIGNMENT
    cases = sorted(p.name for p in (FIXTURES / assignment).iterdir() if p.is_dir())
    students = {f"student-{i + 1:02d}": cases[i % len(cases)] for i in range(n_students)}
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
        walls["nbgrader_seq"].append(nbgrader(roots["nbgrader_seq"], "autograde", assignment,
                                              "--log-level=ERROR"))
        scores["nbgrader_seq"] = autograde_scores(roots["nbgrader_seq"], assignment)
        walls["nbgrader_par"].append(autograde_in_parallel(groups, assignment, workers))
        merged = {}
        for root, group in groups:
            graded = autograde_scores(root, assignment)
            merged.update({s: graded[s] for s in group})
        scores["nbgrader_par"] = merged
        for way, n_workers in (("sandbox_seq", 1), ("sandbox_par", workers)):
            root = roots[way]
            walls[way].append(run_timed(
                [sys.executable, str(SANDBOX), "grade", assignment, str(root / "submitted"),
                 "--workers", str(n_workers), "--course", str(root)]))
            graded = autograde_scores(root, assignment)
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
        [str(SANDBOX), "grade-one", assignment, names[0], str(one), "--course", str(root),
         "--json"], root, Path(scratch) / "sandbox.prof", SANDBOX_PARTS)
    log(f"profiled one sandboxed submission: {profile['wall']:.1f} s")
    return {
        "sandbox_profile": profile,
        "assignment": assignment,
        "students": n_students,
        "workers": workers,
        "cases": cases,
        **{w: summarize(v) for w, v in walls.items()},
        "speedup_nbgrader": ratio_stats(walls["nbgrader_seq"], walls["nbgrader_par"]),
        "speedup_sandbox": ratio_stats(walls["sandbox_seq"], walls["sandbox_par"]),
        "isolation_cost": ratio_stats(walls["sandbox_seq"], walls["nbgrader_seq"]),
        "sandbox_par_vs_nbgrader_seq": ratio_stats(walls["nbgrader_seq"], walls["sandbox_par"]),
        "same_scores": not failures,
        "different_scores": failures,
        "scores": scores["nbgrader_seq"],
    }


def bptt_problem(N, T, H, dtype, seed=0, D=BPTT_D, V=BPTT_V):
    """Parameters, one-hot inputs and targets of one RNN loss evaluation, NumPy arrays."""
    import numpy as np

    import rnncourse as rc

    rng = np.random.default_rng(seed)
    params = rc.init_rnn_params(D, H, V, rng, dtype=dtype)
    tokens = rng.integers(0, D, size=(N, T))
    x = np.eye(D, dtype=dtype)[tokens]
    targets = rng.integers(0, V, size=(N, T))
    return params, x, targets


def _interleaved(fns, repeats, min_sample):
    """{name: `repeats` timings in seconds per call} of each function in `fns`.

    Each sample loops its function until about min_sample seconds, and the functions take
    turns sample by sample, so sample i of each was measured at nearly the same moment:
    a ratio between them is taken sample by sample, as other runs are.
    """
    loops = {}
    for name, fn in fns.items():
        fn()
        fn()  # warm-up: allocator, caches, torch's first-call costs
        start = time.perf_counter()
        fn()
        one = time.perf_counter() - start
        loops[name] = max(1, int(min_sample / max(one, 1e-7))) if one < min_sample else 1
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(loops[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / loops[name])
    return samples


def time_bptt(N, T, H, dtype, repeats=5, min_sample=0.05):
    """Seconds per forward + backward of the same RNN loss: NumPy (rnn_loss) and torch.

    torch_nn:   the library's twin TorchRNN (nn.RNN + nn.Linear), cross-entropy, backward()
    torch_loop: the NumPy code's step loop written in torch ops, autograd for the backward
    returns {"numpy": [...], "torch_nn": [...], "torch_loop": [...], "max_grad_diff": float}
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    import rnncourse as rc
    from rnncourse.torch_models import TorchRNN

    tdtype = {np.float64: torch.float64, np.float32: torch.float32}[np.dtype(dtype).type]
    params, x, targets = bptt_problem(N, T, H, dtype)
    x_t, y_t = torch.as_tensor(x), torch.as_tensor(targets.reshape(-1))
    model = TorchRNN.from_numpy(params, dtype=tdtype)
    weights = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}

    def numpy_step():
        return rc.rnn_loss(params, x, targets)

    def torch_nn_step():
        model.zero_grad(set_to_none=True)
        scores, _ = model(x_t)
        loss = F.cross_entropy(scores.reshape(-1, BPTT_V), y_t)
        loss.backward()
        return loss

    def torch_loop_step():
        for w in weights.values():
            w.grad = None
        h_t = torch.zeros(N, H, dtype=tdtype)
        hs = []
        for t in range(T):
            h_t = torch.tanh(x_t[:, t] @ weights["W_x"].T + h_t @ weights["W_h"].T
                             + weights["b_h"])
            hs.append(h_t)
        scores = torch.stack(hs, 1) @ weights["W_y"].T + weights["b_y"]
        loss = F.cross_entropy(scores.reshape(-1, BPTT_V), y_t)
        loss.backward()
        return loss

    # the three compute the same gradients: a benchmark of different sums would be no use
    _, grads, _ = numpy_step()
    torch_nn_step()
    torch_loop_step()
    twin = {"W_x": model.rnn.weight_ih_l0.grad, "W_h": model.rnn.weight_hh_l0.grad,
            "b_h": model.rnn.bias_ih_l0.grad, "W_y": model.out.weight.grad,
            "b_y": model.out.bias.grad}
    diff = 0.0
    for k, g in grads.items():
        if g.dtype != np.dtype(dtype):
            raise AssertionError(f"rnn_loss returned {k} as {g.dtype}, expected {np.dtype(dtype)}")
        scale = max(float(np.abs(g).max()), 1e-30)
        diff = max(diff, float(np.abs(g - twin[k].numpy()).max()) / scale,
                   float(np.abs(g - weights[k].grad.numpy()).max()) / scale)
    fns = {"numpy": numpy_step, "torch_nn": torch_nn_step, "torch_loop": torch_loop_step}
    return {**_interleaved(fns, repeats, min_sample), "max_grad_diff": diff}


def bptt_worker(grid, repeats):
    """Every (N, T, H) and dtype of the grid; runs in a child with one BLAS/torch thread."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    out = []
    for N, T, H in grid:
        for dtype in (np.float64, np.float32):
            r = time_bptt(N, T, H, dtype, repeats=repeats)
            name = np.dtype(dtype).name
            ratio = statistics.median(r["numpy"]) / statistics.median(r["torch_nn"])
            print(f"[bench] BPTT N={N} T={T} H={H} {name}: NumPy "
                  f"{statistics.median(r['numpy']) * 1e3:.2f} ms, torch nn.RNN "
                  f"{statistics.median(r['torch_nn']) * 1e3:.2f} ms, torch loop "
                  f"{statistics.median(r['torch_loop']) * 1e3:.2f} ms, NumPy/nn.RNN "
                  f"{ratio:.2f}", file=sys.stderr, flush=True)
            out.append({"N": N, "T": T, "H": H, "dtype": name, **r})
    return out


def profile_bptt(N, T, H, dtype="float64", calls=20):
    """cProfile of rnn_loss at one shape: the top functions by own time."""
    import cProfile

    import numpy as np

    import rnncourse as rc

    params, x, targets = bptt_problem(N, T, H, np.dtype(dtype).type)
    rc.rnn_loss(params, x, targets)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        rc.rnn_loss(params, x, targets)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = sum(v[2] for v in stats.stats.values())
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:10]
    return {"calls": calls, "total": total, "top": [
        f"{v[2] / calls * 1e3:6.2f} ms/call own, {v[1]:6d} calls  "
        f"{Path(f).name if f != '~' else ''}:{line}({n})" for (f, line, n), v in rows]}


# ------------------------------------------------------------------ the copy task race


def copy_task_namespace():
    """The copy_task assignment's own code (source notebook, reference solution), run once."""
    import nbformat

    nb = nbformat.read(REPO / "source" / "copy_task" / "copy_task.ipynb", as_version=4)
    wanted = ["setup", "copy_task_batch", "copy_task_baseline", "model", "train_copy", "budget"]
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nb.cells}
    namespace = {"__name__": "copy_task_assignment"}
    for gid in wanted:
        exec(compile(cells[gid], f"copy_task.ipynb:{gid}", "exec"), namespace)  # noqa: S102
    return namespace


def race_baseline(seed_weights, seed_data, every=COPY_EVAL_EVERY):
    """Train the assignment's LSTM under its budget until it beats the baseline.

    The assignment's train_copy runs unchanged; its progress bar (tqdm) is replaced by a
    wrapper that, every `every` steps, stops the clock and scores the model on the
    assignment's 1000 held-out sequences. "Beats" is the assignment's test: held-out
    loss below 0.95 times the memoryless baseline.
    returns {"steps": steps to beat or None, "seconds": training time to beat (or for the
    whole budget), "held_out": last held-out loss, "budget": the step budget}
    """
    import numpy as np
    import torch

    ns = copy_task_namespace()
    limit = 0.95 * ns["baseline"]
    torch.manual_seed(seed_weights)
    model = ns["CopyModel"]("lstm", ns["HIDDEN"])
    state = {"train": 0.0, "since": None, "steps": None, "held_out": None}

    def racing_tqdm(iterable, disable=True):
        state["since"] = time.perf_counter()
        for step in iterable:
            if step and step % every == 0:
                state["train"] += time.perf_counter() - state["since"]
                state["held_out"] = ns["evaluate_copy"](model, ns["x_eval"], ns["y_eval"])
                if state["held_out"] < limit:
                    state["steps"] = step
                    return
                state["since"] = time.perf_counter()
            yield step
        state["train"] += time.perf_counter() - state["since"]
        state["held_out"] = ns["evaluate_copy"](model, ns["x_eval"], ns["y_eval"])
        if state["held_out"] < limit:
            state["steps"] = ns["STEPS"]

    ns["tqdm"] = racing_tqdm
    ns["train_copy"](model, ns["DELAY"], ns["STEPS"], ns["BATCH"], ns["LEARNING_RATE"]["lstm"],
                     np.random.default_rng(seed_data))
    return {"steps": state["steps"], "seconds": state["train"], "held_out": state["held_out"],
            "limit": limit, "baseline": ns["baseline"], "budget": ns["STEPS"],
            "delay": ns["DELAY"], "hidden": ns["HIDDEN"], "batch": ns["BATCH"],
            "lr": ns["LEARNING_RATE"]["lstm"], "seeds": [seed_weights, seed_data]}


def copy_worker(runs):
    """Run 1: the assignment's seeds (weights 0, batches 1); then seed s for both."""
    seeds = [(0, 1)] + [(s, s) for s in range(1, runs)]
    out = []
    for i, (w, d) in enumerate(seeds):
        r = race_baseline(w, d)
        beat = f"beat it after {r['steps']} steps" if r["steps"] else "did not beat it"
        print(f"[bench] copy task run {i + 1}/{runs} (seeds {w}, {d}): LSTM {beat}, "
              f"{r['seconds']:.1f} s of training, held-out {r['held_out']:.4f} "
              f"(limit {r['limit']:.5f})", file=sys.stderr, flush=True)
        out.append(r)
    return out


def run_worker(kind, *args):
    """Run a worker in a child process with one BLAS and torch thread; returns its JSON."""
    env = dict(os.environ, **ONE_THREAD)
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, *map(str, args)],
                          env=env, capture_output=False, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the {kind} worker failed (exit status {proc.returncode})")
    return json.loads(proc.stdout)


# ------------------------------------------------------------------ the report


def load_note(results):
    """Whether other work shared the machine, judged by the load as each section started
    (the load at the end includes this run's own two-worker grading)."""
    starts = [results["load_start"], *results.get("load_sections", {}).values()]
    peak = max(load[0] for load in starts)
    if peak > 1.5:
        return (f"The machine was shared: 1-minute load up to {peak} on 2 cores as sections "
                "started, so timings include other users' work.")
    return (f"No other work: 1-minute load at most {peak} as sections started (the load at "
            "the end includes this run's own two-worker grading).")


def render(results):
    """The results file, Markdown."""
    m, q = results["machine"], results["quick"]
    lines = [
        "# Benchmarks",
        "",
        "Made by `make bench` (`.venv/bin/python tools/bench.py`); do not edit by hand.",
        f"{'QUICK RUN (1 run each, small grid): development numbers only.' if q else ''}",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores; memory {m['memory_gb']} GB; {m['os']}",
        f"- Python {m['python']}, torch {m['torch']}, NumPy {m['numpy']}, "
        f"nbgrader {m['nbgrader']}, nbclient {m['nbclient']}",
        f"- Date: {m['date']}; commit {m['commit']}; run took "
        f"{results['duration_s'] / 60:.1f} min",
        f"- Load average (1, 5, 15 min): {results['load_start']} at the start, "
        f"{results['load_end']} at the end; 1-minute load as each section started: "
        + ", ".join(f"{k} {v[0]}" for k, v in results.get("load_sections", {}).items())
        + f". {load_note(results)}",
        "",
        "Every value is the median of the runs, with min-max and the number of runs in",
        "brackets. A ratio is taken run by run (its two sides measured back to back) and",
        "summarised the same way.",
        "",
    ]
    if "notebooks" in results:
        lines += _render_notebooks(results["notebooks"])
    if "autograde" in results:
        lines += _render_autograde(results["autograde"], results.get("autograde_profile"),
                                   results.get("imports"))
    if "parallel" in results:
        lines += _render_parallel(results["parallel"])
    if "bptt" in results:
        lines += _render_bptt(results["bptt"], results.get("bptt_profile"))
    if "copy" in results:
        lines += _render_copy(results["copy"])
    if results.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    return "\n".join(lines).replace("\n\n\n", "\n\n")


def _render_notebooks(r):
    wall_t, cell_t = TARGETS["notebook_wall_s"], TARGETS["slowest_cell_s"]
    lines = [
        "## 1. Course notebooks, top to bottom (nbclient, a temp copy each)",
        "",
        f"Targets: each notebook under {wall_t:g} s, its slowest cell under {cell_t:g} s. Wall",
        "time includes the kernel's start; an empty notebook takes "
        f"{fmt_stats(r['kernel_start'], 's')}.",
        "",
        f"| notebook | wall (target < {wall_t:g} s) | | slowest cell (target < {cell_t:g} s) | | "
        "which cell |",
        "|---|---|---|---|---|---|",
    ]
    for name, nb in r["notebooks"].items():
        slow = nb["slowest_cell"]
        err = f" ERROR: {nb['errors'][0]}" if nb["errors"] else ""
        lines.append(
            f"| {name} | {fmt_stats(nb['wall'], 's')} | "
            f"{'MISS' if err else verdict(nb['wall']['median'], wall_t)} | "
            f"{fmt_stats(slow, 's')} | {verdict(slow and slow['median'], cell_t)} | "
            f"code cell {slow['index'] + 1}: `{slow['first_line']}`{err} |"
        )
    return lines + [""]


def _render_autograde(r, profile, imports):
    limit = TARGETS["autograde_ratio"]
    batch = max((x.get("batch_size") or 0) for x in r.values())
    lines = [
        "## 2. Autograde overhead per submission",
        "",
        "The reference solution of each assignment in a temp course. *One submission*: "
        "`nbgrader autograde ASSIGNMENT --student ID --force`, a fresh nbgrader process (as "
        f"an instructor grades one student). *Per submission in a batch*: {batch} copies "
        "autograded by one `nbgrader autograde ASSIGNMENT --force` (as a class is graded), "
        "its wall divided by their number. *Plain nbclient, same cells*: the notebook "
        "nbgrader produced, hidden tests included, run again by nbclient in this process "
        "(kernel start included, imports already done: the comparison favours plain). The "
        "hidden tests are part of what a student's notebook is graded on, so the target "
        f"(autograde at most {limit:g}x plain) is judged against running those same cells; "
        "the last ratio is against the notebook as handed in, without them.",
        "",
        f"| assignment | autograde, one submission | plain nbclient, same cells | ratio "
        f"(target <= {limit:g}) | | autograde per submission, batch of {batch} | ratio "
        f"(target <= {limit:g}) | | plain nbclient, as handed in | one submission / that | "
        "score |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a, x in r.items():
        if x.get("ratio_batch"):
            in_batch = (f"{fmt_stats(x['batch'], 's')} | {fmt_stats(x['ratio_batch'])} | "
                        f"{verdict(x['ratio_batch']['median'], limit)}")
        else:
            in_batch = "not run: training dominates | | "
        lines.append(
            f"| {a} | {fmt_stats(x['autograde'], 's')} | {fmt_stats(x['plain_hidden'], 's')} | "
            f"{fmt_stats(x['ratio'])} | {verdict(x['ratio']['median'], limit)} | {in_batch} | "
            f"{fmt_stats(x['plain'], 's')} | {fmt_stats(x['ratio_as_handed_in'])} | "
            f"{x['score']:g} / {x['max_score']:g}"
            + (f" (batch: {', '.join(f'{s:g}' for s in x['batch_scores'])})"
               if x.get("batch_scores") else "") + " |"
        )
    if imports is None:
        return lines + [""]
    imp = imports["nbgrader"]["median"]
    lines += [
        "",
        "### Where an autograde's time goes",
        "",
        "Medians in seconds. *Imports*: `python -c \"import nbgrader.apps\"` "
        f"({fmt_stats(imports['nbgrader'], 's')}; the bare interpreter starts in "
        f"{fmt_num(imports['interpreter']['median'])} s). *Kernel*: an empty notebook under "
        "nbclient. *Cells as graded*: the cell times nbgrader's own run recorded in the "
        "autograded notebook, hidden tests included. *nbgrader's own work*: the rest "
        "(gradebook, the two conversion passes, checks, files, the kernel's shutdown).",
        "",
        "| assignment | autograde, one submission | imports | kernel | cells as graded | "
        "nbgrader's own work |",
        "|---|---|---|---|---|---|",
    ]
    for a, x in r.items():
        med = {k: (v["median"] if isinstance(v, dict) and "median" in v else None)
               for k, v in x.items()}
        rest = med["autograde"] - imp - med["kernel_start"] - med["autograde_cells"]
        lines.append(
            f"| {a} | {fmt_num(med['autograde'])} | {fmt_num(imp)} | "
            f"{fmt_num(med['kernel_start'])} | {fmt_num(med['autograde_cells'])} | "
            f"{fmt_num(rest)} |"
        )
    lines += ["", "Import time of the biggest packages, from `python -X importtime -c "
              "\"import nbgrader.apps\"` (cumulative, medians; they nest):", ""]
    lines += [f"- {name}: {sec:.2f} s" for name, sec in list(imports["packages"].items())[:10]]
    if profile:
        lines += [
            "",
            f"cProfile of one `nbgrader autograde {profile['assignment']}` "
            f"({profile['wall']:.1f} s wall under the profiler, which slows Python code; "
            "cumulative seconds; indented parts nest):",
            "",
            "```",
        ]
        lines += [f"{sec:6.2f} s  {label}" for label, sec in profile["parts"].items()]
        lines += ["```", "", "Top functions by own time (epoll waits are the parent idle while "
                  "the kernel works):", "", "```"]
        lines += profile["top"] + ["```"]
    short = [a for a, x in r.items()
             if x["ratio"]["median"] > limit
             or (x.get("ratio_batch") and x["ratio_batch"]["median"] > limit)]
    lines += ["", "**Where the overhead comes from" + (", and why some ratios miss.** "
                                                       if short else ".** ")
              + " ".join(_autograde_explanation(r, short, imports))]
    return lines + [""]


def _autograde_explanation(r, short, imports):
    """Sentences, with this run's numbers, on where the overhead of a notebook goes."""
    imp = imports["nbgrader"]["median"]
    rfc = imports["packages"].get("rfc3987_syntax")
    out = []
    for a, x in r.items():
        same = x["plain_hidden"]["median"]
        extra = x["autograde"]["median"] - same
        hidden = x["autograde_cells"]["median"] - x["plain_cells"]["median"]
        sentence = (
            f"{a}: autograding one submission takes {fmt_num(extra)} s more than running the "
            f"same cells ({fmt_num(same)} s), of which {fmt_num(imp)} s is nbgrader's import "
            f"and the rest its own work; its hidden tests add {fmt_num(hidden)} s of cells "
            "to the notebook as handed in.")
        if x.get("batch"):
            sentence += (f" In a batch the import is paid once: {fmt_num(x['batch']['median'])}"
                         f" s per submission, {fmt_num(x['ratio_batch']['median'])}x.")
        out.append(sentence)
    if rfc:
        out.append(
            f"rfc3987_syntax is installed and costs {rfc:.2f} s of every import: run "
            "`make setup`, which removes it (see the Makefile).")
    else:
        out.append(
            f"The import took 3.13 s in the run of 07:23 UTC (commit e3c1e6f), "
            f"{3.13 / imp:.1f}x this run's: jsonschema imports rfc3987_syntax whenever it is "
            "installed (it comes with jsonschema's format-nongpl extra, which jupyter-events "
            "asks for), and that module builds 38 Lark parsers when imported, 1.56 s of "
            "those 3.13 s; `make setup` now uninstalls it (no schema we use checks the iri "
            "formats it provides) and it is absent from this run's import list.")
    if short:
        out.append(
            "What remains is a fixed cost per nbgrader process and per notebook (Python's "
            "start and imports, the gradebook, two conversion passes, the kernel's shutdown) "
            "whatever the notebook does: next to a notebook whose cells run in a second or "
            "two it stays above 1.5x for a one-off command; next to the copy task's 25 s of "
            "training it is small.")
    return out


def _render_parallel(r):
    limit = TARGETS["parallel_speedup"]
    n, w = r["students"], r["workers"]
    lines = [
        f"## 3. Autograde of {n} submissions: one after the other, and {w} at a time",
        "",
        f"Assignment {r['assignment']}; the {n} submissions cycle through its fixture cases "
        f"({', '.join(r['cases'])}). Two graders, each run both ways, all four back to back "
        "in every run:",
        "",
        "- *nbgrader*: sequential is one `nbgrader autograde` over all of them in one course "
        f"(what `make instructor-autograde` runs); parallel splits the students into {w} "
        "groups, one `nbgrader autograde` per group in its own scratch copy of the course, "
        "all at once.",
        "- *Sandboxed* (issue 7's `make grade`: `tools/sandbox.py grade ASSIGNMENT FOLDER`): "
        "every submission pre-checked and graded in its own scratch course, nbgrader forked "
        "from a zygote into network, PID and mount namespaces, the kernel as user nobody "
        "under rlimits, scores merged into the gradebook. Sequential is `--workers 1` (one "
        f"process, one zygote); parallel is `--workers {w}` (a local Dask cluster, one "
        "zygote per worker).",
        "",
        "Scratch courses are made before the clock starts. Same scores in every way: "
        f"{r['same_scores']}" + (f" (differ: {', '.join(r['different_scores'])})"
                                 if r["different_scores"] else "") + ".",
        "",
        f"| grader | sequential, {n} | per submission | {w} at a time, {n} | per submission, "
        f"per worker | speedup (target >= {limit:g}) | |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, key in (("nbgrader", "nbgrader"), ("sandboxed", "sandbox")):
        seq, par, sp = r[f"{key}_seq"], r[f"{key}_par"], r[f"speedup_{key}"]
        lines.append(
            f"| {name} | {fmt_stats(seq, 's')} | {fmt_num(seq['median'] / n)} s | "
            f"{fmt_stats(par, 's')} | {fmt_num(par['median'] * w / n)} s | {fmt_stats(sp)} | "
            f"{verdict(sp['median'], limit, at_least=True)} |")
    lines += [
        "",
        f"The isolation's price: sandboxed sequential / nbgrader sequential = "
        f"{fmt_stats(r['isolation_cost'])}. Sandboxed with {w} workers against plain nbgrader "
        f"one after the other (the instructor's choice between the two commands): speedup "
        f"{fmt_stats(r['sandbox_par_vs_nbgrader_seq'])}.",
        "",
    ]
    prof = r.get("sandbox_profile")
    if prof:
        lines += [
            f"cProfile of one `sandbox.py grade-one` from a fresh process ({prof['wall']:.1f} s "
            "wall under the profiler, which slows the Python code of this process but not the "
            "zygote's; cumulative seconds; indented parts nest). In a batch the imports and the "
            "zygote's start are paid once per worker:",
            "",
            "```",
        ]
        lines += [f"{sec:6.2f} s  {label}" for label, sec in prof["parts"].items()]
        lines += ["```", ""]
    lines += [" ".join(_parallel_explanation(r)), ""]
    return lines


def _parallel_explanation(r):
    """Sentences, with this run's numbers, on what the parallel runs gain and lose."""
    n, w = r["students"], r["workers"]
    limit = TARGETS["parallel_speedup"]
    out = []
    for name, key in (("nbgrader", "nbgrader"), ("The sandboxed grader", "sandbox")):
        seq, par = r[f"{key}_seq"]["median"], r[f"{key}_par"]["median"]
        sp = r[f"speedup_{key}"]["median"]
        out.append(
            f"{name}: {fmt_num(seq / n)} s per submission one after the other, "
            f"{fmt_num(par * w / n)} s per submission on each of {w} workers, so {fmt_num(sp)}x"
            + (f" of the ideal {w}x" if sp >= limit else
               f", short of {limit:g}x: each worker pays its own start (a Python process with "
               "nbgrader's imports, and for the sandbox a Dask worker and a zygote) and the "
               f"{w} workers' kernels and their parents share the 2 cores")
            + ".")
    out.append(
        "Before the zygote, every sandboxed submission started two fresh Python processes "
        "(a `sandbox.py grade-one` and its `nbgrader autograde` child), each importing "
        "nbformat and nbgrader; the run of 07:23 UTC (commit e3c1e6f, load 4-6) measured "
        "23.7 s for one submission alone and a speedup of 0.496 over sequential nbgrader.")
    return out


def _render_bptt(r, profile):
    limit = TARGETS["bptt_ratio"]
    lines = [
        "## 4. NumPy BPTT against torch autograd",
        "",
        "One loss evaluation with its gradients: `rnncourse.rnn.rnn_loss` (forward, softmax",
        "cross-entropy, BPTT in NumPy) against the library's twin `TorchRNN` (nn.RNN and",
        "nn.Linear holding the same weights, `F.cross_entropy`, `backward()`), and against the",
        "same step loop written with torch ops (autograd). D = V = 10 (one-hot inputs, 10",
        "classes); one BLAS and one torch thread for all three. The three agree: the largest",
        "gradient difference relative to the gradient's largest entry is listed.",
        f"Target: NumPy within {limit:g}x of torch autograd (nn.RNN) at N, T, H = "
        f"{', '.join(map(str, BPTT_KEY))}.",
        "",
        "| N, T, H | dtype | NumPy rnn_loss (ms) | torch nn.RNN (ms) | torch step loop (ms) | "
        "NumPy / nn.RNN | NumPy / loop | grad diff | target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r:
        ms = {k: summarize([v * 1e3 for v in row[k]]) for k in ("numpy", "torch_nn", "torch_loop")}
        ratio = ratio_stats(row["numpy"], row["torch_nn"])
        loop = ratio_stats(row["numpy"], row["torch_loop"])
        key = (row["N"], row["T"], row["H"]) == BPTT_KEY
        target = f"<= {limit:g}: {verdict(ratio['median'], limit)}" if key else ""
        lines.append(
            f"| {row['N']}, {row['T']}, {row['H']} | {row['dtype']} | {fmt_stats(ms['numpy'])} | "
            f"{fmt_stats(ms['torch_nn'])} | {fmt_stats(ms['torch_loop'])} | "
            f"{fmt_stats(ratio)} | {fmt_stats(loop)} | {row['max_grad_diff']:.0e} | {target} |"
        )
    if profile:
        lines += ["", f"cProfile of rnn_loss at N, T, H = {', '.join(map(str, BPTT_KEY))}, "
                  f"float64 ({profile['calls']} calls; own time per call):", "", "```"]
        lines += profile["top"] + ["```"]
    return lines + [""]


def _render_copy(r):
    first = r[0]
    beaten = [x for x in r if x["steps"]]
    secs = summarize([x["seconds"] for x in beaten])
    steps = summarize([x["steps"] for x in beaten])
    lines = [
        "## 5. Copy task: training time until the LSTM beats the memoryless baseline",
        "",
        "The copy_task assignment's own code (its reference `train_copy`, `CopyModel`, data and",
        f"budget cells, run from source/copy_task/copy_task.ipynb): delay T = {first['delay']}, "
        f"H = {first['hidden']}, batches of {first['batch']}, Adam lr {first['lr']}, one torch "
        f"thread, budget {first['budget']} steps.",
        f"\"Beats\" is the assignment's test: held-out loss on its 1000 held-out sequences below "
        f"0.95 x baseline = {first['limit']:.5f} (baseline {first['baseline']:.4f}), checked "
        f"every {COPY_EVAL_EVERY} steps with the clock stopped. Run 1 uses the assignment's "
        "seeds (weights 0, batches 1); run k > 1 uses seed k - 1 for both.",
        "No target in issue 9; the assignment's budget is the bar.",
        "",
        "| run | seeds | steps to beat | training time to beat | held-out loss then |",
        "|---|---|---|---|---|",
    ]
    for i, x in enumerate(r):
        lines.append(
            f"| {i + 1} | {x['seeds'][0]}, {x['seeds'][1]} | "
            f"{x['steps'] if x['steps'] else 'not within ' + str(x['budget'])} | "
            f"{x['seconds']:.1f} s | {x['held_out']:.5f} |"
        )
    lines += [
        "",
        f"Median: {fmt_stats(steps)} steps, {fmt_stats(secs, 's')} of training; "
        f"{len(beaten)} of {len(r)} runs beat the baseline within the budget "
        f"({'PASS' if len(beaten) == len(r) else 'MISS'}).",
        "",
    ]
    return lines


# ------------------------------------------------------------------ main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 run each, small grid")
    parser.add_argument("--only", default="", help="comma-separated: "
                        "notebooks,autograde,parallel,bptt,copy")
    parser.add_argument("--out", default=None, help="folder for RESULTS.md and results.json "
                        "(default: benchmarks/ for a full run; none, print only, otherwise)")
    parser.add_argument("--runs", type=int, default=None, help="runs of the expensive items "
                        "(default 3, or 1 with --quick)")
    parser.add_argument("--render", metavar="RESULTS_JSON", help="write RESULTS.md again from "
                        "a results.json (after a change to the report's wording), no timing")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker == "bptt":
        grid = BPTT_GRID_QUICK if args.args[0] == "quick" else BPTT_GRID_FULL
        print(json.dumps(bptt_worker(grid, int(args.args[1]))))
        return 0
    if args.worker == "copy":
        print(json.dumps(copy_worker(int(args.args[0]))))
        return 0

    if args.render:
        results = json.loads(Path(args.render).read_text())
        target = Path(args.out or Path(args.render).parent) / "RESULTS.md"
        target.write_text(render(results) + "\n")
        log(f"wrote {target} from {args.render}")
        return 0

    items = ["notebooks", "autograde", "parallel", "bptt", "copy"]
    chosen = [s for s in args.only.split(",") if s] or items
    unknown = [s for s in chosen if s not in items]
    if unknown:
        parser.error(f"unknown item {unknown[0]!r}; choose from {', '.join(items)}")
    runs = args.runs or (1 if args.quick else 3)
    partial = args.quick or args.only or args.runs is not None and args.runs < 3
    out = Path(args.out) if args.out else (None if partial else OUT)

    scratch = tempfile.mkdtemp(prefix="rnncourse-bench-")
    point_home_at(scratch)
    results = {"quick": bool(args.quick), "runs": runs, "load_start": load_average(),
               "load_sections": {}, "notes": []}
    log(f"benchmarks {', '.join(chosen)}, {runs} run(s) each; load average "
        f"{results['load_start']}; scratch {scratch}")
    started = time.perf_counter()
    try:
        results["machine"] = machine_info()
        if "bptt" in chosen:  # cheap and sensitive to load: first
            results["load_sections"]["bptt"] = load_average()
            results["bptt"] = run_worker("bptt", "quick" if args.quick else "full",
                                         3 if args.quick else 7)
            key = next(r for r in results["bptt"]
                       if (r["N"], r["T"], r["H"]) == BPTT_KEY and r["dtype"] == "float64")
            ratio = ratio_stats(key["numpy"], key["torch_nn"])["median"]
            if ratio > TARGETS["bptt_ratio"] or not args.quick:
                results["bptt_profile"] = profile_bptt(*BPTT_KEY)
        if "copy" in chosen:
            results["load_sections"]["copy"] = load_average()
            results["copy"] = run_worker("copy", runs)
        if "notebooks" in chosen:
            results["load_sections"]["notebooks"] = load_average()
            results["notebooks"] = bench_notebooks(runs, scratch)
        if "autograde" in chosen:
            results["load_sections"]["autograde"] = load_average()
            results["autograde"] = bench_autograde(runs, scratch)
            results["imports"] = import_times(runs)
            log(f"import nbgrader.apps: {results['imports']['nbgrader']['median']:.2f} s")
            results["autograde_profile"] = profile_autograde(scratch)
            log(f"profiled one autograde: {results['autograde_profile']['wall']:.1f} s")
        if "parallel" in chosen:
            results["load_sections"]["parallel"] = load_average()
            results["parallel"] = bench_parallel(runs, scratch)
    finally:
        results["load_end"] = load_average()
        results["duration_s"] = time.perf_counter() - started
        shutil.rmtree(scratch, ignore_errors=True)
    results["load_note"] = load_note(results)
    text = render(results)
    if out is None:
        print(text)
    else:
        out.mkdir(parents=True, exist_ok=True)
        (out / "RESULTS.md").write_text(text + "\n")
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        log(f"wrote {out / 'RESULTS.md'} and {out / 'results.json'}")
    log(f"done in {results['duration_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
