"""Every notebook opened and run the way a student does: JupyterLab, Run > Run All Cells.

Lectures (course/*.ipynb) must finish without a single error output. Assignments
(release/*/*.ipynb, the student versions) must fail only where an answer is still
missing (NotImplementedError), and must show nbgrader's Validate button. The
widgets must answer a slider: the n-gram window control changes the predictions,
the gradient-flow explorer redraws its figure.
"""

import re

import pytest
from lab_widgets import move_slider, slider_labels, view_of_slider
from labdriver import ASSIGNMENTS, LECTURES, CellError, notebooks_in_repo
from playwright.sync_api import expect

WIDGET_TIMEOUT_MS = 60_000


def each(paths, where):
    """Parametrize over `paths`; with none yet, one skipped case that says so."""
    if paths:
        return paths
    return [pytest.param(None, marks=pytest.mark.skip(reason=f"no {where} yet"))]


def unexplained(errors):
    """The errors that no unanswered cell explains, in cell order.

    Explained: a NotImplementedError (an answer not written yet, raised where it is
    called); or a NameError for a name that appears in an earlier cell that itself
    stopped on an explained error. nbgrader replaces a whole solution region by
    `raise NotImplementedError()`, so the variables an answer cell defines, and those
    of a setup cell that calls an unanswered function, are missing below it until
    the student answers. A typo in a test cell, or a name no cell mentions, stays
    unexplained.
    """
    stopped, left = [], []
    for error in sorted(errors, key=lambda e: e.cell):
        missing = re.fullmatch(r"name '(\w+)' is not defined", error.evalue)
        if error.ename == "NotImplementedError" or (
                error.ename == "NameError" and missing is not None and any(
                    re.search(rf"\b{missing[1]}\b", source) for source in stopped)):
            stopped.append(error.source)
        else:
            left.append(error)
    return left


def test_unexplained_keeps_typos_and_other_errors_but_not_missing_answers():
    answer = {"solution": True, "grade_id": "ans"}
    errors = [
        CellError(3, "NotImplementedError", "", answer, "raise NotImplementedError()\nprint(x)"),
        CellError(4, "NameError", "name 'x' is not defined", {}, "assert x > 0"),
        CellError(5, "NotImplementedError", "", {}, "data = make_batch(3)\ndef run(): pass"),
        CellError(6, "NameError", "name 'run' is not defined", {}, "out = run()"),
        CellError(7, "NameError", "name 'out' is not defined", {}, "assert out"),
        CellError(8, "NameError", "name 'helpr' is not defined", {}, "helpr(1)"),
        CellError(9, "ValueError", "bad shape", {}, "check(x)"),
        CellError(2, "NameError", "name 'x' is not defined", {}, "print(x)"),
    ]
    assert [e.cell for e in unexplained(errors)] == [2, 8, 9]


@pytest.mark.parametrize("path", each(LECTURES, "course/*.ipynb"))
def test_lecture_runs_in_jupyterlab_without_errors(notebooks, path):
    run = notebooks.run_all(path)
    shot = notebooks.screenshot(run)
    assert not run.errors, (
        f"{path}: Run All Cells stopped on an error output in JupyterLab "
        f"(screenshot {shot}):\n" + "\n".join(map(str, run.errors)))


@pytest.mark.parametrize("path", each(ASSIGNMENTS, "release/*/*.ipynb"))
def test_assignment_fails_only_in_unanswered_cells_and_offers_validate(notebooks, path):
    run = notebooks.run_all(path)
    notebooks.run_on_past_errors(run)  # Run All stops at the first error: see them all
    shot = notebooks.screenshot(run)
    others = unexplained(run.errors)
    assert not others, (
        f"{path}: errors that no unanswered cell explains (screenshot {shot}):\n"
        + "\n".join(map(str, others)))
    assert run.errors, (
        f"{path}: the student version runs through without a NotImplementedError: "
        "are the solutions still in it?")
    validate = run.page.locator(".jp-NotebookPanel-toolbar .validate-button")
    expect(validate, "nbgrader's Validate button in the notebook toolbar").to_be_visible()
    expect(validate).to_have_text("Validate")
    expect(validate.locator("jp-button, button").first).to_be_enabled()


@pytest.mark.parametrize("path", each(notebooks_in_repo("course/01-*.ipynb"),
                                       "course/01-*.ipynb"))
def test_ngram_window_slider_changes_the_predictions_shown(notebooks, path):
    run = notebooks.ran(path)
    page = run.page
    assert "window k" in slider_labels(page), (
        f"{path}: no slider labelled 'window k' (rnncourse.ngram_widget.window_explorer) after "
        f"running all cells; sliders found: {slider_labels(page)}")
    view = view_of_slider(page, "window k")
    shown = {view.text()}
    lo, hi = move_slider(page, "window k", to="min")
    for k in range(lo + 1, hi + 1):
        before = view.text()
        move_slider(page, "window k", to="right")
        expect(view.report, f"report redrawn for k = {k}").to_contain_text(
            f"window k = {k}", timeout=WIDGET_TIMEOUT_MS)
        assert view.text() != before
        shown.add(view.text())
    predictions = {text.split("reads:", 1)[-1] for text in shown}
    assert len(predictions) > 1, (
        f"{path}: moving 'window k' from {lo} to {hi} never changed the predicted words")


@pytest.mark.parametrize("path", each(LECTURES, "course/*.ipynb"))
def test_every_slider_redraws_its_widget(notebooks, path):
    """Each slider in a lecture's live widgets, moved one step, changes the figure or
    text it controls (the gradient-flow explorer of notebook 05 among them)."""
    run = notebooks.ran(path)
    labels = slider_labels(run.page)
    if not labels:
        pytest.skip(f"{path} shows no slider")
    stuck = []
    for label in labels:
        view = view_of_slider(run.page, label)
        before = view.signature()
        move_slider(run.page, label, to="left" if view.at_max() else "right")
        if not view.changed_from(before, WIDGET_TIMEOUT_MS):
            stuck.append(label)
    assert not stuck, f"{path}: moving these sliders changed nothing on screen: {stuck}"


@pytest.mark.parametrize("path", each(notebooks_in_repo("course/05-*.ipynb"),
                                       "course/05-*.ipynb"))
@pytest.mark.parametrize("label", ["radius", "T"])
def test_gradient_flow_explorer_slider_redraws_the_figure(notebooks, path, label):
    """rnncourse.flow_explorer.widget: the spectral radius and the sequence length T
    each change the gradient norms per step, so the figure must be drawn anew."""
    run = notebooks.ran(path)
    labels = slider_labels(run.page)
    assert label in labels, (
        f"{path}: no slider labelled {label!r} (rnncourse.flow_explorer.widget) after running "
        f"all cells; sliders found: {labels}")
    view = view_of_slider(run.page, label)
    before = view.figures()
    assert before, f"{path}: the widget holding slider {label!r} shows no figure"
    move_slider(run.page, label, to="left" if view.at_max() else "right")
    assert view.changed_from(before, WIDGET_TIMEOUT_MS, what=view.figures), (
        f"{path}: moving {label!r} one step did not redraw the explorer's figure")
