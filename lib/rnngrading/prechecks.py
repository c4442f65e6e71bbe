"""Checks before anything is graded: of an untrusted notebook (precheck), and of the
grading set-up (preflight: one trivial kernel started exactly as a submission's kernel)."""

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from . import kernelfork
from .course import GradingSetupError, grading_env
from .isolation import KERNEL_NAME, grading_mode, kernel_setup
from .limits import limits_file, load_limits

SUSPICIOUS = [
    (re.compile(r"\b(np|numpy)\.[\w.]+\s*=[^=]"), "assigns to a numpy attribute"),
    (re.compile(r"\bbuiltins\b|__builtins__"), "touches builtins"),
    (re.compile(r"\bsetattr\s*\(\s*(np|numpy)\b"), "patches numpy"),
    (re.compile(r"def\s+__eq__"), "defines __eq__"),
    (re.compile(r"get_ipython\(\)\.(events|input_transformers|ast_transformers)"),
     "hooks the kernel"),
    (re.compile(r"\btorch\.[\w.]+\s*=[^=]"), "assigns to a torch attribute"),
    (re.compile(r"\bsys\.modules\b"), "touches sys.modules"),
    (re.compile(r"__import__"), "touches __import__"),
]


def grade_cells(nb):
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
            if "grade_id" in c.metadata.get("nbgrader", {})}


def test_points(source_nb):
    """{grade_id: points} of the autograded test cells of a source notebook."""
    return {gid: float(c.metadata["nbgrader"].get("points", 0))
            for gid, c in grade_cells(source_nb).items()
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
    source = grade_cells(source_nb)
    released = grade_cells(release_nb) if release_nb is not None else {}
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
    limits = limits or load_limits(limits_file(course))
    mode = grading_mode(unsafe)
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
        env = kernel_setup(scratch, limits, mode,
                           template=kernelfork.template_socket(limits, mode))
        log = scratch / "kernel.log"
        km = KernelManager(kernel_name=KERNEL_NAME, transport="ipc",
                           connection_file=str(scratch / "run" / "kernel-preflight.json"),
                           kernel_spec_manager=KernelSpecManager(
                               kernel_dirs=[env["JUPYTER_PATH"] + "/kernels"]))
        with open(log, "wb") as out:
            km.start_kernel(cwd=str(cwd), stdout=out, stderr=out,
                            env={**grading_env(), **env})
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
    said = (lines[-1] if lines else fallback)[:400]  # whole, with the folder it names
    for sign, fix in PREFLIGHT_FIXES:
        if sign in log:
            return f"a grading kernel cannot start ({said}): {fix}; nothing was graded"
    return (f"a grading kernel cannot start ({said}) in mode {mode or 'unsafe'}; nothing "
            "was graded")
