"""The instructor's side of the graded assignments: one command per step, each wrapping nbgrader.

    instructor.py release   [ASSIGNMENT ...]          source/ -> release/, tests -> gradebook.db
    instructor.py collect   ASSIGNMENT FOLDER_OR_ZIP  -> submitted/<student>/<assignment>/
    instructor.py autograde [ASSIGNMENT ...]          submitted/ -> autograded/, gradebook.db
    instructor.py feedback  [ASSIGNMENT ...]          autograded/ -> feedback/ (HTML)
    instructor.py export    [--to grades.csv]         gradebook.db -> CSV
    instructor.py grades                              print the grade table
    instructor.py demo      [--dir DIR]               a simulated class, end to end

Every command works on the course root given by --course (default: this repository,
whose nbgrader_config.py makes it the course root) and runs nbgrader there. With no
ASSIGNMENT, a command covers all three: jacobian, eigenvalues, copy_task.

collect takes a folder holding one folder per student id, each holding that student's
notebook (jacobian.ipynb for the jacobian assignment; anywhere inside the student's
folder), or a .zip of such a folder. Everything is checked before anything is copied:
a missing folder, a malformed notebook, a notebook with an unexpected name or a student
already collected stops the command with a one-line error and changes nothing
(--replace moves earlier copies aside into downloaded/<assignment>/replaced-<time>/).

Errors print one line, "instructor: error: ...", and exit with status 2.
"""

import argparse
import datetime
import html
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENTS = ("jacobian", "eigenvalues", "copy_task")
FIXTURES = REPO / "tests" / "fixtures" / "submissions"
DEMO_MARKER = ".instructor-demo"
SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN_BEGIN, HIDDEN_END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
NBGRADER_LOG_LEVEL = {"value": None}  # None: nbgrader's own (INFO); the demo asks for less


class InstructorError(Exception):
    """A problem the instructor can fix; reported as one line, nothing half done."""


# ------------------------------------------------------------------ course and nbgrader


def course_root(path):
    """The course root folder (it must hold nbgrader_config.py)."""
    root = Path(path).resolve()
    if not (root / "nbgrader_config.py").is_file():
        raise InstructorError(f"not a course root (no nbgrader_config.py): {root}")
    return root


def known_assignments(root):
    """Assignments with a source folder holding at least one notebook."""
    source = root / "source"
    if not source.is_dir():
        return []
    return sorted(p.name for p in source.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def pick_assignments(root, names):
    """The assignments to work on: `names`, checked, or all of them in course order."""
    known = known_assignments(root)
    if not names:
        ordered = [a for a in ASSIGNMENTS if a in known]
        return ordered + [a for a in known if a not in ordered]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InstructorError(
            f"unknown assignment {unknown[0]!r}; the course has: {', '.join(known) or 'none'}"
        )
    return list(names)


def nbgrader(root, *args):
    """Run one nbgrader command in the course root; raise InstructorError if it fails.

    nbgrader calls the `alembic` executable of its own environment, so that
    environment's bin folder goes first on PATH.
    """
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    # nbgrader's gradebook code trips a harmless SQLAlchemy warning on every submission
    quiet = "ignore:Object of type"
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS"), quiet]))
    level = NBGRADER_LOG_LEVEL["value"]
    extra = [f"--log-level={level}"] if level and not any("log-level" in a for a in args) else []
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args, *extra], cwd=root, env=env)
    if proc.returncode != 0:
        raise InstructorError(
            f"nbgrader {args[0]} failed with exit status {proc.returncode} (its log is above)"
        )


def gradebook(root):
    """An nbgrader Gradebook on the course's gradebook.db (use it in a `with`)."""
    from nbgrader.api import Gradebook

    return Gradebook(f"sqlite:///{root / 'gradebook.db'}")


def released_notebooks(root, assignment):
    """Names of the notebooks students get for `assignment`."""
    names = sorted(p.name for p in (root / "release" / assignment).glob("*.ipynb"))
    if not names:
        raise InstructorError(
            f"no release of {assignment!r} in {root / 'release'}: run the release command first"
        )
    return names


def require_in_gradebook(root, assignment):
    """Autograding needs the assignment's test cells in the gradebook (release puts them)."""
    from nbgrader.api import MissingEntry

    if not (root / "gradebook.db").is_file():
        raise InstructorError(
            f"no gradebook.db in {root}: run the release command first (it records the tests)"
        )
    with gradebook(root) as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise InstructorError(
                f"{assignment!r} is not in gradebook.db: run the release command first"
            ) from None


