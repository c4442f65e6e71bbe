"""Safe autograding: one student's notebook, one assignment, graded under limits.

    sandbox.py grade-one ASSIGNMENT STUDENT NOTEBOOK [--json]   grade, print one line
    sandbox.py grade ASSIGNMENT FOLDER [--workers N | --scheduler ADDR] [--course ROOT]
        grade FOLDER/<student>/<ASSIGNMENT>.ipynb for every student, in parallel on
        Dask distributed, and write the scores into ROOT/gradebook.db

How one submission is graded (grade_one):
1. Pre-checks on the untrusted file, in the trusted parent: name, null bytes, JSON,
   nbformat schema, duplicated cell ids, nbgrader metadata compared with source/.
   Cell metadata (grade_id, points, cell type, locked) is put back from source/, so
   points always come from the instructor's notebook; cells claiming a grade_id that
   source/ does not have lose their nbgrader metadata.
2. A fresh scratch course (a private 0700 temp folder) gets its own nbgrader_config.py
   (the course's, plus the limits), source/ and a copy of the course gradebook, and the
   cleaned notebook in submitted/.
3. `nbgrader autograde` runs there, as the instructor, in a child forked from a zygote
   (a process that imported nbgrader once; see "the zygote" below), killed with all it
   started after notebook_wall seconds.
4. nbgrader starts the student's kernel through a dedicated kernel spec (forced: the
   notebook's own kernelspec is ignored) whose launcher (launch_kernel) execs bubblewrap
   around ipykernel: new PID, network, IPC and mount namespaces; a filesystem of the
   system's programs (/usr, /etc), the Python environment and the notebook's folder, all
   read-only, and a home, /tmp and /dev/shm of its own; nothing else of the host, of the
   course or of another submission. As root the kernel runs under a user id of its own
   (SANDBOX_UID_BASE + pid); as an ordinary user, in a user namespace of its own. Either
   way the process limit counts this kernel's processes only. rlimits (address space,
   CPU seconds, file size, processes) are set inside by prlimit. nbgrader and the kernel
   talk over Unix sockets in the one folder they share (the kernel has no network).
5. The scratch gradebook is read back: per test cell auto scores, clamped to the points
   of the course gradebook, and a one-line status for the instructor. A score is
   recorded only when it was measured: a kernel that never started, a whole-notebook
   timeout or a failed nbgrader leave the submission "not graded".

Before a batch, preflight() starts one trivial kernel exactly as the submissions' kernels
start and imports what the assignment imports: a broken set-up stops the batch with one
line (cause and fix) before any score is written. With no way to sandbox (no bubblewrap,
no user namespaces), grading refuses unless asked for --unsafe-no-isolation.

Merging (merge_results) writes each student's scores into the one real gradebook in
the parent, one student at a time, touching only that student's submission.
"""

import argparse
import atexit
import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LIMITS_FILE = REPO / "grading_limits.toml"
KERNEL_NAME = "rnncourse-sandbox"
NOBODY = 65534
# Secrets and other students' work, hidden from the grading child by empty mounts.
MASKED = ("source", "tests", "submitted", "autograded", "feedback", "downloaded", ".git",
          "artifacts")
MASKED_FILES = ("gradebook.db",)
SUSPICIOUS = [
    (re.compile(r"\b(np|numpy)\.[\w.]+\s*=[^=]"), "assigns to a numpy attribute"),
    (re.compile(r"\bbuiltins\b|__builtins__"), "touches builtins"),
    (re.compile(r"\bsetattr\s*\(\s*(np|numpy)\b"), "patches numpy"),
    (re.compile(r"def\s+__eq__"), "defines __eq__"),
    (re.compile(r"get_ipython\(\)\.(events|input_transformers|ast_transformers)"),
     "hooks the kernel"),
]


@dataclasses.dataclass(frozen=True)
class Limits:
    """The grading limits; defaults here, the instructor's values in grading_limits.toml."""

    cell_timeout: int = 150
    notebook_wall: int = 600
    memory_mb: int = 4096
    cpu_seconds: int = 600
    max_output_lines: int = 1000
    max_file_mb: int = 64
    max_processes: int = 512
    kernel_threads: int = 1
    network: bool = False
    max_output_bytes_cell: int = 1_000_000
    max_output_bytes_notebook: int = 10_000_000
    max_submission_mb: int = 20


def load_limits(path=LIMITS_FILE, **overrides):
    """Limits from the [limits] table of `path` (if it exists), then `overrides`."""
    values = {}
    if path and Path(path).is_file():
        values = tomllib.loads(Path(path).read_text())["limits"]
    known = {f.name for f in dataclasses.fields(Limits)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown limits in {path}: {', '.join(sorted(unknown))}")
    return Limits(**{**values, **overrides})


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
                _intake().one_line(text, limit))

        score = f"{self.total:g} / {self.max_total:g}" if self.graded else "not graded"
        return (f"{shown(self.student, 80):<20} {self.assignment:<12} {score}"
                f"  {shown(self.status, 400)}")


