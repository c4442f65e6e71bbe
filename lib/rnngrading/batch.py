"""Grading a class: many submissions in parallel on Dask, each graded by runner.grade_one.

Dask workers import this package like any module (every worker needs the course's Python
environment, this package installed, and the course at the same path); each worker process
keeps its own zygote warm between submissions.
"""

import dataclasses
import os
from pathlib import Path

from .limits import Limits, limits_file, load_limits
from .prechecks import preflight
from .runner import Result, grade_one


def grade_task(notebook, assignment, student, course, limits, save_dir=None,
               autograded_root=None, unsafe=False):
    """One Dask task: grade_one as a dict; a failure of the grader itself becomes an
    ungraded Result, so that one broken grading does not stop the batch."""
    try:
        result = grade_one(notebook, assignment, student, course, Limits(**limits),
                           save_dir=save_dir, autograded_root=autograded_root, unsafe=unsafe)
    except Exception as exc:  # noqa: BLE001 - one broken grading must not stop the batch
        result = Result(student, assignment, f"grader failed ({str(exc)[:80]}): not graded",
                        {}, 0.0, 0.0, graded=False)
    return dataclasses.asdict(result)


def grade_batch(jobs, course, limits=None, workers=None, scheduler=None, save_dir=None,
                fill_autograded=False, unsafe=False, check=True):
    """Grade [(student, assignment, notebook path)] in parallel; returns Results in job order.

    workers: local Dask worker processes (default: one per core); 1 grades one after
    the other in this process. scheduler: a Dask scheduler address (tcp://host:8786)
    or the DASK_SCHEDULER_ADDRESS environment variable: the jobs run on that cluster,
    whose workers must see this repository and the course at the same paths.
    Each worker process keeps one zygote (zygote.py), so nbgrader is imported once per
    worker, not once per submission. fill_autograded: each graded notebook also goes to
    COURSE/autograded/STUDENT/ASSIGNMENT/, where nbgrader's generate_feedback reads it.
    Before anything is graded, the pre-flight check (check=True) starts one trivial
    kernel per assignment as the submissions' kernels start: GradingSetupError if the
    set-up is broken, and then nothing is graded. unsafe: grade without isolation where
    there is none (every status line then says NOT ISOLATED).
    """
    course = Path(course).resolve()
    limits = limits or load_limits(limits_file(course))
    if check:
        for assignment in sorted({a for _, a, _ in jobs}):
            preflight(course, assignment, limits, unsafe)
    scheduler = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    tasks = [dict(notebook=str(Path(nb).resolve()), assignment=a, student=s, course=str(course),
                  limits=dataclasses.asdict(limits), unsafe=unsafe,
                  save_dir=str(save_dir) if save_dir else None,
                  autograded_root=str(course / "autograded") if fill_autograded else None)
             for s, a, nb in jobs]
    if not scheduler and (workers == 1 or len(jobs) <= 1):
        return [Result(**grade_task(**task)) for task in tasks]
    from dask.distributed import Client, LocalCluster

    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        cluster = LocalCluster(n_workers=workers or os.cpu_count(), threads_per_worker=1,
                               processes=True, dashboard_address=":0")
        client = Client(cluster)
    try:
        futures = [client.submit(grade_task, **task, pure=False,
                                 key=f"grade-{task['student']}-{task['assignment']}-{i}")
                   for i, task in enumerate(tasks)]
        return [Result(**d) for d in client.gather(futures)]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


