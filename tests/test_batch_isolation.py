"""A hostile class graded as one batch: no student touches another's grade.

Honest students and hostile ones hand in jacobian together, and `rnncourse-grade grade`
(make grade) grades them on two workers. The hostile ones try what one student of a
class could: plant an IPython startup file in the kernels that start beside theirs, read
a neighbour's notebook, starve neighbours with a fork bomb, hand in a symlink to the
instructor's solution (a notebook, or a whole folder), hand in the other folder layout,
and forge a line of the report with a newline in their id. Every honest student keeps
exactly the score they get when graded alone; every hostile one gets 0 or a refusal;
the report has one line per entry of the folder.
"""

import io
import os
from contextlib import redirect_stdout

import pytest
from coursekit import FORK_BOMB, full, hand_in, notebook, without

from rnngrading import cli
from rnngrading.batch import grade_batch
from rnngrading.course import gradebook
from rnngrading.isolation import can_isolate
from rnngrading.limits import load_limits

FULL, TRANSPOSED = full("jacobian"), without("jacobian", "test_step_jacobian")
pytestmark = [pytest.mark.grading, pytest.mark.sandbox]
pytestmark.append(pytest.mark.skipif(not can_isolate() and os.geteuid() != 0,
                                     reason="needs bubblewrap and user namespaces"))

PLANT = """import glob, os
planted, mine = 0, os.path.realpath(os.path.expanduser('~'))
for home in glob.glob('/tmp/**/kernel-home', recursive=True) + glob.glob('/tmp/*/*/kernel-home'):
    if os.path.realpath(home) == mine:
        continue
    try:
        os.makedirs(home + '/profile_default/startup', exist_ok=True)
        with open(home + '/profile_default/startup/00-sabotage.py', 'w') as f:
            f.write('import numpy as np\\nnp.allclose = lambda *a, **k: False\\n')
        planted += 1
    except OSError:
        pass
print('PLANTED', planted)
"""
READ = """import glob, os, json
mine = os.path.realpath('jacobian.ipynb')
theirs = [p for p in glob.glob('/tmp/**/*.ipynb', recursive=True)
          if os.path.realpath(p) != mine]
print('NEIGHBOURS', len(theirs), theirs[:3])
"""
HONEST = {"ada": "reference", "dev": "transposed", "ben": "blank", "nia": "reference"}
NEWLINE_ID = "mal\nmallory              jacobian     9 / 9  ok"


@pytest.fixture(scope="module")
def course(scratch_course):
    return scratch_course("batch")


def run_grade(folder, course):
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(["grade", "jacobian", str(folder), "--workers", "2",
                             "--course", str(course)])
    assert code == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def batch(course, tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    for student, case in HONEST.items():
        hand_in(folder, student, notebook(course, case), nested=student == "nia")
    hand_in(folder, "planter", notebook(course, "blank", PLANT))
    hand_in(folder, "reader", notebook(course, "blank", READ))
    hand_in(folder, "bomber", notebook(course, "blank", FORK_BOMB))
    (folder / "linker").mkdir()
    os.symlink(course / "source/jacobian/jacobian.ipynb", folder / "linker/jacobian.ipynb")
    os.symlink(course / "source/jacobian", folder / "folder-linker")
    hand_in(folder, NEWLINE_ID, notebook(course, "reference"))
    report = run_grade(folder, course)
    print(report)
    alone = {}
    for student, case in HONEST.items():
        solo = tmp_path_factory.mktemp(f"alone-{student}")
        hand_in(solo, student, notebook(course, case))
        (result,) = grade_batch([(student, "jacobian", solo / student / "jacobian.ipynb")],
                                        course, workers=1, check=False)  # checked above
        alone[student] = result
    return report, alone, folder


def report_lines(report):
    return [line for line in report.splitlines() if " jacobian " in line]


def line_of(report, student):
    (line,) = [x for x in report_lines(report) if x.split()[0] == student]
    return line


def test_every_honest_student_keeps_the_score_they_get_alone(batch):
    report, alone, _ = batch
    for student, result in alone.items():
        assert result.graded
        assert f" {result.total:g} / {FULL:g} " in line_of(report, student), (student, report)
    assert [alone[s].total for s in ("ada", "dev", "ben", "nia")] == [FULL, TRANSPOSED, 0, FULL]


def test_every_hostile_student_gets_zero_or_a_clear_refusal(batch, course):
    report, _, _ = batch
    for student in ("planter", "reader", "bomber"):
        assert f" 0 / {FULL:g} " in line_of(report, student), report
    assert "symlink" in line_of(report, "linker")
    assert "symlink" in line_of(report, "folder-linker")
    assert "not graded" in line_of(report, "linker")
    from nbgrader.api import MissingEntry

    with gradebook(course) as gb:
        assert gb.find_submission("jacobian", "ada").code_score == FULL
        linker = gb.find_submission_notebook("jacobian", "jacobian", "linker")
        assert all(g.auto_score is None and g.needs_manual_grade for g in linker.grades)
        with pytest.raises(MissingEntry):  # an id that is not allowed never reaches it
            gb.find_student(NEWLINE_ID)


def test_the_report_has_one_line_per_entry_and_cannot_be_forged(batch):
    report, _, folder = batch
    lines = report_lines(report)
    assert len(lines) == len(os.listdir(folder)) == 10
    assert not any(line.startswith("mallory") for line in report.splitlines())
    forged = [line for line in lines if "mallory" in line]
    assert len(forged) == 1 and forged[0].startswith("mal\\nmallory")
    assert "not allowed" in forged[0]


def test_neighbours_are_out_of_reach(batch, course):
    import nbformat

    def printed(student):
        nb = nbformat.read(course / "autograded" / student / "jacobian" / "jacobian.ipynb", 4)
        return "\n".join(out.get("text", "") for cell in nb.cells
                         for out in cell.get("outputs", []))

    assert "PLANTED 0" in printed("planter")
    assert "NEIGHBOURS 0" in printed("reader")
    forked = int(printed("bomber").split("FORKED")[1].split()[0])
    limits = load_limits()
    assert 0 < forked < limits.max_processes  # held by its own limit, not the machine's
