"""The course on disk: where its root is, its assignments, its gradebook, and nbgrader run in it.

A course root is a folder holding nbgrader_config.py (this repository is one; the instructor
demo and the grading tests make others). Everything in this package that needs the course
takes its root as an argument; `default_course()` says which one a command uses when none is
given.
"""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The graded assignments in course order (the order of the grade table and the demo).
ASSIGNMENTS = ("jacobian", "eigenvalues", "copy_task", "rnn_from_scratch")
# The simulated class: fixture submissions of every assignment and tests/fixtures/.../roster.json
FIXTURES = REPO / "tests" / "fixtures" / "submissions"
LIMITS_FILE = "grading_limits.toml"  # in the course root


class CourseError(Exception):
    """A problem the instructor can fix (a missing folder, a bad name): reported as one line,
    nothing half done."""


class GradingSetupError(RuntimeError):
    """The instructor's set-up, not a student, keeps grading from starting: one line."""


def default_course():
    """The course root a command works on when none is given: $RNNCOURSE_COURSE, else the
    nearest folder at or above the working directory that holds nbgrader_config.py, else this
    repository."""
    if os.environ.get("RNNCOURSE_COURSE"):
        return Path(os.environ["RNNCOURSE_COURSE"]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file():
            return folder
    return REPO


def course_root(path):
    """The course root folder (it must hold nbgrader_config.py)."""
    root = Path(path).resolve()
    if not (root / "nbgrader_config.py").is_file():
        raise CourseError(f"not a course root (no nbgrader_config.py): {root}")
    return root


def known_assignments(root):
    """Assignments with a source folder holding at least one notebook, in course order."""
    source = Path(root) / "source"
    if not source.is_dir():
        return []
    found = sorted(p.name for p in source.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))
    return [a for a in ASSIGNMENTS if a in found] + [a for a in found if a not in ASSIGNMENTS]


def released_notebooks(root, assignment):
    """Names of the notebooks students get for `assignment`."""
    names = sorted(p.name for p in (Path(root) / "release" / assignment).glob("*.ipynb"))
    if not names:
        raise CourseError(
            f"no release of {assignment!r} in {Path(root) / 'release'}: run the release "
            "command first"
        )
    return names


def gradebook_url(root):
    """The SQLAlchemy URL of a course's gradebook."""
    return f"sqlite:///{Path(root).resolve() / 'gradebook.db'}"


def gradebook(root):
    """An nbgrader Gradebook on the course's gradebook.db (use it in a `with`).

    nbgrader's Gradebook runs the `alembic` command of its own environment to set up or
    upgrade the database, so that environment's bin folder goes first on PATH.
    """
    from nbgrader.api import Gradebook

    os.environ["PATH"] = own_bin_first(os.environ.get("PATH", ""))
    return Gradebook(gradebook_url(root))


def own_bin_first(path):
    """PATH with this Python environment's bin folder first (nbgrader runs `alembic` from
    PATH, and it must be the one beside this nbgrader)."""
    bin_dir = str(Path(sys.executable).parent)
    if path.split(os.pathsep)[0] == bin_dir:
        return path
    return os.pathsep.join(filter(None, [bin_dir, path]))


def grading_env():
    """This process's environment without its Jupyter and Dask settings, own bin first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "DASK"))}
    env["PATH"] = own_bin_first(env.get("PATH", ""))
    return env


# nbgrader's gradebook code trips a harmless SQLAlchemy warning on every submission
QUIET_WARNINGS = "ignore:Object of type"


def nbgrader(root, *args, log_level=None):
    """Run one nbgrader command in the course root; CourseError if it fails."""
    env = dict(os.environ)
    env["PATH"] = own_bin_first(env.get("PATH", ""))
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS"), QUIET_WARNINGS]))
    extra = [f"--log-level={log_level}"] if log_level and not any(
        "log-level" in a for a in args) else []
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args, *extra], cwd=root, env=env)
    if proc.returncode != 0:
        raise CourseError(
            f"nbgrader {args[0]} failed with exit status {proc.returncode} (its log is above)")


def new_course(root, assignments, release=True):
    """A course root at `root` (created) for some assignments: the config, the limits it
    reads, and each assignment's source/; release: each released by nbgrader into release/
    and the gradebook, else the committed release/ copied and no gradebook."""
    import shutil

    root = Path(root)
    root.mkdir(parents=True)
    for name in ("nbgrader_config.py", LIMITS_FILE):
        shutil.copy2(REPO / name, root / name)
    for assignment in assignments:
        shutil.copytree(REPO / "source" / assignment, root / "source" / assignment)
        if release:
            nbgrader(root, "generate_assignment", assignment, "--force", log_level="ERROR")
        else:
            shutil.copytree(REPO / "release" / assignment, root / "release" / assignment)
    return root


# Where Jupyter, IPython, matplotlib and caches write: each variable, a sub-folder.
SCRATCH_HOME_VARS = {
    "HOME": "home",
    "JUPYTER_CONFIG_DIR": "jupyter-config",
    "JUPYTER_DATA_DIR": "jupyter-data",
    "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
    "IPYTHONDIR": "ipython",
    "MPLCONFIGDIR": "matplotlib",
    "XDG_CACHE_HOME": "cache",
}


def point_home_at(scratch):
    """Make this process and its children write their settings and caches under `scratch`
    (the test suite and the benchmarks leave the user's home alone)."""
    for var, sub in SCRATCH_HOME_VARS.items():
        os.makedirs(os.path.join(scratch, sub), exist_ok=True)
        os.environ[var] = os.path.join(scratch, sub)
