"""rnncourse-instructor on bad input: one clear line, exit status 2, nothing lost.

Also the pieces the grading tests build on: fixture submissions, the collect step from a
folder and from a zip, the feedback leak check and the preprocessor that hides hidden tests.
All in temporary course folders; nothing here autogrades, so it is quick.
"""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from rnngrading import instructor
from rnngrading.course import ASSIGNMENTS, FIXTURES, CourseError, new_course
from rnngrading.feedback import HIDDEN_NOTE, HideHiddenTests, check_feedback, hidden_test_snippets
from rnngrading.fixtures import build_submission

pytestmark = pytest.mark.grading  # each command starts nbgrader (3 s of imports)


def run_cli(*args):
    """The command line as an instructor runs it: (exit status, stdout, stderr)."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "rnncourse-instructor"), *args],
        capture_output=True, text=True,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def course(tmp_path):
    """A course root with the committed source/ and release/, no gradebook yet."""
    return new_course(tmp_path / "course", ASSIGNMENTS, release=False)


def reference_notebook(root, assignment, case="reference"):
    return build_submission(
        root / "source" / assignment / f"{assignment}.ipynb",
        root / "release" / assignment / f"{assignment}.ipynb",
        FIXTURES / assignment / case,
    )


def class_folder(root, tmp_path, students=("alice", "bob")):
    """A folder of submissions as an LMS download: one folder per student id."""
    folder = tmp_path / "downloads"
    for student in students:
        (folder / student).mkdir(parents=True)
        nbformat.write(reference_notebook(root, "jacobian"), folder / student / "jacobian.ipynb")
    return folder


def assert_one_line_error(status, stderr, *words):
    assert status == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnncourse-instructor: error: "), stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_collect_from_a_missing_folder_fails_cleanly(course, tmp_path):
    missing = str(tmp_path / "nope")
    status, _, stderr = run_cli("--course", str(course), "collect", "jacobian", missing)
    assert_one_line_error(status, stderr, "no such folder or zip")
    assert not (course / "submitted").exists()


def test_collect_refuses_a_malformed_notebook_and_copies_nothing(course, tmp_path):
    folder = class_folder(course, tmp_path)
    (folder / "bob" / "jacobian.ipynb").write_text('{"cells": [ this is not json')
    status, _, stderr = run_cli("--course", str(course), "collect", "jacobian", str(folder))
    assert_one_line_error(status, stderr, "bob/jacobian.ipynb", "malformed notebook")
    assert not (course / "submitted").exists()
    assert (folder / "alice" / "jacobian.ipynb").is_file(), "the input is left as it was"


def test_collect_refuses_a_notebook_that_is_json_but_not_a_notebook(course, tmp_path):
    folder = class_folder(course, tmp_path, students=("alice",))
    (folder / "alice" / "jacobian.ipynb").write_text(json.dumps({"cells": "none"}))
    status, _, stderr = run_cli("--course", str(course), "collect", "jacobian", str(folder))
    assert_one_line_error(status, stderr, "alice/jacobian.ipynb", "malformed notebook")


def test_collect_names_a_notebook_of_the_wrong_name(course, tmp_path):
    folder = class_folder(course, tmp_path, students=("alice",))
    (folder / "alice" / "jacobian.ipynb").rename(folder / "alice" / "jacobian (1).ipynb")
    status, _, stderr = run_cli("--course", str(course), "collect", "jacobian", str(folder))
    assert_one_line_error(status, stderr, "jacobian (1).ipynb", "expected jacobian.ipynb")


def test_collect_needs_student_folders(course, tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    nbformat.write(reference_notebook(course, "jacobian"), folder / "jacobian.ipynb")
    status, _, stderr = run_cli("--course", str(course), "collect", "jacobian", str(folder))
    assert_one_line_error(status, stderr, "outside a student folder")


def test_unknown_assignment_and_wrong_course_fail_cleanly(course, tmp_path):
    status, _, stderr = run_cli("--course", str(course), "autograde", "homework9")
    assert_one_line_error(status, stderr, "unknown assignment 'homework9'", "jacobian")
    status, _, stderr = run_cli("--course", str(tmp_path), "grades")
    assert_one_line_error(status, stderr, "not a course root")


def test_autograde_before_release_says_to_release_first(course):
    status, _, stderr = run_cli("--course", str(course), "autograde", "jacobian")
    assert_one_line_error(status, stderr, "run the release command first")


def test_collect_from_a_folder_then_refuse_then_replace(course, tmp_path):
    folder = class_folder(course, tmp_path)
    (folder / "alice" / ".ipynb_checkpoints").mkdir()
    (folder / "alice" / ".ipynb_checkpoints" / "jacobian-checkpoint.ipynb").write_text("{}")
    (folder / "alice" / "notes.txt").write_text("not a notebook: ignored")
    assert instructor.collect(course, "jacobian", folder) == ["alice", "bob"]
    for student in ("alice", "bob"):
        got = list((course / "submitted" / student / "jacobian").iterdir())
        assert [p.name for p in got] == ["jacobian.ipynb"]
    first = (course / "submitted" / "alice" / "jacobian" / "jacobian.ipynb").read_bytes()

    status, _, stderr = run_cli("--course", str(course), "collect", "jacobian", str(folder))
    assert_one_line_error(status, stderr, "already collected for alice, bob", "--replace")
    assert (course / "submitted" / "alice" / "jacobian" / "jacobian.ipynb").read_bytes() == first

    blank = reference_notebook(course, "jacobian", "blank")
    nbformat.write(blank, folder / "alice" / "jacobian.ipynb")
    instructor.collect(course, "jacobian", folder, replace=True)
    now = (course / "submitted" / "alice" / "jacobian" / "jacobian.ipynb").read_bytes()
    assert now != first
    kept = list((course / "downloaded" / "jacobian").glob("replaced-*/alice/jacobian.ipynb"))
    assert len(kept) == 1 and kept[0].read_bytes() == first, "the earlier copy is kept"


def test_collect_from_a_zip_of_the_class_folder(course, tmp_path):
    folder = class_folder(course, tmp_path, students=("alice", "bob", "carol"))
    archive = tmp_path / "jacobian-submissions.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*.ipynb")):
            zf.write(path, Path("downloads") / path.relative_to(folder))
        zf.writestr("__MACOSX/downloads/alice/._jacobian.ipynb", "resource fork")
    assert instructor.collect(course, "jacobian", archive) == ["alice", "bob", "carol"]
    assert (course / "submitted" / "carol" / "jacobian" / "jacobian.ipynb").is_file()


def test_collect_refuses_a_broken_zip(course, tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04 this is not a zip")
    status, _, stderr = run_cli("--course", str(course), "collect", "jacobian", str(archive))
    assert_one_line_error(status, stderr, "not a readable zip archive")


def test_demo_will_not_overwrite_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    status, _, stderr = run_cli("demo", "--dir", str(tmp_path))
    assert_one_line_error(status, stderr, "is not an earlier demo")
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_the_reference_fixture_is_the_source_without_markers(course):
    nb = reference_notebook(course, "jacobian")
    answers = [c for c in nb.cells if c.metadata["nbgrader"].get("solution")]
    assert answers and all("SOLUTION" not in c.source for c in answers)
    assert all("NotImplementedError" not in c.source for c in answers)
    assert all("YOUR ANSWER HERE" not in c.source for c in answers)
    blank = reference_notebook(course, "jacobian", "blank")
    release = nbformat.read(course / "release" / "jacobian" / "jacobian.ipynb", as_version=4)
    assert [c.source for c in blank.cells] == [c.source for c in release.cells]


def test_a_fixture_answer_replaces_only_the_solution_region(course):
    nb = reference_notebook(course, "jacobian", "transposed")
    cell = next(c for c in nb.cells if c.metadata["nbgrader"]["grade_id"] == "step_jacobian")
    assert cell.source.startswith("def step_jacobian(x_t, h_prev, W_x, W_h, b_h):")
    assert "\n    return W_h.T * (1.0 - h_t**2)" in cell.source  # indented into the body
    compile(cell.source, "step_jacobian", "exec")


def test_a_fixture_naming_an_unknown_cell_is_an_error(course, tmp_path):
    case = tmp_path / "case"
    case.mkdir()
    (case / "case.json").write_text('{"base": "solution"}')
    (case / "no_such_cell.code").write_text("pass\n")
    with pytest.raises(CourseError, match="no_such_cell"):
        build_submission(
            course / "source" / "jacobian" / "jacobian.ipynb",
            course / "release" / "jacobian" / "jacobian.ipynb",
            case,
        )


def test_the_feedback_check_catches_a_leaked_hidden_test(course):
    page = course / "feedback" / "alice" / "jacobian" / "jacobian.html"
    page.parent.mkdir(parents=True)
    # The course's own hidden checks live in judge.py now; an instructor's notebook may
    # still hold hidden test regions, and the check must catch one on a page.
    source = course / "source" / "jacobian" / "jacobian.ipynb"
    nb = nbformat.read(source, as_version=4)
    test_cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
                     and c.cell_type == "code")
    test_cell.source += ("\n### BEGIN HIDDEN TESTS\n_secret = step_jacobian(1, 2)\n"
                         "assert _secret is not None, 'hidden'\n### END HIDDEN TESTS")
    nbformat.write(nb, source)
    snippet = sorted(hidden_test_snippets(course, "jacobian"))[0]
    first, _, rest = snippet.partition(" ")
    page.write_text(f"<html><pre><span>{first}</span> {rest.replace('<', '&lt;')}</pre></html>")
    with pytest.raises(CourseError, match="shows a hidden test"):
        check_feedback(course, "jacobian")
    page.write_text("<html><p>Part 1 tests</p></html>")
    assert check_feedback(course, "jacobian") == 1


def test_hide_hidden_tests_cuts_the_region_and_the_traceback():
    source = (
        "assert True, 'visible'\n### BEGIN HIDDEN TESTS\nassert secret_check()\n"
        "### END HIDDEN TESTS"
    )
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {
        "grade": True, "solution": False, "locked": True, "points": 1, "grade_id": "t",
        "schema_version": 3,
    }
    cell.outputs = [new_output(
        "error", ename="AssertionError", evalue="hidden test: wrong for H = 5",
        traceback=["----> 3 assert secret_check()", "AssertionError: hidden test: wrong for H = 5"],
    )]
    plain = new_code_cell("x = 1  # BEGIN HIDDEN TESTS is only text here")
    nb, _ = HideHiddenTests().preprocess(new_notebook(cells=[cell, plain]), {})
    assert nb.cells[0].source == "assert True, 'visible'"
    assert nb.cells[0].outputs[0]["traceback"] == [
        "AssertionError: hidden test: wrong for H = 5", HIDDEN_NOTE,
    ]
    assert nb.cells[1].source == plain.source, "cells that are not tests pass through"


# ---------------------------------------------------------------- submission times


def zip_of(folder, archive, times):
    """A zip of a class folder whose entries carry the given DOS times, {student: tuple}."""
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*.ipynb")):
            rel = path.relative_to(folder)
            info = zipfile.ZipInfo(str(rel), date_time=times[rel.parts[0]])
            zf.writestr(info, path.read_bytes())
    return archive


def collected_time(course, student):
    from nbgrader.utils import parse_utc

    text = (course / "submitted" / student / "jacobian" / "timestamp.txt").read_text()
    return parse_utc(text)


def test_collect_from_a_zip_keeps_each_submission_time(course, tmp_path):
    import datetime

    folder = class_folder(course, tmp_path)
    times = {"alice": (2026, 12, 1, 16, 59, 0), "bob": (2026, 12, 1, 17, 30, 2)}
    archive = zip_of(folder, tmp_path / "class.zip", times)
    instructor.collect(course, "jacobian", archive)
    for student, fields in times.items():  # a DOS time is the local time of the zip's maker
        local = datetime.datetime(*fields).astimezone()
        expected = local.astimezone(datetime.UTC).replace(tzinfo=None)
        assert collected_time(course, student) == expected


def test_collect_takes_the_times_the_lms_gives(course, tmp_path):
    import datetime

    folder = class_folder(course, tmp_path)
    times = tmp_path / "times.csv"
    times.write_text("student_id,timestamp\nalice,2026-12-01T18:00:00+01:00\nbob,2026-12-01 "
                     "17:45:00 UTC\n")
    status, stdout, stderr = run_cli("--course", str(course), "collect", "jacobian", str(folder),
                                     "--times", str(times))
    assert status == 0, stderr
    assert "submission times from the times CSV" in stdout
    assert collected_time(course, "alice") == datetime.datetime(2026, 12, 1, 17, 0)
    assert collected_time(course, "bob") == datetime.datetime(2026, 12, 1, 17, 45)


def test_collect_refuses_a_times_csv_that_misses_a_student(course, tmp_path):
    folder = class_folder(course, tmp_path)
    times = tmp_path / "times.csv"
    times.write_text("student_id,timestamp\nalice,2026-12-01T18:00:00+01:00\n")
    status, _, stderr = run_cli("--course", str(course), "collect", "jacobian", str(folder),
                                "--times", str(times))
    assert_one_line_error(status, stderr, "gives no time for bob")
    assert not (course / "submitted").exists()


def test_collect_from_a_folder_says_it_has_no_times(course, tmp_path):
    folder = class_folder(course, tmp_path, students=("alice",))
    status, stdout, _ = run_cli("--course", str(course), "collect", "jacobian", str(folder))
    assert status == 0
    assert "no submission times" in stdout and "--times" in stdout
    assert not (course / "submitted" / "alice" / "jacobian" / "timestamp.txt").exists()


def test_collect_names_students_who_are_not_on_the_roster(course, tmp_path):
    from rnngrading.course import gradebook

    with gradebook(course) as gb:  # a roster of one
        gb.update_or_create_student("alice")
    folder = class_folder(course, tmp_path)
    status, stdout, _ = run_cli("--course", str(course), "collect", "jacobian", str(folder))
    assert status == 0
    (line,) = [line for line in stdout.splitlines() if "not on the roster" in line]
    assert line.endswith("(or formgrader's Manage Students)") and ": bob;" in line
    assert (course / "submitted" / "bob" / "jacobian" / "jacobian.ipynb").is_file(), "kept"