def _intake():
    """tools/intake.py, the sibling script that checks what students hand in."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    import intake

    return intake


# ------------------------------------------------------------------ platform


class GradingSetupError(RuntimeError):
    """The instructor's set-up, not a student, keeps grading from starting: one line."""


def _grading_env():
    """This process's environment without its Jupyter and Dask settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "DASK"))}


def _alembic_on_path():
    """nbgrader's Gradebook calls the `alembic` of its own environment: put it first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(bin_dir + os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def _bwrap():
    """bubblewrap's path (RNNCOURSE_BWRAP overrides it, e.g. to test a machine without it)."""
    return os.environ.get("RNNCOURSE_BWRAP") or shutil.which("bwrap") or "/usr/bin/bwrap"


SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


def _system_mounts():
    """bwrap arguments that show the system's programs and libraries read-only."""
    args = []
    for top in SYSTEM_DIRS:
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


@functools.cache
def isolation():
    """(mode, reason): how this machine isolates a grading kernel, probed once per process.

    mode "root":   running as root; privileged bubblewrap, the kernel under a user id of its
                   own (SANDBOX_UID_BASE + the launcher's pid)
    mode "userns": an ordinary user; bubblewrap in an unprivileged user namespace
    mode None:     no isolation possible; reason says why, in one line, with the fix
    """
    bwrap = _bwrap()
    if not os.access(bwrap, os.X_OK):
        return None, (f"bubblewrap ({bwrap}) is missing: install it (apt-get install bubblewrap, "
                      "or make setup as root)")
    mode = "root" if os.geteuid() == 0 else "userns"
    argv = [bwrap, *_unshare_args(mode), *_system_mounts(), "--proc", "/proc", "--dev", "/dev",
            "true"]
    probe = subprocess.run(argv, capture_output=True, text=True)
    if probe.returncode == 0:
        return mode, ""
    said = (probe.stderr.strip().splitlines() or ["no message"])[-1][:160]
    if mode == "userns":
        return None, (f"bubblewrap cannot create a user namespace here ({said}): allow "
                      "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
                      "or kernel.apparmor_restrict_unprivileged_userns=0), or grade as root")
    return None, f"bubblewrap failed as root ({said})"


def can_isolate():
    """True when student kernels can be sandboxed on this machine."""
    return isolation()[0] is not None


def _unshare_args(mode):
    args = ["--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net",
            "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if mode == "userns":
        # Each kernel in a user namespace of its own: the process limit counts the processes
        # of that namespace only (Linux >= 5.14 ucounts), not every kernel of this user.
        return args + ["--unshare-user", "--disable-userns"]
    # As root the kernel gets a user id of its own (setpriv below): no user namespace, and
    # only the capabilities that setpriv needs, dropped with the user id.
    return args + ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]


def _minimal(paths):
    """The paths not inside another of them, nor inside a system directory."""
    keep = []
    for path in sorted({str(Path(p)) for p in paths}, key=lambda p: (p.count("/"), p)):
        inside = [*SYSTEM_DIRS, *keep]
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in inside):
            keep.append(path)
    return keep


def python_paths():
    """What a grading kernel must read: the interpreter, its environment and sys.path."""
    return _python_paths(os.environ.get("PYTHONPATH"))


@functools.cache
def _python_paths(pythonpath):
    code = "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, *sys.path[1:]]))"
    env = {k: v for k, v in _grading_env().items() if k in ("PATH", "HOME")}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd="/", check=True)
    found = [str(Path(p).resolve()) for p in json.loads(out.stdout) if p and Path(p).exists()]
    found.append(str(Path(sys.executable).parent.parent))  # the venv, not its target
    return _minimal(found)


def bwrap_argv(mode, read_only, writable, chdir, tmp_bytes):
    """The bubblewrap command line of one grading kernel (the command itself not included).

    read_only / writable: paths shown at the same place inside, nothing else of the host's
    files but the system directories; /tmp, /dev/shm and the home are the kernel's own
    """
    argv = [_bwrap(), *_unshare_args(mode), *_system_mounts(), "--proc", "/proc",
            "--dev", "/dev", "--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp",
            "--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/dev/shm"]
    made = {"/", "/tmp", "/dev", "/proc", *SYSTEM_DIRS}
    binds = [(p, "--ro-bind") for p in _minimal(read_only)] + [(p, "--bind") for p in writable]
    for path, how in binds:
        # bwrap makes missing parents 0700 when it runs as root: make them 0755 ourselves,
        # so that the kernel's user can walk down to what it may read
        for parent in reversed(Path(path).parents):
            if str(parent) not in made:
                argv += ["--dir", str(parent)]
                made.add(str(parent))
        argv += [how, path, path]
        made.add(path)
    return argv + ["--chdir", chdir]


