"""The course gradebook: merging measured scores into it, and reading the grade table.

A submission's time is nbgrader's timestamp.txt in submitted/<student>/<assignment>/ (nbgrader
collect writes it; so does rnncourse-instructor collect, from the zip or the LMS's times).
Merged scores carry it into the gradebook, and a submission after the assignment's due date
gets the penalty of the course's LateSubmissionPlugin (nbgrader_config.py), as nbgrader's
own autograde would give it.
"""

import contextlib
import datetime
import warnings
from pathlib import Path

from .course import ASSIGNMENTS, gradebook


@contextlib.contextmanager
def quiet_sqlalchemy():
    """Silence SQLAlchemy's SAWarning inside the block.

    nbgrader's gradebook makes SQLAlchemy warn that an object "not in session" will not be
    added along a relationship (add_submission, once per notebook) and that a relationship
    "will copy column" onto another (when its models are first mapped): nbgrader's notices,
    not ours, printed between the status lines.
    """
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=SAWarning)
        yield


def merge_results(results, course):
    """Write each Result into the course gradebook: only that student's submission changes.

    returns one line per late submission (when, how late, the penalty), for the report
    """
    with quiet_sqlalchemy():
        return _merge(results, course)


def submitted_timestamp(course, student, assignment):
    """The time nbgrader recorded for a submission (submitted/.../timestamp.txt), or None."""
    from nbgrader.utils import parse_utc

    stamp = Path(course) / "submitted" / student / assignment / "timestamp.txt"
    if not stamp.is_file():
        return None
    text = stamp.read_text().strip()
    return parse_utc(text) if text else None


def late_penalty_plugin(course):
    """The course's late-submission plugin, configured as nbgrader_config.py says."""
    from nbgrader.preprocessors import AssignLatePenalties
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    assigner = AssignLatePenalties(config=config)
    return assigner.plugin_class(parent=assigner)


def apply_late_penalty(gb, submission, plugin):
    """Set each notebook's late penalty as nbgrader's AssignLatePenalties does (None when on
    time; the plugin's penalty, kept between 0 and the notebook's score, when late).

    returns a one-line note for a late submission, else None
    """
    gb.db.expire_all()  # scores are SQL column properties: read them after the commit
    late = submission.total_seconds_late
    penalties = []
    for notebook in submission.notebooks:
        notebook.late_submission_penalty = None
        if late > 0:
            penalty = plugin.late_submission_penalty(submission.student.id, notebook.score, late)
            if penalty is not None:
                penalty = min(max(float(penalty), 0.0), float(notebook.score))
                notebook.late_submission_penalty = penalty
                penalties.append(penalty)
    gb.db.commit()
    if late <= 0:
        return None
    by = datetime.timedelta(seconds=round(late))  # "0:00:07", "1:30:00", "2 days, 3:00:00"
    return (f"{submission.student.id:<20} {submission.assignment.name:<12} LATE by "
            f"{by} (submitted {submission.timestamp:%Y-%m-%d %H:%M:%S} UTC, due "
            f"{submission.assignment.duedate:%Y-%m-%d %H:%M:%S} UTC): penalty {sum(penalties):g} "
            f"points ({type(plugin).__name__}"
            + (f", penalty_method={plugin.penalty_method!r})" if hasattr(plugin, "penalty_method")
               else ")"))


def _merge(results, course):
    from nbgrader.api import MissingEntry

    plugin = late_penalty_plugin(course)
    notes = []
    with gradebook(course) as gb:
        for r in results:
            gb.update_or_create_student(r.student)
            stamp = submitted_timestamp(course, r.student, r.assignment)
            try:
                submission = gb.find_submission(r.assignment, r.student)
                if stamp is not None:  # graded from elsewhere than submitted/: time kept
                    submission.timestamp = stamp
            except MissingEntry:
                submission = gb.add_submission(r.assignment, r.student, timestamp=stamp)
            sub = gb.find_submission_notebook(r.assignment, r.assignment, r.student)
            if not r.graded:
                mark_not_graded(sub, r.status)
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
            note = apply_late_penalty(gb, submission, plugin)
            if note:
                notes.append(note)
    return notes


def mark_not_graded(sub, why):
    """A submission whose score was not measured: nbgrader's "needs manual grade", the
    reason as the autograder's comment; a score measured earlier stays as it was."""
    if any(grade.auto_score is not None for grade in sub.grades):
        return
    for grade in sub.grades:
        grade.needs_manual_grade = True
    for comment in sub.comments:
        comment.auto_comment = f"not graded: {why}"


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


def late_submissions(root):
    """{student id: [(assignment, penalty in points)]} for every submission after its due date."""
    with quiet_sqlalchemy(), gradebook(root) as gb:
        late = {}
        for assignment in gb.assignments:
            for submission in assignment.submissions:
                if submission.total_seconds_late > 0:
                    late.setdefault(submission.student.id, []).append(
                        (assignment.name, submission.late_submission_penalty))
    return late


def format_grades(root):
    """The grade table as text: autograded points per assignment, written answers pending,
    and which submissions came after their due date (with the penalty taken off)."""
    assignments, rows = grade_rows(root)
    late = late_submissions(root)
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
        flags = "".join(f"; {name} LATE (penalty {penalty:g})"
                        for name, penalty in late.get(student, []))
        lines.append(student.ljust(width) + "".join(cells) + f"   {pending:g} points to mark"
                     + flags)
    lines.append("")
    lines.append("Autograded points out of the autograded maximum; the written answers are")
    lines.append("marked by hand in formgrader (`jupyter lab`, nbgrader's Formgrader panel).")
    return "\n".join(lines)
