"""Item 2: what nbgrader autograde adds to running a submission's cells, and where it goes."""

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rnngrading.course import ASSIGNMENTS, FIXTURES

from .courses import autograde_scores, make_course, max_code_score, timed_nbgrader
from .machine import log
from .notebooks import cell_seconds, empty_notebook, execute_notebook
from .profiling import profile_command
from .stats import ratio_stats, summarize

BATCH = 5  # submissions autograded in one command, for the per-submission cost
NOT_IN_BATCH = ("copy_task",)  # 5 x 25 s of training: not run in a batch
# (label, file name ending, function name): parts of an autograde profile, by cumulative time
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


def graded_assignments():
    """The course's assignments (in course order) that have a reference fixture to grade."""
    return [a for a in ASSIGNMENTS if (FIXTURES / a / "reference").is_dir()]


def autograded_cell_seconds(root, assignment, student):
    """Sum of the cell times nbgrader's own execution recorded in the autograded notebook."""
    import nbformat

    path = Path(root) / "autograded" / student / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(path, as_version=4)
    return sum(cell_seconds(c) or 0.0 for c in nb.cells if c.cell_type == "code")


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


def bench_autograde(runs, scratch, batch=BATCH):
    """Per assignment: autograde of the reference submission against plain nbclient.

    Per run, back to back: an empty notebook (the kernel's start); `nbgrader autograde`
    of one submission (a fresh nbgrader process, as an instructor grades one student);
    plain nbclient on that autograded notebook (the same cells nbgrader ran, hidden
    tests included) and on the notebook as handed in (no hidden tests); and, except for
    the copy task, `batch` copies of the submission autograded in one command (how a
    class is graded), per submission.
    """
    results = {}
    for assignment in graded_assignments():
        student = "bench-reference"
        root = make_course(Path(scratch) / f"course-{assignment}", assignment,
                           {student: "reference"})
        in_batch = assignment not in NOT_IN_BATCH
        batch_root = (make_course(Path(scratch) / f"batch-{assignment}", assignment,
                                  {f"bench-{i + 1:02d}": "reference" for i in range(batch)})
                      if in_batch else None)
        submission = root / "submitted" / student / assignment / f"{assignment}.ipynb"
        graded = root / "autograded" / student / assignment / f"{assignment}.ipynb"
        args = ("autograde", assignment, "--student", student, "--force")
        r = {k: [] for k in ("autograde", "plain", "plain_hidden", "autograde_cells",
                             "plain_cells", "kernel_start", "batch")}
        empty = empty_notebook(scratch)
        for run in range(runs):
            r["kernel_start"].append(execute_notebook(
                empty, Path(scratch) / f"empty-{assignment}-{run}")[0])
            r["autograde"].append(timed_nbgrader(root, *args))
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
                r["batch"].append(timed_nbgrader(batch_root, "autograde", assignment,
                                                 "--force") / batch)
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


def profile_autograde(scratch, assignment="jacobian"):
    """cProfile of one nbgrader autograde: where a submission's seconds go."""
    root = Path(scratch) / f"course-{assignment}"
    if not root.exists():
        root = make_course(root, assignment, {"bench-reference": "reference"})
    args = ["-m", "nbgrader", "autograde", assignment, "--student", "bench-reference",
            "--force", "--log-level=ERROR"]
    return {"assignment": assignment,
            **profile_command(args, root, Path(scratch) / "autograde.prof", AUTOGRADE_PARTS)}
