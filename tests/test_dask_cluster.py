"""Grading on a real Dask cluster: `dask scheduler` and two `dask worker` processes.

The scheduler and the workers are separate processes, started from this environment's
`dask` command on loopback as an instructor starts them on a cluster (README, `make grade
SCHEDULER=`). The class is graded through `rnncourse-grade grade ... --scheduler ADDR`, the
instructor's own command, and the gradebook must hold the scores each fixture case is
worth (worked out from its mistakes in coursekit, not read off a run). Then a worker is
killed with SIGKILL while it grades: its sandboxed children (the zygote, nbgrader, the
kernel template and the kernel forked from it, or bwrap and its kernel) die with it, the
batch completes, every submission is in the gradebook exactly once with its score, and
the dead worker's scratch folder is removed and reported. When
Dask gives up on a submission (KilledWorker), that submission is "not graded", with the
reason, and never gets a score. And each score is in the gradebook as it lands: a looping
submission at its time limit holds up nobody else's.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from coursekit import full, hand_in, notebook, without

from rnngrading.batch import SCRATCH_PREFIX
from rnngrading.course import gradebook
from rnngrading.isolation import can_isolate

pytestmark = [pytest.mark.grading, pytest.mark.sandbox,
              pytest.mark.skipif(not can_isolate(), reason="needs bubblewrap to sandbox "
                                 "student code")]

BIN = Path(sys.executable).parent  # the venv's dask and rnncourse-grade
LOOP = "while True:\n    pass\n"
# the looping student's cell is interrupted after this many seconds; a cell that imports
# torch took over 10 s at load 6, and a timeout there is "not graded": room for CI's load
CELL_TIMEOUT = 30
# case, code put before the textbook answer, expected autograded points
CLASS = {
    "ada": ("reference", "", full("jacobian")),
    "ben": ("partial", "", without("jacobian", "test_jacobian_product", "test_textbook")),
    "cy": ("transposed", "", without("jacobian", "test_step_jacobian")),
    "dee": ("blank", "", 0),
    # the loop runs before the textbook answer is defined, in the same cell: that cell's
    # point is lost, and the cell timeout stops the loop, not the batch
    "looper": ("reference", LOOP, without("jacobian", "test_textbook")),
}
KILLED_CLASS = {
    "kim": ("reference", "", full("jacobian")),
    "lee": ("partial", "", without("jacobian", "test_jacobian_product", "test_textbook")),
    "max": ("transposed", "", without("jacobian", "test_step_jacobian")),
}
GIVEN_UP_CLASS = {
    "pia": ("reference", "", full("jacobian")),
    "quinn": ("transposed", "", without("jacobian", "test_step_jacobian")),
}


def _parents():
    """{pid: parent pid} of every process now."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            found[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def descendants(pid):
    """The pids of every process below `pid`."""
    children = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _comm(pid):
    """A process's name (a forked kernel's is rg-kernel; its command line the template's)."""
    try:
        return Path(f"/proc/{pid}/comm").read_bytes().strip()
    except OSError:
        return b""


def alive(pids):
    """Those of `pids` that still run (zombies count as gone)."""
    def running(pid):
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    return [pid for pid in pids if running(pid)]


