"""The graded assignments as authored: structure, validation, and a release that matches.

Every nbgrader run here happens in a temporary copy of the course (config, source/,
release/), so nothing in the repository is written: no gradebook.db, no autograded/.
"""

import ast
import json
import os
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from rnngrading.course import ASSIGNMENTS, REPO, own_bin_first

# (autograded points, written points) per assignment, as the notebooks' tables say
POINTS = {"jacobian": (9, 4), "eigenvalues": (13, 5), "copy_task": (9, 4),
          "rnn_from_scratch": (25, 6)}


def nbgrader_run(course, *args):
    """Run nbgrader in `course` (this environment's bin first on PATH); its output captured."""
    env = dict(os.environ)
    env["PATH"] = own_bin_first(env.get("PATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
        capture_output=True, text=True,
    )


def copy_course(dest, parts=("source", "release")):
    """A throwaway course root: the config, the limits it reads and the named folders."""
    for name in ("nbgrader_config.py", "grading_limits.toml"):
        shutil.copy2(REPO / name, dest / name)
    for part in parts:
        shutil.copytree(REPO / part, dest / part, ignore=shutil.ignore_patterns(".gitkeep"))
    return dest


def notebooks(folder):
    return {a: sorted((REPO / folder / a).glob("*.ipynb")) for a in ASSIGNMENTS}


def nbgrader_meta(cell):
    return cell.metadata.get("nbgrader", {})


def cells_of(assignment, folder="source"):
    (path,) = notebooks(folder)[assignment]
    return nbformat.read(path, as_version=4).cells


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_each_assignment_is_one_source_and_one_release_notebook(assignment):
    assert [p.name for p in notebooks("source")[assignment]] == [f"{assignment}.ipynb"]
    assert [p.name for p in notebooks("release")[assignment]] == [f"{assignment}.ipynb"]
    assert not (REPO / "source" / ".gitkeep").exists()
    assert not (REPO / "release" / ".gitkeep").exists()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_points_split_between_autograded_tests_and_written_answers(assignment):
    cells = cells_of(assignment)
    tests = [c for c in cells if nbgrader_meta(c).get("grade") and not nbgrader_meta(c)["solution"]]
    written = [c for c in cells if nbgrader_meta(c).get("grade") and nbgrader_meta(c)["solution"]]
    assert sum(nbgrader_meta(c)["points"] for c in tests) == POINTS[assignment][0]
    assert sum(nbgrader_meta(c)["points"] for c in written) == POINTS[assignment][1]
    assert written and all(c.cell_type == "markdown" for c in written), "a written answer each"
    assert all(c.cell_type == "code" and nbgrader_meta(c)["locked"] for c in tests)
    assert all(nbgrader_meta(c)["points"] > 0 for c in tests + written)
    ids = [nbgrader_meta(c)["grade_id"] for c in cells]
    assert len(ids) == len(set(ids)), "grade ids are unique"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_hidden_checks_live_in_the_judge_and_every_answer_cell_has_a_solution_region(
        assignment):
    cells = cells_of(assignment)
    tests = [c for c in cells if nbgrader_meta(c).get("grade") and c.cell_type == "code"]
    assert tests and not any("### BEGIN HIDDEN TESTS" in c.source for c in tests)
    assert (REPO / "source" / assignment / "judge.py").is_file()
    for cell in cells:
        if cell.cell_type == "code" and nbgrader_meta(cell).get("solution"):
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_test_cells_end_in_a_statement_not_a_value(assignment):
    """nbgrader reads a number shown by a test cell as a partial score: show none."""
    for cell in cells_of(assignment):
        if nbgrader_meta(cell).get("grade") and cell.cell_type == "code":
            body = ast.parse(cell.source).body
            assert not isinstance(body[-1], ast.Expr), nbgrader_meta(cell)["grade_id"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_notebooks_do_not_import_the_library_answers(assignment):
    """Non-graded plumbing may use rnncourse; what the student sees must not hand out answers."""
    for cell in cells_of(assignment, "release"):
        assert not re.search(r"\bimport rnncourse|\bfrom rnncourse\b", cell.source)


def test_copy_task_notebook_uses_the_syllabus_definition_and_baseline():
    source = "\n".join(c.source for c in cells_of("copy_task"))
    # T is the sequence length everywhere in the course; the copy task's delay is d (`delay`)
    assert "delay + 20" in source and "10 log 8 / (d + 20)" in source.replace("\\", "")
    assert "T = d + 20" in source and not re.search(r"\bT\b", code_of("copy_task"))
    budget = next(c for c in cells_of("copy_task") if nbgrader_meta(c).get("grade_id") == "budget")
    assert "DELAY, HIDDEN, STEPS, BATCH =" in budget.source


def code_of(assignment):
    return "\n".join(c.source for c in cells_of(assignment) if c.cell_type == "code")


def test_the_assignments_use_the_library_signature_and_forget_bias():
    """jacobian_product(h, W_h, k) as in rnncourse.gradients; the forget bias of lecture 06."""
    assert "def jacobian_product(h, W_h, k):" in code_of("jacobian")
    assert "bias_ih_l0[H:2 * H].fill_(3.0)" in code_of("copy_task")


def test_no_answer_of_a_later_part_shows_in_an_earlier_visible_test():
    """Part 7's matrix (rho = sqrt(1.17), "explode") is not used by Part 2's visible test."""
    cells = {nbgrader_meta(c).get("grade_id"): c.source for c in cells_of("eigenvalues", "release")}
    assert "1.17" not in cells["test_spectral_radius"]
    assert "-0.82" not in cells["test_spectral_radius"]
    assert "explode" not in cells["test_spectral_radius"]


def canonical(path):
    """What generate_assignment decides about a notebook: cells and metadata, no run data."""
    nb = nbformat.read(path, as_version=4)
    cells = [
        {"type": c.cell_type, "id": c.get("id"), "source": c.source, "metadata": dict(c.metadata)}
        for c in nb.cells
    ]
    return {"metadata": dict(nb.metadata), "cells": json.loads(json.dumps(cells))}


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    """release/ made afresh from source/ in a temporary course."""
    course = copy_course(tmp_path_factory.mktemp("regenerate"), parts=("source",))
    for assignment in ASSIGNMENTS:
        proc = nbgrader_run(course, "generate_assignment", assignment, "--force")
        assert proc.returncode == 0, proc.stderr[-2000:]
    return course / "release"


@pytest.mark.grading  # nbgrader runs the notebooks
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_not_stale_against_source(regenerated, assignment):
    committed = sorted(p.name for p in (REPO / "release" / assignment).iterdir())
    fresh = sorted(p.name for p in (regenerated / assignment).iterdir())
    assert committed == fresh
    for name in fresh:
        assert canonical(REPO / "release" / assignment / name) == canonical(
            regenerated / assignment / name
        ), f"release/{assignment}/{name} is stale: run `make instructor-release` and commit it"


def test_release_hides_solutions_and_hidden_tests():
    for assignment in ASSIGNMENTS:
        text = (REPO / "release" / assignment / f"{assignment}.ipynb").read_text()
        for marker in ("BEGIN SOLUTION", "HIDDEN TESTS", "Model answer", "Marking:"):
            assert marker not in text, (assignment, marker)
        assert "raise NotImplementedError()" in text and "YOUR ANSWER HERE" in text


@pytest.mark.grading  # nbgrader runs the notebooks
def test_source_notebooks_pass_their_own_tests(tmp_path):
    """nbgrader validate on the instructor versions: every test passes (the copy task trains)."""
    course = copy_course(tmp_path, parts=("source",))
    paths = [str(p.relative_to(REPO)) for a in ASSIGNMENTS for p in notebooks("source")[a]]
    proc = nbgrader_run(course, "validate", *paths)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    passed = proc.stdout.count("Success! Your notebook passes all the tests.")
    assert passed == len(ASSIGNMENTS), proc.stdout[-3000:]


@pytest.mark.grading  # nbgrader runs the notebooks
def test_release_notebooks_fail_every_test_when_blank(tmp_path):
    """nbgrader validate --invert on the student versions: no test passes on a blank."""
    course = copy_course(tmp_path, parts=("release",))
    paths = [str(p.relative_to(REPO)) for a in ASSIGNMENTS for p in notebooks("release")[a]]
    proc = nbgrader_run(course, "validate", "--invert", *paths)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    failed_all = proc.stdout.count("Success! The notebook does not pass any test")
    assert failed_all == len(ASSIGNMENTS), proc.stdout[-3000:]
