"""The sandbox's zygote: one process that has imported nbgrader forks every grading.

A whole-notebook time limit kills the forked grading and everything in its namespaces,
and the same zygote then grades the next submission (tools/sandbox.py). Also here:
`sandbox.py grade` (make grade) fills autograded/, so feedback can be made after it.
"""

import os
import tempfile
import time
from pathlib import Path

import pytest
from jacobian_class import hand_in, make_course, notebook
from toolmodules import load_tool

sandbox = load_tool("sandbox")
instructor = load_tool("instructor")
pytestmark = pytest.mark.skipif(not sandbox.can_isolate(),
                                reason="needs bubblewrap to sandbox student code")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return make_course(tmp_path_factory.mktemp("zygote") / "course")


def submission(course, folder, textbook_prefix=""):
    return hand_in(folder.parent, folder.name, notebook(course, "reference", textbook_prefix))


def processes_mentioning(text):
    found = []
    for pid in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


def test_the_wall_limit_kills_the_grading_and_the_zygote_grades_the_next(course, tmp_path):
    limits = sandbox.Limits(notebook_wall=20, cell_timeout=120)
    looping = submission(course, tmp_path / "loop", "while True:\n    pass\n")
    honest = submission(course, tmp_path / "honest")
    start = time.monotonic()
    stuck = sandbox.grade_one(looping, "jacobian", "looper", course, limits)
    took = time.monotonic() - start
    zygotes = list(sandbox._ZYGOTES)
    fine = sandbox.grade_one(honest, "jacobian", "honest", course, limits)
    assert "whole-notebook time limit (20 s) hit" in stuck.status and stuck.total == 0
    assert 20 <= took < 40
    # the kernel and nbgrader died with the namespace: nothing runs from a scratch course
    assert processes_mentioning(os.path.join(tempfile.gettempdir(), "grade-")) == []
    assert fine.total == 9 and fine.status.startswith(("ok", "test cell"))
    assert len(zygotes) == 1 and sandbox._ZYGOTES == zygotes  # the same zygote, reused
    assert zygotes[0].proc.poll() is None


def test_a_zygote_that_died_is_replaced(course, tmp_path):
    honest = submission(course, tmp_path / "honest")
    sandbox._close_zygotes()
    first = sandbox.grade_one(honest, "jacobian", "a", course, sandbox.Limits())
    dead = sandbox._ZYGOTES[0]
    dead.proc.kill()
    dead.proc.wait()
    second = sandbox.grade_one(honest, "jacobian", "b", course, sandbox.Limits())
    assert first.total == second.total == 9
    assert sandbox._ZYGOTES[0] is not dead


def test_make_grade_fills_autograded_so_feedback_can_be_made(course, tmp_path):
    """`sandbox.py grade` (make grade) writes scores and autograded/, and then the
    instructor's feedback step works from them, as after `make instructor-autograde`."""
    folder = tmp_path / "handed-in"
    submission(course, folder / "ada")
    broken = folder / "ben" / "jacobian.ipynb"
    broken.parent.mkdir(parents=True)
    broken.write_text("{ not json")
    stale = course / "autograded" / "ben" / "jacobian"
    stale.mkdir(parents=True)
    (stale / "jacobian.ipynb").write_text("an older grading")
    assert sandbox.main(["grade", "jacobian", str(folder), "--workers", "1",
                         "--course", str(course)]) == 0
    assert (course / "autograded" / "ada" / "jacobian" / "jacobian.ipynb").is_file()
    assert not stale.exists()  # ben's new submission could not be graded: no old notebook
    instructor.feedback(course, ["jacobian"])
    page = course / "feedback" / "ada" / "jacobian" / "jacobian.html"
    text = page.read_text()
    assert "(Score: 9.0 / 13.0)" in text  # 9 automatic points; 4 are marked by hand
    assert not (course / "feedback" / "ben").exists()


@pytest.mark.parametrize("broken", ["no bubblewrap", "a private library folder"])
def test_a_broken_set_up_stops_the_batch_before_any_score_is_written(course, tmp_path,
                                                                     monkeypatch, capsys,
                                                                     broken):
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
    sandbox.isolation.cache_clear()
    before = sandbox.checksum(course / "gradebook.db")
    try:
        code = sandbox.main(["grade", "jacobian", str(folder), "--workers", "1",
                             "--course", str(course)])
    finally:
        sandbox.isolation.cache_clear()
    out, err = capsys.readouterr()
    print(err)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and cause in err and "nothing recorded" in err
    assert sandbox.checksum(course / "gradebook.db") == before