class Cluster:
    """A scheduler and two workers (each under its nanny), their own processes."""

    def __init__(self, folder, grading_tmp):
        self.folder, self.grading_tmp, self.procs = folder, grading_tmp, []
        self.env = {**os.environ, "RNNCOURSE_GRADING_TMP": str(grading_tmp),
                    "DASK_TEMPORARY_DIRECTORY": str(folder / "dask-tmp")}
        self.scheduler_file = folder / "scheduler.json"
        self.start([BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                    "--no-dashboard", "--scheduler-file", self.scheduler_file], "scheduler")
        deadline = time.monotonic() + 60
        while not self.scheduler_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.address = json.loads(self.scheduler_file.read_text())["address"]
        for name in ("w1", "w2"):
            self.start([BIN / "dask", "worker", self.address, "--name", name,
                        "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
                        "--local-directory", folder / name, "--death-timeout", "60"], name)
        from distributed import Client

        self.client = Client(self.address, timeout=60)
        self.client.wait_for_workers(2, timeout=90)

    def start(self, argv, name):
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.procs.append((subprocess.Popen([str(a) for a in argv], env=self.env, cwd=self.folder,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True), log))

    def worker_pids(self):
        """{worker address: pid of its worker process}, once two workers are up."""
        self.client.wait_for_workers(2, timeout=90)
        return self.client.run(os.getpid)

    def grade(self, folder, course):
        """`rnncourse-grade grade jacobian FOLDER --scheduler ADDR`, started."""
        return subprocess.Popen(
            [str(BIN / "rnncourse-grade"), "grade", "jacobian", str(folder), "--scheduler",
             self.address, "--course", str(course)],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self):
        """Every process this cluster started, and all below them, ended."""
        below = [p for proc, _ in self.procs for p in descendants(proc.pid)]
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - the processes go anyway
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for proc, _ in self.procs:
                if proc.poll() is None:
                    try:
                        os.killpg(proc.pid, sig)  # its session: the nanny, worker and zygote
                    except ProcessLookupError:
                        pass
            for proc, _ in self.procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    pass
        for pid in alive(below):  # in a session of their own (nbgrader, bwrap, the kernel)
            os.kill(pid, signal.SIGKILL)
        for _, log in self.procs:
            log.close()
        deadline = time.monotonic() + 10
        while alive(below) and time.monotonic() < deadline:
            time.sleep(0.1)
        return [(pid, b" ".join(cmdline(pid))[:100]) for pid in alive(below)]


@pytest.fixture(scope="module")
def course(scratch_course):
    root = scratch_course("cluster")
    limits = root / "grading_limits.toml"
    limits.write_text(limits.read_text().replace("cell_timeout = 150",
                                                 f"cell_timeout = {CELL_TIMEOUT}"))
    return root


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # the kernels' Unix sockets live under the scratch folders: a short path, not pytest's
    grading_tmp = Path(tempfile.mkdtemp(prefix="dask-grading-"))
    cluster = None
    try:
        cluster = Cluster(tmp_path_factory.mktemp("cluster"), grading_tmp)
        yield cluster
    finally:
        left = cluster.stop() if cluster else []
        shutil.rmtree(grading_tmp, ignore_errors=True)
        assert left == [], f"processes left after the cluster stopped: {left}"


def hand_in_class(course, folder, students):
    for student, (case, prefix, _) in students.items():
        hand_in(folder, student, notebook(course, case, prefix))


def report_lines(stdout):
    return {line.split()[0]: line for line in stdout.splitlines() if " jacobian " in line}


def gradebook_rows(course, students):
    """{student: (number of jacobian submissions, code score, whether every test cell has
    a measured score, the autograder's comments)} read from the course gradebook."""
    from nbgrader.api import SubmittedAssignment

    rows = {}
    with gradebook(course) as gb:
        for student in students:
            count = gb.db.query(SubmittedAssignment).filter(
                SubmittedAssignment.student_id == student).count()
            sub = gb.find_submission("jacobian", student)
            tests = [g for nb in sub.notebooks for g in nb.grades if g.cell.cell_type == "code"]
            measured = all(g.auto_score is not None and not g.needs_manual_grade for g in tests)
            comments = [c.auto_comment for nb in sub.notebooks for c in nb.comments
                        if c.auto_comment]
            rows[student] = (count, sub.code_score, measured, comments)
    return rows