# ------------------------------------------------------------------ the commands


def release(root, names=()):
    """nbgrader generate_assignment for each assignment: source/ -> release/, tests -> gradebook."""
    for assignment in pick_assignments(root, names):
        print(f"releasing {assignment}", flush=True)
        nbgrader(root, "generate_assignment", assignment, "--force")
    return [root / "release" / a for a in pick_assignments(root, names)]


def _is_skipped(parts):
    """Hidden files and folders (.ipynb_checkpoints, .DS_Store) and macOS zip debris."""
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _scan_folder(folder):
    """Relative paths (as tuples of parts) of every file under `folder`."""
    return [p.relative_to(folder).parts for p in sorted(folder.rglob("*")) if p.is_file()]


def _scan_zip(archive):
    """Relative paths of the files in a zip, and a reader for one of them."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise InstructorError(f"not a readable zip archive: {archive}") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        contents = {tuple(Path(m.filename).parts): zf.read(m) for m in members}
    return list(contents), contents


def plan_collect(root, assignment, source):
    """Check a batch of submissions and say what collect would copy, without copying.

    returns (kind, prefix, students): kind "folder" or "zip"; prefix, a folder inside the
    zip that holds the student folders (or ()); students, {student_id: [relative paths]}
    """
    source = Path(source)
    expected = released_notebooks(root, assignment)
    if not source.exists():
        raise InstructorError(f"no such folder or zip: {source}")
    if source.is_dir():
        kind, paths = "folder", _scan_folder(source)
        read = lambda parts: source.joinpath(*parts).read_bytes()  # noqa: E731
    elif source.suffix.lower() == ".zip":
        kind, (paths, contents) = "zip", _scan_zip(source)
        read = contents.__getitem__
    else:
        raise InstructorError(f"expected a folder or a .zip of student folders, got {source}")
    notebooks = [p for p in paths if p[-1].endswith(".ipynb") and not _is_skipped(p)]
    if not notebooks:
        raise InstructorError(f"no notebooks in {source} (expected <student id>/{expected[0]})")
    prefix = ()
    tops = {p[0] for p in notebooks}
    if kind == "zip" and len(tops) == 1 and all(len(p) >= 3 for p in notebooks):
        prefix = (next(iter(tops)),)  # a zip of the folder: student folders one level down
    students = {}
    for parts in notebooks:
        rel = parts[len(prefix):]
        shown = "/".join(parts)
        if len(rel) < 2:
            raise InstructorError(
                f"{shown}: a notebook outside a student folder (expected <student id>/{rel[-1]})"
            )
        student, name = rel[0], rel[-1]
        if not STUDENT_ID.match(student):
            raise InstructorError(f"{shown}: {student!r} is not a usable student id")
        if name not in expected:
            raise InstructorError(
                f"{shown}: not a notebook of {assignment!r} (expected {', '.join(expected)})"
            )
        try:
            nb = nbformat.reads(read(parts).decode("utf-8"), as_version=4)
            nbformat.validate(nb)
        except Exception as exc:  # any failure to read it is the same problem for the instructor
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InstructorError(f"{shown}: malformed notebook ({reason[:120]})") from None
        taken = [p for p in students.get(student, []) if p[-1] == name]
        if taken:
            raise InstructorError(
                f"{shown}: student {student!r} has two copies of {name} "
                f"(also {'/'.join(taken[0])})"
            )
        students.setdefault(student, []).append(parts)
    return kind, prefix, students


def collect(root, assignment, source, replace=False):
    """Copy a batch of submissions into submitted/<student>/<assignment>/ with nbgrader zip_collect.

    returns the sorted list of student ids collected
    """
    (assignment,) = pick_assignments(root, [assignment])
    source = Path(source).resolve()
    kind, prefix, students = plan_collect(root, assignment, source)
    submitted = root / "submitted"
    already = sorted(s for s in students if (submitted / s / assignment).exists())
    if already and not replace:
        shown = ", ".join(already[:3]) + (" ..." if len(already) > 3 else "")
        raise InstructorError(
            f"{assignment} already collected for {shown}: use --replace to replace "
            f"(earlier copies are kept under downloaded/{assignment}/)"
        )
    staging = root / "downloaded" / assignment
    archive, extracted = staging / "archive", staging / "extracted"
    for folder in (archive, extracted):
        if folder.exists():
            shutil.rmtree(folder)
    archive.mkdir(parents=True)
    # zip_collect matches this pattern against the absolute path of every extracted file.
    # It starts with ".*/" so that a symlink in the course's path cannot break it.
    base = [".*", "downloaded", re.escape(assignment), "extracted"]
    if kind == "zip":
        shutil.copy2(source, archive / "submissions.zip")  # extracted to extracted/submissions/
        base += ["submissions", *map(re.escape, prefix)]
    else:
        for parts in (p for paths in students.values() for p in paths):
            (archive / Path(*parts)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source.joinpath(*parts), archive / Path(*parts))
    names = "|".join(re.escape(n) for n in released_notebooks(root, assignment))
    ids = "|".join(re.escape(s) for s in sorted(students))
    regexp = (
        "^" + "/".join(base) + f"/(?P<student_id>{ids})/(?:[^/.][^/]*/)*(?P<file_id>{names})$"
    )
    if already:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        for student in already:
            keep = staging / f"replaced-{stamp}" / student
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(submitted / student / assignment), str(keep))
    nbgrader(  # its warnings ("Directory not found. Creating ...") are checked above
        root, "zip_collect", assignment, "--strict", "--log-level=ERROR",
        f"--FileNameCollectorPlugin.named_regexp={regexp}",
    )
    missing = [s for s in students if not (submitted / s / assignment).is_dir()]
    if missing:
        raise InstructorError(f"zip_collect did not collect {', '.join(sorted(missing))}")
    print(f"collected {assignment} for {len(students)} students: {', '.join(sorted(students))}")
    return sorted(students)


def autograde(root, names=(), force=False):
    """nbgrader autograde: run each submission with the tests restored from the gradebook."""
    for assignment in pick_assignments(root, names):
        require_in_gradebook(root, assignment)
        count = len(list((root / "submitted").glob(f"*/{assignment}")))
        if not count:
            print(f"no submissions of {assignment} in {root / 'submitted'}: nothing to grade")
            continue
        print(f"autograding {assignment}: {count} submissions", flush=True)
        nbgrader(root, "autograde", assignment, *(["--force"] if force else []))


class _Text(HTMLParser):
    """The visible text of an HTML page (tags dropped, entities decoded)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


