"""nbgrader's exchange on one machine, the whole round trip from the command line.

The instructor releases jacobian into the course's exchange (nbgrader_config.py); students,
each in a folder of their own, fetch it and submit; the instructor collects, autogrades in
the sandbox (rnncourse-instructor autograde), makes and releases feedback; each student
fetches their own feedback. On the way: a student who submits twice (the later counts, the
earlier stays in the exchange), one who submits after the due date (flagged, and penalised by
the LateSubmissionPlugin's "zero" method set in the course's config), one not on the roster
(not graded, one line saying how to add them, the submission kept), one on the roster who
hands in nothing (an empty cell in the exports, never a 0).

nbgrader 0.9.6 takes a student's name from the operating system's user id (pwd), not from
USER or LOGNAME, so the students here also name themselves with
--CourseDirectory.student_id, as one user playing several must; each has a HOME and Jupyter
folders of their own (nbgrader finds a student's feedback through the copy of each
submission it caches in the student's Jupyter data folder).
"""

import csv
import datetime
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from rnngrading.course import FIXTURES, REPO, SCRATCH_HOME_VARS, new_course, own_bin_first
from rnngrading.feedback import html_text
from rnngrading.fixtures import build_submission


def graded(test):
    """The round trip's tests: they share one run that autogrades in the sandbox."""
    return pytest.mark.grading(pytest.mark.sandbox(test))

COURSE_ID = "rnn-vanishing-gradient"  # nbgrader_config.py's course id
# jacobian's points, from what each fixture case answers (see their case.json): the test
# cells are worth 3 + 2 + 3 + 1; "partial" solves the first two parts only; the written
# answers (4 points) wait for a human and count 0 until marked.
REFERENCE_POINTS, PARTIAL_POINTS, WRITTEN_POINTS = 9, 3 + 2, 4


def nbgrader(cwd, *args, student=None, check=True):
    """One nbgrader command in `cwd`; a student's also names the exchange, the course and the
    student. returns the CompletedProcess (stdout and stderr merged in .stdout)"""
    env = dict(os.environ, PATH=own_bin_first(os.environ["PATH"]))
    extra = []
    if student:  # each student's Jupyter folders (nbgrader's submission cache) their own
        env.update(USER=student, LOGNAME=student)
        for var, sub in SCRATCH_HOME_VARS.items():
            env[var] = str(Path(cwd) / ".home" / sub)
        extra = [f"--course={COURSE_ID}", f"--Exchange.root={EXCHANGE['root']}",
                 f"--CourseDirectory.student_id={student}"]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args, *extra], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(f"{time.perf_counter() - start:5.1f} s  nbgrader {' '.join(args)}")
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:]
    return proc


def instructor(root, *args):
    start = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "rnncourse-instructor"), "--course", str(root), *args],
        capture_output=True, text=True,
        env=dict(os.environ, PATH=own_bin_first(os.environ["PATH"])))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"{time.perf_counter() - start:5.1f} s  rnncourse-instructor {' '.join(args)}")
    return proc.stdout, proc.stderr


EXCHANGE = {}


def hand_in(root, home, student, case):
    """The student's fetched notebook, filled in as the fixture case says, then submitted."""
    nb = build_submission(root / "source" / "jacobian" / "jacobian.ipynb",
                          home / "jacobian" / "jacobian.ipynb", FIXTURES / "jacobian" / case)
    nbformat.write(nb, home / "jacobian" / "jacobian.ipynb")
    return nbgrader(home, "submit", "jacobian", student=student)


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    """The class, run once: (course root, {student: their folder}, outputs by step)."""
    base = tmp_path_factory.mktemp("exchange")
    with pytest.MonkeyPatch.context() as mp:
        for var, sub in SCRATCH_HOME_VARS.items():  # Jupyter and friends write in the temp folder
            (base / "home" / sub).mkdir(parents=True)
            mp.setenv(var, str(base / "home" / sub))
        yield run_class(base)