def test_a_class_graded_on_a_scheduler_and_two_workers_gets_its_expected_scores(
        cluster, course, tmp_path):
    folder = tmp_path / "handed-in"
    hand_in_class(course, folder, CLASS)
    pids = set(cluster.worker_pids().values())
    start = time.monotonic()
    grading = cluster.grade(folder, course)
    out, err = grading.communicate(timeout=300)
    print(f"{len(CLASS)} submissions on 2 workers: {time.monotonic() - start:.1f} s\n{out}{err}")
    assert grading.returncode == 0, err
    lines = report_lines(out)
    assert sorted(lines) == sorted(CLASS)
    assert "timeout in cell textbook" in lines["looper"]
    for student, (_, _, expected) in CLASS.items():
        assert f" {expected:g} / {full('jacobian'):g} " in lines[student], lines[student]
    rows = gradebook_rows(course, CLASS)
    assert {s: row[:3] for s, row in rows.items()} == {
        s: (1, expected, True) for s, (_, _, expected) in CLASS.items()}
    # each worker made its scratch folder (its pre-flight first), and nothing is left in it
    scratch = {int(p.name.rsplit("-", 1)[1]): p
               for p in cluster.grading_tmp.glob(f"{SCRATCH_PREFIX}*")}
    assert set(scratch) == pids
    assert all(list(p.iterdir()) == [] for p in scratch.values())


def test_the_pre_flight_runs_on_every_worker_and_a_failure_names_the_worker(
        cluster, course, tmp_path):
    """The check is each worker's first task, so a failure there says which worker."""
    from rnngrading.batch import grade_batch
    from rnngrading.course import GradingSetupError

    handed_in = hand_in(tmp_path, "ada", notebook(course, "reference", ""))
    with pytest.raises(GradingSetupError, match=r"^on Dask worker tcp://127\.0\.0\.1:\d+, no "
                       r"source notebook \S+/source/nosuch/nosuch\.ipynb"):
        grade_batch([("ada", "nosuch", handed_in)], course, scheduler=cluster.address)