def html_text(page):
    """Visible text of an HTML page with runs of whitespace collapsed to one space."""
    parser = _Text()
    parser.feed(page)
    return " ".join(html.unescape("".join(parser.parts)).split())


def hidden_test_snippets(root, assignment):
    """Telltales of the hidden tests of an assignment, as they would read in a page of text.

    Each is two consecutive lines of a hidden test region, whitespace collapsed: one line
    alone ("import torch") may also be in a student's answer, two in a row hardly.
    """
    from rnncourse.grading import hidden_test_lines

    snippets = set()
    for path in (root / "source" / assignment).glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            lines = [" ".join(line.split()) for line in hidden_test_lines(cell.source)]
            lines = [line for line in lines if line]
            snippets.update(f"{a} {b}" for a, b in zip(lines, lines[1:], strict=False))
    return snippets


def check_feedback(root, assignment):
    """Raise InstructorError if any feedback page of `assignment` shows a hidden test.

    returns the number of pages checked
    """
    snippets = hidden_test_snippets(root, assignment)
    pages = sorted((root / "feedback").glob(f"*/{assignment}/*.html"))
    for page in pages:
        text = html_text(page.read_text(encoding="utf-8"))
        leaked = [s for s in snippets if s in text]
        if leaked or HIDDEN_BEGIN in text:
            shown = leaked[0] if leaked else HIDDEN_BEGIN
            raise InstructorError(f"{page.relative_to(root)} shows a hidden test: {shown!r}")
    return len(pages)


def feedback(root, names=()):
    """nbgrader generate_feedback, then a check that no page shows a hidden test."""
    for assignment in pick_assignments(root, names):
        if not any((root / "autograded").glob(f"*/{assignment}")):
            print(f"no autograded {assignment} in {root / 'autograded'}: no feedback to make")
            continue
        nbgrader(root, "generate_feedback", assignment, "--force")
        count = check_feedback(root, assignment)
        print(f"feedback for {assignment}: {count} pages in feedback/, no hidden test shown")


def export(root, to="grades.csv"):
    """nbgrader export: one CSV row per student and assignment."""
    target = (root / to).resolve() if not Path(to).is_absolute() else Path(to)
    if not (root / "gradebook.db").is_file():
        raise InstructorError(f"no gradebook.db in {root}: nothing to export yet")
    nbgrader(root, "export", f"--to={target}")
    print(f"grades written to {target}")
    return target