def _prlimit_args(limits):
    mb = 1024 * 1024
    return ["prlimit", f"--as={limits.memory_mb * mb}",
            f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 5}",
            f"--fsize={limits.max_file_mb * mb}", "--core=0",
            f"--nproc={limits.max_processes}", "--"]


# ------------------------------------------------------------------ notebooks


def _grade_cells(nb):
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
            if "grade_id" in c.metadata.get("nbgrader", {})}


def test_points(source_nb):
    """{grade_id: points} of the autograded test cells of a source notebook."""
    return {gid: float(c.metadata["nbgrader"].get("points", 0))
            for gid, c in _grade_cells(source_nb).items()
            if c.metadata["nbgrader"].get("grade") and not c.metadata["nbgrader"].get("solution")}


def precheck(raw, filename, assignment, source_nb, release_nb=None):
    """Check and clean an untrusted submission before anything runs.

    raw: the file's bytes; filename: the name it was handed in under
    returns (cleaned NotebookNode or None if it cannot be graded, [notes])
    """
    import nbformat

    expected = f"{assignment}.ipynb"
    if filename != expected:
        return None, [f"wrongly named notebook {filename!r} (expected {expected}): not graded"]
    if b"\x00" in raw:
        return None, ["null bytes in the file: not graded"]
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [f"invalid notebook JSON ({str(exc)[:60]}): not graded"]
    if "\x00" in json.dumps(data, ensure_ascii=False):
        return None, ["null bytes in the notebook text: not graded"]
    try:
        nb = nbformat.from_dict(data)
        nbformat.validate(nb)
        nb = nbformat.reads(json.dumps(data), as_version=4)
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, [f"not a valid notebook ({text[:60]}): not graded"]
    notes = []
    cells = data.get("cells", []) if isinstance(data, dict) else []
    ids = [c.get("id") for c in cells if isinstance(c, dict) and c.get("id")]
    if len(ids) != len(set(ids)):
        notes.append("duplicated cell ids: renumbered")
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"cell-{i}"
    source = _grade_cells(source_nb)
    released = _grade_cells(release_nb) if release_nb is not None else {}
    seen = set()
    for i, cell in enumerate(list(nb.cells)):
        meta = cell.metadata.get("nbgrader")
        if not meta or "grade_id" not in meta:
            continue
        gid = meta["grade_id"]
        if gid not in source or gid in seen:
            del cell.metadata["nbgrader"]
            notes.append(f"cell {gid!r} not in source/ or repeated: its grading metadata removed")
            continue
        seen.add(gid)
        ref = source[gid]
        keys = ("grade", "solution", "locked", "points", "task")
        ref_meta = ref.metadata["nbgrader"]
        if any(meta.get(k) != ref_meta.get(k) for k in keys) or cell.cell_type != ref.cell_type:
            notes.append(f"metadata or type of {gid!r} changed: restored from source")
        if ref.metadata["nbgrader"].get("locked"):
            shown = released.get(gid, ref)
            if cell.source != shown.source and gid in test_points(source_nb):
                notes.append(f"test cell {gid!r} modified: restored from source")
        if cell.cell_type != ref.cell_type:
            new = (nbformat.v4.new_code_cell if ref.cell_type == "code"
                   else nbformat.v4.new_markdown_cell)(cell.source)
            new["id"] = cell.get("id", f"cell-{i}")
            nb.cells[i] = cell = new
        cell.metadata["nbgrader"] = json.loads(json.dumps(ref.metadata["nbgrader"]))
    for gid in test_points(source_nb):
        if gid not in seen:
            notes.append(f"test cell {gid!r} deleted: restored from source")
    answers = "\n".join(c.source for c in nb.cells if c.cell_type == "code"
                        and not c.metadata.get("nbgrader", {}).get("locked"))
    flags = sorted({why for pattern, why in SUSPICIOUS if pattern.search(answers)})
    if flags:
        notes.append("suspicious, check by hand: " + ", ".join(flags))
    nb.metadata["kernelspec"] = source_nb.metadata.get("kernelspec", {})
    return nb, notes


# ------------------------------------------------------------------ grading one


