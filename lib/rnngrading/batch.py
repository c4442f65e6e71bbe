"""Grading a class: many submissions in parallel on Dask, each graded by runner.grade_one.

Dask workers import this package like any module (every worker needs the course's Python
environment, this package installed, and the course at the same path); each worker process
keeps its own zygote warm between submissions.

A worker can die mid-batch (killed, out of memory, its machine gone). Dask then runs its
tasks again elsewhere, up to distributed.scheduler.allowed-failures times; a submission it
gives up on comes back "not graded" with the reason, never with a score. Each worker process
grades in scratch folders under a folder of its own (worker_scratch); what a dead worker
left there is removed by the live workers of that machine when a batch starts and ends, and
the batch says so on stderr.
"""

import dataclasses
import hashlib
import logging
import os
import shutil
import socket
import sys
import tempfile
import uuid
from pathlib import Path

from . import zygote
from .course import GradingSetupError
from .limits import Limits, limits_file, load_limits
from .prechecks import preflight
from .runner import Result, grade_one

SCRATCH_PREFIX = "rg-"  # RNNCOURSE_GRADING_TMP/rg-<host>-<pid>: one worker process's scratch
WORKER_WAIT = 30  # seconds to wait for a scheduler to answer and for a worker to join it
PREFLIGHT_WAIT = 120  # seconds, beyond the pre-flight's own timeouts, for the workers' checks


def grade_task(notebook, assignment, student, course, limits, save_dir=None,
               autograded_root=None, unsafe=False):
    """One Dask task: grade_one as a dict; a failure of the grader itself becomes an
    ungraded Result, so that one broken grading does not stop the batch."""
    try:
        if _on_dask_worker():
            worker_scratch()
        result = grade_one(notebook, assignment, student, course, Limits(**limits),
                           save_dir=save_dir, autograded_root=autograded_root, unsafe=unsafe)
    except Exception as exc:  # noqa: BLE001 - one broken grading must not stop the batch
        result = not_graded(student, assignment, f"grader failed ({str(exc)[:80]})")
    return dataclasses.asdict(result)


def preflight_task(course, assignments, limits, unsafe=False):
    """One Dask task per worker before the batch: the pre-flight check of each assignment,
    as this worker's submissions will start their kernels. It starts the worker process's
    kernel template and a zygote, which its gradings then use. None, or the check's line."""
    try:
        worker_scratch()
        for assignment in assignments:
            preflight(course, assignment, Limits(**limits), unsafe)
        zygote.warm()
    except GradingSetupError as exc:
        return str(exc)
    return None


def _preflight_on_workers(client, course, assignments, limits, unsafe, batch, remote):
    """Run preflight_task once on every worker; GradingSetupError, one line, if one fails.
    remote: name the worker in the line (a cluster's workers are separate machines)."""
    from distributed import wait

    workers = sorted(client.scheduler_info()["workers"])
    futures = [client.submit(preflight_task, str(course), assignments,
                             dataclasses.asdict(limits), unsafe, workers=[address],
                             allow_other_workers=False, pure=False,
                             key=f"preflight-{batch}-{i}")
               for i, address in enumerate(workers)]
    seconds = PREFLIGHT_WAIT + 90 * len(assignments)
    try:
        pending = ()
        wait(futures, timeout=seconds)
    except TimeoutError:
        pending = [f for f in futures if not f.done()]
    if pending:
        client.cancel(list(pending))
        raise GradingSetupError(
            f"the pre-flight check did not finish on {len(pending)} Dask worker(s) in "
            f"{seconds} s (a worker died or is stuck): check the workers and grade again; "
            "nothing was graded")
    for address, future in zip(workers, futures, strict=True):
        try:
            said = future.result()
        except Exception as exc:  # noqa: BLE001 - its worker died, or could not run it
            raise GradingSetupError(
                f"the pre-flight check failed on Dask worker {address} ({type(exc).__name__}:"
                f" {str(exc)[:100]}): check the worker and grade again; nothing was graded"
            ) from None
        if said:
            raise GradingSetupError(f"on Dask worker {address}, {said}" if remote else said)


def not_graded(student, assignment, why):
    """The Result of a submission whose score was not measured, with the reason."""
    return Result(student, assignment, f"{why}: not graded", {}, 0.0, 0.0, graded=False)


def _on_dask_worker():
    try:
        from distributed import get_worker

        get_worker()
        return True
    except (ImportError, ValueError):
        return False