def grade_rows(root):
    """The grade table from the gradebook.

    returns (assignments, rows): assignments is [(name, autograded max, written max)];
    rows maps student id -> {assignment: (autograded score, needs manual grading)
    or None when nothing was submitted}
    """
    from nbgrader.api import MissingEntry

    with gradebook(root) as gb:
        order = {a: i for i, a in enumerate(ASSIGNMENTS)}
        found = sorted(gb.assignments, key=lambda a: (order.get(a.name, 99), a.name))
        assignments = [(a.name, a.max_code_score, a.max_written_score) for a in found]
        rows = {}
        for student in sorted(s.id for s in gb.students):
            rows[student] = {}
            for name, _, _ in assignments:
                try:
                    sub = gb.find_submission(name, student)
                    rows[student][name] = (sub.code_score, sub.needs_manual_grade)
                except MissingEntry:
                    rows[student][name] = None
    return assignments, rows


def format_grades(root):
    """The grade table as text: autograded points per assignment, written answers pending."""
    assignments, rows = grade_rows(root)
    if not rows:
        return "no students in the gradebook yet"
    width = max(12, *(len(s) for s in rows)) + 2
    head = "student".ljust(width) + "".join(f"{name:>14}" for name, _, _ in assignments)
    lines = [head + "   written answers", "-" * (len(head) + 18)]
    for student, scores in rows.items():
        cells, pending = [], 0
        for name, auto_max, written_max in assignments:
            if scores[name] is None:
                cells.append(f"{'missing':>14}")
            else:
                score, needs_manual = scores[name]
                cells.append(f"{score:>8g} / {auto_max:<3g}")
                pending += written_max if needs_manual else 0
        lines.append(student.ljust(width) + "".join(cells) + f"   {pending:g} points to mark")
    lines.append("")
    lines.append("Autograded points out of the autograded maximum; the written answers are")
    lines.append("marked by hand in formgrader (`jupyter lab`, nbgrader's Formgrader panel).")
    return "\n".join(lines)


# ------------------------------------------------------------------ fixture submissions


def _cells_by_id(nb):
    return {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}


def strip_solution_markers(text):
    """A solution cell as the reference student would hand it in: the markers removed."""
    return "\n".join(
        line for line in text.split("\n") if SOLUTION_BEGIN not in line and SOLUTION_END not in line
    )


def replace_solution_region(text, replacement):
    """Put `replacement` (unindented code) where the solution region of `text` was."""
    lines = text.split("\n")
    begin = next((i for i, line in enumerate(lines) if SOLUTION_BEGIN in line), None)
    end = next((i for i, line in enumerate(lines) if SOLUTION_END in line), None)
    if begin is None or end is None or end < begin:
        raise InstructorError("the cell has no solution region to replace")
    indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
    body = [indent + line if line.strip() else "" for line in replacement.rstrip("\n").split("\n")]
    return "\n".join(lines[:begin] + body + lines[end + 1:])


def build_submission(source_nb, release_nb, case_dir):
    """A student's notebook made from the release: the fixture case says what to fill in.

    case_dir holds case.json, {"about": ..., "base": "release" | "solution", "solved": [ids]}:
    "solution" fills every answer cell from the source, "solved" only the cells listed;
    then a file <grade_id>.code replaces the solution region of that code cell (unindented
    code, indented to fit), and a file <grade_id>.md the whole text of that written answer.
    returns a NotebookNode
    """
    case_dir = Path(case_dir)
    spec = json.loads((case_dir / "case.json").read_text())
    source = _cells_by_id(nbformat.read(source_nb, as_version=4))
    nb = nbformat.read(release_nb, as_version=4)
    answers = {
        gid: cell for gid, cell in _cells_by_id(nb).items()
        if cell.metadata.get("nbgrader", {}).get("solution")
    }
    solved = list(answers) if spec.get("base") == "solution" else list(spec.get("solved", []))
    overrides = sorted(case_dir.glob("*.code")) + sorted(case_dir.glob("*.md"))
    for gid in solved + [p.stem for p in overrides]:
        if gid not in answers:
            raise InstructorError(f"{case_dir}: {gid!r} is not an answer cell of {release_nb}")
    for gid in solved:
        answers[gid].source = strip_solution_markers(source[gid].source)
    for path in overrides:
        cell = answers[path.stem]
        if path.suffix == ".code":
            cell.source = replace_solution_region(source[path.stem].source, path.read_text())
        else:
            cell.source = path.read_text().strip("\n")
    return nb


