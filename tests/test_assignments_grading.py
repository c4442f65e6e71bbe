"""The grader gives the right score to right, wrong and partly right work.

One run of the instructor demo (tools/instructor.py demo) in a temporary folder builds
the simulated class of tests/fixtures/submissions/roster.json from the fixture cases,
collects it (one assignment from a zip), autogrades it into a fresh SQLite gradebook,
makes the feedback and exports the CSV. Every test below reads that one run.
The repository's own gradebook.db, submitted/, autograded/ and feedback/ are not touched.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from toolmodules import load_tool

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "submissions"
ROSTER = json.loads((FIXTURES / "roster.json").read_text())["students"]

# Autograded points per test cell for each fixture case, worked out from what each case
# gets right and wrong (see the case.json files), not read off a grading run.
FULL = {
    "jacobian": {"test_step_jacobian": 3, "test_numerical_jacobian": 2,
                 "test_jacobian_product": 3, "test_textbook": 1},
    "eigenvalues": {"test_eigenvalues": 2, "test_spectral_radius": 2, "test_spectral_norm": 1,
                    "test_predict_linear_gradient": 2, "test_random_with_spectral_radius": 2,
                    "test_linear_gradient_norms": 2, "test_textbook_2d": 1},
    "copy_task": {"test_copy_task_batch": 3, "test_copy_task_baseline": 1,
                  "test_train_copy": 1, "test_lstm_beats_baseline": 2},
}


def scores(assignment, **changes):
    """FULL with some cells scored differently."""
    return {**FULL[assignment], **changes}


def zeros(assignment):
    return dict.fromkeys(FULL[assignment], 0)


EXPECTED = {
    "jacobian": {
        "reference": scores("jacobian"),
        "blank": zeros("jacobian"),
        "partial": scores("jacobian", test_jacobian_product=0, test_textbook=0),
        # the product is graded against the student's own step Jacobians: not charged twice
        "transposed": scores("jacobian", test_step_jacobian=0, test_textbook=0),
        # at the origin z = 0, so 1 - z^2 = 1 - h^2 there: the textbook case still passes
        "one_minus_z_squared": scores("jacobian", test_step_jacobian=0),
        "alternative": scores("jacobian"),
    },
    "eigenvalues": {
        "reference": scores("eigenvalues"),
        "blank": zeros("eigenvalues"),
        "partial": scores("eigenvalues", test_predict_linear_gradient=0,
                          test_random_with_spectral_radius=0, test_linear_gradient_norms=0,
                          test_textbook_2d=0),
        # the textbook matrix has eigenvalues 0.6 +- 0.9i: the real part misleads there too
        "real_part_radius": scores("eigenvalues", test_spectral_radius=0, test_textbook_2d=0),
        # linear_gradient_norms calls spectral_norm, so its norms are Frobenius norms too
        "frobenius_norm": scores("eigenvalues", test_spectral_norm=0, test_linear_gradient_norms=0),
        "alternative": scores("eigenvalues"),
    },
    "copy_task": {
        "reference": scores("copy_task"),
        "blank": zeros("copy_task"),
        "partial": scores("copy_task", test_train_copy=0, test_lstm_beats_baseline=0),
        # the LSTM still learns the (shifted) task it is given, and beats the true baseline
        "off_by_one_and_baseline": scores("copy_task", test_copy_task_batch=0,
                                          test_copy_task_baseline=0),
        "alternative": scores("copy_task"),
    },
}
WRITTEN_POINTS = {"jacobian": 4, "eigenvalues": 5, "copy_task": 4}
SUBMISSIONS = [
    (student, assignment, case)
    for student, cases in ROSTER.items()
    for assignment, case in cases.items()
]


instructor = load_tool("instructor")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The instructor demo, run once: (course root, its stdout)."""
    root = tmp_path_factory.mktemp("class") / "demo-course"
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "instructor.py"), "demo", "--dir", str(root)],
        cwd=REPO, env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return root, proc.stdout


@pytest.fixture(scope="module")
def cell_scores(demo):
    """{(student, assignment): {grade id: score}} for the autograded test cells."""
    root, _ = demo
    found = {}
    with instructor.gradebook(root) as gb:
        for student, assignment, _ in SUBMISSIONS:
            nb = gb.find_submission_notebook(assignment, assignment, student)
            found[student, assignment] = {
                g.name: g.score for g in nb.grades if g.name in FULL[assignment]
            }
    return found


def test_the_demo_leaves_the_repository_alone(demo):
    root, _ = demo
    assert REPO not in root.parents
    assert (root / "gradebook.db").is_file()


@pytest.mark.parametrize(("student", "assignment", "case"), SUBMISSIONS)
def test_each_fixture_gets_exactly_its_expected_score(cell_scores, student, assignment, case):
    assert cell_scores[student, assignment] == EXPECTED[assignment][case]


def test_the_reference_gets_full_marks_and_the_blank_release_zero(cell_scores):
    for assignment, full in FULL.items():
        assert sum(cell_scores["ada-reference", assignment].values()) == sum(full.values())
        assert sum(cell_scores["ben-blank", assignment].values()) == 0


