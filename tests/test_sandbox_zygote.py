"""The sandbox's zygote: one process that has imported nbgrader forks every grading.

A whole-notebook time limit kills the forked grading and everything in its namespaces,
and the same zygote then grades the next submission (rnngrading.zygote). Also here:
`rnncourse-grade grade` (make grade) fills autograded/, so feedback can be made after it,
and a broken set-up stops a batch before any score is written.
"""

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest
from coursekit import checksum, hand_in, notebook

from rnngrading import batch, cli, instructor, isolation, kernelfork, zygote
from rnngrading.course import GradingSetupError
from rnngrading.limits import load_limits
from rnngrading.runner import grade_one

pytestmark = [pytest.mark.grading, pytest.mark.sandbox,
              pytest.mark.skipif(not isolation.can_isolate(),
                                 reason="needs bubblewrap to sandbox student code")]


@pytest.fixture(scope="module")
def course(scratch_course):
    return scratch_course("zygote")


def submission(course, folder, textbook_prefix=""):
    return hand_in(folder.parent, folder.name, notebook(course, "reference", textbook_prefix))


def processes_mentioning(text):
    """(pid, command line) of every process whose command line holds `text`."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if text in cmdline:
            found.append((int(pid), cmdline))
    return found


def zygote_pids():
    """The zygote processes this test process started."""
    me = os.getpid()
    return {pid for pid, _ in processes_mentioning("-m rnngrading.zygote")
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(me)}


def test_the_wall_limit_kills_the_grading_and_the_zygote_grades_the_next(course, tmp_path,
                                                                         monkeypatch):
    # this test's scratch courses, not another grader's; short, for the kernel's sockets
    scratch = Path(tempfile.mkdtemp(prefix="zyg-"))
    monkeypatch.setenv("RNNCOURSE_GRADING_TMP", str(scratch))
    limits = load_limits(notebook_wall=20, cell_timeout=120)
    looping = submission(course, tmp_path / "loop", "while True:\n    pass\n")
    honest = submission(course, tmp_path / "honest")
    start = time.monotonic()
    stuck = grade_one(looping, "jacobian", "looper", course, limits)
    took = time.monotonic() - start
    zygotes = zygote_pids()
    fine = grade_one(honest, "jacobian", "honest", course, limits)
    assert "whole-notebook time limit (20 s) hit" in stuck.status and stuck.total == 0
    assert 20 <= took < 40
    # the kernel and nbgrader died with the namespace: nothing runs from a scratch course
    assert processes_mentioning(str(scratch)) == []
    assert fine.total == 9 and fine.status.startswith(("ok", "test cell"))
    assert len(zygotes) == 1 and zygote_pids() == zygotes  # the same zygote, reused
    shutil.rmtree(scratch)


def test_a_zygote_that_died_is_replaced(course, tmp_path):
    honest = submission(course, tmp_path / "honest")
    zygote.close_all()
    first = grade_one(honest, "jacobian", "a", course)
    (dead,) = zygote_pids()
    os.kill(dead, signal.SIGKILL)
    second = grade_one(honest, "jacobian", "b", course)
    assert first.total == second.total == 9
    assert len(zygote_pids() - {dead}) == 1 and zygote.idle_count() == 1


def test_make_grade_fills_autograded_so_feedback_can_be_made(course, tmp_path):
    """`rnncourse-grade grade` (make grade) writes scores and autograded/, and then the
    instructor's feedback step works from them, as after `make instructor-autograde`."""
    folder = tmp_path / "handed-in"
    submission(course, folder / "ada")
    broken = folder / "ben" / "jacobian.ipynb"
    broken.parent.mkdir(parents=True)
    broken.write_text("{ not json")
    stale = course / "autograded" / "ben" / "jacobian"
    stale.mkdir(parents=True)
    (stale / "jacobian.ipynb").write_text("an older grading")
    assert cli.main(["grade", "jacobian", str(folder), "--workers", "1",
                     "--course", str(course)]) == 0
    assert (course / "autograded" / "ada" / "jacobian" / "jacobian.ipynb").is_file()
    assert not stale.exists()  # ben's new submission could not be graded: no old notebook
    instructor.feedback(course, ["jacobian"])
    page = course / "feedback" / "ada" / "jacobian" / "jacobian.html"
    text = page.read_text()
    assert "(Score: 9.0 / 13.0)" in text  # 9 automatic points; 4 are marked by hand
    assert not (course / "feedback" / "ben").exists()


@pytest.mark.parametrize("broken, workers", [("no bubblewrap", "1"),
                                             ("a private library folder", "1"),
                                             ("no bubblewrap", "2")])
def test_a_broken_set_up_stops_the_batch_before_any_score_is_written(course, tmp_path,
                                                                     monkeypatch, capsys,
                                                                     broken, workers):
    """With 2 workers the check runs on the workers (their first task), not here."""
    folder = tmp_path / "handed-in"
    submission(course, folder / "ada")
    if broken == "no bubblewrap":
        monkeypatch.setenv("RNNCOURSE_BWRAP", str(tmp_path / "no-bwrap"))
        cause = "bubblewrap"
    else:
        if os.geteuid() != 0:
            pytest.skip("as an ordinary user the kernel runs as that user: it can read it")
        private = tmp_path / "private-lib"
        private.mkdir(mode=0o700)
        monkeypatch.setenv("PYTHONPATH", str(private))
        cause = f"the kernel cannot read {private}"
    isolation.isolation.cache_clear()
    before = checksum(course / "gradebook.db")
    try:
        code = cli.main(["grade", "jacobian", str(folder), "--workers", workers,
                         "--course", str(course)])
    finally:
        isolation.isolation.cache_clear()
    out, err = capsys.readouterr()
    print(err)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and cause in err and "nothing recorded" in err
    assert checksum(course / "gradebook.db") == before


def test_on_two_workers_the_check_and_the_kernels_start_there_not_here(course, tmp_path):
    """The pre-flight runs on each worker as its first task: this process starts no
    kernel template and no zygote, and the batch's scores are as graded one by one."""
    folder = tmp_path / "handed-in"
    jobs = [(who, "jacobian", submission(course, folder / who)) for who in ("ada", "ben")]
    kernelfork.close_all()
    zygote.close_all()
    results = batch.grade_batch(jobs, course, workers=2)
    assert not kernelfork._templates and zygote.idle_count() == 0
    alone = grade_one(jobs[0][2], "jacobian", "ada", course, load_limits())
    assert alone.graded and alone.total > 0
    assert [(r.student, r.graded, r.scores) for r in results] == [
        ("ada", True, alone.scores), ("ben", True, alone.scores)]


def test_a_grading_folder_too_deep_for_the_kernels_sockets_is_one_clear_line(tmp_path):
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    with pytest.raises(GradingSetupError, match="too deep for the kernel's Unix sockets"):
        isolation.kernel_setup(deep, load_limits(), isolation.isolation()[0])
    assert not (deep / "run").exists()  # refused before anything was made
