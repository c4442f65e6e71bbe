"""The trusted judge: points come from comparisons made here, never in the student's kernel.

An assignment declares its checks in source/ASSIGNMENT/judge.py, beside its notebook (and
never released: nbgrader_config.py keeps it out of release/ and autograded/). For every
autograded test cell there is one Part: which function of the student's to call (or which
name to read), on which inputs (Cases, drawn from a generator seeded by the student id and
the course's secret), what the reference is (by default the source notebook's own solution,
run here, in the grader's process), how to compare, and the message for each known mistake.

The flow for one submission (runner.grade_one):
1. plan(): the cases of every part, drawn here; their arrays go to an .npz file, the calls
   to a JSON spec. The secret never leaves this process.
2. nbgrader runs the notebook in the sandbox; after its last cell, probe.JudgedExecute runs
   each part's calls in the same kernel (probe_kernel.py) and copies what came back, plain
   data only, out of the kernel's reach.
3. verdicts(): each answer read back with allow_pickle=False and size caps, compared here
   with this process's own NumPy and torch against the reference values computed here.
   A part scores its points when every case agrees, else 0 and one line saying why (a
   known mistake's message where one matches; a hidden case is named by number only).
"""

import contextlib
import dataclasses
import functools
import hashlib
import importlib.util
import io
import json
import os
import secrets
from pathlib import Path

import numpy as np

from . import probe_kernel
from .course import GradingSetupError

JUDGE_FILE = "judge.py"
SECRET_FILE = ".judge_secret"  # in the course root, 0600, never in the repository
SECRET_ENV = "RNNCOURSE_JUDGE_SECRET"


# ------------------------------------------------------------------ declarations


class Expr:
    """An argument the judge builds from code (a function, a Generator, a model): `code` is
    evaluated with numpy as np, torch, the given arrays by name, and `uses` (names of the
    notebook: in the kernel the student's, here the source notebook's). define: `code` is
    statements (a def, say), run the same way, and the argument is the name `define` they
    bind."""

    def __init__(self, code, uses=(), define=None, **arrays):
        self.code, self.uses, self.define = code, tuple(uses), define
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}

    def __repr__(self):
        return f"Expr({self.code!r})"


@dataclasses.dataclass
class Case:
    """One call: `call`(*args, **kwargs), or the value of the notebook's name `name`.

    returns: an expression of `result` (and `args`) applied to the answer, in the kernel
    and here alike (e.g. the parameters of a model a function trained); replace: names of
    the notebook bound to Exprs during the call (a reference version of an earlier part,
    so that a mistake there is not charged twice); inputs_unchanged: the array arguments
    must come back as they went in. hidden: the student never sees this case, so its
    message names it by number only.
    """

    call: str | None = None
    args: tuple = ()
    kwargs: dict = dataclasses.field(default_factory=dict)
    name: str | None = None
    returns: str | None = None
    replace: dict = dataclasses.field(default_factory=dict)
    label: str = ""
    hidden: bool = True
    inputs_unchanged: bool = False


@dataclasses.dataclass
class Mistake:
    """A known mistake: `wrong(case, expected, reference)` gives what that mistake returns;
    an answer that matches it gets `message`."""

    wrong: object
    message: str


@dataclasses.dataclass
class Part:
    """The judged check of one autograded test cell (grade_id), worth that cell's points.

    cases(rng) -> [Case]; compare(got, want) -> None or the reason they differ;
    expected(case, reference) -> the value to compare with (default: the same call on the
    source notebook's solution); check(got, case, reference, rng) -> None or a reason,
    for a part judged by a rule of its own instead of compare/expected.
    """

    grade_id: str
    cases: object
    compare: object = None
    mistakes: tuple = ()
    expected: object = None
    check: object = None
    result_mb: int = 16  # the most the answers of this part may take


# ------------------------------------------------------------------ comparisons