def _config_text(course_config, limits, scratch):
    run = scratch / "run"
    return course_config + f"""

# ---- added by tools/sandbox.py for sandboxed grading
c.Execute.timeout = {int(limits.cell_timeout)}
c.Execute.kernel_name = {KERNEL_NAME!r}
c.OverwriteCells.add_missing_cells = True
c.LimitOutput.max_lines = {int(limits.max_output_lines)}
c.LimitOutput.max_traceback = 100
# Outputs capped in bytes too, per cell and per notebook, as they arrive.
from rnncourse.grading import AUTOGRADE_PREPROCESSORS  # noqa: E402
c.Autograde.autograde_preprocessors = AUTOGRADE_PREPROCESSORS
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


def _grading_mode(unsafe=False):
    """The isolation mode to grade with; GradingSetupError when there is none and the
    instructor did not ask to grade without it (unsafe)."""
    mode, why = isolation()
    if mode is None and not unsafe:
        raise GradingSetupError(f"cannot sandbox student code: {why}; or grade without "
                                "isolation with --unsafe-no-isolation (UNSAFE=1)")
    return mode


def grade_one(notebook, assignment, student, course=REPO, limits=None, keep=False,
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
    from nbgrader.api import Gradebook, MissingEntry

    _alembic_on_path()
    limits = limits or load_limits()
    course = Path(course).resolve()
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
        raw = _intake().read_submission(Path(notebook).parent, Path(notebook),
                                        limits.max_submission_mb * 2**20)
    except _intake().Refused as why:
        return Result(student, assignment, str(why), zero, 0.0, max_total,
                      time.monotonic() - start, graded=False)
    nb, notes = precheck(raw, filename or Path(notebook).name, assignment, source_nb, release_nb)
    if nb is None:
        return Result(student, assignment, notes[0], zero, 0.0, max_total,
                      time.monotonic() - start, graded=False)

    mode = _grading_mode(unsafe)
    base = Path(os.environ.get("RNNCOURSE_GRADING_TMP", tempfile.gettempdir()))
    scratch = Path(tempfile.mkdtemp(prefix="grade-", dir=base))  # 0700: the grader's only
    try:
        (scratch / "nbgrader_config.py").write_text(
            _config_text((course / "nbgrader_config.py").read_text(), limits, scratch))
        shutil.copytree(course / "source" / assignment, scratch / "source" / assignment)
        shutil.copy2(course / "gradebook.db", scratch / "gradebook.db")
        sub_dir = scratch / "submitted" / student / assignment
        sub_dir.mkdir(parents=True)
        nbformat.write(nb, sub_dir / f"{assignment}.ipynb")
        env = _grading_env()
        env.update(_kernel_setup(scratch, limits, mode))
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        with Gradebook(f"sqlite:///{scratch / 'gradebook.db'}") as gb:
            gb.update_or_create_student(student)
            try:
                gb.remove_submission(assignment, student)
            except MissingEntry:
                pass

        argv = ["nbgrader", "autograde", assignment, f"--student={student}", "--log-level=ERROR"]
        reply = _run_in_zygote(
            {"scratch": str(scratch), "env": env, "argv": argv,
             "timeout": limits.notebook_wall, "log": str(scratch / "autograde.log")})
        timed_out = reply["timed_out"]
        log_path = scratch / "autograde.log"
        log = log_path.read_text("utf-8", "replace") if log_path.is_file() else ""

        scores = dict(zero)
        measured = False
        graded_path = scratch / "autograded" / student / assignment / f"{assignment}.ipynb"
        if timed_out:
            notes.append(f"whole-notebook time limit ({limits.notebook_wall} s) hit: not graded")
        elif graded_path.is_file():
            try:
                with Gradebook(f"sqlite:///{scratch / 'gradebook.db'}") as gb:
                    sub = gb.find_submission_notebook(assignment, assignment, student)
                    for grade in sub.grades:
                        if grade.name in points:
                            got = float(grade.auto_score or 0.0)
                            scores[grade.name] = min(max(got, 0.0), points[grade.name])
                graded_nb = nbformat.read(graded_path, as_version=4)
                if save_dir:
                    shutil.copy2(graded_path, Path(save_dir) / f"{student}-{assignment}.ipynb")
                if autograded_root:
                    target = Path(autograded_root) / student / assignment
                    shutil.copytree(graded_path.parent, target)
                notes[:0] = _status_from_notebook(graded_nb, points)
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


# What nbclient says when a kernel never answered: not the student's doing.
NEVER_STARTED = ("Kernel died before replying to kernel_info", "Kernel didn't respond in")


# ------------------------------------------------------------------ the zygote
#
# Starting `nbgrader autograde` as a new process costs Python's start and 1.2 s of imports
# per submission (benchmarks/RESULTS.md). A zygote is a single-threaded process that has
# imported nbgrader once and forks one child per submission: the child enters the
# namespaces (unshare(2) through libc), masks the secrets, and runs nbgrader's autograde
# app in the fork, so every submission starts with the imports already done.

PR_SET_PDEATHSIG = 1
_ZYGOTES = []  # idle zygotes of this process
_ZYGOTE_LOCK = threading.Lock()


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _zygote_child(req):
    """In the forked child: nbgrader autograde, in a session of its own. Never returns."""
    code = 1
    try:
        os.setsid()
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        _die_with_parent()
        os.chdir(req["scratch"])
        os.environ.clear()
        os.environ.update(req["env"])
        sys.argv = list(req["argv"])
        from nbgrader.apps.nbgraderapp import NbGraderApp

        try:
            NbGraderApp.launch_instance(argv=req["argv"][1:])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the child must always reach os._exit
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _zygote_serve(req):
    """Fork a child for one request and wait for it, at most req['timeout'] seconds."""
    pid = os.fork()
    if pid == 0:
        _zygote_child(req)
    deadline = time.monotonic() + req["timeout"]
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {"rc": os.waitstatus_to_exitcode(status), "timed_out": False}
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)  # the child's session: it and its namespace's PID 1
            os.waitpid(pid, 0)
            return {"rc": None, "timed_out": True}
        time.sleep(0.02)


def zygote_main():
    """`sandbox.py zygote`: import nbgrader, then serve one JSON request per stdin line."""
    import nbclient  # noqa: F401
    import nbgrader.apps.autogradeapp  # noqa: F401
    import nbgrader.apps.nbgraderapp  # noqa: F401
    import nbgrader.converters.autograde  # noqa: F401
    import nbgrader.preprocessors  # noqa: F401
    from jupyter_client import manager  # noqa: F401

    import rnncourse.grading  # noqa: F401

    print("ready", flush=True)
    for line in sys.stdin:  # EOF: the process that started us is gone
        print(json.dumps(_zygote_serve(json.loads(line))), flush=True)
    return 0


class _Zygote:
    def __init__(self):
        env = _grading_env()
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "zygote"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env, cwd="/")
        first = self.proc.stdout.readline().strip()
        if first != "ready":
            self.proc.kill()
            raise RuntimeError(f"the grading zygote did not start (said {first!r})")

    def run(self, req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the grading zygote died")
        return json.loads(line)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _run_in_zygote(req):
    """Run one autograde request in an idle zygote of this process (started if none)."""
    with _ZYGOTE_LOCK:
        zygote = _ZYGOTES.pop() if _ZYGOTES else None
    if zygote is None or zygote.proc.poll() is not None:
        zygote = _Zygote()
    try:
        reply = zygote.run(req)
    except BaseException:
        zygote.close()
        raise
    with _ZYGOTE_LOCK:
        _ZYGOTES.append(zygote)
    return reply


@atexit.register
def _close_zygotes():
    with _ZYGOTE_LOCK:
        while _ZYGOTES:
            _ZYGOTES.pop().close()


# ------------------------------------------------------------------ the kernel launcher
#
# nbgrader starts a grading kernel through the kernel spec that _kernel_setup writes: the
# spec's argv is `sandbox.py kernel --spec SPEC -f CONNECTION_FILE`, this launcher, which
# runs as the instructor (or root), outside any sandbox, and execs bubblewrap around
# ipykernel. The kernel talks to nbgrader over Unix sockets in the run folder (transport
# "ipc"): it has no network, not even nbgrader's loopback.

SANDBOX_UID_BASE = 1_500_000_000  # as root: kernel user id = base + launcher pid (unique)
KERNEL_ENV = ("PATH", "LANG", "LANGUAGE", "TZ", "PYTHONPATH", "PYTHONHASHSEED")
KERNEL_ENV_PREFIXES = ("LC_", "OPENBLAS_", "OMP_", "MKL_", "ATEN_", "ONEDNN_", "NPY_")


def _kernel_setup(scratch, limits, mode, read_only=()):
    """Folders, spec and kernel spec for sandboxed kernels started from `scratch`.

    returns the environment that a Jupyter process (nbgrader, or the pre-flight check)
    needs to find the kernel spec and to put its connection files in scratch/run
    """
    run, home = scratch / "run", scratch / "kernel-home"
    for folder in (run, home, scratch / "jupyter-config"):
        folder.mkdir(mode=0o700)
    spec = {"mode": mode, "limits": dataclasses.asdict(limits), "home": str(home),
            "run": str(run), "read_only": [*python_paths(), *map(str, read_only)]}
    (scratch / "sandbox.json").write_text(json.dumps(spec, indent=1))
    argv = [sys.executable, str(Path(__file__).resolve()), "kernel", "--spec",
            str(scratch / "sandbox.json"), "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3 (sandboxed grading)",
              "language": "python", "interrupt_mode": "message"}
    folder = scratch / "jupyter" / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps(kernel, indent=1))
    return {"JUPYTER_PATH": str(scratch / "jupyter"), "JUPYTER_DATA_DIR": str(scratch / "jupyter"),
            "JUPYTER_RUNTIME_DIR": str(run), "JUPYTER_CONFIG_DIR": str(scratch / "jupyter-config")}


def _chown_tree(path, uid):
    os.chown(path, uid, uid)
    for parent, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(parent, name), uid, uid, follow_symlinks=False)


def kernel_command(spec, connection_file, cwd, extra=(), uid=None):
    """(argv, env) that start one sandboxed grading kernel; see launch_kernel."""
    limits = Limits(**spec["limits"])
    home = spec["home"]
    env = {k: v for k, v in os.environ.items()
           if k in KERNEL_ENV or k.startswith(KERNEL_ENV_PREFIXES)}
    for var in ("HOME", "IPYTHONDIR", "MPLCONFIGDIR", "XDG_CACHE_HOME", "JUPYTER_RUNTIME_DIR"):
        env[var] = home
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(limits.kernel_threads)
    kernel = [*_prlimit_args(limits), sys.executable, "-m", "ipykernel_launcher",
              "-f", connection_file, *extra]
    mode = spec["mode"]
    if mode is None:
        return kernel, env
    if mode == "root":
        kernel = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                  "--no-new-privs", "--", *kernel]
    argv = bwrap_argv(mode, spec["read_only"] + [cwd], [spec["run"], home], cwd,
                      limits.max_file_mb * 1024 * 1024)
    return argv + kernel, env


def launch_kernel(spec_file, connection_file, extra=()):
    """Run as the kernel spec's argv: exec bubblewrap around ipykernel (never returns).

    The kernel sees the system's programs, the Python environment and the notebook's
    folder read-only, its own home, /tmp and /dev/shm, and the run folder where its
    sockets go; no network, its own PIDs; rlimits set inside (prlimit), after the user
    namespace exists, so that the process limit counts this kernel's processes only.
    """
    spec = json.loads(Path(spec_file).read_text())
    uid = None
    if spec["mode"] == "root":
        uid = SANDBOX_UID_BASE + os.getpid()
        for folder in (spec["run"], spec["home"]):
            _chown_tree(folder, uid)
    argv, env = kernel_command(spec, str(Path(connection_file).resolve()), os.getcwd(), extra,
                               uid)
    _die_with_parent()
    os.execvpe(argv[0], argv, env)


# ------------------------------------------------------------------ many, and the gradebook


class _Call:
    """Pickles as a call: unpickling it runs fn(*args) and gives the result."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _worker_grade(sandbox_file, kwargs):
    """A Dask task: grade_one of this file, loaded once per worker (its zygote stays warm)."""
    import importlib.util

    module = sys.modules.get("rnncourse_sandbox")
    if module is None:
        spec = importlib.util.spec_from_file_location("rnncourse_sandbox", sandbox_file)
        module = importlib.util.module_from_spec(spec)
        sys.modules["rnncourse_sandbox"] = module
        spec.loader.exec_module(module)
    return module._grade_safely(**kwargs)