def test_written_answers_wait_for_a_human(demo):
    root, _ = demo
    with instructor.gradebook(root) as gb:
        for assignment, written in WRITTEN_POINTS.items():
            assert gb.find_assignment(assignment).max_written_score == written
            assert gb.find_submission(assignment, "ada-reference").needs_manual_grade
            assert gb.find_submission(assignment, "ada-reference").written_score == 0


def test_a_student_with_no_submission_is_reported_missing(demo):
    root, stdout = demo
    assert "copy_task" not in ROSTER["finn-mistakes"]
    _, rows = instructor.grade_rows(root)
    assert rows["finn-mistakes"]["copy_task"] is None
    finn = next(line for line in stdout.splitlines() if line.startswith("finn-mistakes"))
    assert "missing" in finn


def test_the_demo_prints_the_grade_table(demo):
    _, stdout = demo
    assert "student" in stdout and "written answers" in stdout
    for student in ROSTER:
        assert any(line.startswith(student) for line in stdout.splitlines()), student
    ada = next(line for line in stdout.splitlines() if line.startswith("ada-reference"))
    assert ada.split()[1:10] == ["9", "/", "9", "12", "/", "12", "7", "/", "7"]


def test_the_exported_csv_has_a_row_per_student_and_assignment(demo):
    root, _ = demo
    with open(root / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    pairs = {(r["student_id"], r["assignment"]) for r in rows}
    for student, assignment, _ in SUBMISSIONS:
        assert (student, assignment) in pairs
    ada = next(
        r for r in rows if r["student_id"] == "ada-reference" and r["assignment"] == "jacobian"
    )
    assert float(ada["raw_score"]) == sum(FULL["jacobian"].values())
    assert float(ada["max_score"]) == sum(FULL["jacobian"].values()) + WRITTEN_POINTS["jacobian"]


def test_feedback_pages_show_no_hidden_test(demo):
    root, _ = demo
    for assignment in FULL:
        snippets = instructor.hidden_test_snippets(root, assignment)
        assert len(snippets) > 5
        pages = sorted((root / "feedback").glob(f"*/{assignment}/*.html"))
        assert len(pages) == sum(1 for _, a, _ in SUBMISSIONS if a == assignment)
        for page in pages:
            text = instructor.html_text(page.read_text(encoding="utf-8"))
            assert "HIDDEN TESTS" not in text, page
            assert not [s for s in snippets if s in text], page
    # The check can see code at all: the visible tests and their hints are on the page.
    page = root / "feedback" / "dev-mistakes" / "jacobian" / "jacobian.html"
    text = instructor.html_text(page.read_text(encoding="utf-8"))
    assert "Part 1 tests" in text
    assert "AssertionError: This is the transposed Jacobian" in text


def test_hidden_tests_did_run_when_grading(demo):
    """The autograded notebooks, unlike the feedback, hold the hidden tests that ran."""
    root, _ = demo
    nb = nbformat.read(
        root / "autograded" / "ada-reference" / "jacobian" / "jacobian.ipynb", as_version=4
    )
    assert any("### BEGIN HIDDEN TESTS" in c.source for c in nb.cells)


def test_a_python_warning_does_not_cost_points(cell_scores):
    """eve's step_jacobian makes torch warn on stderr; nbgrader_config strips warnings."""
    import warnings

    import torch

    answer = (FIXTURES / "jacobian" / "alternative" / "step_jacobian.code").read_text()
    assert "torch.tensor(torch.as_tensor(h_prev)" in answer
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.tensor(torch.as_tensor([0.5]), dtype=torch.float64)
    assert any(issubclass(w.category, UserWarning) for w in caught), "torch still warns here"
    assert cell_scores["eve-alternative", "jacobian"]["test_step_jacobian"] == 3


def test_without_the_warning_filter_that_answer_would_lose_points(demo, tmp_path):
    """The same submission, autograded in a copy of the course with IgnorePattern off."""
    root, _ = demo
    copy = tmp_path / "no-filter"
    shutil.copytree(root, copy)
    config = copy / "nbgrader_config.py"
    on, off = "c.IgnorePattern.enabled = True", "c.IgnorePattern.enabled = False"
    assert on in config.read_text()
    config.write_text(config.read_text().replace(on, off))
    instructor.nbgrader(
        copy, "autograde", "jacobian", "--student", "eve-alternative", "--force",
        "--log-level=ERROR",
    )
    with instructor.gradebook(copy) as gb:
        nb = gb.find_submission_notebook("jacobian", "jacobian", "eve-alternative")
        lost = {g.name: g.score for g in nb.grades if g.name in FULL["jacobian"]}
    assert lost["test_step_jacobian"] == 0, "stderr in a test cell scores 0 in plain nbgrader"


@pytest.mark.parametrize("student", ["ada-reference", "eve-alternative"])
def test_test_cells_print_nothing_on_stderr_for_correct_work(demo, student):
    root, _ = demo
    for assignment in ROSTER[student]:
        path = root / "autograded" / student / assignment / f"{assignment}.ipynb"
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code":
                streams = [o for o in cell.outputs if o.get("name") == "stderr"]
                assert not streams, (assignment, cell.metadata["nbgrader"]["grade_id"], streams)
                assert not [o for o in cell.outputs if o.output_type == "error"]