def load_roster(fixtures=FIXTURES):
    """The simulated class: {student id: {assignment: fixture case}}."""
    return json.loads((Path(fixtures) / "roster.json").read_text())["students"]


def write_class_submissions(root, assignment, dest, roster, fixtures=FIXTURES):
    """Write <dest>/<student>/<notebook> for every student of the roster with a case for it."""
    for student, cases in roster.items():
        if assignment not in cases:
            continue
        for name in released_notebooks(root, assignment):
            nb = build_submission(
                root / "source" / assignment / name,
                root / "release" / assignment / name,
                Path(fixtures) / assignment / cases[assignment],
            )
            (dest / student).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, dest / student / name)


def demo(dest=None, names=(), fixtures=FIXTURES):
    """A simulated class, end to end, in a folder of its own (the repository is left alone).

    Copies the course (config and source/) to `dest`, releases it, builds the class's
    submissions from the fixtures, collects them (one assignment from a zip, as an LMS
    would hand it over), autogrades, makes and checks the feedback, exports the CSV and
    prints the grade table.
    returns the demo's course root
    """
    dest = Path(dest or REPO / "artifacts" / "instructor-demo").resolve()
    # Progress comes from this script's own lines. nbgrader's warnings here are all
    # expected ones (a checksum "changed" for every test cell with hidden tests).
    NBGRADER_LOG_LEVEL["value"] = "ERROR"
    if dest.exists():
        if not (dest / DEMO_MARKER).exists():
            raise InstructorError(f"{dest} exists and is not an earlier demo: pick another --dir")
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / DEMO_MARKER).write_text("made by tools/instructor.py demo; safe to delete\n")
    shutil.copy2(REPO / "nbgrader_config.py", dest / "nbgrader_config.py")
    chosen = pick_assignments(REPO, names)
    for assignment in chosen:
        shutil.copytree(REPO / "source" / assignment, dest / "source" / assignment)
    root = course_root(dest)
    release(root, chosen)
    roster = load_roster(fixtures)
    for i, assignment in enumerate(chosen):
        folder = root / "downloads" / assignment
        write_class_submissions(root, assignment, folder, roster, fixtures)
        if i == 1:  # hand one assignment over as a zip of the folder
            archive = shutil.make_archive(str(folder), "zip", root / "downloads", assignment)
            collect(root, assignment, archive)
        else:
            collect(root, assignment, folder)
    autograde(root, chosen)
    feedback(root, chosen)
    export(root, "grades.csv")
    print()
    print(format_grades(root))
    return root


# ------------------------------------------------------------------ command line


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="instructor", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--course", default=str(REPO), help="course root (default: the repo)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("release", help="release/ from source/ (nbgrader generate_assignment)")
    p.add_argument("assignments", nargs="*")
    p = sub.add_parser("collect", help="collect a folder or zip of submissions into submitted/")
    p.add_argument("assignment")
    p.add_argument("source", help="folder with one folder per student id, or a .zip of it")
    p.add_argument("--replace", action="store_true", help="replace earlier copies (kept aside)")
    p = sub.add_parser("autograde", help="autograde submitted/ into autograded/ and the gradebook")
    p.add_argument("assignments", nargs="*")
    p.add_argument("--force", action="store_true", help="regrade submissions graded before")
    p = sub.add_parser("feedback", help="feedback HTML for students, hidden tests left out")
    p.add_argument("assignments", nargs="*")
    p = sub.add_parser("export", help="export the gradebook to CSV (nbgrader export)")
    p.add_argument("--to", default="grades.csv", help="CSV file, relative to the course root")
    sub.add_parser("grades", help="print the grade table")
    p = sub.add_parser("demo", help="simulated class: release, collect, autograde, feedback, CSV")
    p.add_argument("--dir", default=None, help="folder for the demo course "
                   "(default: artifacts/instructor-demo)")
    p.add_argument("--assignments", nargs="*", default=(), help="default: all three")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            demo(args.dir, args.assignments)
            return 0
        root = course_root(args.course)
        if args.command == "release":
            release(root, args.assignments)
        elif args.command == "collect":
            collect(root, args.assignment, args.source, args.replace)
        elif args.command == "autograde":
            autograde(root, args.assignments, args.force)
        elif args.command == "feedback":
            feedback(root, args.assignments)
        elif args.command == "export":
            export(root, args.to)
        elif args.command == "grades":
            if not (root / "gradebook.db").is_file():
                raise InstructorError(f"no gradebook.db in {root}: nothing graded yet")
            print(format_grades(root))
    except InstructorError as exc:
        print(f"instructor: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
