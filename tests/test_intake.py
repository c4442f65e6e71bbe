"""Intake of a folder of submissions (rnngrading.intake) and the output caps in bytes
(rnngrading.outputs): a hostile class cannot get another's notebook graded, hide a
student, forge a report line, or fill the disk with output.

Every folder is built in tmp_path; the one kernel run uses nbclient, no course.
"""

import json
import os
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from rnngrading import intake
from rnngrading import outputs as caps

NB = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
MB = 2**20


def put(path, text=NB):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def collect(folder, max_bytes=MB, **kw):
    return intake.collect(folder, "jacobian", max_bytes, **kw)


def refused(folder, **kw):
    """{shown id: reason} of the refusals."""
    return dict(collect(folder, **kw)[1])


# ------------------------------------------------------------------ layouts


def test_each_student_is_found_in_either_layout_in_one_batch(tmp_path):
    ada = put(tmp_path / "ada" / "jacobian.ipynb")
    ben = put(tmp_path / "ben" / "jacobian" / "jacobian.ipynb")
    cy = put(tmp_path / "cy" / "jacobian.ipynb")
    jobs, refusals = collect(tmp_path)
    assert jobs == [("ada", ada), ("ben", ben), ("cy", cy)]
    assert refusals == []


def test_a_student_with_both_layouts_is_refused_as_two_copies(tmp_path):
    put(tmp_path / "ada" / "jacobian.ipynb")
    put(tmp_path / "ada" / "jacobian" / "jacobian.ipynb")
    put(tmp_path / "ben" / "jacobian.ipynb")
    jobs, refusals = collect(tmp_path)
    assert [student for student, _ in jobs] == ["ben"]
    assert refusals[0][0] == "ada" and refusals[0][1].startswith("two copies: ")


def test_a_single_wrongly_named_notebook_is_passed_on_for_the_precheck(tmp_path):
    notebook = put(tmp_path / "ada" / "Jacobian (1).ipynb")
    jobs, refusals = collect(tmp_path)
    assert jobs == [("ada", notebook)] and refusals == []


def test_several_notebooks_none_of_the_expected_name_are_refused_with_their_names(tmp_path):
    put(tmp_path / "ada" / "draft.ipynb")
    put(tmp_path / "ada" / "work" / "final.ipynb")
    reason = refused(tmp_path)["ada"]
    assert "no jacobian.ipynb" in reason and "draft.ipynb" in reason
    assert "work/final.ipynb" in reason


def test_the_expected_notebook_wins_over_other_notebooks(tmp_path):
    notebook = put(tmp_path / "ada" / "jacobian.ipynb")
    put(tmp_path / "ada" / "scratch.ipynb")
    assert collect(tmp_path)[0] == [("ada", notebook)]


def test_a_folder_without_notebook_is_refused(tmp_path):
    put(tmp_path / "ada" / "notes.txt", "hello")
    assert "no notebook" in refused(tmp_path)["ada"]


def test_checkpoints_and_hidden_notebooks_are_never_taken(tmp_path):
    notebook = put(tmp_path / "ada" / "jacobian.ipynb")
    put(tmp_path / "ada" / ".ipynb_checkpoints" / "jacobian-checkpoint.ipynb")
    put(tmp_path / "ben" / ".ipynb_checkpoints" / "jacobian.ipynb")
    put(tmp_path / "ben" / ".hidden.ipynb")
    jobs, refusals = collect(tmp_path)
    assert jobs == [("ada", notebook)]
    assert refusals[0][0] == "ben" and "no notebook" in refusals[0][1]


def test_hidden_entries_of_the_folder_are_ignored_but_plain_files_are_listed(tmp_path):
    put(tmp_path / ".git" / "config", "x")
    put(tmp_path / ".DS_Store", "x")
    put(tmp_path / "submissions.zip", "PK")
    put(tmp_path / "ada" / "jacobian.ipynb")
    jobs, refusals = collect(tmp_path)
    assert [student for student, _ in jobs] == ["ada"]
    assert refusals == [("submissions.zip", "not a folder (a file): not graded")]


def test_output_is_sorted_and_the_same_run_after_run(tmp_path):
    for name in ("zoe", "ada", "Mia", "ben"):
        put(tmp_path / name / "jacobian.ipynb")
    for name in ("yan", "al"):
        (tmp_path / name).mkdir()
    first = collect(tmp_path)
    assert first == collect(tmp_path)
    assert [s for s, _ in first[0]] == ["Mia", "ada", "ben", "zoe"]
    assert [s for s, _ in first[1]] == ["al", "yan"]