def wait_for_a_kernel(pids, timeout=120):
    """(worker pid, student) once a worker of `pids` runs a student's kernel."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in pids:
            below = descendants(pid)
            forked = any(_comm(p) == b"rg-kernel" for p in below)
            for child in below:
                argv = cmdline(child)
                # bubblewrap's command line names ipykernel; a forked kernel (rg-kernel) has
                # the template's, and its launcher's names rnngrading.launcher
                line = b" ".join(argv)
                if (b"ipykernel_launcher" in line or forked and b"rnngrading.launcher" in line
                        ) and b"-f" in argv:
                    connection = Path(argv[argv.index(b"-f") + 1].decode())
                    try:  # SCRATCH/run/kernel.json; SCRATCH/submitted/STUDENT/...
                        (student,) = os.listdir(connection.parent.parent / "submitted")
                    except (OSError, ValueError):
                        continue
                    return pid, student
        time.sleep(0.05)
    raise AssertionError("no worker started a kernel in time")


def kill_a_grading_worker(cluster):
    """SIGKILL a worker while it runs a student's kernel: (pid, student, the processes that
    were below it, its scratch folder)."""
    pid, student = wait_for_a_kernel(set(cluster.worker_pids().values()))
    below = descendants(pid)
    names = b" ".join(b" ".join(cmdline(p)) for p in below)
    kernels = b" ".join(_comm(p) for p in below)
    assert b"rnngrading.zygote" in names and (
        b"bwrap" in names and b"ipykernel" in names  # a kernel started through bubblewrap
        or b"rnngrading.kernelfork" in names and b"rg-kernel" in kernels)  # or forked
    os.kill(pid, signal.SIGKILL)
    (scratch,) = cluster.grading_tmp.glob(f"{SCRATCH_PREFIX}*-{pid}")
    return pid, student, below, scratch


def test_a_worker_killed_mid_batch_leaves_every_submission_graded_exactly_once(
        cluster, course, tmp_path):
    folder = tmp_path / "handed-in"
    hand_in_class(course, folder, KILLED_CLASS)
    start = time.monotonic()
    grading = cluster.grade(folder, course)
    try:
        pid, student, below, scratch = kill_a_grading_worker(cluster)
        deadline = time.monotonic() + 10
        while alive(below) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [b" ".join(cmdline(p)).decode()[:80] for p in alive(below)]
        out, err = grading.communicate(timeout=300)
    finally:
        if grading.poll() is None:
            grading.kill()
    print(f"killed worker {pid} grading {student}; {len(KILLED_CLASS)} submissions: "
          f"{time.monotonic() - start:.1f} s\n{out}{err}")
    assert grading.returncode == 0, err
    lines = report_lines(out)
    assert sorted(lines) == sorted(KILLED_CLASS)
    for who, (_, _, expected) in KILLED_CLASS.items():
        assert f" {expected:g} / {full('jacobian'):g} " in lines[who], lines[who]
    rows = gradebook_rows(course, KILLED_CLASS)
    assert {s: row[:3] for s, row in rows.items()} == {
        s: (1, expected, True) for s, (_, _, expected) in KILLED_CLASS.items()}
    assert not scratch.exists()
    assert f"removed the scratch folder of a grading process that died: {scratch}" in err
    assert left == [], f"the killed worker's zygote, nbgrader, template or kernel still run: {left}"


def _give_up_at_once(dask_scheduler):
    dask_scheduler.allowed_failures = 0


def _give_up_as_configured(dask_scheduler):
    import dask

    dask_scheduler.allowed_failures = dask.config.get("distributed.scheduler.allowed-failures")


def test_a_submission_dask_gives_up_on_is_not_graded_and_says_why(cluster, course, tmp_path):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the scheduler runs it
    folder = tmp_path / "handed-in"
    hand_in_class(course, folder, GIVEN_UP_CLASS)
    cluster.client.run_on_scheduler(_give_up_at_once)
    grading = cluster.grade(folder, course)
    try:
        _, student, _, _ = kill_a_grading_worker(cluster)
        out, err = grading.communicate(timeout=300)
    finally:
        cluster.client.run_on_scheduler(_give_up_as_configured)
        if grading.poll() is None:
            grading.kill()
    print(out, err)
    assert grading.returncode == 0, err
    lines = report_lines(out)
    rows = gradebook_rows(course, GIVEN_UP_CLASS)
    given_up = "Dask gave up on it: the worker grading it died, 1 time"
    assert "not graded" in lines[student] and given_up in lines[student]
    for who, (_, _, expected) in GIVEN_UP_CLASS.items():
        count, score, measured, comments = rows[who]
        assert count == 1
        if who == student or given_up in lines[who]:  # the other may have been queued there
            assert (score, measured) == (0, False) and "not graded" in lines[who]
            assert any(given_up in c for c in comments), comments
        else:
            assert (score, measured) == (expected, True), lines[who]


# students of their own: their rows cannot come from the earlier tests' batches
STREAM_CLASS = {"sam": CLASS["ada"], "sol": CLASS["cy"], "sue": CLASS["dee"],
                "slow": CLASS["looper"]}


def test_each_score_is_in_the_gradebook_as_it_lands(cluster, course, tmp_path):
    """`grade --json`: one line per submission as it lands; by then its score is recorded,
    and honest scores are not kept for the end: they are in the gradebook while the looping
    one still runs. (No clock in the check: under CI's load an honest grading took 20 s.)"""
    from nbgrader.api import SubmittedAssignment

    folder = tmp_path / "handed-in"
    hand_in_class(course, folder, STREAM_CLASS)
    grading = subprocess.Popen(
        [str(BIN / "rnncourse-grade"), "grade", "jacobian", str(folder), "--scheduler",
         cluster.address, "--course", str(course), "--json"],
        env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    order, recorded, loop_recorded = [], {}, {}
    for line in grading.stdout:
        if line.startswith("{"):
            who = json.loads(line)["student"]
            order.append(who)
            recorded[who] = gradebook_rows(course, [who])[who][:2]  # read while it runs
            with gradebook(course) as gb:
                loop_recorded[who] = gb.db.query(SubmittedAssignment).filter(
                    SubmittedAssignment.student_id == "slow").count()
    assert grading.wait(timeout=300) == 0, grading.stderr.read()
    assert recorded == {s: (1, expected) for s, (_, _, expected) in STREAM_CLASS.items()}
    # the first score came (and was recorded) while the loop still ran, and so did every
    # honest score printed before the loop's
    assert order[0] != "slow" and loop_recorded[order[0]] == 0, (order, loop_recorded)
    assert all(loop_recorded[who] == 0 for who in order[:order.index("slow")]), loop_recorded