def _host_tag():
    """A short tag of this machine's name (scratch folders may sit on a shared disk)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def worker_scratch():
    """This worker process's scratch folder, RNNCOURSE_GRADING_TMP (default: the temp
    folder) / rg-HOST-PID, made 0700 and set as RNNCOURSE_GRADING_TMP of this process, so
    that every grading it runs makes its scratch course there. returns the folder"""
    mine = os.environ.get("RNNCOURSE_WORKER_SCRATCH")
    if mine and Path(mine).is_dir():
        return Path(mine)
    base = Path(os.environ.get("RNNCOURSE_GRADING_TMP") or tempfile.gettempdir())
    mine = base / f"{SCRATCH_PREFIX}{_host_tag()}-{os.getpid()}"
    mine.mkdir(mode=0o700, exist_ok=True)
    os.environ["RNNCOURSE_WORKER_SCRATCH"] = str(mine)
    os.environ["RNNCOURSE_GRADING_TMP"] = str(mine)
    return mine


def remove_own_scratch():
    """Remove this worker process's scratch folder (made again by the next grading). Run on
    the workers of a local cluster as its batch ends, when no grading is running there, so
    a batch that ends normally leaves nothing in the temp folder. returns its path or None"""
    mine = os.environ.pop("RNNCOURSE_WORKER_SCRATCH", None)
    if mine:
        os.environ["RNNCOURSE_GRADING_TMP"] = str(Path(mine).parent)  # as before worker_scratch
        shutil.rmtree(mine, ignore_errors=True)
    return mine


def remove_dead_scratch(base=None):
    """Remove the scratch folders (rg-HOST-PID) that worker processes of this machine, now
    dead, left in `base` (default: RNNCOURSE_GRADING_TMP's parent as worker_scratch uses it).
    Only folders of this user, not symlinks, whose process is gone. returns their paths"""
    if base is None:
        mine = os.environ.get("RNNCOURSE_WORKER_SCRATCH")
        base = Path(mine).parent if mine else Path(
            os.environ.get("RNNCOURSE_GRADING_TMP") or tempfile.gettempdir())
    prefix = f"{SCRATCH_PREFIX}{_host_tag()}-"
    removed = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        pid = entry.name[len(prefix):]
        if not (entry.name.startswith(prefix) and pid.isdigit()):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(
                    follow_symlinks=False).st_uid != os.geteuid() or _alive(int(pid)):
                continue
        except FileNotFoundError:  # another batch's workers removed it first
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.path)
    return removed


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_dead_scratch(client):
    """remove_dead_scratch on every worker; one line on stderr per folder removed."""
    try:
        removed = client.run(remove_dead_scratch)
    except Exception:  # noqa: BLE001 - a report only, never a reason to lose the results
        return
    for path in sorted({p for paths in removed.values() for p in paths}):
        print(f"removed the scratch folder of a grading process that died: {path}",
              file=sys.stderr)


def _worker_check(course):
    """Run on each worker before the batch: a line saying what it cannot do, or where it
    imports rnngrading from and how it isolates."""
    from .isolation import isolation

    if not (Path(course) / "nbgrader_config.py").is_file():
        return f"cannot see the course at {course} (it must be at the same path on every worker)"
    mode, why = isolation()
    return {"rnngrading": str(Path(__file__).resolve().parent), "isolation": mode, "why": why}


def _connect(scheduler):
    """A Client of the scheduler at `scheduler` with at least one worker, every worker able
    to grade this course; GradingSetupError, one line, otherwise."""
    from distributed import Client

    try:
        client = Client(scheduler, timeout=WORKER_WAIT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise GradingSetupError(
            f"no Dask scheduler answers at {scheduler} ({str(exc)[:100]}): start one with "
            "`dask scheduler`, or leave --scheduler (SCHEDULER=) out to grade on this "
            "machine") from None
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT)
    except (TimeoutError, OSError):
        client.close()
        raise GradingSetupError(
            f"the Dask scheduler at {scheduler} has no workers (none joined in {WORKER_WAIT} s):"
            f" start `dask worker {scheduler} --nthreads 1` from this course's .venv") from None
    return client


def _check_workers(client, course, unsafe):
    """GradingSetupError naming the first worker that cannot grade this course."""
    ours = str(Path(__file__).resolve().parent)
    try:
        found = client.run(_worker_check, str(course))
    except Exception as exc:  # noqa: BLE001 - a worker without rnngrading cannot unpickle it
        raise GradingSetupError(
            f"a Dask worker cannot run the grader ({type(exc).__name__}: {str(exc)[:100]}): "
            "start the workers with this course's .venv (`.venv/bin/dask worker ...`)") from None
    for address, said in sorted(found.items()):
        if isinstance(said, str):
            raise GradingSetupError(f"Dask worker {address} {said}")
        if said["rnngrading"] != ours:
            raise GradingSetupError(
                f"Dask worker {address} imports rnngrading from {said['rnngrading']}, not "
                f"{ours}: start it with this course's .venv")
        if said["isolation"] is None and not unsafe:
            raise GradingSetupError(f"Dask worker {address} cannot sandbox student code: "
                                    f"{said['why']}")


def _killed_reason(exc):
    """Why Dask gave up on a task, for the instructor, in one line."""
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        tries = exc.allowed_failures + 1
        return (f"Dask gave up on it: the worker grading it died, {tries} "
                f"{'time' if tries == 1 else 'times'} (killed, out of memory, or its machine "
                "went down); grade it again")
    return f"the grading task failed on Dask ({type(exc).__name__}: {str(exc)[:80]})"


def _gather(client, futures, tasks, on_results=None):
    """Each future's Result, in order; a task Dask gave up on, or lost, is not graded.
    on_results(list of Results) is called as they land, in the order they land."""
    from distributed import as_completed

    index = {future.key: i for i, future in enumerate(futures)}
    results = [None] * len(futures)
    batches = as_completed(futures).batches()
    while True:
        try:
            done = next(batches)
        except StopIteration:
            break
        except Exception:  # noqa: BLE001 - lost the scheduler: keep what finished
            break
        landed = []
        for future in done:
            i = index[future.key]
            results[i] = _result_of(future, tasks[i])
            landed.append(results[i])
        if on_results:  # outside the try: a gradebook that cannot be written stops us
            on_results(landed)
    late = [i for i, r in enumerate(results) if r is None]
    for i in late:
        results[i] = _result_of(futures[i], tasks[i])
    if late and on_results:
        on_results([results[i] for i in late])
    return results


def _result_of(future, task):
    """The Result of a future that ended; not graded, with the reason, if it has none."""
    try:
        if future.status == "finished":
            return Result(**future.result())
        why = (_killed_reason(future.exception()) if future.status == "error"
               else f"the Dask task was {future.status} (lost the scheduler?)")
    except Exception as exc:  # noqa: BLE001 - its result went with its worker
        why = _killed_reason(exc)
    return not_graded(task["student"], task["assignment"], why)


def grade_batch(jobs, course, limits=None, workers=None, scheduler=None, save_dir=None,
                fill_autograded=False, unsafe=False, check=True, on_results=None):
    """Grade [(student, assignment, notebook path)] in parallel; returns Results in job order.

    workers: local Dask worker processes (default: one per core); 1 grades one after
    the other in this process. scheduler: a Dask scheduler address (tcp://host:8786)
    or the DASK_SCHEDULER_ADDRESS environment variable: the jobs run on that cluster,
    whose workers must see this repository and the course at the same paths (checked
    first: GradingSetupError if one cannot, or if no worker joins in WORKER_WAIT s).
    Each worker process keeps one zygote (zygote.py), so nbgrader is imported once per
    worker, not once per submission. fill_autograded: each graded notebook also goes to
    COURSE/autograded/STUDENT/ASSIGNMENT/, where nbgrader's generate_feedback reads it.
    Before anything is graded, the pre-flight check (check=True) starts one trivial
    kernel per assignment as the submissions' kernels start: GradingSetupError if the
    set-up is broken, and then nothing is graded. On Dask it runs on every worker, as
    that worker's first task (preflight_task), so the kernel template and the zygote it
    starts there are the ones its gradings use, and this process starts neither.
    unsafe: grade without isolation where there is none (every status line then says NOT ISOLATED).
    A submission whose worker died is graded again by another; one that Dask gave up on
    (KilledWorker) comes back not graded, with the reason. on_results(list of Results) is
    called in this process as they land (to record and report each score at once, so that
    one submission at its time limit does not hold up the others').
    """
    course = Path(course).resolve()
    limits = limits or load_limits(limits_file(course))
    assignments = sorted({a for _, a, _ in jobs})
    scheduler = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    tasks = [dict(notebook=str(Path(nb).resolve()), assignment=a, student=s, course=str(course),
                  limits=dataclasses.asdict(limits), unsafe=unsafe,
                  save_dir=str(save_dir) if save_dir else None,
                  autograded_root=str(course / "autograded") if fill_autograded else None)
             for s, a, nb in jobs]
    if not scheduler and (workers == 1 or len(jobs) <= 1):
        if check:
            for assignment in assignments:
                preflight(course, assignment, limits, unsafe)
        results = []
        for task in tasks:
            results.append(Result(**grade_task(**task)))
            if on_results:
                on_results(results[-1:])
        return results
    from distributed import Client, LocalCluster

    if scheduler:
        client, cluster = _connect(scheduler), None
    else:
        # Dask's own warnings (a worker "still alive after 4.0 seconds, killing" as the
        # cluster closes) would land between the status lines: errors only.
        cluster = LocalCluster(n_workers=workers or os.cpu_count(), threads_per_worker=1,
                               processes=True, dashboard_address=":0",
                               silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        if scheduler:
            _check_workers(client, course, unsafe)
        _remove_dead_scratch(client)  # left by a batch before this one
        batch = uuid.uuid4().hex[:8]  # keys unique on a scheduler that other batches share
        if check:
            _preflight_on_workers(client, course, assignments, limits, unsafe, batch,
                                  remote=bool(scheduler))
        futures = [client.submit(grade_task, **task, pure=False,
                                 key=f"grade-{task['student']}-{task['assignment']}-{batch}-{i}")
                   for i, task in enumerate(tasks)]
        results = _gather(client, futures, tasks, on_results)
        _remove_dead_scratch(client)  # left by a worker that died in this batch
        return results
    finally:
        if cluster is not None:  # ours alone: no other batch grades on these workers now
            try:
                client.run(remove_own_scratch)
            except Exception:  # noqa: BLE001 - tidying only, never a reason to lose results
                pass
        client.close()
        if cluster is not None:
            cluster.close()
