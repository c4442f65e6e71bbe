"""The trusted judge's parts that need no sandbox: the plain-data round trip, reading what a
kernel wrote (no pickles, size caps, no symlinks), seeds, declarations, comparisons and
verdicts. The judged grading itself runs in test_adversarial and test_assignments_grading.
"""

import io
import json
import os
import stat
import zipfile

import nbformat
import numpy as np
import pytest
import torch

from rnngrading import judge, probe, probe_kernel
from rnngrading.course import ASSIGNMENTS, REPO, GradingSetupError
from rnngrading.prechecks import test_points as source_points


def round_trip(value, max_bytes=2**20):
    arrays = {}
    tree = probe_kernel.plain(value, arrays, max_bytes)
    tree = json.loads(json.dumps(tree))  # what crosses is JSON and arrays
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
        return judge.from_tree(tree, {k: npz[k] for k in npz.files}), tree


def test_plain_data_survives_the_round_trip():
    value = {"a": [1, 2.5, None, True, "x"], "b": (np.arange(6.0).reshape(2, 3), 1 + 2j),
             "c": float("nan"), "d": np.float32(1.5), "e": torch.tensor([1.0, 2.0])}
    back, _ = round_trip(value)
    assert back["a"] == [1, 2.5, None, True, "x"]
    assert isinstance(back["b"], tuple) and np.array_equal(back["b"][0], value["b"][0])
    assert back["b"][1] == 1 + 2j and np.isnan(back["c"])
    assert back["d"].dtype == np.float32 and float(back["d"]) == 1.5
    assert type(back["e"]) is np.ndarray and np.array_equal(back["e"], [1.0, 2.0])


def test_what_is_not_plain_data_becomes_an_error_naming_it():
    class Always:
        def __eq__(self, other):
            return True

    class Sneaky(np.ndarray):
        def __eq__(self, other):
            return True

    def plain(value):
        return probe_kernel.plain(value, {}, 2**20)

    assert plain([Always()])["list"][0] == {"error": "an object of type Always"}
    assert "dtype object" in plain(np.array([Always()], dtype=object))["error"]
    back, tree = round_trip(np.zeros(3).view(Sneaky))
    assert type(back) is np.ndarray and tree["subclass"] == "Sneaky"
    with pytest.raises(probe_kernel.TooLarge):
        round_trip(np.broadcast_to(np.float64(0), (2**14, 2**14)))  # 2 GiB, costs nothing
    with pytest.raises(judge.BadAnswer, match="an object of type Always"):
        judge.from_tree({"error": "an object of type Always"}, {})


def write_answers(folder, grade_id, results, arrays, pickle=False):
    (folder / f"{grade_id}.json").write_text(json.dumps({"part": grade_id, "results": results}))
    with open(folder / f"{grade_id}.npz", "wb") as f:
        np.savez(f, **arrays) if not pickle else np.savez(f, allow_pickle=True, **arrays)


def test_read_answers_refuses_pickles_bombs_and_missing_parts(tmp_path):
    write_answers(tmp_path, "ok", [{"value": {"a": "a0"}}], {"a0": np.eye(2)})
    assert np.array_equal(judge.read_answers(tmp_path, "ok", 2**20)[0]["value"], np.eye(2))
    write_answers(tmp_path, "pickled", [{"value": {"a": "a0"}}],
                  {"a0": np.array([{"x": 1}], dtype=object)}, pickle=True)
    with pytest.raises(judge.BadAnswer, match="unreadable"):
        judge.read_answers(tmp_path, "pickled", 2**20)
    (tmp_path / "bomb.json").write_text(json.dumps({"results": []}))
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a0.npy", b"\0" * (8 * 2**20))  # 8 MB of zeros deflate to a few kB
    assert (tmp_path / "bomb.npz").stat().st_size < 2**16
    with pytest.raises(judge.BadAnswer, match="bytes"):
        judge.read_answers(tmp_path, "bomb", 2**20)
    assert judge.read_answers(tmp_path, "never_ran", 2**20) is None