def close(rtol=1e-5, atol=1e-8, scale=None, real=False):
    """Compare numbers and arrays (nested in lists or tuples alike) within tolerances.

    scale: if given, atol is relative to max(scale, max |want|); real: complex values with
    a non-zero imaginary part are wrong where real ones are expected
    """

    def compare(got, want):
        if isinstance(want, (list, tuple)):
            if not isinstance(got, (list, tuple)) or len(got) != len(want):
                return f"expected {len(want)} values, got {_describe(got)}"
            for g, w in zip(got, want, strict=True):
                why = compare(g, w)
                if why:
                    return why
            return None
        if isinstance(got, (str, dict, list, tuple)) or got is None or isinstance(got, bool):
            return f"expected a number or an array, got {_describe(got)}"
        g, w = np.asarray(got), np.asarray(want)
        if g.dtype.kind not in "biufc":
            return f"expected numbers, got values of dtype {g.dtype}"
        if g.shape != w.shape:
            return f"shape {g.shape}, expected {w.shape}"
        if real and np.iscomplexobj(g) and np.any(g.imag != 0):
            return "complex values where real ones are expected"
        tol = atol * max(scale, float(np.max(np.abs(w)))) if scale and w.size else atol
        if not np.all(np.isfinite(g) == np.isfinite(w)):
            return "not finite where the reference is (or the other way round)"
        finite = np.isfinite(w)
        if not np.allclose(g[finite], w[finite], rtol=rtol, atol=tol):
            err = float(np.max(np.abs(g[finite] - w[finite]))) if finite.any() else 0.0
            return f"wrong values (largest difference {err:.3g})"
        return None

    return compare


def multiset(tol=1e-5):
    """Compare two collections of (complex) numbers in any order, each within tol * max(1, |w|)."""

    def compare(got, want):
        if isinstance(got, (str, dict)) or got is None:
            return f"expected an array of numbers, got {_describe(got)}"
        g = list(np.asarray(got).ravel())
        w = list(np.asarray(want).ravel())
        if np.asarray(got).dtype.kind not in "biufc":
            return "expected numbers"
        if len(g) != len(w):
            return f"{len(g)} values, expected {len(w)}"
        for value in w:
            j = int(np.argmin([abs(x - value) for x in g]))
            if abs(g[j] - value) > tol * max(1.0, abs(value)):
                return "wrong values"
            g.pop(j)
        return None

    return compare


def equal(got, want):
    """Exact equality of plain values (strings, integers, booleans, None)."""
    if type(got) is not type(want) and not (isinstance(got, (int, float))
                                            and isinstance(want, (int, float))):
        return f"expected {want!r}, got {_describe(got)}"
    return None if got == want else f"expected {want!r}, got {got!r}"


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return type(value).__name__ if value is not None else "None"


# ------------------------------------------------------------------ loading


def cell_code(notebook, cell_id):
    """The code of one cell of a notebook (by its id), solution markers dropped: for an
    Expr that needs the source's own version of a function, from its one home."""
    import nbformat

    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.get("id") == cell_id:
            return "\n".join(line for line in cell.source.splitlines()
                             if "### BEGIN SOLUTION" not in line
                             and "### END SOLUTION" not in line)
    raise GradingSetupError(f"{notebook} has no cell with id {cell_id!r}")


def judge_path(course, assignment):
    return Path(course) / "source" / assignment / JUDGE_FILE


