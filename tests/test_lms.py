"""The gradebook to and from an LMS: grades.csv and Canvas's import CSV keep a missing
submission apart from a score of 0; submission times come from zip entries or a CSV; late
submissions are flagged with the course's penalty; merging scores prints no SQLAlchemy
warning.

A small class built in a scratch course through nbgrader's Gradebook API, scores set by
hand (nothing is graded here): alice full marks on every test cell, bob a real 0 on every
one, carol on the roster with nothing handed in.
"""

import csv
import datetime
import struct
import warnings
import zipfile

import pytest

from rnngrading import instructor, lms
from rnngrading.course import CourseError, gradebook
from rnngrading.gradebook import format_grades, merge_results, quiet_sqlalchemy
from rnngrading.runner import Result

UTC = datetime.UTC
# jacobian's test cells and their points (source/jacobian: 3 + 2 + 3 + 1 autograded), and
# its written answers (4 points, marked by hand: 0 until then)
TEST_CELLS = {"test_step_jacobian": 3, "test_numerical_jacobian": 2,
              "test_jacobian_product": 3, "test_textbook": 1}
WRITTEN = 4


def set_scores(gb, student, points):
    """A submission of jacobian for `student` whose test cells scored `points(cell max)`."""
    gb.update_or_create_student(student)
    gb.add_submission("jacobian", student)
    for grade in gb.find_submission_notebook("jacobian", "jacobian", student).grades:
        if grade.name in TEST_CELLS:
            grade.auto_score = points(TEST_CELLS[grade.name])
    gb.db.commit()


@pytest.fixture(scope="module")  # nbgrader releases jacobian into its gradebook: "grading"
def small_class(scratch_course):
    root = scratch_course("lms")
    with quiet_sqlalchemy(), gradebook(root) as gb:
        set_scores(gb, "alice", lambda full: full)
        set_scores(gb, "bob", lambda full: 0)
        gb.update_or_create_student("carol", first_name="Carol", last_name="Cole")
    return root