# ------------------------------------------------------------------ symlinks


@pytest.fixture
def solution(tmp_path):
    """An instructor's source/ folder next to the submissions."""
    path = put(tmp_path / "source" / "jacobian" / "jacobian.ipynb", NB.replace("{}", '{"x": 1}'))
    (tmp_path / "in").mkdir()
    return path


def test_a_student_folder_that_is_a_symlink_is_refused(tmp_path, solution):
    os.symlink(solution.parent, tmp_path / "in" / "eve")
    jobs, refusals = collect(tmp_path / "in")
    assert jobs == [] and refusals == [("eve", "a symlink, not a folder: not graded")]


def test_a_notebook_that_is_a_symlink_is_refused(tmp_path, solution):
    (tmp_path / "in" / "eve").mkdir()
    os.symlink(solution, tmp_path / "in" / "eve" / "jacobian.ipynb")
    jobs, refusals = collect(tmp_path / "in")
    assert jobs == [] and "symlink inside the folder (jacobian.ipynb)" in refusals[0][1]


def test_an_assignment_folder_that_is_a_symlink_is_refused(tmp_path, solution):
    (tmp_path / "in" / "eve").mkdir()
    os.symlink(solution.parent, tmp_path / "in" / "eve" / "jacobian")
    jobs, refusals = collect(tmp_path / "in")
    assert jobs == [] and "symlink" in refusals[0][1]


@pytest.mark.parametrize("where", ["data/link", ".hidden-link", ".ipynb_checkpoints/link",
                                   "deep/er/dangling"])
def test_a_symlink_anywhere_in_the_folder_refuses_that_student_only(tmp_path, solution, where):
    put(tmp_path / "in" / "eve" / "jacobian.ipynb")
    put(tmp_path / "in" / "ada" / "jacobian.ipynb")
    link = tmp_path / "in" / "eve" / where
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(solution if "dangling" not in where else tmp_path / "nowhere", link)
    jobs, refusals = collect(tmp_path / "in")
    assert [s for s, _ in jobs] == ["ada"]
    assert refusals == [("eve", f"symlink inside the folder ({where}): not graded")]


def test_a_hidden_symlink_in_the_folder_is_refused_not_ignored(tmp_path, solution):
    os.symlink(solution.parent, tmp_path / "in" / ".eve")
    assert refused(tmp_path / "in") == {".eve": "a symlink, not a folder: not graded"}


# ------------------------------------------------------------------ special files


def test_a_fifo_named_like_the_notebook_is_refused(tmp_path):
    (tmp_path / "eve").mkdir()
    os.mkfifo(tmp_path / "eve" / "jacobian.ipynb")
    assert "not a regular file (a fifo)" in refused(tmp_path)["eve"]


def test_a_folder_named_like_the_notebook_is_refused(tmp_path):
    (tmp_path / "eve" / "jacobian.ipynb").mkdir(parents=True)
    assert "not a regular file (a folder)" in refused(tmp_path)["eve"]


def test_a_fifo_anywhere_in_the_folder_is_refused(tmp_path):
    put(tmp_path / "eve" / "jacobian.ipynb")
    os.mkfifo(tmp_path / "eve" / "pipe")
    assert refused(tmp_path) == {"eve": "fifo inside the folder (pipe): not graded"}