def test_the_probe_copies_regular_files_only(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("the instructor's")
    os.symlink(secret, tmp_path / "link.json")
    assert probe._read_regular(str(tmp_path / "link.json"), 100) is None
    os.mkfifo(tmp_path / "fifo.json")
    assert probe._read_regular(str(tmp_path / "fifo.json"), 100) is None
    (tmp_path / "big.npz").write_bytes(b"x" * 101)
    with pytest.raises(ValueError):
        probe._read_regular(str(tmp_path / "big.npz"), 100)


def test_seeds_depend_on_student_and_secret_and_repeat(tmp_path, monkeypatch):
    monkeypatch.delenv(judge.SECRET_ENV, raising=False)
    secret = judge.course_secret(tmp_path)
    assert len(secret) == 64 and judge.course_secret(tmp_path) == secret
    assert stat.S_IMODE((tmp_path / judge.SECRET_FILE).stat().st_mode) == 0o600
    a = judge.seed(secret, "jacobian", "ada", "test_step_jacobian")
    assert a == judge.seed(secret, "jacobian", "ada", "test_step_jacobian")
    assert a != judge.seed(secret, "jacobian", "ben", "test_step_jacobian")
    assert a != judge.seed("another course", "jacobian", "ada", "test_step_jacobian")
    monkeypatch.setenv(judge.SECRET_ENV, "from the environment")
    assert judge.course_secret(tmp_path) == "from the environment"


def points_of(assignment):
    return source_points(nbformat.read(REPO / "source" / assignment / f"{assignment}.ipynb", 4))


def test_plans_differ_by_student_in_hidden_cases_only(tmp_path, monkeypatch):
    monkeypatch.setenv(judge.SECRET_ENV, "test secret")
    pts = points_of("jacobian")
    ada, ada_again = (judge.plan(REPO, "jacobian", "ada", pts) for _ in range(2))
    ben = judge.plan(REPO, "jacobian", "ben", pts)
    assert ada.spec == ada_again.spec
    assert all(np.array_equal(ada.inputs[k], ada_again.inputs[k]) for k in ada.inputs)
    visible = [c for c in ada.cases["test_step_jacobian"] if not c.hidden]
    assert visible and all(np.array_equal(a, b) for c, d in zip(
        visible, [c for c in ben.cases["test_step_jacobian"] if not c.hidden], strict=True)
        for a, b in zip(c.args, d.args, strict=True))
    hidden = lambda p: [c.args for c in p.cases["test_step_jacobian"] if c.hidden]  # noqa: E731
    assert any(not np.array_equal(a[3], b[3]) or a[3].shape != b[3].shape
               for a, b in zip(hidden(ada), hidden(ben), strict=True))


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_autograded_test_cell_has_a_judged_part(assignment):
    pts = points_of(assignment)
    module = judge.load_judge(REPO, assignment, pts)
    assert {p.grade_id for p in module.PARTS} == set(pts)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_judges_are_never_released_and_hidden_tests_left_the_notebooks(assignment):
    assert not (REPO / "release" / assignment / judge.JUDGE_FILE).exists()
    assert "BEGIN HIDDEN TESTS" not in (REPO / "source" / assignment
                                        / f"{assignment}.ipynb").read_text()


def test_a_missing_or_incomplete_judge_is_one_clear_line(tmp_path):
    (tmp_path / "source" / "hw").mkdir(parents=True)
    with pytest.raises(GradingSetupError, match="judge.py is missing"):
        judge.load_judge(tmp_path, "hw", {"test_a": 1.0})
    (tmp_path / "source" / "hw" / "judge.py").write_text("PARTS = []\n")
    with pytest.raises(GradingSetupError, match="no Part for the test cells test_a"):
        judge.load_judge(tmp_path, "hw", {"test_a": 1.0})


def test_jacobian_reference_agrees_with_autograd(monkeypatch):
    """The reference the judge computes (the source solution, run here) against an
    independent one: torch autograd through the step."""
    monkeypatch.setenv(judge.SECRET_ENV, "test secret")
    module = judge.load_judge(REPO, "jacobian", points_of("jacobian"))
    reference = judge.reference_namespace(REPO, "jacobian", module)
    for case in judge.plan(REPO, "jacobian", "ada", points_of("jacobian")).cases[
            "test_step_jacobian"]:
        x, h, W_x, W_h, b = (torch.tensor(a, dtype=torch.float64) for a in case.args)

        def step(v, x=x, W_x=W_x, W_h=W_h, b=b):
            return torch.tanh(W_x @ x + W_h @ v + b)

        want = torch.autograd.functional.jacobian(step, h)
        assert np.allclose(judge.reference_answer(case, reference), want.numpy(), atol=1e-12)


def test_comparisons_say_why():
    close = judge.close(rtol=1e-5, atol=1e-8)
    assert close(np.eye(2), np.eye(2)) is None
    assert "shape (2, 2), expected (2, 3)" in close(np.eye(2), np.zeros((2, 3)))
    assert "wrong values" in close(np.eye(2) * 2, np.eye(2))
    assert "expected a number" in close("1.0", 1.0)
    assert "not finite" in close(np.array([np.nan]), np.array([1.0]))
    assert "complex" in judge.close(real=True)(np.array([1 + 1j]), np.array([1.0]))
    assert judge.multiset()(np.array([2.0, 1j]), np.array([1j, 2.0])) is None
    assert judge.multiset()(np.array([2.0, 2.0]), np.array([1j, 2.0])) == "wrong values"
    assert judge.equal("vanish", "vanish") is None and judge.equal("explode", "vanish")


def test_verdicts_name_hidden_cases_by_number_and_known_mistakes_by_message():
    def cases(rng):
        yield judge.Case("f", (np.array([[1.0, 2.0], [3.0, 4.0]]),), label="the visible case",
                         hidden=False)
        yield judge.Case("f", (np.array([[5.0, 6.0], [7.0, 8.0]]),))

    part = judge.Part("test_f", cases, judge.close(),
                      (judge.Mistake(lambda case, want, ref: want.T, "transposed"),))
    reference = {"f": lambda W: W * 2}
    drawn = list(cases(None))
    right = [{"value": c.args[0] * 2} for c in drawn]
    assert judge.judge_part(part, drawn, right, reference, None, 3.0).points == 3.0
    wrong = [right[0], {"value": drawn[1].args[0].T * 2}]
    v = judge.judge_part(part, drawn, wrong, reference, None, 3.0)
    assert v.points == 0 and v.message == "hidden check 1 of 1: transposed"
    assert judge.VISIBLE_ONLY in v.notes and v.flagged
    assert "5.0" not in v.message and "10" not in v.message  # no hidden input, no reference
    v = judge.judge_part(part, drawn, [{"error": "NameError: f"}, right[1]], reference, None, 3)
    assert v.message == "the visible case: NameError: f" and not v.flagged
    assert "did not finish" in judge.judge_part(part, drawn, None, reference, None, 3).message


def test_tests_passed_in_the_kernel_but_failed_by_the_judge_are_flagged_once():
    verdicts = {
        "test_a": judge.Verdict("test_a", 0.0, 3.0, "the visible test's case: wrong values"),
        "test_b": judge.Verdict("test_b", 0.0, 2.0, "the visible test's case: shape (1, 1)"),
        "test_c": judge.Verdict("test_c", 0.0, 1.0, "hidden check 1 of 2: wrong values"),
        "test_d": judge.Verdict("test_d", 1.0, 1.0, ""),
    }
    # nbgrader's in-kernel scores: a, b and c passed their test cells; only a and b failed
    # on a visible case, which the kernel's own tests should have caught
    judge.note_subverted_tests(verdicts, {"test_a": 3.0, "test_b": 2.0, "test_c": 1.0,
                                          "test_d": 1.0})
    assert [gid for gid, v in verdicts.items() if judge.SUBVERTED in v.notes] == [
        "test_a", "test_b"]
    notes = judge.status_notes(verdicts)
    assert notes == [f"test_a, test_b: {judge.SUBVERTED}"]
