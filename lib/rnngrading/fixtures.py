"""The simulated class: fixture submissions built from the release and a case folder.

tests/fixtures/submissions/<assignment>/<case>/case.json says what a case fills in;
roster.json there names the students of the demo class and the case each hands in.
"""

import json
from pathlib import Path

import nbformat

from .course import FIXTURES, CourseError, released_notebooks

SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"


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
        raise CourseError("the cell has no solution region to replace")
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
            raise CourseError(f"{case_dir}: {gid!r} is not an answer cell of {release_nb}")
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
