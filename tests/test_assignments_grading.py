"""The grader gives the right score to right, wrong and partly right work.

One run of the instructor demo (rnngrading.instructor demo) in a temporary folder builds
the simulated class of tests/fixtures/submissions/roster.json from the fixture cases,
collects it (one assignment from a zip), autogrades it into a fresh SQLite gradebook,
makes the feedback and exports the CSV. Every test below reads that one run.
The repository's own gradebook.db, submitted/, autograded/ and feedback/ are not touched.
"""

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from rnngrading import course, feedback, gradebook, runner
from rnngrading.course import FIXTURES, REPO, own_bin_first

pytestmark = pytest.mark.grading  # the demo autogrades a class of fixture submissions
ROSTER = json.loads((FIXTURES / "roster.json").read_text())["students"]

# Autograded points per test cell for each fixture case, worked out from what each case
# gets right and wrong (see the case.json files), not read off a grading run.
FULL = {
    "jacobian": {"test_step_jacobian": 3, "test_numerical_jacobian": 2,
                 "test_jacobian_product": 3, "test_textbook": 1},
    "eigenvalues": {"test_eigenvalues": 1, "test_spectral_radius": 2, "test_spectral_norm": 2,
                    "test_predict_linear_gradient": 2, "test_random_with_spectral_radius": 2,
                    "test_linear_gradient_norms": 2, "test_textbook_2d": 2},
    "copy_task": {"test_copy_task_batch": 3, "test_copy_task_baseline": 1,
                  "test_train_copy": 3, "test_lstm_beats_baseline": 2},
    "rnn_from_scratch": {"test_rnn_step_forward": 2, "test_rnn_step_backward": 3,
                         "test_rnn_forward": 2, "test_rnn_backward": 4,
                         "test_softmax_cross_entropy": 3, "test_numerical_gradient": 2,
                         "test_lstm_step_forward": 3, "test_lstm_cell_jacobian": 2,
                         "test_train_rnn": 4},
}


def scores(assignment, **changes):
    """FULL with some cells scored differently."""
    return {**FULL[assignment], **changes}


def zeros(assignment):
    return dict.fromkeys(FULL[assignment], 0)


EXPECTED = {
    # Each mistake costs the part it breaks and no other: a later part either checks against
    # autograd / NumPy's own version of the earlier part, or is done by hand.
    "jacobian": {
        "reference": scores("jacobian"),
        "blank": zeros("jacobian"),
        "partial": scores("jacobian", test_jacobian_product=0, test_textbook=0),
        # the product takes the states and W_h (the library's signature), the textbook case
        # is worked by hand: neither calls step_jacobian
        "transposed": scores("jacobian", test_step_jacobian=0),
        "one_minus_z_squared": scores("jacobian", test_step_jacobian=0),
        "alternative": scores("jacobian"),
        "loops_float32": scores("jacobian"),
        # a one-sided difference with a step of its own passed Part 2's checks until the
        # v**3 check with eps = 0.1
        "fixed_step": scores("jacobian", test_numerical_jacobian=0),
    },
    "eigenvalues": {
        "reference": scores("eigenvalues"),
        "blank": zeros("eigenvalues"),
        "partial": scores("eigenvalues", test_predict_linear_gradient=0,
                          test_random_with_spectral_radius=0, test_linear_gradient_norms=0,
                          test_textbook_2d=0),
        # Part 7 is worked by hand from the trace and determinant
        "real_part_radius": scores("eigenvalues", test_spectral_radius=0),
        # Part 6 runs with NumPy's spectral norm in place of the student's
        "frobenius_norm": scores("eigenvalues", test_spectral_norm=0),
        # the two hints of Part 1 that could never fire: each now fires, on Part 1 only
        "singular_values": scores("eigenvalues", test_eigenvalues=0),
        "eigvalsh_default": scores("eigenvalues", test_eigenvalues=0),
        "alternative": scores("eigenvalues"),
        "float32": scores("eigenvalues"),
    },
    "copy_task": {
        "reference": scores("copy_task"),
        "blank": zeros("copy_task"),
        "partial": scores("copy_task", test_train_copy=0, test_lstm_beats_baseline=0),
        # the LSTM still learns the (shifted) task it is given, and beats the true baseline;
        # Part 3 checks the loop on the student's own batches
        "off_by_one_and_baseline": scores("copy_task", test_copy_task_batch=0,
                                          test_copy_task_baseline=0),
        # Part 3 watches the process: gradients at optimizer.step() not clipped
        "no_clipping": scores("copy_task", test_train_copy=0),
        "alternative": scores("copy_task"),
        "manual_clipping": scores("copy_task"),
    },
    # Every later part runs with reference versions of the earlier parts in place of the
    # student's (or checks against the student's own earlier part), so each mistake costs
    # its own part only.
    "rnn_from_scratch": {
        "reference": scores("rnn_from_scratch"),
        "blank": zeros("rnn_from_scratch"),
        "partial": scores("rnn_from_scratch", test_softmax_cross_entropy=0,
                          test_numerical_gradient=0, test_lstm_step_forward=0,
                          test_lstm_cell_jacobian=0, test_train_rnn=0),
        "transposed_w_h": scores("rnn_from_scratch", test_rnn_step_forward=0),
        "one_minus_z_squared": scores("rnn_from_scratch", test_rnn_step_backward=0),
        "forward_off_by_one": scores("rnn_from_scratch", test_rnn_forward=0),
        "overwritten_gradients": scores("rnn_from_scratch", test_rnn_backward=0),
        "forgotten_dh_next": scores("rnn_from_scratch", test_rnn_backward=0),
        "loss_over_n_only": scores("rnn_from_scratch", test_softmax_cross_entropy=0),
        "one_sided_difference": scores("rnn_from_scratch", test_numerical_gradient=0),
        # Part 8 reads f from the student's own gates, which sit in the right slice
        "gate_order": scores("rnn_from_scratch", test_lstm_step_forward=0),
        "hidden_state_jacobian": scores("rnn_from_scratch", test_lstm_cell_jacobian=0),
        "per_array_clipping": scores("rnn_from_scratch", test_train_rnn=0),
        "alternative": scores("rnn_from_scratch"),
        "float32": scores("rnn_from_scratch"),
    },
}
WRITTEN_POINTS = {"jacobian": 4, "eigenvalues": 5, "copy_task": 4, "rnn_from_scratch": 6}
SUBMISSIONS = [
    (student, assignment, case)
    for student, cases in ROSTER.items()
    for assignment, case in cases.items()
]



