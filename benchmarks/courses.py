"""Scratch nbgrader courses with fixture submissions, nbgrader timed in them, their scores."""

import time

from rnngrading.course import FIXTURES, gradebook, nbgrader, new_course
from rnngrading.fixtures import build_submission


def timed_nbgrader(root, *args):
    """Run one nbgrader command in the course root, quietly; returns its wall time in seconds."""
    start = time.perf_counter()
    nbgrader(root, *args, log_level="ERROR")
    return time.perf_counter() - start


def make_course(root, assignment, students):
    """A released course with one assignment and fixture submissions, in a temp folder.

    students: {student id: fixture case name}; returns the course root
    """
    import nbformat

    root = new_course(root, [assignment])
    roster = root / "students.csv"
    roster.write_text("id\n" + "".join(f"{s}\n" for s in students))
    nbgrader(root, "db", "student", "import", str(roster), log_level="ERROR")
    name = f"{assignment}.ipynb"
    for student, case in students.items():
        nb = build_submission(root / "source" / assignment / name,
                              root / "release" / assignment / name,
                              FIXTURES / assignment / case)
        folder = root / "submitted" / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / name)
    return root


def autograde_scores(root, assignment):
    """{student: autograded code score} from the course's gradebook."""
    with gradebook(root) as gb:
        return {s.student.id: s.code_score for s in gb.assignment_submissions(assignment)}


def max_code_score(root, assignment):
    """The assignment's most points from code, from the course's gradebook."""
    with gradebook(root) as gb:
        return gb.find_assignment(assignment).max_code_score