def run_class(base):
    root = new_course(base / "course", ["jacobian"])
    with open(root / "nbgrader_config.py", "a") as f:
        f.write('\nc.LateSubmissionPlugin.penalty_method = "zero"\n')
    EXCHANGE["root"] = root / "exchange"
    out = {}
    roster = root.parent / "roster.csv"  # carol hands nothing in; mallory is not on it
    roster.write_text("id,first_name,last_name\nalice,Alice,A\nbob,Bob,B\ncarol,Carol,C\n")
    nbgrader(root, "db", "student", "import", str(roster))
    out["release"] = nbgrader(root, "release_assignment", "jacobian").stdout
    homes = {s: base / s for s in ("alice", "bob", "mallory")}
    for student, home in homes.items():
        home.mkdir()
        nbgrader(home, "fetch_assignment", "jacobian", student=student)
    hand_in(root, homes["alice"], "alice", "partial")
    hand_in(root, homes["alice"], "alice", "reference")  # her second submission counts
    hand_in(root, homes["mallory"], "mallory", "reference")
    due = datetime.datetime.now(datetime.UTC)
    nbgrader(root, "db", "assignment", "add", "jacobian",
             f"--duedate={due:%Y-%m-%d %H:%M:%S.%f} UTC")
    hand_in(root, homes["bob"], "bob", "partial")  # after the due date
    out["inbound"] = nbgrader(root, "list", "--inbound", "jacobian").stdout
    out["collect"] = nbgrader(root, "collect", "jacobian").stdout
    out["autograde"], out["autograde stderr"] = instructor(root, "autograde", "jacobian")
    out["feedback"] = instructor(root, "feedback", "jacobian")[0]
    out["release_feedback"] = nbgrader(root, "release_feedback", "jacobian").stdout
    for student, home in homes.items():
        out[f"fetch_feedback {student}"] = nbgrader(home, "fetch_feedback", "jacobian",
                                                     student=student).stdout
    out["grades"] = instructor(root, "grades")[0]
    instructor(root, "export", "--to", "grades.csv")
    instructor(root, "export", "--format", "canvas", "--to", "canvas.csv")
    return root, homes, out


def fetched_feedback(home):
    """The feedback pages a student fetched (nbgrader puts them in jacobian/feedback/<time>/)."""
    return sorted((home / "jacobian" / "feedback").glob("*/jacobian.html"))


def page_score(page):
    """(score, max score) from the heading of a feedback page."""
    found = re.search(r"jacobian \(Score: ([\d.]+) / ([\d.]+)\)", html_text(page.read_text()))
    assert found, "no score heading in the page"
    return float(found[1]), float(found[2])


@graded
def test_the_exchange_is_in_the_course_and_open_to_students(round_trip):
    root, _, out = round_trip
    assert (root / "exchange" / COURSE_ID / "outbound" / "jacobian" / "jacobian.ipynb").is_file()
    assert (root / "exchange").stat().st_mode & 0o1777 == 0o1777  # rwx for all, sticky
    assert "Permissions for exchange directory" not in out["release"]  # nothing to repair


@graded
def test_each_student_sees_their_own_score_in_the_feedback_they_fetch(round_trip):
    _, homes, _ = round_trip
    full = REFERENCE_POINTS + WRITTEN_POINTS
    (alice,) = fetched_feedback(homes["alice"])
    (bob,) = fetched_feedback(homes["bob"])
    assert page_score(alice) == (REFERENCE_POINTS, full)
    # bob was late, and the course's penalty method is "zero": nbgrader's page heads with the
    # score after the penalty, and lists the penalty, his own points
    assert page_score(bob) == (0, full)
    penalty = f"Late submission penalty (Score: -{float(PARTIAL_POINTS)})"
    assert penalty in html_text(bob.read_text())
    assert "Late submission penalty" not in html_text(alice.read_text())


@graded
def test_autograde_prints_no_sqlalchemy_warning(round_trip):
    _, _, out = round_trip
    assert "SAWarning" not in out["autograde stderr"] + out["autograde"]


@graded
def test_a_second_submission_counts_and_the_first_is_kept(round_trip):
    root, _, out = round_trip
    inbound = [line for line in out["inbound"].splitlines() if "alice" in line]
    assert len(inbound) == 2, out["inbound"]  # the instructor finds both with nbgrader list
    stamps = sorted(re.search(r"alice jacobian (.+ UTC)", line)[1] for line in inbound)
    collected = (root / "submitted" / "alice" / "jacobian" / "timestamp.txt").read_text()
    assert collected.strip() == stamps[-1]
    alice = next(line for line in out["autograde"].splitlines() if line.strip().startswith("alice"))
    assert f"{REFERENCE_POINTS} / {REFERENCE_POINTS}" in alice