def test_a_fifo_in_the_batch_folder_is_listed(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    assert refused(tmp_path) == {"pipe": "not a folder (a fifo): not graded"}


# ------------------------------------------------------------------ ids and the report


@pytest.mark.parametrize("name", ["a b", "é", "x" * 65, "a;rm", "semi\tcolon", "ctrl\x1b[2J"])
def test_ids_outside_safe_id_are_refused(tmp_path, name):
    put(tmp_path / name / "jacobian.ipynb")
    jobs, refusals = collect(tmp_path)
    assert jobs == [] and "student id not allowed" in refusals[0][1]


@pytest.mark.parametrize("name", ["a", "A-1_b.c", "x" * 64, "2024.s01"])
def test_ids_inside_safe_id_are_graded(tmp_path, name):
    put(tmp_path / name / "jacobian.ipynb")
    assert [s for s, _ in collect(tmp_path)[0]] == [name]


def test_an_id_with_a_newline_cannot_forge_a_report_line(tmp_path):
    forged = "eve\nmallory              jacobian     9 / 9  ok"
    put(tmp_path / forged / "jacobian.ipynb")
    put(tmp_path / "mallory" / "jacobian.ipynb")
    jobs, refusals = collect(tmp_path)
    assert [s for s, _ in jobs] == ["mallory"]
    (shown, reason), = refusals
    report = f"{shown:<20} {reason}\n"
    assert report.count("\n") == 1 and "\\n" in shown
    assert not any(line.startswith("mallory") for line in report.splitlines())


@pytest.mark.parametrize("text, expected", [
    ("ada", "ada"),
    ("a\nb\rc\td", "a\\nb\\rc\\td"),
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("line\u2028para\u2029next\x85", "line\\u2028para\\u2029next\\x85"),
    ("rtl\u202eevil", "rtl\\u202eevil"),
    ("back\\slash", "back\\\\slash"),
    (b"bad\xffbyte", "bad\\udcffbyte"),
    ("naïve café", "naïve café"),
])
def test_one_line_escapes_what_could_break_or_fake_a_line(text, expected):
    assert intake.one_line(text) == expected


def test_one_line_cuts_long_text_with_a_marker_within_the_limit():
    shown = intake.one_line("\n" * 1000, limit=50)
    assert len(shown) <= 50 and shown.endswith("chars]")
    assert shown.startswith("\\n" * 10) and "\n" not in shown
    left = int(re.search(r"\+(\d+) chars", shown).group(1))
    assert left + shown.count("\\n") == 1000  # every character shown or counted


# ------------------------------------------------------------------ sizes


def test_a_notebook_over_max_bytes_is_refused(tmp_path):
    put(tmp_path / "eve" / "jacobian.ipynb", " " * 2000)
    put(tmp_path / "ada" / "jacobian.ipynb", " " * 1000)
    jobs, refusals = collect(tmp_path, max_bytes=1000)
    assert [s for s, _ in jobs] == ["ada"]
    assert "holds 2000 bytes, over the limit of 1000" in refusals[0][1]


def test_a_folder_over_its_total_size_is_refused(tmp_path):
    put(tmp_path / "eve" / "jacobian.ipynb", " " * 100)
    with open(tmp_path / "eve" / "data.bin", "wb") as sparse:  # sparse: no disk used
        sparse.truncate(intake.FOLDER_FACTOR * 1000 + 1)
    assert "over the limit of 5000" in refused(tmp_path, max_bytes=1000)["eve"]
    assert refused(tmp_path, max_bytes=1000, max_folder_bytes=10**6) == {}


def test_folders_nested_too_deep_are_refused(tmp_path):
    deep = tmp_path / "eve" / "/".join(["d"] * (intake.MAX_DEPTH + 2))
    put(deep / "jacobian.ipynb")
    assert "nested deeper" in refused(tmp_path)["eve"]


# ------------------------------------------------------------------ reading


def test_read_submission_reads_what_collect_listed(tmp_path):
    notebook = put(tmp_path / "ada" / "jacobian" / "jacobian.ipynb")
    (student, path), = collect(tmp_path)[0]
    assert (student, path) == ("ada", notebook)
    assert intake.read_submission(tmp_path, path, MB) == NB.encode()


def test_read_submission_refuses_a_notebook_swapped_for_a_symlink(tmp_path, solution):
    notebook = put(tmp_path / "in" / "eve" / "jacobian.ipynb")
    (_, path), = collect(tmp_path / "in")[0]
    notebook.unlink()
    os.symlink(solution, notebook)
    with pytest.raises(intake.Refused, match="changed"):
        intake.read_submission(tmp_path / "in", path, MB)


def test_read_submission_refuses_a_folder_swapped_for_a_symlink(tmp_path, solution):
    notebook = put(tmp_path / "in" / "eve" / "jacobian" / "jacobian.ipynb")
    (_, path), = collect(tmp_path / "in")[0]
    notebook.unlink()
    notebook.parent.rmdir()
    os.symlink(solution.parent, notebook.parent)
    with pytest.raises(intake.Refused, match="folder jacobian changed"):
        intake.read_submission(tmp_path / "in", path, MB)


def test_read_submission_refuses_a_fifo_without_blocking_and_a_grown_file(tmp_path):
    notebook = put(tmp_path / "eve" / "jacobian.ipynb")
    (_, path), = collect(tmp_path)[0]
    notebook.unlink()
    os.mkfifo(notebook)
    with pytest.raises(intake.Refused, match="not a regular file"):
        intake.read_submission(tmp_path, path, MB)
    notebook.unlink()
    put(notebook, " " * 2000)
    with pytest.raises(intake.Refused, match="bigger than the limit of 1000"):
        intake.read_submission(tmp_path, path, 1000)


# ------------------------------------------------------------------ output caps in bytes



def stream(text, name="stdout"):
    return new_output("stream", name=name, text=text)


def capped(outputs, cell=100_000, notebook=1_000_000, cells=1):
    """A notebook of `cells` code cells with these outputs, through LimitOutputBytes."""
    nb = new_notebook(cells=[new_code_cell("pass", outputs=json.loads(json.dumps(outputs)))
                             for _ in range(cells)])
    nb = nbformat.from_dict(nb)
    pre = caps.LimitOutputBytes(max_cell_bytes=cell, max_notebook_bytes=notebook)
    nb, _ = pre.preprocess(nb, {})
    return nb


def markers(cell):
    return [int(n) for out in cell.outputs if out.output_type == "stream"
            for n in re.findall(r"Output truncated \((\d+) bytes over the limit\)", out.text)]


def test_text_bytes_counts_what_the_saved_notebook_takes():
    assert caps.text_bytes("abc") == 3
    assert caps.text_bytes("é") == 2
    assert caps.text_bytes("\x00") == len('\\u0000')
    assert caps.text_bytes("a\nb") == len("a\\nb") + caps.LINE_COST


def test_small_outputs_pass_unchanged():
    outputs = [stream("hello\n"), new_output("display_data", data={"text/plain": "x"})]
    assert capped(outputs).cells[0].outputs == outputs


def test_a_5mb_line_is_cut_to_the_cell_cap_with_a_marker(tmp_path):
    nb = capped([stream("x" * 5_000_000)])
    out = nb.cells[0].outputs
    assert out[0].text == "x" * 100_000
    assert markers(nb.cells[0]) == [4_900_000]
    nbformat.write(nb, tmp_path / "nb.ipynb")
    assert (tmp_path / "nb.ipynb").stat().st_size < 101_000


def test_many_lines_count_their_layout_too(tmp_path):
    nb = capped([stream("\n" * 1_000_000)])
    nbformat.write(nb, tmp_path / "nb.ipynb")
    assert (tmp_path / "nb.ipynb").stat().st_size < 101_000


def test_the_notebook_cap_holds_across_cells(tmp_path):
    nb = capped([stream("y" * 80_000)], cell=100_000, notebook=200_000, cells=5)
    kept = [sum(len(o.text) for o in c.outputs if o.text.startswith("y")) for c in nb.cells]
    assert kept == [80_000, 80_000, 40_000, 0, 0]
    assert [markers(c) for c in nb.cells] == [[], [], [40_000], [80_000], [80_000]]
    nbformat.write(nb, tmp_path / "nb.ipynb")
    assert (tmp_path / "nb.ipynb").stat().st_size < 202_000


def test_images_that_do_not_fit_are_dropped_and_text_plain_cut():
    image = new_output("display_data", data={"image/png": "A" * 200_000,
                                             "text/plain": "<Figure> " * 20_000})
    out = capped([image]).cells[0].outputs
    assert "image/png" not in out[0].data
    assert out[0].data["text/plain"].startswith("<Figure>")
    assert len(out[0].data["text/plain"]) == 100_000
    assert markers(capped([image]).cells[0]) == [200_000 + 180_000 - 100_000]


def graded(cell):
    """nbgrader's score of `cell` as a 2-point test cell."""
    from nbgrader.utils import determine_grade

    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "points": 2,
                                 "grade_id": "t", "locked": True}
    return determine_grade(cell)


