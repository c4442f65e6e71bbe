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
2. A fresh scratch course (mode 0711) gets its own nbgrader_config.py (the course's,
   plus the limits), source/ and a copy of the course gradebook (both root-only, 0700/
   0600), and the cleaned notebook in submitted/.
3. `nbgrader autograde` runs there in a child forked from a zygote (a process that
   imported nbgrader once; see "the zygote" below), which enters new network, PID and
   mount namespaces (unshare(2)): no network (only a private loopback), every process
   it starts dies with it, and the course's source/, tests/, submitted/, autograded/,
   feedback/, .git and gradebook.db are hidden under empty mounts. The whole child is
   killed after notebook_wall seconds.
4. The kernel is started through a dedicated kernel spec (forced: the notebook's own
   kernelspec is ignored) whose launcher drops to user nobody and sets rlimits
   (address space, CPU seconds, file size, processes) and its thread count before
   exec'ing ipykernel.
5. The scratch gradebook is read back: per test cell auto scores, clamped to the points
   of the course gradebook, and a one-line status for the instructor.

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
TRUNCATED = "... Output truncated ..."
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
    graded: bool = True  # False: rejected before running (every test cell scores 0)

    def line(self):
        return (f"{self.student:<20} {self.assignment:<12} {self.total:g} / {self.max_total:g}"
                f"  {self.status}")


# ------------------------------------------------------------------ platform


def _grading_env():
    """This process's environment without its Jupyter and Dask settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "DASK"))}


def _alembic_on_path():
    """nbgrader's Gradebook calls the `alembic` of its own environment: put it first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(bin_dir + os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


@functools.cache
def can_isolate():
    """(network+pid+mount namespaces work, privilege drop works): both need root.

    Probed once per process (it starts an `unshare` process), not once per submission."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False, False
    ok = subprocess.run(["unshare", "--net", "--pid", "--fork", "--mount", "true"],
                        capture_output=True).returncode == 0
    return ok, ok


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


def _config_text(course_config, limits):
    return course_config + f"""