def repository_digest():
    """{path: sha256} of every file of the repository but .git, .venv and caches."""
    skip = {".git", ".venv", "__pycache__", ".ipynb_checkpoints", ".ruff_cache"}
    return {str(p.relative_to(REPO)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(REPO.rglob("*"))
            if p.is_file() and not skip & set(p.relative_to(REPO).parts)
            and not any(part.endswith(".egg-info") for part in p.parts)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The instructor demo, run once: (course root, its stdout, and the repository's digest
    before and after it)."""
    before = repository_digest()
    root = tmp_path_factory.mktemp("class") / "demo-course"
    env = dict(os.environ)
    env["PATH"] = own_bin_first(env.get("PATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "rnngrading.instructor", "demo", "--dir", str(root)],
        cwd=REPO, env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return root, proc.stdout, before, repository_digest()


@pytest.fixture(scope="module")
def cell_scores(demo):
    """{(student, assignment): {grade id: score}} for the autograded test cells."""
    root, *_ = demo
    found = {}
    with course.gradebook(root) as gb:
        for student, assignment, _ in SUBMISSIONS:
            nb = gb.find_submission_notebook(assignment, assignment, student)
            found[student, assignment] = {
                g.name: g.score for g in nb.grades if g.name in FULL[assignment]
            }
    return found


def test_the_demo_leaves_the_repository_alone(demo):
    root, _, before, after = demo
    assert (root / "gradebook.db").is_file()
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert not changed, f"the demo changed the repository: {changed[:5]}"


@pytest.mark.parametrize(("student", "assignment", "case"), SUBMISSIONS)
def test_each_fixture_gets_exactly_its_expected_score(cell_scores, student, assignment, case):
    assert cell_scores[student, assignment] == EXPECTED[assignment][case]


def test_the_reference_gets_full_marks_and_the_blank_release_zero(cell_scores):
    for assignment, full in FULL.items():
        assert sum(cell_scores["ada-reference", assignment].values()) == sum(full.values())
        assert sum(cell_scores["ben-blank", assignment].values()) == 0


def test_written_answers_wait_for_a_human(demo):
    root, *_ = demo
    with course.gradebook(root) as gb:
        for assignment, written in WRITTEN_POINTS.items():
            assert gb.find_assignment(assignment).max_written_score == written
            assert gb.find_submission(assignment, "ada-reference").needs_manual_grade
            assert gb.find_submission(assignment, "ada-reference").written_score == 0


def test_a_student_with_no_submission_is_reported_missing(demo):
    root, stdout, *_ = demo
    assert "copy_task" not in ROSTER["finn-mistakes"]
    _, rows = gradebook.grade_rows(root)
    assert rows["finn-mistakes"]["copy_task"] is None
    finn = next(line for line in stdout.splitlines() if line.startswith("finn-mistakes"))
    assert "missing" in finn


def test_the_demo_prints_the_grade_table(demo):
    _, stdout, *_ = demo
    assert "student" in stdout and "written answers" in stdout
    for student in ROSTER:
        assert any(line.startswith(student) for line in stdout.splitlines()), student
    ada = next(line for line in stdout.splitlines() if line.startswith("ada-reference"))
    totals = [str(sum(FULL[a].values())) for a in FULL]  # FULL is in course order
    assert ada.split()[1:1 + 3 * len(FULL)] == [x for t in totals for x in (t, "/", t)]


def test_the_exported_csv_has_a_row_per_student_and_assignment(demo):
    root, *_ = demo
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


def test_feedback_pages_show_the_judges_verdicts_and_no_hidden_case(demo):
    root, *_ = demo
    for assignment in FULL:
        pages = sorted((root / "feedback").glob(f"*/{assignment}/*.html"))
        assert len(pages) == sum(1 for _, a, _ in SUBMISSIONS if a == assignment)
        for page in pages:
            text = feedback.html_text(page.read_text(encoding="utf-8"))
            assert "HIDDEN TESTS" not in text, page
            verdicts = re.findall(r"Judged outside your kernel: [\d.]+ / [\d.]+", text)
            assert len(verdicts) == len(FULL[assignment]), page
            # a hidden case is named by its number; what follows is a reason, not its data
            for why in re.findall(r"hidden check \d+ of \d+: ([^¶]{0,120})", text):
                assert "[" not in why and "array(" not in why, (page, why)
    # The page shows code at all: the visible tests, their hints, and the judge's reason.
    page = root / "feedback" / "dev-mistakes" / "jacobian" / "jacobian.html"
    text = feedback.html_text(page.read_text(encoding="utf-8"))
    assert "Part 1 tests" in text
    assert "AssertionError: This is the transposed Jacobian" in text
    assert ("Judged outside your kernel: 0 / 3. the visible test's case (H = 2, D = 1): "
            "This is the transposed Jacobian") in text


def test_no_judge_file_or_secret_reaches_a_student_folder(demo):
    root, *_ = demo
    assert (root / ".judge_secret").is_file()
    for folder in ("release", "autograded", "feedback", "submitted"):
        assert not list((root / folder).rglob("judge.py")), folder
        assert not list((root / folder).rglob(".judge_secret")), folder


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


def test_without_the_warning_filter_the_judge_still_gives_full_marks(demo, tmp_path):
    """The same submission graded in a copy of the course with IgnorePattern off: in plain
    nbgrader the warning on stderr scored that test cell 0; the judge ignores cell output."""
    root, *_ = demo
    copy = tmp_path / "no-filter"
    shutil.copytree(root, copy)
    config = copy / "nbgrader_config.py"
    on, off = "c.IgnorePattern.enabled = True", "c.IgnorePattern.enabled = False"
    assert on in config.read_text()
    config.write_text(config.read_text().replace(on, off))
    notebook = copy / "submitted" / "eve-alternative" / "jacobian" / "jacobian.ipynb"
    result = runner.grade_one(notebook, "jacobian", "eve-alternative", copy)
    assert result.graded and result.scores["test_step_jacobian"] == 3, result.line()


@pytest.mark.parametrize("student", ["ada-reference", "eve-alternative"])
def test_test_cells_print_nothing_on_stderr_for_correct_work(demo, student):
    root, *_ = demo
    for assignment in ROSTER[student]:
        path = root / "autograded" / student / assignment / f"{assignment}.ipynb"
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code":
                streams = [o for o in cell.outputs if o.get("name") == "stderr"]
                assert not streams, (assignment, cell.metadata["nbgrader"]["grade_id"], streams)
                assert not [o for o in cell.outputs if o.output_type == "error"]