@pytest.mark.grading
def test_grades_csv_leaves_a_missing_submission_empty(small_class, tmp_path):
    target = instructor.export(small_class, str(tmp_path / "grades.csv"))
    with open(target, newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert list(rows["alice"]) == list(lms.GRADES_COLUMNS)  # nbgrader's columns, in order
    assert float(rows["alice"]["score"]) == sum(TEST_CELLS.values())
    assert float(rows["alice"]["max_score"]) == sum(TEST_CELLS.values()) + WRITTEN
    assert rows["bob"]["score"] == rows["bob"]["raw_score"] == "0.0", "a real 0 is 0"
    assert rows["carol"]["score"] == rows["carol"]["raw_score"] == "", "missing is empty"
    assert rows["carol"]["timestamp"] == ""


@pytest.mark.grading
def test_canvas_csv_has_the_import_layout(small_class, tmp_path):
    target = instructor.export(small_class, str(tmp_path / "canvas.csv"), "canvas")
    with open(target, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "jacobian"]
    assert rows[1][0] == "    Points Possible" and rows[1][1:5] == ["", "", "", ""]
    assert float(rows[1][5]) == sum(TEST_CELLS.values()) + WRITTEN
    by_login = {row[3]: row for row in rows[2:]}
    assert {"alice", "bob", "carol"} <= set(by_login)
    assert float(by_login["alice"][5]) == sum(TEST_CELLS.values())
    assert by_login["bob"][5] == "0.0"
    assert by_login["carol"][5] == ""
    assert by_login["carol"][0] == "Cole, Carol" and by_login["alice"][0] == "alice"


@pytest.mark.grading
def test_the_grade_table_says_missing_and_zero_apart(small_class):
    table = format_grades(small_class)
    line = {row.split()[0]: row for row in table.splitlines() if row[:1].isalpha()}
    assert "missing" in line["carol"]
    assert "0 / 9" in line["bob"] and "missing" not in line["bob"]


@pytest.mark.grading
def test_merging_scores_prints_no_sqlalchemy_warning(small_class):
    result = Result("dave", "jacobian", "ok", dict.fromkeys(TEST_CELLS, 1.0), 4.0, 9.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        merge_results([result], small_class)
    assert not [w for w in caught if "SAWarning" in type(w.message).__name__], [
        str(w.message)[:120] for w in caught]
    with gradebook(small_class) as gb:
        assert gb.find_submission("jacobian", "dave").code_score == len(TEST_CELLS)


@pytest.mark.grading
def test_a_late_submission_is_flagged_with_the_courses_penalty(small_class):
    due = datetime.datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
    with gradebook(small_class) as gb:
        gb.update_or_create_assignment("jacobian", duedate=due.replace(tzinfo=None))
    folder = small_class / "submitted" / "erin" / "jacobian"
    folder.mkdir(parents=True)
    folder.joinpath("timestamp.txt").write_text(
        lms.timestamp_text(due + datetime.timedelta(hours=1, minutes=30)))
    scores = dict.fromkeys(TEST_CELLS, 0.0) | {"test_step_jacobian": 3.0}
    (note,) = merge_results([Result("erin", "jacobian", "ok", scores, 3.0, 9.0)], small_class)
    assert note.startswith("erin") and "LATE by 1:30:00 (" in note
    assert "penalty 0 points" in note and "penalty_method='none'" in note  # the default
    assert "jacobian LATE (penalty 0)" in format_grades(small_class)
    with gradebook(small_class) as gb:
        submission = gb.find_submission("jacobian", "erin")
        assert submission.total_seconds_late == 90 * 60
        gb.update_or_create_assignment("jacobian", duedate=None)


# ---------------------------------------------------------------- submission times in


def test_a_zip_entry_time_is_read_from_info_zips_utc_field_first():
    when = datetime.datetime(2026, 12, 1, 16, 5, 7, tzinfo=UTC)
    info = zipfile.ZipInfo("alice/jacobian.ipynb", date_time=(1999, 1, 1, 0, 0, 0))
    info.extra = struct.pack("<HHBi", 0x5455, 5, 1, int(when.timestamp()))
    assert lms.zip_entry_time(info) == when
    plain = zipfile.ZipInfo("bob/jacobian.ipynb", date_time=(2026, 12, 1, 17, 5, 8))
    local = lms.zip_entry_time(plain)  # no zone in a DOS time: this machine's local time
    assert local.tzinfo is not None
    assert local.replace(tzinfo=None) == datetime.datetime(2026, 12, 1, 17, 5, 8)


def test_timestamp_text_reads_back_as_nbgrader_reads_it():
    from nbgrader.utils import parse_utc

    when = datetime.datetime(2026, 12, 1, 17, 5, 0, tzinfo=datetime.timezone(
        datetime.timedelta(hours=1)))
    text = lms.timestamp_text(when)
    assert text == "2026-12-01 16:05:00.000000 UTC"
    assert parse_utc(text) == datetime.datetime(2026, 12, 1, 16, 5)  # nbgrader: naive UTC


def test_the_times_csv_is_read_and_its_mistakes_named(tmp_path):
    good = tmp_path / "times.csv"
    good.write_text("student_id,timestamp,comment\nalice,2026-12-01T17:05:00+01:00,x\n"
                    "bob,2026-12-01 16:10:00,no zone: UTC\n")
    assert lms.read_times(good) == {
        "alice": datetime.datetime(2026, 12, 1, 16, 5, tzinfo=UTC),
        "bob": datetime.datetime(2026, 12, 1, 16, 10, tzinfo=UTC)}
    cases = {"student,time\nalice,2026-12-01\n": "no 'student_id' column",
             "student_id,timestamp\nalice,yesterday-ish\n": "line 2: not a time",
             "student_id,timestamp\nalice,2026-12-01\nalice,2026-12-02\n": "'alice' twice"}
    for text, message in cases.items():
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(CourseError, match=message):
            lms.read_times(bad)
    with pytest.raises(CourseError, match="no such times file"):
        lms.read_times(tmp_path / "nope.csv")