@functools.cache
def _load(path, mtime):
    spec = importlib.util.spec_from_file_location(f"rnncourse_judge_{Path(path).parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_judge(course, assignment, points):
    """The judge module of an assignment, checked against its test cells' points.

    points: {grade_id: points} of the source notebook's autograded test cells
    GradingSetupError, one line, if judge.py is missing, broken or leaves a cell unjudged.
    """
    path = judge_path(course, assignment)
    if not path.is_file():
        raise GradingSetupError(f"{path} is missing: every autograded test cell of {assignment} "
                                "needs a judged check there (see rnngrading.judge)")
    try:
        module = _load(str(path), path.stat().st_mtime_ns)
    except Exception as exc:  # noqa: BLE001 - the instructor's file, reported in one line
        raise GradingSetupError(f"{path} does not load ({type(exc).__name__}: {exc})") from None
    parts = {p.grade_id: p for p in getattr(module, "PARTS", ())}
    missing, unknown = sorted(set(points) - set(parts)), sorted(set(parts) - set(points))
    if missing or unknown:
        raise GradingSetupError(
            f"{path}: " + (f"no Part for the test cells {', '.join(missing)}" if missing else
                           f"Parts for cells that are not autograded tests: {', '.join(unknown)}"))
    return module


def reference_namespace(course, assignment, module):
    """The source notebook's solution, run here: its setup and solution cells (and the
    cells judge.py names in SOURCE_CELLS), in a namespace of their own."""
    path = Path(course) / "source" / assignment / f"{assignment}.ipynb"
    extra = tuple(getattr(module, "SOURCE_CELLS", ()))
    return _reference(str(path), path.stat().st_mtime_ns, extra)


@functools.cache
def _reference(path, mtime, extra):
    import nbformat

    namespace = {"__name__": "rnncourse_reference"}
    for cell in nbformat.read(path, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        answer = meta.get("solution") and not meta.get("grade")
        if cell.cell_type == "code" and (answer or cell.get("id") in ("setup", *extra)):
            code = "\n".join(line for line in cell.source.splitlines()
                             if not line.lstrip().startswith(("%", "!")))
            with contextlib.redirect_stdout(io.StringIO()):  # what it prints is for students
                exec(compile(code, f"{path}:{cell.get('id')}", "exec"), namespace)  # noqa: S102
    return namespace


def course_secret(course):
    """The course's judging secret: RNNCOURSE_JUDGE_SECRET, else COURSE/.judge_secret
    (made once, 0600). The student's kernel never sees it; it only seeds the hidden inputs."""
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV]
    path = Path(course) / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    except FileExistsError:
        pass
    return path.read_text().strip()


def seed(secret, assignment, student, grade_id):
    digest = hashlib.sha256("\0".join((secret, assignment, student, grade_id)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


# ------------------------------------------------------------------ the plan


@dataclasses.dataclass
class Plan:
    """The cases of one submission: `spec` for the kernel, `inputs` (name -> array)."""

    assignment: str
    student: str
    cases: dict  # grade_id -> [Case]
    spec: dict
    inputs: dict

    def write(self, folder):
        folder = Path(folder)
        folder.mkdir(mode=0o700, exist_ok=True)
        (folder / "spec.json").write_text(json.dumps(self.spec))
        with open(folder / "inputs.npz", "wb") as f:
            np.savez(f, **self.inputs)


def plan(course, assignment, student, points):
    """Draw every part's cases for this student; returns a Plan."""
    module = load_judge(course, assignment, points)
    secret = course_secret(course)
    inputs, parts, cases = {}, [], {}

    def put(array):
        key = f"i{len(inputs)}"
        inputs[key] = np.asarray(array)
        return {"a": key}

    def encode(value):
        if isinstance(value, Expr):
            return {"expr": value.code, "globals": list(value.uses), "define": value.define,
                    "names": {n: put(a)["a"] for n, a in value.arrays.items()}}
        if isinstance(value, np.ndarray):
            return put(value)
        return value  # a JSON value: a number, a string, a bool, None

    for part in module.PARTS:
        rng = np.random.default_rng(seed(secret, assignment, student, part.grade_id))
        drawn = list(part.cases(rng))
        cases[part.grade_id] = drawn
        calls = [{"function": c.call, "name": c.name, "returns": c.returns,
                  "inputs_after": c.inputs_unchanged,
                  "args": [encode(a) for a in c.args],
                  "kwargs": {k: encode(v) for k, v in c.kwargs.items()},
                  "replace": {k: encode(v) for k, v in c.replace.items()}} for c in drawn]
        parts.append({"grade_id": part.grade_id, "calls": calls,
                      "max_bytes": part.result_mb * 2**20})
    return Plan(assignment, student, cases, {"parts": parts}, inputs)


# ------------------------------------------------------------------ reading answers back


class BadAnswer(Exception):
    pass


def from_tree(tree, arrays):
    """The Python value of a plain tree (probe_kernel.plain) whose arrays are `arrays`."""
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    if not isinstance(tree, dict) or len(tree) > 2:
        raise BadAnswer("malformed answer")
    if "a" in tree:
        if tree["a"] not in arrays:
            raise BadAnswer("an array is missing")
        return arrays[tree["a"]]
    if "f" in tree:
        try:
            return float(str(tree["f"])[:40])
        except ValueError:
            raise BadAnswer("malformed number") from None
    if "c" in tree:
        re_, im = (from_tree(v, arrays) for v in tree["c"])
        return complex(float(re_), float(im))
    if "list" in tree:
        return [from_tree(v, arrays) for v in tree["list"]]
    if "tuple" in tree:
        return tuple(from_tree(v, arrays) for v in tree["tuple"])
    if "dict" in tree:
        return {str(k): from_tree(v, arrays) for k, v in tree["dict"]}
    if "error" in tree:
        raise BadAnswer(str(tree["error"])[:200])
    raise BadAnswer("malformed answer")


def _subclasses(tree):
    """Names of ndarray subclasses the kernel said it turned into plain arrays."""
    if not isinstance(tree, dict):
        return []
    found = [str(tree["subclass"])[:40]] if tree.get("subclass") else []
    for key in ("list", "tuple", "c"):
        for item in tree.get(key) or []:
            found += _subclasses(item)
    for pair in tree.get("dict") or []:
        if isinstance(pair, list) and len(pair) == 2:
            found += _subclasses(pair[1])
    return found


def read_answers(folder, grade_id, max_bytes):
    """[per call: {"value": ..., "inputs_after": ...} or {"error": ...}] of one part, read
    from the files the kernel wrote (copied out by probe.JudgedExecute): JSON parsed, the
    .npz opened with allow_pickle=False after its declared sizes were checked.
    returns None when the part's answers never came (a timeout, a dead kernel)
    """
    import zipfile

    base = Path(folder) / grade_id
    if base.with_suffix(".toolarge").exists():
        raise BadAnswer(f"answers larger than {max_bytes} bytes")
    if not (base.with_suffix(".json").is_file() and base.with_suffix(".npz").is_file()):
        return None
    text = base.with_suffix(".json").read_bytes()
    if len(text) > 4 * 2**20:
        raise BadAnswer("the answers' description is larger than 4 MB")
    try:
        with zipfile.ZipFile(base.with_suffix(".npz")) as z:
            declared = sum(info.file_size for info in z.infolist())
            if declared > max_bytes + 2**20:
                raise BadAnswer(f"answers of {declared} bytes (at most {max_bytes})")
        with np.load(base.with_suffix(".npz"), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        data = json.loads(text)
    except BadAnswer:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the kernel wrote, one line
        raise BadAnswer(f"unreadable answers ({type(exc).__name__})") from None
    if any(a.dtype.kind not in "biufcU" for a in arrays.values()):
        raise BadAnswer("answers that are not numbers")
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        raise BadAnswer("malformed answers")
    out = []
    for item in results:
        if not isinstance(item, dict):
            raise BadAnswer("malformed answers")
        if "error" in item:
            out.append({"error": str(item["error"])[:300]})
            continue
        try:
            entry = {"value": from_tree(item.get("value"), arrays),
                     "subclass": _subclasses(item.get("value"))}
            if "inputs_after" in item:
                entry["inputs_after"] = from_tree(item["inputs_after"], arrays)
            out.append(entry)
        except BadAnswer as exc:
            out.append({"error": str(exc)})
    return out


# ------------------------------------------------------------------ verdicts


def _materialize(value, reference):
    if isinstance(value, Expr):
        scope = {"np": np, **{k: v.copy() for k, v in value.arrays.items()}}
        if "torch" in value.code:
            import torch

            scope["torch"] = torch
        scope.update({n: reference[n] for n in value.uses if n in reference})
        if value.define:
            exec(value.code, scope)  # noqa: S102 - the instructor's judge.py
            return scope[value.define]
        return eval(value.code, scope)  # noqa: S307 - the instructor's judge.py
    if isinstance(value, np.ndarray):
        return value.copy()
    return value


def reference_answer(case, reference):
    """What the source notebook's solution gives for this case, in the kernel's plain form."""
    args = [_materialize(a, reference) for a in case.args]
    kwargs = {k: _materialize(v, reference) for k, v in case.kwargs.items()}
    saved = {}
    try:
        for name, value in case.replace.items():
            saved[name] = reference.get(name)
            reference[name] = _materialize(value, reference)
        result = reference[case.call](*args, **kwargs) if case.call else reference[case.name]
    finally:
        reference.update(saved)
    if case.returns:
        result = eval(case.returns, {"result": result, "args": args, "kwargs": kwargs,  # noqa: S307
                                     "np": np})
    arrays = {}
    tree = probe_kernel.plain(result, arrays, 2**40)
    return from_tree(tree, arrays)


@dataclasses.dataclass
class Verdict:
    grade_id: str
    points: float
    max_points: float
    message: str  # "" when every case passed
    notes: tuple = ()  # what the instructor should see even when the part passed

    @property
    def flagged(self):
        """True when the answer was not an ordinary wrong value: a type that is no number,
        too much data, nothing back. The instructor's status line shows these."""
        return any(sign in self.message for sign in FLAGS) or bool(self.notes)


VISIBLE_ONLY = "passes the visible test's cases, not the hidden ones"
FLAGS = ("an object of type", "MemoryError", "too large", "larger than", "unreadable", "malformed",
         "did not finish", "dtype", "not numbers", "incomplete", "nested too deeply")


SUBVERTED = ("passed in the kernel, failed the judge's run of the same visible case (tests "
             "tampered with?)")


def note_subverted_tests(verdicts, in_kernel):
    """Flag a part whose test cell scored full points in the student's kernel (nbgrader's
    own verdict, kept as a signal only) while the judge failed it on a visible case: the
    same inputs, so the kernel's tests were patched, hooked or stripped."""
    for gid, v in verdicts.items():
        failed_visible = v.message and not v.message.startswith(("hidden check", "the judge's"))
        if failed_visible and in_kernel.get(gid, 0.0) >= v.max_points > 0:
            v.notes = (*v.notes, SUBVERTED)


def status_notes(verdicts):
    """The instructor's notes on flagged parts, "parts: reason", one per reason (a reason
    shared by several parts is said once, naming them; by every part, "every part");
    the tampering note first."""
    by_reason = {}
    for gid, v in verdicts.items():
        reasons = list(v.notes)
        if any(sign in v.message for sign in FLAGS):
            reasons.insert(0, v.message.split(": ", 1)[-1] if v.message.startswith(
                "hidden check") else v.message)
        for reason in reasons:
            by_reason.setdefault(reason, []).append(gid)
    ordered = sorted(by_reason.items(), key=lambda item: item[0] != SUBVERTED)
    return [f"{', '.join(gids) if len(gids) < len(verdicts) else 'every part'}: {reason}"
            for reason, gids in ordered]


def annotate(nb, verdicts):
    """Put each part's verdict under its test cell, for the feedback (no hidden input or
    reference is in a verdict's message)."""
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type != "code" or gid not in verdicts:
            continue
        v = verdicts[gid]
        text = f"Judged outside your kernel: {v.points:g} / {v.max_points:g}"
        text += f". {v.message}\n" if v.message else " (every check passed)\n"
        from nbformat import NotebookNode

        cell.setdefault("outputs", []).append(
            NotebookNode(output_type="stream", name="stdout", text=text))


def judge_part(part, cases, answers, reference, rng, points):
    """The Verdict of one part from the answers read back."""
    if answers is None:
        return Verdict(part.grade_id, 0.0, points, "the judge's calls did not finish (a time "
                       "limit, a dead kernel or a memory limit)")
    if len(answers) == 1 and len(cases) != 1 and "error" in answers[0]:
        return Verdict(part.grade_id, 0.0, points, answers[0]["error"])
    if len(answers) != len(cases):
        return Verdict(part.grade_id, 0.0, points, "the judge's calls came back incomplete")
    hidden_total = sum(c.hidden for c in cases)
    hidden_seen = 0
    notes = sorted({n for a in answers for n in a.get("subclass") or ()})
    notes = tuple(f"returned an ndarray subclass ({n}): judged on its plain values" for n in notes)
    for case, answer in zip(cases, answers, strict=True):
        hidden_seen += case.hidden
        where = (f"hidden check {hidden_seen} of {hidden_total}" if case.hidden
                 else case.label or "the visible test's case")
        why = _safe_reason(part, case, answer, reference, rng)
        if why:
            if case.hidden and any(not c.hidden for c in cases) and all(
                    _safe_reason(part, c, a, reference, rng) is None
                    for c, a in zip(cases, answers, strict=True) if not c.hidden):
                notes += (VISIBLE_ONLY,)
            return Verdict(part.grade_id, 0.0, points, f"{where}: {why}", notes)
    return Verdict(part.grade_id, points, points, "", notes)


def _safe_reason(part, case, answer, reference, rng):
    """_case_reason, where an answer that makes a comparison raise is a wrong answer."""
    try:
        return _case_reason(part, case, answer, reference, rng)
    except Exception as exc:  # noqa: BLE001 - whatever came back, one line
        return f"an answer that could not be read ({type(exc).__name__})"


def _case_reason(part, case, answer, reference, rng):
    if "error" in answer:
        if answer["error"].startswith("NotImplementedError"):
            return "not written yet (NotImplementedError)"
        return answer["error"]
    got = answer["value"]
    if part.check is not None:
        return part.check(got, case, reference, rng)
    want = (part.expected(case, reference) if part.expected else reference_answer(case, reference))
    why = part.compare(got, want)
    if why:
        for mistake in part.mistakes:
            try:
                matches = part.compare(got, mistake.wrong(case, want, reference)) is None
            except Exception:  # noqa: BLE001, S112 - a mistake that does not apply here
                continue
            if matches:
                return mistake.message
        return why
    if case.inputs_unchanged:
        before = [a for a in case.args if isinstance(a, np.ndarray)]
        after = [a for a, b in zip(answer.get("inputs_after") or [], case.args, strict=False)
                 if isinstance(b, np.ndarray)]
        if len(after) != len(before) or not all(
                isinstance(a, np.ndarray) and a.shape == b.shape and np.array_equal(a, b)
                for a, b in zip(after, before, strict=True)):
            return "changed one of its inputs in place"
    return None


def verdicts(course, assignment, the_plan, answers_folder, points):
    """{grade_id: Verdict} of every part of a submission whose probe wrote answers_folder."""
    module = load_judge(course, assignment, points)
    reference = reference_namespace(course, assignment, module)
    secret = course_secret(course)
    out = {}
    for part in module.PARTS:
        try:
            answers = read_answers(answers_folder, part.grade_id, part.result_mb * 2**20)
        except BadAnswer as exc:
            out[part.grade_id] = Verdict(part.grade_id, 0.0, points[part.grade_id], str(exc))
            continue
        rng = np.random.default_rng(seed(secret, assignment, the_plan.student,
                                         part.grade_id + "/check"))
        out[part.grade_id] = judge_part(part, the_plan.cases[part.grade_id], answers, reference,
                                        rng, points[part.grade_id])
    return out