def test_an_error_after_a_flood_survives_so_the_test_still_fails():
    frames = [f"frame {i} " + "." * 1000 for i in range(300)]
    error = new_output("error", ename="AssertionError", evalue="wrong" * 100_000,
                       traceback=[*frames, "AssertionError"])
    outputs = [stream("z" * 5_000_000), error, stream("more", name="stderr")]
    cell = capped(outputs).cells[0]
    kinds = [o.output_type for o in cell.outputs]
    assert kinds == ["stream", "stream", "error", "stream"]  # cut stdout, marker, error, stderr
    assert cell.outputs[2].ename == "AssertionError"
    assert cell.outputs[2].traceback[-1] == "AssertionError"
    assert cell.outputs[2].traceback[0] == "... Traceback truncated ..."
    assert caps.output_bytes(cell.outputs[2]) <= caps.STUB_BYTES
    assert graded(cell) == graded(new_code_cell(outputs=outputs)) == (0, 2)


def test_an_execute_result_after_a_flood_keeps_its_partial_score():
    outputs = [stream("z" * 500_000),
               new_output("execute_result", data={"text/plain": "0.5"}, execution_count=1)]
    cell = capped(outputs).cells[0]
    assert graded(cell) == graded(new_code_cell(outputs=outputs))
    assert cell.outputs[-1].data == {"text/plain": "0.5"}