# ---- added by tools/sandbox.py for sandboxed grading
c.Execute.timeout = {int(limits.cell_timeout)}
c.Execute.kernel_name = {KERNEL_NAME!r}
c.OverwriteCells.add_missing_cells = True
c.LimitOutput.max_lines = {int(limits.max_output_lines)}
c.LimitOutput.max_traceback = 100
"""


def _kernel_spec(scratch, home, limits_file, drop):
    argv = [sys.executable, str(Path(__file__).resolve()), "kernel", "--limits", str(limits_file),
            "--home", str(home), *([] if drop else ["--no-drop"]), "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "Python 3 (sandboxed grading)", "language": "python"}
    folder = scratch / "jupyter" / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))


def _mask_script(course, exec_args=True):
    lines = ["set -e", "mount --make-rprivate /", "mount -t proc proc /proc",
             "ip link set lo up 2>/dev/null || true"]
    roots = {Path(course).resolve(), REPO}
    for root in sorted(roots):
        for name in MASKED:
            if (root / name).is_dir():
                lines.append(f"mount -t tmpfs -o ro,size=4k none '{root / name}'")
        for name in MASKED_FILES:
            if (root / name).is_file():
                lines.append(f"mount --bind /dev/null '{root / name}'")
    # The interpreter may live in a private home (pyenv under /root, mode 0700): show the
    # kernel only that interpreter, on an otherwise empty /root-like folder.
    prefix = Path(sys.base_prefix).resolve()
    home = Path(*prefix.parts[:2]) if len(prefix.parts) > 2 else None
    if home and not os.stat(home).st_mode & 0o001:
        keep = Path(*prefix.parts[:3])
        lines += [f"mkdir -p /run/sandbox-keep && mount --bind '{keep}' /run/sandbox-keep",
                  f"mount -t tmpfs -o mode=0711,size=4k none '{home}'",
                  f"mkdir -p '{keep}' && mount --bind /run/sandbox-keep '{keep}'"]
    if exec_args:
        lines.append('exec "$@"')
    return "\n".join(lines)


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
            if out.get("output_type") == "stream" and TRUNCATED in out.get("text", ""):
                notes.append(f"output truncated in cell {gid}")
    return list(dict.fromkeys(notes))


def grade_one(notebook, assignment, student, course=REPO, limits=None, keep=False,
              filename=None, save_dir=None, autograded_root=None):
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
    raw = Path(notebook).read_bytes()
    nb, notes = precheck(raw, filename or Path(notebook).name, assignment, source_nb, release_nb)
    if nb is None:
        return Result(student, assignment, notes[0], zero, 0.0, max_total,
                      time.monotonic() - start, graded=False)

    isolate, drop = can_isolate()
    base = Path(os.environ.get("RNNCOURSE_GRADING_TMP", tempfile.gettempdir()))
    scratch = Path(tempfile.mkdtemp(prefix="grade-", dir=base))
    try:
        os.chmod(scratch, 0o711)
        (scratch / "nbgrader_config.py").write_text(
            _config_text((course / "nbgrader_config.py").read_text(), limits))
        shutil.copytree(course / "source" / assignment, scratch / "source" / assignment)
        os.chmod(scratch / "source", 0o700)
        shutil.copy2(course / "gradebook.db", scratch / "gradebook.db")
        os.chmod(scratch / "gradebook.db", 0o600)
        sub_dir = scratch / "submitted" / student / assignment
        sub_dir.mkdir(parents=True)
        os.chmod(scratch / "submitted", 0o700)
        nbformat.write(nb, sub_dir / f"{assignment}.ipynb")
        for private in ("runtime", "jupyter"):
            (scratch / private).mkdir(mode=0o700)
        home = scratch / "kernel-home"
        home.mkdir(mode=0o700)
        if drop:
            os.chown(home, NOBODY, NOBODY)
        limits_file = scratch / "jupyter" / "limits.json"
        limits_file.write_text(json.dumps(dataclasses.asdict(limits)))
        _kernel_spec(scratch, home, limits_file, drop)
        with Gradebook(f"sqlite:///{scratch / 'gradebook.db'}") as gb:
            gb.update_or_create_student(student)
            try:
                gb.remove_submission(assignment, student)
            except MissingEntry:
                pass

        env = _grading_env()
        env.update(JUPYTER_PATH=str(scratch / "jupyter"), JUPYTER_DATA_DIR=str(scratch / "jupyter"),
                   JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
                   JUPYTER_CONFIG_DIR=str(scratch / "runtime"),
                   PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""))
        argv = ["nbgrader", "autograde", assignment, f"--student={student}", "--log-level=ERROR"]
        isolated = isolate and not limits.network
        reply = _run_in_zygote(
            {"scratch": str(scratch), "env": env, "argv": argv, "isolate": isolated,
             "mask": _mask_script(course, exec_args=False) if isolated else None,
             "timeout": limits.notebook_wall, "log": str(scratch / "autograde.log")})
        timed_out = reply["timed_out"]
        log_path = scratch / "autograde.log"
        log = log_path.read_text("utf-8", "replace") if log_path.is_file() else ""

        scores = dict(zero)
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
            except MissingEntry:
                notes.append("nbgrader recorded no grades: not graded")
        else:
            tail = [line for line in log.splitlines() if line.strip()][-1:] or ["no log"]
            if "Kernel died" in log or "DeadKernel" in log:
                notes.append("kernel died (memory/CPU limit, os._exit or a kill?): not graded")
            else:
                notes.append(f"autograde failed ({tail[0][:80]}): not graded")
        total = sum(scores.values())
        status = "; ".join(dict.fromkeys(notes)) or "ok"
        return Result(student, assignment, status, scores, total, max_total,
                      time.monotonic() - start, graded=not timed_out)
    finally:
        if keep:
            print(f"scratch kept: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


# ------------------------------------------------------------------ the zygote
#
# Starting `nbgrader autograde` as a new process costs Python's start and 1.2 s of imports
# per submission (benchmarks/RESULTS.md). A zygote is a single-threaded process that has
# imported nbgrader once and forks one child per submission: the child enters the
# namespaces (unshare(2) through libc), masks the secrets, and runs nbgrader's autograde
# app in the fork, so every submission starts with the imports already done.

CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x20000000, 0x40000000
PR_SET_PDEATHSIG = 1
_ZYGOTES = []  # idle zygotes of this process
_ZYGOTE_LOCK = threading.Lock()


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _unshare(flags):
    import ctypes

    if _libc().unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")


def _zygote_child(req):
    """In the forked child: namespaces, masks, then nbgrader autograde. Never returns."""
    code = 1
    try:
        os.setsid()
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        _die_with_parent()
        if req["isolate"]:
            _unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID)
            pid = os.fork()  # the new PID namespace holds the children of this process
            if pid:
                _, status = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(status)
                os._exit(code if code >= 0 else 128 - code)
            _die_with_parent()  # PID 1 of the namespace: when it dies, everything in it dies
            subprocess.run(["sh", "-c", req["mask"]], check=True)
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


def launch_kernel(connection_file, limits_file, home, drop=True, extra=()):
    """Run as the kernel spec's argv: rlimits, drop to nobody, exec ipykernel (never returns)."""
    import resource

    limits = Limits(**json.loads(Path(limits_file).read_text()))
    info = Path(connection_file).read_text()
    own = Path(home) / "connection.json"
    own.write_text(info)
    env = dict(os.environ)
    for var in ("HOME", "IPYTHONDIR", "MPLCONFIGDIR", "XDG_CACHE_HOME"):
        env[var] = str(home)
    for var in [v for v in env if v.startswith("JUPYTER")]:
        del env[var]
    env["JUPYTER_RUNTIME_DIR"] = str(home)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(limits.kernel_threads)
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_mb * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if drop:
        os.chown(own, NOBODY, NOBODY)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes,) * 2)
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    os.execve(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", str(own), *extra],
              env)


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
                  autograded_root=None):
    """grade_one as a dict; a failure of the grader itself becomes an ungraded Result."""
    try:
        result = grade_one(notebook, assignment, student, course, Limits(**limits),
                           save_dir=save_dir, autograded_root=autograded_root)
    except Exception as exc:  # noqa: BLE001 - one broken grading must not stop the batch
        result = Result(student, assignment, f"grader failed ({str(exc)[:80]}): not graded",
                        {}, 0.0, 0.0, graded=False)
    return dataclasses.asdict(result)


