"""The gradebook to and from a learning management system (LMS): grade CSVs out, submission
times in.

Out, from gradebook.db (nbgrader's Gradebook API, written with the csv module):
- grades.csv, one row per student and assignment, nbgrader's columns (GradesCsv, also the
  plugin of `nbgrader export` in nbgrader_config.py). A submission never handed in has empty
  timestamp and score cells, a real score of 0 is 0.0 (nbgrader's own export writes 0.0 for
  both).
- a Canvas gradebook CSV (write_canvas_csv), the layout Canvas's Grades > Import reads:
  Student, ID, SIS User ID, SIS Login ID, Section, one column per assignment, and a
  "Points Possible" row under the header. The course's student id goes in SIS User ID and
  SIS Login ID (Canvas matches a row on any of ID, SIS User ID, SIS Login ID); ID, Canvas's
  own number, stays empty. A missing submission is an empty cell, which Canvas leaves
  ungraded; a score is the points after any late penalty.

In, for `rnncourse-instructor collect` (times of submissions, so late rules apply):
- the times of a zip's entries (zip_entry_time), or
- a CSV the LMS gives, read by read_times: a header row with the columns `student_id` and
  `timestamp`, one row per student; a time is ISO 8601 ("2026-12-01T17:05:00+01:00") or
  "2026-12-01 16:05:00 UTC"; a time without a zone is UTC.
"""

import csv
import datetime
import struct
from pathlib import Path

from nbgrader.plugins import ExportPlugin

from .course import ASSIGNMENTS, CourseError

GRADES_COLUMNS = ("assignment", "duedate", "timestamp", "student_id", "last_name",
                  "first_name", "email", "raw_score", "late_submission_penalty", "score",
                  "max_score")
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
POINTS_POSSIBLE = "    Points Possible"  # Canvas's own export writes it so, leading spaces too
TIMES_COLUMNS = ("student_id", "timestamp")
UTC = datetime.UTC
_ZIP_UT_FIELD = 0x5455  # Info-ZIP's extended timestamp: the modification time in UTC


# ------------------------------------------------------------------ out: grade CSVs


def _in_course_order(assignments):
    order = {a: i for i, a in enumerate(ASSIGNMENTS)}
    return sorted(assignments, key=lambda a: (order.get(a.name, 99), a.name))


def _cell(value):
    """A CSV cell: None as empty, a number as its shortest repr."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def grade_records(gb, assignments=None, students=None):
    """One dict per (assignment, student) with GRADES_COLUMNS as keys, from a Gradebook.

    A student with no submission has None for timestamp, raw_score, late_submission_penalty
    and score: missing, not zero. Scores are nbgrader's (autograded plus marked by hand);
    score is raw_score less the late penalty, never below 0.
    """
    from nbgrader.api import MissingEntry

    records = []
    for assignment in _in_course_order(gb.assignments):
        if assignments and assignment.name not in assignments:
            continue
        for student in sorted(gb.students, key=lambda s: s.id):
            if students and student.id not in students:
                continue
            record = dict(assignment=assignment.name, duedate=assignment.duedate,
                          student_id=student.id, last_name=student.last_name,
                          first_name=student.first_name, email=student.email,
                          max_score=assignment.max_score, timestamp=None, raw_score=None,
                          late_submission_penalty=None, score=None)
            try:
                submission = gb.find_submission(assignment.name, student.id)
            except MissingEntry:
                pass
            else:
                penalty = submission.late_submission_penalty or 0.0
                record.update(timestamp=submission.timestamp, raw_score=submission.score,
                              late_submission_penalty=penalty,
                              score=max(0.0, submission.score - penalty))
            records.append(record)
    return records


class GradesCsv(ExportPlugin):
    """nbgrader export plugin: nbgrader's grades.csv columns, a missing submission empty."""

    def export(self, gradebook):
        from .gradebook import quiet_sqlalchemy

        with quiet_sqlalchemy():
            records = grade_records(gradebook, self.assignment, self.student)
        with open(self.to or "grades.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(GRADES_COLUMNS)
            for record in records:
                writer.writerow(_cell(record[key]) for key in GRADES_COLUMNS)


def _student_name(student):
    """Canvas's "Last, First", or the id when the gradebook has no name."""
    if student.last_name and student.first_name:
        return f"{student.last_name}, {student.first_name}"
    return student.last_name or student.first_name or student.id


def write_canvas_csv(gb, dest, sections=None):
    """Write a Canvas gradebook import CSV from a Gradebook.

    sections: {student id: section name} (optional)
    returns (number of students, number of assignments)
    """
    from .gradebook import quiet_sqlalchemy

    sections = sections or {}
    with quiet_sqlalchemy():
        assignments = _in_course_order(gb.assignments)
        records = grade_records(gb)
        students = sorted(gb.students, key=lambda s: s.id)
        scores = {(r["student_id"], r["assignment"]): r["score"] for r in records}
        with open(dest, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow([*CANVAS_COLUMNS, *(a.name for a in assignments)])
            writer.writerow([POINTS_POSSIBLE, "", "", "", "",
                             *(_cell(float(a.max_score)) for a in assignments)])
            for student in students:
                writer.writerow([_student_name(student), "", student.id, student.id,
                                 sections.get(student.id, ""),
                                 *(_cell(scores[student.id, a.name]) for a in assignments)])
    return len(students), len(assignments)


# ------------------------------------------------------------------ in: submission times


def timestamp_text(when):
    """A time as nbgrader writes timestamp.txt: "2026-12-01 16:05:00.000000 UTC"."""
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f} UTC"


def parse_time(text):
    """A timezone-aware time from the LMS's text; a time without a zone is UTC.

    Raises ValueError with the text when it is not a time.
    """
    from dateutil.parser import ParserError, parse

    try:
        when = parse(text.strip())
    except (ParserError, OverflowError):
        raise ValueError(f"not a time: {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def zip_entry_time(info):
    """When a zip entry was last modified, timezone-aware.

    The UTC time of Info-ZIP's extended timestamp field when the entry has one (zip(1),
    most LMS downloads); else the entry's DOS time, which has no zone and is the local time
    of whoever made the zip: read here as this machine's local time.
    """
    extra = info.extra
    while len(extra) >= 4:
        field, size = struct.unpack("<HH", extra[:4])
        body = extra[4:4 + size]
        if field == _ZIP_UT_FIELD and size >= 5 and body[0] & 1:
            (seconds,) = struct.unpack("<i", body[1:5])
            return datetime.datetime.fromtimestamp(seconds, UTC)
        extra = extra[4 + size:]
    return datetime.datetime(*info.date_time).astimezone()


def read_times(path):
    """{student id: aware time} from the LMS's times CSV (columns TIMES_COLUMNS).

    Raises CourseError naming the file, the row and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise CourseError(f"no such times file: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in TIMES_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CourseError(f"{path}: no {missing[0]!r} column (the header must name "
                              f"{', '.join(TIMES_COLUMNS)})")
        times = {}
        for row in reader:
            student, text = (row["student_id"] or "").strip(), row["timestamp"] or ""
            try:
                when = parse_time(text)
            except ValueError as exc:
                raise CourseError(f"{path}, line {reader.line_num}: {exc}") from None
            if student in times:
                raise CourseError(f"{path}, line {reader.line_num}: {student!r} twice")
            times[student] = when
    return times