def test_a_second_pass_keeps_one_marker_and_its_count():
    nb = capped([stream("x" * 300_000)])
    again = caps.LimitOutputBytes(max_cell_bytes=100_000, max_notebook_bytes=1_000_000)
    nb, _ = again.preprocess(nb, {})
    assert markers(nb.cells[0]) == [200_000]


def test_the_autograde_list_is_nbgraders_own_with_the_caps_added():
    from nbgrader.converters import Autograde

    ours = [name.rsplit(".", 1)[1] for name in caps.AUTOGRADE_PREPROCESSORS]
    theirs = [cls.__name__ for cls in Autograde.class_traits()["autograde_preprocessors"].default()]
    assert [n for n in ours if n != "LimitOutputBytes"] == \
        ["CappedExecute" if n == "Execute" else n for n in theirs]


def test_the_config_lines_reach_nbgraders_autograde_converter(tmp_path):
    from nbgrader.converters import Autograde
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    config = Config()
    config.CourseDirectory.root = str(tmp_path)
    config.Autograde.autograde_preprocessors = caps.AUTOGRADE_PREPROCESSORS
    config.LimitOutputBytes.max_cell_bytes = 1234
    converter = Autograde(coursedir=CourseDirectory(config=config), config=config)
    converter.exporter = converter.exporter_class(parent=converter, config=config)  # as start()
    converter._sanitizing = False
    converter._init_preprocessors()
    made = {type(p).__name__: p for p in converter.exporter._preprocessors}
    assert made["LimitOutputBytes"].max_cell_bytes == 1234
    assert made["CappedExecute"].enabled and made["LimitOutputBytes"].enabled
    assert list(made).index("LimitOutputBytes") > list(made).index("LimitOutput")


def test_capped_execute_cuts_a_5mb_line_as_it_arrives(tmp_path):
    """Only CappedExecute runs (no LimitOutputBytes after it): the saved notebook is small.
    Output a cell clears (a progress display) frees its bytes again."""
    from traitlets.config import Config

    redraw = ("from IPython.display import clear_output\n"
              "for i in range(20):\n    clear_output(wait=True)\n    print(f'{i:02d}' * 25_000)")
    nb = new_notebook(cells=[new_code_cell(redraw),
                             new_code_cell("print('x' * 5_000_000)"),
                             new_code_cell("for i in range(50):\n    print('y' * 100_000)"),
                             new_code_cell("1 / 0")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    config = Config()
    config.LimitOutputBytes.max_cell_bytes = 100_000
    config.LimitOutputBytes.max_notebook_bytes = 200_000
    run = caps.CappedExecute(config=config, kernel_name="python3", timeout=60)
    nb, _ = run.preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    nbformat.write(nb, tmp_path / "run.ipynb")
    assert (tmp_path / "run.ipynb").stat().st_size < 210_000
    redrawn, first, second, third = nb.cells
    assert [o.text for o in redrawn.outputs] == ["19" * 25_000 + "\n"]
    assert first.outputs[0].text == "x" * 100_000
    assert markers(first) == [5_000_000 + len("\\n") + caps.LINE_COST - 100_000]
    assert markers(second) and sum(len(o.text) for o in second.outputs) < 60_000
    assert [o.output_type for o in third.outputs] == ["error"]
    assert third.outputs[0].ename == "ZeroDivisionError"