def _grade_safely(notebook, assignment, student, course, limits, save_dir=None,
                  autograded_root=None, unsafe=False):
    """grade_one as a dict; a failure of the grader itself becomes an ungraded Result."""
    try:
        result = grade_one(notebook, assignment, student, course, Limits(**limits),
                           save_dir=save_dir, autograded_root=autograded_root, unsafe=unsafe)
    except Exception as exc:  # noqa: BLE001 - one broken grading must not stop the batch
        result = Result(student, assignment, f"grader failed ({str(exc)[:80]}): not graded",
                        {}, 0.0, 0.0, graded=False)
    return dataclasses.asdict(result)


def assignment_imports(source_nb):
    """The top-level modules that the code cells of a notebook import, sorted."""
    import ast

    found = set()
    for cell in source_nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics: the imports of such a cell are not checked
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return sorted(found)


PREFLIGHT_FIXES = [
    ("Permission denied", "the kernel's user cannot read the Python environment or a library "
     "folder: make it world-readable (chmod -R a+rX on the folder named), or grade as its "
     "owner"),
    ("ModuleNotFoundError", "a package the assignment imports is missing: run make setup"),
    ("bwrap:", "bubblewrap could not build the sandbox"),
]


def preflight(course, assignment, limits=None, unsafe=False, timeout=90):
    """Start one trivial kernel exactly as a submission's kernel starts, and import what
    the assignment's source notebook imports. Raises GradingSetupError (one line: the
    cause and the fix) when that fails; returns the seconds it took."""
    import nbformat
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    start = time.monotonic()
    limits = limits or load_limits()
    mode = _grading_mode(unsafe)
    source = Path(course) / "source" / assignment / f"{assignment}.ipynb"
    if not source.is_file():
        raise GradingSetupError(f"no source notebook {source}: is {course} the course root?")
    modules = assignment_imports(nbformat.read(source, as_version=4))
    scratch = Path(tempfile.mkdtemp(prefix="grade-preflight-",
                                    dir=os.environ.get("RNNCOURSE_GRADING_TMP")))
    km = None
    try:
        cwd = scratch / "cwd"
        cwd.mkdir()
        env = _kernel_setup(scratch, limits, mode)
        log = scratch / "kernel.log"
        km = KernelManager(kernel_name=KERNEL_NAME, transport="ipc",
                           connection_file=str(scratch / "run" / "kernel-preflight.json"),
                           kernel_spec_manager=KernelSpecManager(
                               kernel_dirs=[env["JUPYTER_PATH"] + "/kernels"]))
        with open(log, "wb") as out:
            km.start_kernel(cwd=str(cwd), stdout=out, stderr=out,
                            env={**_grading_env(), **env})
        client = km.client()
        client.start_channels()
        spec = json.loads((scratch / "sandbox.json").read_text())
        code = (f"import importlib, os\nfor p in {spec['read_only']!r}:\n"
                "    if not os.access(p, os.R_OK | os.X_OK):\n"
                "        raise PermissionError(f'Permission denied: the kernel cannot read {p}')\n"
                + "".join(f"importlib.import_module({m!r})\n" for m in modules))
        outputs = []
        try:
            client.wait_for_ready(timeout=timeout)
            reply = client.execute_interactive(code, timeout=timeout,
                                               output_hook=outputs.append)
        except (RuntimeError, TimeoutError) as exc:
            text = log.read_text("utf-8", "replace") if log.is_file() else ""
            raise GradingSetupError(_preflight_reason(text, str(exc), mode)) from None
        finally:
            client.stop_channels()
        if reply["content"]["status"] != "ok":
            c = reply["content"]
            text = f"{c.get('ename')}: {c.get('evalue')}"
            raise GradingSetupError(_preflight_reason(text, text, mode))
    finally:
        if km is not None and km.has_kernel:
            km.shutdown_kernel(now=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return time.monotonic() - start


def _preflight_reason(log, fallback, mode):
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    said = (lines[-1] if lines else fallback)[:140]
    for sign, fix in PREFLIGHT_FIXES:
        if sign in log:
            return f"a grading kernel cannot start ({said}): {fix}; nothing was graded"
    return (f"a grading kernel cannot start ({said}) in mode {mode or 'unsafe'}; nothing "
            "was graded")


def grade_batch(jobs, course=REPO, limits=None, workers=None, scheduler=None, save_dir=None,
                fill_autograded=False, unsafe=False, check=True):
    """Grade [(student, assignment, notebook path)] in parallel; returns Results in job order.

    workers: local Dask worker processes (default: one per core); 1 grades one after
    the other in this process. scheduler: a Dask scheduler address (tcp://host:8786)
    or the DASK_SCHEDULER_ADDRESS environment variable: the jobs run on that cluster,
    whose workers must see this repository and the course at the same paths.
    Each worker process keeps one zygote (see above), so nbgrader is imported once per
    worker, not once per submission. fill_autograded: each graded notebook also goes to
    COURSE/autograded/STUDENT/ASSIGNMENT/, where nbgrader's generate_feedback reads it.
    Before anything is graded, the pre-flight check (check=True) starts one trivial
    kernel per assignment as the submissions' kernels start: GradingSetupError if the
    set-up is broken, and then nothing is graded. unsafe: grade without isolation where
    there is none (every status line then says NOT ISOLATED).
    """
    limits = limits or load_limits()
    course = Path(course).resolve()
    if check:
        for assignment in sorted({a for _, a, _ in jobs}):
            preflight(course, assignment, limits, unsafe)
    scheduler = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    tasks = [dict(notebook=str(Path(nb).resolve()), assignment=a, student=s, course=str(course),
                  limits=dataclasses.asdict(limits), unsafe=unsafe,
                  save_dir=str(save_dir) if save_dir else None,
                  autograded_root=str(course / "autograded") if fill_autograded else None)
             for s, a, nb in jobs]
    if not scheduler and (workers == 1 or len(jobs) <= 1):
        return [Result(**_grade_safely(**task)) for task in tasks]
    import cloudpickle
    from dask.distributed import Client, LocalCluster

    if __name__ != "__main__":  # loaded by path (tests, bench): workers cannot import it
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        cluster = LocalCluster(n_workers=workers or os.cpu_count(), threads_per_worker=1,
                               processes=True, dashboard_address=":0")
        client = Client(cluster)
    try:
        # Dask pickles a task's function by reference when plain pickle can, and a worker
        # cannot import this file by name: each task is a cloudpickle blob (the function by
        # value) whose unpickling on the worker is the call itself.
        here = str(Path(__file__).resolve())
        futures = [client.submit(cloudpickle.loads,
                                 cloudpickle.dumps(_Call(_worker_grade, here, task)), pure=False,
                                 key=f"grade-{task['student']}-{task['assignment']}-{i}")
                   for i, task in enumerate(tasks)]
        return [Result(**d) for d in client.gather(futures)]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def merge_results(results, course=REPO):
    """Write each Result into the course gradebook: only that student's submission changes."""
    from nbgrader.api import Gradebook, MissingEntry

    _alembic_on_path()
    with Gradebook(f"sqlite:///{Path(course).resolve() / 'gradebook.db'}") as gb:
        for r in results:
            gb.update_or_create_student(r.student)
            try:
                gb.find_submission(r.assignment, r.student)
            except MissingEntry:
                gb.add_submission(r.assignment, r.student)
            sub = gb.find_submission_notebook(r.assignment, r.assignment, r.student)
            if not r.graded:
                _mark_not_graded(sub, r.status)
                gb.db.commit()
                continue
            for grade in sub.grades:
                cell = grade.cell
                if cell.cell_type == "code" and grade.name in r.scores:
                    grade.auto_score = min(max(float(r.scores[grade.name]), 0.0),
                                           float(cell.max_score))
                    grade.needs_manual_grade = False
                elif grade.name in r.scores:
                    grade.auto_score = 0.0
                else:
                    grade.auto_score = None
                    grade.needs_manual_grade = True
            gb.db.commit()


def _mark_not_graded(sub, why):
    """A submission whose score was not measured: nbgrader's "needs manual grade", the
    reason as the autograder's comment; a score measured earlier stays as it was."""
    if any(grade.auto_score is not None for grade in sub.grades):
        return
    for grade in sub.grades:
        grade.needs_manual_grade = True
    for comment in sub.comments:
        comment.auto_comment = f"not graded: {why}"


def checksum(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------------------ command line


def main(argv=None):
    parser = argparse.ArgumentParser(prog="sandbox", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("grade-one", help="grade one notebook in a sandbox, print the result")
    p.add_argument("assignment")
    p.add_argument("student")
    p.add_argument("notebook")
    p.add_argument("--course", default=str(REPO))
    p.add_argument("--limits", default=str(LIMITS_FILE))
    p.add_argument("--limits-json", default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    p.add_argument("--keep", action="store_true", help="keep the scratch course (debugging)")
    p.add_argument("--save-dir", default=None, help="copy the autograded notebook here")
    p.add_argument("--unsafe-no-isolation", dest="unsafe", action="store_true",
                   help="where no sandbox can be built, run student code without one "
                   "(every line then says NOT ISOLATED)")
    p = sub.add_parser("grade", help="grade a folder of submissions in parallel, merge")
    p.add_argument("assignment")
    p.add_argument("folder", help="FOLDER/<student id>/<assignment>.ipynb (any name is checked)")
    p.add_argument("--course", default=str(REPO))
    p.add_argument("--limits", default=str(LIMITS_FILE))
    p.add_argument("--workers", type=int, default=None, help="default: one per core")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (a real cluster)")
    p.add_argument("--no-merge", action="store_true",
                   help="print only, gradebook and autograded/ untouched")
    p.add_argument("--unsafe-no-isolation", dest="unsafe", action="store_true",
                   help="where no sandbox can be built, run student code without one "
                   "(every line then says NOT ISOLATED)")
    sub.add_parser("zygote", help=argparse.SUPPRESS)
    p = sub.add_parser("kernel", help=argparse.SUPPRESS)
    p.add_argument("--spec")
    p.add_argument("-f", dest="connection_file")
    args, extra = parser.parse_known_args(argv)
    if args.command == "kernel":  # the kernel's extra arguments (log level) go to ipykernel
        launch_kernel(args.spec, args.connection_file, extra=extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "zygote":
        return zygote_main()
    try:
        return _command(args)
    except GradingSetupError as exc:
        print(f"grading stopped, nothing recorded: {exc}", file=sys.stderr)
        return 2


def _command(args):
    if args.command == "grade-one":
        limits = (Limits(**json.loads(args.limits_json)) if args.limits_json
                  else load_limits(args.limits))
        preflight(args.course, args.assignment, limits, args.unsafe)
        result = grade_one(args.notebook, args.assignment, args.student, args.course, limits,
                           keep=args.keep, save_dir=args.save_dir, unsafe=args.unsafe)
        print(json.dumps(dataclasses.asdict(result)) if args.json else result.line())
        return 0
    limits = load_limits(args.limits)
    folder = Path(args.folder)
    if not folder.is_dir():
        raise GradingSetupError(f"no folder {folder}: give the folder that holds one folder "
                                "per student id")
    found, refused = _intake().collect(folder, args.assignment, limits.max_submission_mb * 2**20)
    jobs = [(student, args.assignment, notebook) for student, notebook in found]
    start = time.monotonic()
    results = grade_batch(jobs, args.course, limits, args.workers, args.scheduler,
                          fill_autograded=not args.no_merge, unsafe=args.unsafe)
    results += [Result(who, args.assignment, why, {}, 0.0, 0.0, graded=False)
                for who, why in refused]
    results.sort(key=lambda r: r.student)
    for r in results:
        print(r.line())
    if not args.no_merge:
        merge_results([r for r in results if _intake().SAFE_ID.fullmatch(r.student)],
                      args.course)
    measured = sum(r.graded for r in results)
    print(f"{args.assignment}: {measured} graded, {len(results) - measured} not graded, "
          f"{len(results)} in all, in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
