"""Grading one submission: a scratch course, nbgrader autograde in a zygote's child, the
kernel in its sandbox, and a Result that says whether a score was measured.

1. Pre-checks on the untrusted file, in the trusted parent (prechecks.precheck): name, null
   bytes, JSON, nbformat schema, duplicated cell ids, nbgrader metadata put back from
   source/, so points always come from the instructor's notebook.
2. A fresh scratch course (a private 0700 temp folder) gets its own nbgrader_config.py (the
   course's, plus the limits), source/ and a copy of the course gradebook, and the cleaned
   notebook in submitted/.
3. `nbgrader autograde` runs there, as the instructor, in a child forked from a zygote
   (zygote.py), killed with all it started after notebook_wall seconds. It starts the
   student's kernel through the sandboxed kernel spec (isolation.py).
4. The scratch gradebook is read back: per test cell auto scores, clamped to the points of
   the course gradebook, and a one-line status for the instructor. A score is recorded only
   when it was measured: a kernel that never started, a whole-notebook timeout or a failed
   nbgrader leave the submission "not graded".
"""

import dataclasses
import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

from . import intake, judge, kernelfork, zygote
from .course import LIMITS_FILE, gradebook, grading_env
from .isolation import KERNEL_NAME, grading_mode, kernel_setup
from .limits import limits_file, load_limits
from .prechecks import precheck, test_points

# What nbclient says when a kernel never answered: not the student's doing.
NEVER_STARTED = ("Kernel died before replying to kernel_info", "Kernel didn't respond in")


@dataclasses.dataclass
class Result:
    """What grading one submission gave: per test cell auto scores and one status line."""

    student: str
    assignment: str
    status: str
    scores: dict  # grade_id -> auto score, test cells only
    total: float
    max_total: float
    seconds: float = 0.0
    graded: bool = True  # False: no score was measured (refused, or the grader failed)

    def line(self):
        """One line of the report; what came from a submission is escaped to one line."""
        def shown(text, limit):  # escaped once: intake's refusals come escaped already
            return text if text.isprintable() and len(text) <= limit else (
                intake.one_line(text, limit))

        score = f"{self.total:g} / {self.max_total:g}" if self.graded else "not graded"
        return (f"{shown(self.student, 80):<20} {self.assignment:<12} {score}"
                f"  {shown(self.status, 400)}")


def config_text(course_config, limits, scratch):
    run = scratch / "run"
    return course_config + f"""

# ---- added by rnngrading.runner for sandboxed grading
c.Execute.timeout = {int(limits.cell_timeout)}
c.Execute.kernel_name = {KERNEL_NAME!r}
c.OverwriteCells.add_missing_cells = True
c.LimitOutput.max_lines = {int(limits.max_output_lines)}
c.LimitOutput.max_traceback = 100
# Outputs capped in bytes too, per cell and per notebook, as they arrive.
from rnngrading.outputs import AUTOGRADE_PREPROCESSORS  # noqa: E402
# Execute is the judge's: after the last cell it runs the judge's calls (rnngrading.probe)
c.Autograde.autograde_preprocessors = ["rnngrading.probe.JudgedExecute",
                                       *AUTOGRADE_PREPROCESSORS[1:]]
c.JudgedExecute.judge_dir = {str(scratch / "judge")!r}
c.JudgedExecute.kernel_dir = {str(scratch / "kernel-home")!r}
c.JudgedExecute.part_timeout = {int(limits.judge_timeout)}
c.LimitOutputBytes.max_cell_bytes = {int(limits.max_output_bytes_cell)}
c.LimitOutputBytes.max_notebook_bytes = {int(limits.max_output_bytes_notebook)}
# The kernel has no network of its own: it talks to nbgrader over Unix sockets in the
# folder that its sandbox shares with nbgrader (one kernel at a time per scratch course).
c.KernelManager.transport = "ipc"
c.KernelManager.connection_file = {str(run / "kernel.json")!r}
c.KernelManager.ip = {str(run / "kernel-ipc")!r}
"""


