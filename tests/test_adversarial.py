"""The adversarial corpus (tests/adversarial/cases.py), graded as one parallel batch by
rnngrading in a temporary course: no undeserved credit, the batch finishes, the
gradebooks and every other student's grade stay intact, one clear line per case.
Parallel grading gives the scores sequential grading gives, run after run.
"""

import shutil
import tempfile
from pathlib import Path

import pytest
from adversarial.cases import CASES, make
from coursekit import checksum, full, without

from rnngrading.batch import grade_batch
from rnngrading.course import FIXTURES, REPO, gradebook
from rnngrading.fixtures import build_submission
from rnngrading.gradebook import merge_results
from rnngrading.isolation import can_isolate
from rnngrading.limits import load_limits

pytestmark = [pytest.mark.grading, pytest.mark.sandbox,
              pytest.mark.skipif(not can_isolate(), reason="needs bubblewrap (net, pid, "
                                 "mount namespaces) to sandbox student code")]
# memory: the course default (4096 MB). At 3072 MB, torch cannot map its library in a user
# namespace as an ordinary user (the pre-flight says so: "failed to map segment").
# CPU: as much as the notebook's wall. endless_function spins in three cells (3 x 30 s) and
# a judge's call (15 s): at 60 s its kernel died of the CPU limit whenever it had a core to
# itself (0 points for every part), and lived only when the batch slowed it down.
LIMITS = load_limits(cell_timeout=30, notebook_wall=150, cpu_seconds=150, judge_timeout=15)
HONEST = {"jacobian": [("ada-honest", "reference"), ("ben-honest", "blank"),
                       ("dev-honest", "transposed")],
          "eigenvalues": [("ada-honest", "reference"), ("ben-honest", "blank")]}
WATCHED = ["gradebook.db", "source/jacobian/jacobian.ipynb",
           "source/eigenvalues/eigenvalues.ipynb", "lib/rnngrading/runner.py"]


@pytest.fixture(scope="module")
def course(scratch_course):
    return scratch_course("adv", ("jacobian", "eigenvalues", "copy_task"))


def _write(folder, student, filename, data):
    (folder / student).mkdir(parents=True, exist_ok=True)
    (folder / student / filename).write_bytes(data)
    return folder / student / filename


@pytest.fixture(scope="module")
def graded(course, tmp_path_factory):
    """Honest students and every case, one parallel batch, merged into the course gradebook."""
    folder = tmp_path_factory.mktemp("subs")
    saved = Path(tempfile.mkdtemp(prefix="adv-graded-"))
    jobs = []
    for a in ("jacobian", "eigenvalues"):
        for student, case in HONEST[a]:
            nb = build_submission(course / "source" / a / f"{a}.ipynb",
                                             course / "release" / a / f"{a}.ipynb",
                                             FIXTURES / a / case)
            path = _write(folder, student, f"{a}.ipynb", nb_bytes(nb))
            jobs.append((student, a, path))
    for name in CASES:
        filename, data = make(name, build_submission, course, FIXTURES)
        jobs.append((name, CASES[name][0], _write(folder, name, filename, data)))
    before = {p: checksum(REPO / p) for p in WATCHED if (REPO / p).exists()}
    course_before = checksum(course / "source" / "jacobian" / "jacobian.ipynb")
    results = grade_batch(jobs, course, LIMITS, workers=2, save_dir=saved)
    merge_results(results, course)
    after = {p: checksum(REPO / p) for p in WATCHED if (REPO / p).exists()}
    yield {r.student + "/" + r.assignment: r for r in results}, before, after, course_before, saved
    shutil.rmtree(saved, ignore_errors=True)


def nb_bytes(nb):
    import nbformat

    return nbformat.writes(nb).encode()


@pytest.mark.parametrize("name", list(CASES))
def test_adversarial_case_gets_no_undeserved_credit(graded, name):
    results = graded[0]
    assignment, _, _, honest, status, xfail = CASES[name]
    r = results[f"{name}/{assignment}"]
    print(r.line())
    assert r.status and "\n" not in r.status
    assert status in r.status, r.line()
    if xfail:
        pytest.xfail(xfail)
    assert r.total <= honest, r.line()


def test_every_case_has_one_line_for_the_instructor(graded):
    lines = [r.line() for r in graded[0].values()]
    print("\n" + "\n".join(lines))
    assert all("\n" not in line for line in lines)


def test_patched_allclose_is_flagged_and_earns_nothing(graded):
    """A patched np.allclose stays patched in the student's kernel, but the judge compares
    in the grader's own process: a wrong answer earns nothing."""
    r = graded[0]["patched_allclose/jacobian"]
    assert "suspicious" in r.status
    assert r.total == 0


def test_honest_students_in_the_same_batch_are_untouched(graded, course):
    results = graded[0]
    assert results["ada-honest/jacobian"].total == full("jacobian")
    assert results["ada-honest/eigenvalues"].total == full("eigenvalues")
    assert results["ben-honest/jacobian"].total == 0
    with gradebook(course) as gb:
        assert gb.find_submission("jacobian", "ada-honest").code_score == full("jacobian")
        assert gb.find_submission("eigenvalues", "ada-honest").code_score == full("eigenvalues")
        for name, (assignment, *_rest) in CASES.items():
            assert gb.find_submission(assignment, name).code_score == results[
                f"{name}/{assignment}"].total


def test_real_repository_and_course_files_are_unchanged(graded, course):
    _, before, after, course_before, _ = graded
    assert before == after
    assert checksum(course / "source" / "jacobian" / "jacobian.ipynb") == course_before
    assert not (REPO / "source" / "x.txt").exists() and not (course / "source" / "x.txt").exists()


@pytest.mark.parametrize(("name", "assignment", "forbidden"), [
    ("reads_hidden_tests", "jacobian", "LEAKED"),
    ("network", "eigenvalues", "CONNECTED"),
    ("writes_gradebook_and_source", "eigenvalues", "WROTE"),
])
def test_sandbox_blocks_the_attempt(graded, name, assignment, forbidden):
    import nbformat

    nb = nbformat.read(graded[4] / f"{name}-{assignment}.ipynb", as_version=4)
    text = "\n".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    assert forbidden not in text
    assert ("NO-LEAK" in text) or ("no network" in text) or ("blocked" in text), text[:500]


def test_parallel_equals_sequential_and_repeats(graded, course, tmp_path):
    """The batch above ran on two Dask workers; the same submissions graded one after
    the other, in a second run, give identical scores."""
    jobs = []
    for student, case in HONEST["jacobian"][::2]:
        nb = build_submission(course / "source/jacobian/jacobian.ipynb",
                                         course / "release/jacobian/jacobian.ipynb",
                                         FIXTURES / "jacobian" / case)
        jobs.append((student, "jacobian", _write(tmp_path, student, "jacobian.ipynb",
                                                 nb_bytes(nb))))
    sequential = grade_batch(jobs, course, LIMITS, workers=1)
    parallel = [graded[0][f"{s}/jacobian"] for s, _, _ in jobs]
    assert [r.scores for r in sequential] == [r.scores for r in parallel]
    assert [r.total for r in sequential] == [full("jacobian"),
                                             without("jacobian", "test_step_jacobian")]
