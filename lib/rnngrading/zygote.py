"""The zygote: `nbgrader autograde` without paying for nbgrader's imports per submission.

Starting `nbgrader autograde` as a new process costs Python's start and about 1.2 s of
imports per submission (benchmarks/RESULTS.md). A zygote is a single-threaded process
(`python -m rnngrading.zygote`) that has imported nbgrader once and forks one child per
request: the child runs nbgrader's autograde app in a session of its own, its output in a
log file, and is killed with all it started when the request's time is up. Each grading
process (a Dask worker) keeps its idle zygotes for the next submission.

Why not multiprocessing's forkserver with preloaded modules, which does the same: Dask's
worker processes are daemonic (distributed.worker.daemon), and multiprocessing refuses to
start children from a daemonic process; the protocol here is one JSON line each way.
"""

import atexit
import json
import os
import signal
import subprocess
import sys
import threading
import time

from .course import grading_env
from .launcher import die_with_parent

_idle = []  # idle zygotes of this process
_idle_lock = threading.Lock()


def run_and_exit(main):
    """The whole life of a forked child: main(), then os._exit with its status (0, or a
    SystemExit's); a traceback on stderr and status 1 for anything else. Never returns."""
    code = 1
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the child must always reach os._exit
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _child(req):
    """In the forked child: nbgrader autograde, in a session of its own. Never returns."""
    def autograde():
        os.setsid()
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        die_with_parent()
        os.chdir(req["scratch"])
        os.environ.clear()
        os.environ.update(req["env"])
        sys.argv = list(req["argv"])
        from nbgrader.apps.nbgraderapp import NbGraderApp

        NbGraderApp.launch_instance(argv=req["argv"][1:])

    run_and_exit(autograde)


def _serve(req, parent):
    """Fork a child for one request and wait for it, at most req['timeout'] seconds.

    If the process that asked (`parent`) dies meanwhile (a Dask worker killed mid-batch),
    kill the child's session and exit: nobody is waiting for the answer. Polling the parent
    id costs nothing here, and unlike PR_SET_PDEATHSIG it does not depend on which thread
    of the worker started the zygote.
    """
    pid = os.fork()
    if pid == 0:
        _child(req)
    deadline = time.monotonic() + req["timeout"]
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {"rc": os.waitstatus_to_exitcode(status), "timed_out": False}
        orphaned = os.getppid() != parent
        if orphaned or time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)  # the child's session: it and its namespace's PID 1
            os.waitpid(pid, 0)
            if orphaned:
                os._exit(1)
            return {"rc": None, "timed_out": True}
        time.sleep(0.02)


def _warm_validators():
    """Compile nbformat's notebook validators (strict, and relaxed as nbconvert asks after
    each preprocessor) once, here, so that every forked autograde inherits them: each
    child compiled them again, about 60 ms of every submission."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    nbformat.validate(nb)
    nbformat.validate(nb, relax_add_props=True)


class _CachedSchemas:
    """jsonschema, as nbgrader's metadata check (nbgraderformat.common) sees it, with one
    change: `validate` builds a validator once per schema. jsonschema.validate checks the
    schema and builds a validator on every call: nbgrader calls it for every cell, twice a
    submission, about 1 ms each. The answer is the same: the error best_match picks."""

    def __init__(self, module):
        self._module = module
        self._validators = {}

    def __getattr__(self, name):
        return getattr(self._module, name)

    def validate(self, instance, schema):
        key = json.dumps(schema, sort_keys=True)  # nbgrader loads its schema file per use
        validator = self._validators.get(key)
        if validator is None:
            cls = self._module.validators.validator_for(schema)
            cls.check_schema(schema)
            validator = self._validators[key] = cls(schema)
        error = self._module.exceptions.best_match(validator.iter_errors(instance))
        if error is not None:
            raise error


def _fsync_off(dbapi_connection, _record):
    dbapi_connection.execute("PRAGMA synchronous = OFF")


def _prepare_for_children():
    """What every forked autograde would otherwise do again (about 0.15 s of CPU each):
    import what nbgrader imports late (IPython, for the kernel spec's folders; SQLite's
    SQLAlchemy dialect; our probe), compile nbformat's validators, and cache the metadata
    schema's. The children's gradebook is the scratch copy in the grading folder, thrown
    away after each submission: its commits need not reach the disk (no fsync)."""
    import codeop  # noqa: F401
    import sqlite3  # noqa: F401

    import IPython  # noqa: F401
    import jsonschema
    import jupyter_core.migrate  # noqa: F401
    import sqlalchemy.dialects.sqlite  # noqa: F401
    from nbgrader.nbgraderformat import common
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    import rnngrading.probe  # noqa: F401

    _warm_validators()
    common.jsonschema = _CachedSchemas(jsonschema)
    event.listen(Engine, "connect", _fsync_off)


def main():
    """`python -m rnngrading.zygote`: import nbgrader, then serve a JSON request per line."""
    parent = os.getppid()
    import nbclient  # noqa: F401
    import nbgrader.apps.autogradeapp  # noqa: F401
    import nbgrader.apps.nbgraderapp  # noqa: F401
    import nbgrader.converters.autograde  # noqa: F401
    import nbgrader.preprocessors  # noqa: F401
    from jupyter_client import manager  # noqa: F401

    import rnngrading.outputs  # noqa: F401

    _prepare_for_children()
    print("ready", flush=True)
    for line in sys.stdin:  # EOF: the process that started us is gone
        print(json.dumps(_serve(json.loads(line), parent)), flush=True)
    return 0


class _Zygote:
    def __init__(self):
        env = grading_env()
        self.proc = subprocess.Popen([sys.executable, "-m", "rnngrading.zygote"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env, cwd="/")
        first = self.proc.stdout.readline().strip()
        if first != "ready":
            self.proc.kill()
            raise RuntimeError(f"the grading zygote did not start (said {first!r})")

    def run(self, req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the grading zygote died")
        return json.loads(line)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def run(req):
    """Run one autograde request in an idle zygote of this process (started if none)."""
    with _idle_lock:
        zygote = _idle.pop() if _idle else None
    if zygote is None or zygote.proc.poll() is not None:
        zygote = _Zygote()
    try:
        reply = zygote.run(req)
    except BaseException:
        zygote.close()
        raise
    with _idle_lock:
        _idle.append(zygote)
    return reply


def warm():
    """Start an idle zygote in this process now, unless it has one, so that the first
    submission it grades does not wait for nbgrader's imports."""
    if idle_count():
        return
    zygote = _Zygote()
    with _idle_lock:
        _idle.append(zygote)


@atexit.register
def close_all():
    with _idle_lock:
        while _idle:
            _idle.pop().close()


def idle_count():
    """How many idle zygotes this process keeps (for the tests and the benchmark)."""
    with _idle_lock:
        return sum(z.proc.poll() is None for z in _idle)


if __name__ == "__main__":
    sys.exit(main())
