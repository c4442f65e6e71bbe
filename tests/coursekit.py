"""Scratch courses and submissions for the grading tests (tests/conftest.py's fixtures use it).

One home for what the instructor, sandbox, batch, adversarial and ordinary-user tests each
need: a course root in a temp folder with some assignments (released or not), and a
jacobian submission built from a fixture with some code put before the textbook answer (a
hostile student's addition, or none).
"""

import hashlib
from pathlib import Path

from rnngrading.course import FIXTURES, REPO
from rnngrading.fixtures import build_submission

# A hostile student's fork bomb: fork until the process limit says no, then report.
FORK_BOMB = """import os, time
children = 0
try:
    while children < 100000:
        if os.fork() == 0:
            time.sleep(45)
            os._exit(0)
        children += 1
except OSError:
    pass
print('FORKED', children)
"""


def checksum(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def notebook(course, case="reference", prefix=""):
    """The jacobian notebook a student with fixture `case` hands in, `prefix` put first
    in the textbook answer cell."""
    nb = build_submission(course / "source/jacobian/jacobian.ipynb",
                          course / "release/jacobian/jacobian.ipynb", FIXTURES / "jacobian" / case)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "textbook":
            cell.source = prefix + cell.source
    return nb


def hand_in(folder, student, nb, nested=False):
    """Write nb as FOLDER/student/jacobian.ipynb (nested: .../student/jacobian/...)."""
    import nbformat

    where = folder / student / "jacobian" if nested else folder / student
    where.mkdir(parents=True)
    nbformat.write(nb, where / "jacobian.ipynb")
    return where / "jacobian.ipynb"


def points(assignment):
    """{test cell grade_id: points} of an assignment's committed source notebook."""
    import nbformat

    from rnngrading.prechecks import test_points

    return test_points(nbformat.read(REPO / "source" / assignment / f"{assignment}.ipynb",
                                     as_version=4))


def full(assignment):
    """An assignment's autograded points."""
    return sum(points(assignment).values())


def without(assignment, *grade_ids):
    """The autograded points of a submission that gets every test but `grade_ids` right."""
    lost = points(assignment)
    return full(assignment) - sum(lost[gid] for gid in grade_ids)