def grade_batch(jobs, course=REPO, limits=None, workers=None, scheduler=None, save_dir=None,
                fill_autograded=False):
    """Grade [(student, assignment, notebook path)] in parallel; returns Results in job order.

    workers: local Dask worker processes (default: one per core); 1 grades one after
    the other in this process. scheduler: a Dask scheduler address (tcp://host:8786)
    or the DASK_SCHEDULER_ADDRESS environment variable: the jobs run on that cluster,
    whose workers must see this repository and the course at the same paths.
    Each worker process keeps one zygote (see above), so nbgrader is imported once per
    worker, not once per submission. fill_autograded: each graded notebook also goes to
    COURSE/autograded/STUDENT/ASSIGNMENT/, where nbgrader's generate_feedback reads it.
    """
    limits = limits or load_limits()
    course = Path(course).resolve()
    scheduler = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    tasks = [dict(notebook=str(Path(nb).resolve()), assignment=a, student=s, course=str(course),
                  limits=dataclasses.asdict(limits),
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
    p = sub.add_parser("grade", help="grade a folder of submissions in parallel, merge")
    p.add_argument("assignment")
    p.add_argument("folder", help="FOLDER/<student id>/<assignment>.ipynb (any name is checked)")
    p.add_argument("--course", default=str(REPO))
    p.add_argument("--limits", default=str(LIMITS_FILE))
    p.add_argument("--workers", type=int, default=None, help="default: one per core")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (a real cluster)")
    p.add_argument("--no-merge", action="store_true",
                   help="print only, gradebook and autograded/ untouched")
    sub.add_parser("zygote", help=argparse.SUPPRESS)
    p = sub.add_parser("kernel", help=argparse.SUPPRESS)
    p.add_argument("--limits")
    p.add_argument("--home")
    p.add_argument("--no-drop", action="store_true")
    p.add_argument("-f", dest="connection_file")
    args, extra = parser.parse_known_args(argv)
    if args.command == "kernel":  # the kernel's extra arguments (log level) go to ipykernel
        launch_kernel(args.connection_file, args.limits, args.home, drop=not args.no_drop,
                      extra=extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "zygote":
        return zygote_main()
    if args.command == "grade-one":
        limits = (Limits(**json.loads(args.limits_json)) if args.limits_json
                  else load_limits(args.limits))
        result = grade_one(args.notebook, args.assignment, args.student, args.course, limits,
                           keep=args.keep, save_dir=args.save_dir)
        print(json.dumps(dataclasses.asdict(result)) if args.json else result.line())
        return 0
    limits = load_limits(args.limits)
    folder = Path(args.folder)
    jobs = []
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    nbgrader_layout = any((d / args.assignment).is_dir() for d in dirs)  # submitted/
    for student_dir in dirs:
        where = student_dir / args.assignment if nbgrader_layout else student_dir
        notebooks = sorted(n for n in where.rglob("*.ipynb") if ".ipynb_checkpoints" not in n.parts)
        if notebooks:
            jobs.append((student_dir.name, args.assignment, notebooks[0]))
    start = time.monotonic()
    results = grade_batch(jobs, args.course, limits, args.workers, args.scheduler,
                          fill_autograded=not args.no_merge)
    for r in results:
        print(r.line())
    if not args.no_merge:
        merge_results(results, args.course)
    print(f"graded {len(results)} submissions of {args.assignment} in "
          f"{time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
