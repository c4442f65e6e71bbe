"""The course gradebook: merging measured scores into it, and reading the grade table."""

from .course import ASSIGNMENTS, gradebook


def merge_results(results, course):
    """Write each Result into the course gradebook: only that student's submission changes."""
    import warnings

    from sqlalchemy.exc import SAWarning

    # nbgrader's add_submission makes SQLAlchemy warn that an object "not in session" will
    # not be added along a relationship, once per submission: nbgrader's own notice, not ours
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=SAWarning)
        _merge(results, course)


def _merge(results, course):
    from nbgrader.api import MissingEntry

    with gradebook(course) as gb:
        for r in results:
            gb.update_or_create_student(r.student)
            try:
                gb.find_submission(r.assignment, r.student)
            except MissingEntry:
                gb.add_submission(r.assignment, r.student)
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