@graded
def test_a_late_submission_is_flagged_and_penalised(round_trip):
    root, _, out = round_trip
    late = [line for line in out["autograde"].splitlines() if "LATE" in line]
    assert len(late) == 1 and late[0].strip().startswith("bob"), out["autograde"]
    assert f"penalty {PARTIAL_POINTS} points" in late[0] and "'zero'" in late[0]
    bob = next(line for line in out["grades"].splitlines() if line.startswith("bob"))
    assert f"jacobian LATE (penalty {PARTIAL_POINTS})" in bob


@graded
def test_a_student_not_on_the_roster_is_not_graded_and_told_how_to_add(round_trip):
    root, homes, out = round_trip
    (line,) = [line for line in out["autograde"].splitlines() if "mallory" in line]
    assert "not on the roster" in line and "nbgrader db student add mallory" in line
    assert (root / "submitted" / "mallory" / "jacobian" / "jacobian.ipynb").is_file()
    assert "mallory" not in out["grades"]
    assert not fetched_feedback(homes["mallory"])


@graded
def test_the_exports_keep_missing_apart_from_zero(round_trip):
    root, _, _ = round_trip
    with open(root / "grades.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"alice", "bob", "carol"}
    assert float(rows["alice"]["score"]) == REFERENCE_POINTS
    assert float(rows["alice"]["late_submission_penalty"]) == 0
    assert float(rows["bob"]["raw_score"]) == PARTIAL_POINTS
    assert float(rows["bob"]["late_submission_penalty"]) == PARTIAL_POINTS
    assert rows["bob"]["score"] == "0.0", "a real zero is 0"
    assert rows["bob"]["timestamp"] and rows["alice"]["timestamp"]
    assert rows["carol"]["score"] == rows["carol"]["timestamp"] == "", "missing is empty"
    with open(root / "canvas.csv", newline="") as f:
        canvas = list(csv.reader(f))
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "jacobian"]
    assert canvas[1][0].strip() == "Points Possible"
    assert float(canvas[1][5]) == REFERENCE_POINTS + WRITTEN_POINTS
    by_id = {row[2]: row[5] for row in canvas[2:]}
    assert by_id == {"alice": f"{float(REFERENCE_POINTS)!r}", "bob": "0.0", "carol": ""}


# ---------------------------------------------------------------- what formgrader checks


def formgrader_api(root):
    """nbgrader's NbGraderAPI on a course, configured by its nbgrader_config.py: what
    formgrader builds, and whose exchange_missing makes it disable Release and Collect."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    return NbGraderAPI(CourseDirectory(config=config), config=config)


@pytest.fixture
def bare_course(tmp_path):
    """A course root with nothing but its configuration."""
    root = tmp_path / "course"
    root.mkdir()
    for name in ("nbgrader_config.py", "grading_limits.toml"):
        shutil.copy2(REPO / name, root / name)
    return root


def test_formgrader_finds_the_exchange_in_the_course(bare_course, monkeypatch):
    monkeypatch.delenv("RNNCOURSE_EXCHANGE", raising=False)
    api = formgrader_api(bare_course)
    assert not api.exchange_missing and api.exchange_is_functional
    assert Path(api.exchange_root) == bare_course / "exchange"
    assert (bare_course / "exchange").stat().st_mode & 0o1777 == 0o1777


def test_the_exchange_goes_where_the_environment_says(bare_course, tmp_path, monkeypatch):
    shared = tmp_path / "srv" / "exchange"
    monkeypatch.setenv("RNNCOURSE_EXCHANGE", str(shared))
    api = formgrader_api(bare_course)
    assert not api.exchange_missing and Path(api.exchange_root) == shared
    assert shared.stat().st_mode & 0o1777 == 0o1777
    assert not (bare_course / "exchange").exists()


def test_formgrader_still_says_so_when_no_exchange_can_be_made(bare_course, tmp_path,
                                                                monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("RNNCOURSE_EXCHANGE", str(blocker / "exchange"))
    assert formgrader_api(bare_course).exchange_missing  # the check this module relies on