def _status_from_notebook(graded_nb, points):
    """Timeouts, kernel deaths and truncation seen in the autograded notebook."""
    notes = []
    for i, cell in enumerate(graded_nb.cells):
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", f"#{i}")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                if out.get("ename") == "CellTimeoutError":
                    notes.append(f"timeout in cell {gid}")
                elif out.get("ename") == "MemoryError":
                    notes.append(f"memory limit hit in cell {gid}")
                elif out.get("ename") == "SystemExit":
                    notes.append(f"sys.exit() in cell {gid}: grading went on")
                elif out.get("ename") == "StdinNotImplementedError":
                    notes.append(f"input() in cell {gid}: no keyboard while grading")
                elif out.get("ename") in ("PermissionError", "ReadOnlyFileSystemError"):
                    notes.append(f"blocked file access in cell {gid}")
                elif out.get("ename") in ("DeadKernelError", "DeadKernel"):
                    notes.append(f"kernel died in cell {gid} (memory/CPU limit or exit?)")
            if out.get("output_type") == "stream" and "Output truncated" in out.get("text", ""):
                notes.append(f"output truncated in cell {gid}")
    return list(dict.fromkeys(notes))


def grade_one(notebook, assignment, student, course, limits=None, keep=False,
              filename=None, save_dir=None, autograded_root=None, unsafe=False):
    """Grade one student's notebook of one assignment in a scratch course, under limits.

    notebook: path of the submitted .ipynb; course: the course root (its source/ and
    gradebook.db, which must hold the released assignment); filename: the name the
    student handed it in under (default: the file's own name); save_dir: copy the
    autograded notebook there as STUDENT-ASSIGNMENT.ipynb; autograded_root: put nbgrader's
    autograded/STUDENT/ASSIGNMENT folder there (the course's autograded/, for feedback)
    returns a Result
    """
    import nbformat
    from nbgrader.api import MissingEntry

    course = Path(course).resolve()
    limits = limits or load_limits(limits_file(course))
    start = time.monotonic()
    if autograded_root:  # an earlier grading's notebook must not outlive this one
        shutil.rmtree(Path(autograded_root) / student / assignment, ignore_errors=True)
    source_path = course / "source" / assignment / f"{assignment}.ipynb"
    source_nb = nbformat.read(source_path, as_version=4)
    release_path = course / "release" / assignment / f"{assignment}.ipynb"
    release_nb = nbformat.read(release_path, as_version=4) if release_path.is_file() else None
    points = test_points(source_nb)
    max_total = sum(points.values())
    zero = dict.fromkeys(points, 0.0)
    try:  # not through a symlink, and not more than the size limit
        raw = intake.read_submission(Path(notebook).parent, Path(notebook),
                                        limits.max_submission_mb * 2**20)
    except intake.Refused as why:
        return Result(student, assignment, str(why), zero, 0.0, max_total,
                      time.monotonic() - start, graded=False)
    nb, notes = precheck(raw, filename or Path(notebook).name, assignment, source_nb, release_nb)
    if nb is None:
        return Result(student, assignment, notes[0], zero, 0.0, max_total,
                      time.monotonic() - start, graded=False)

    mode = grading_mode(unsafe)
    base = Path(os.environ.get("RNNCOURSE_GRADING_TMP", tempfile.gettempdir()))
    scratch = Path(tempfile.mkdtemp(prefix="grade-", dir=base))  # 0700: the grader's only
    try:
        (scratch / "nbgrader_config.py").write_text(
            config_text((course / "nbgrader_config.py").read_text(), limits, scratch))
        shutil.copytree(course / "source" / assignment, scratch / "source" / assignment)
        shutil.copy2(course / "gradebook.db", scratch / "gradebook.db")
        shutil.copy2(limits_file(course), scratch / LIMITS_FILE)  # nbgrader_config reads it
        sub_dir = scratch / "submitted" / student / assignment
        sub_dir.mkdir(parents=True)
        nbformat.write(nb, sub_dir / f"{assignment}.ipynb")
        env = {**grading_env(), **kernel_setup(
            scratch, limits, mode, template=kernelfork.template_socket(limits, mode))}
        the_plan = judge.plan(course, assignment, student, points)
        the_plan.write(scratch / "judge")
        with gradebook(scratch) as gb:
            gb.update_or_create_student(student)
            try:
                gb.remove_submission(assignment, student)
            except MissingEntry:
                pass

        argv = ["nbgrader", "autograde", assignment, f"--student={student}", "--log-level=ERROR"]
        reply = zygote.run(
            {"scratch": str(scratch), "env": env, "argv": argv,
             "timeout": limits.notebook_wall, "log": str(scratch / "autograde.log")})
        timed_out = reply["timed_out"]
        log_path = scratch / "autograde.log"
        log = log_path.read_text("utf-8", "replace") if log_path.is_file() else ""

        scores = dict(zero)
        measured = False
        verdicts = {}
        graded_path = scratch / "autograded" / student / assignment / f"{assignment}.ipynb"
        if timed_out:
            notes.append(f"whole-notebook time limit ({limits.notebook_wall} s) hit: not graded")
        elif graded_path.is_file():
            try:
                with gradebook(scratch) as gb:  # nbgrader's in-kernel scores: a signal only
                    sub = gb.find_submission_notebook(assignment, assignment, student)
                    in_kernel = {g.name: float(g.auto_score or 0.0) for g in sub.grades
                                 if g.name in points}
                # points come from the judge alone, in this process
                verdicts = judge.verdicts(course, assignment, the_plan,
                                          scratch / "judge" / "answers", points)
                judge.note_subverted_tests(verdicts, in_kernel)
                for gid, verdict in verdicts.items():
                    scores[gid] = min(max(verdict.points, 0.0), points[gid])
                graded_nb = nbformat.read(graded_path, as_version=4)
                judge.annotate(graded_nb, verdicts)
                # nbgrader leaves the autograded notebook read-only (444): an ordinary user
                # may not write it until the mode allows (root may), so lift it, then restore
                file_mode = graded_path.stat().st_mode
                graded_path.chmod(file_mode | stat.S_IWUSR)
                nbformat.write(graded_nb, graded_path)
                graded_path.chmod(file_mode)
                if save_dir:
                    shutil.copy2(graded_path, Path(save_dir) / f"{student}-{assignment}.ipynb")
                if autograded_root:
                    target = Path(autograded_root) / student / assignment
                    shutil.copytree(graded_path.parent, target)
                notes[:0] = _status_from_notebook(graded_nb, points)
                notes += judge.status_notes(verdicts)
                measured = True
            except MissingEntry:
                notes.append("nbgrader recorded no grades: not graded")
        else:
            tail = [line for line in log.splitlines() if line.strip()][-1:] or ["no log"]
            if any(sign in log for sign in NEVER_STARTED):
                notes.append("the grading kernel did not start (the grader's set-up, not the "
                             "student; see the pre-flight check): not graded")
            elif "Kernel died" in log or "DeadKernel" in log:
                notes.append("kernel died while running the submission (os._exit, a kill, or "
                             "the memory/CPU limit): 0 points")
                measured = True
            else:
                notes.append(f"autograde failed ({tail[0][:80]}): not graded")
        total = sum(scores.values())
        status = "; ".join(dict.fromkeys(notes)) or "ok"
        if mode is None:
            status = "NOT ISOLATED: " + status
        return Result(student, assignment, status, scores, total, max_total,
                      time.monotonic() - start, graded=measured)
    finally:
        if keep:
            print(f"scratch kept: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


