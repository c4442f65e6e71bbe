"""`make grade` as an ordinary user, from a checkout inside that user's private folder.

An instructor on a university server is not root. Here a user who is not root installs
the course's environment with Debian's python3 in a folder of mode 0700, and grades a
small class in it on two workers: honest students keep their scores, a fork bomb and a
reader of other students' work get nothing, and a machine where no sandbox can be built
is refused before anything is written, unless the instructor asks for unsafe grading,
which then says so on every line.

Runs as root (as CI does), since it creates the user; as an ordinary user the rest of
the suite already is this test. The environment takes about two minutes to install.
"""

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import coursekit
import pytest
from coursekit import FORK_BOMB, checksum, full, notebook, without

from rnngrading.course import REPO, gradebook

USER = "rnncourse-grader"
SYSTEM_PYTHON = "/usr/bin/python3"

FULL, TRANSPOSED = full("jacobian"), without("jacobian", "test_step_jacobian")
pytestmark = [
    pytest.mark.grading,
    pytest.mark.sandbox,
    pytest.mark.skipif(os.geteuid() != 0, reason="creates an ordinary user, so runs as root "
                       "only; as an ordinary user the rest of the suite is this test"),
    pytest.mark.skipif(not Path(SYSTEM_PYTHON).exists() or not shutil.which("useradd"),
                       reason="needs Debian's python3 and useradd"),
]

SNOOP = """import glob, os
seen = (glob.glob('/tmp/**/*.ipynb', recursive=True) + glob.glob('/tmp/*/*/*')
        + glob.glob(os.path.expanduser('~/../../*')) + glob.glob('/proc/[0-9]*/cwd'))
print('SEEN', len(seen), seen)
"""


def as_user(argv, home, **kw):
    """Run argv as USER, with a clean environment whose HOME is `home`."""
    user = pwd.getpwnam(USER)
    env = {k: v for k, v in os.environ.items() if k.startswith(("PIP_", "LANG", "LC_"))}
    env.update(HOME=str(home), PATH="/usr/bin:/bin", TMPDIR=str(home / "tmp"),
               XDG_CACHE_HOME=str(home / ".cache"))
    env.update(kw.pop("env", {}))
    return subprocess.run(argv, user=user.pw_uid, group=user.pw_gid, extra_groups=[], env=env,
                          capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def private():
    """USER's private folder (0700) with a course checkout, set up by `make setup` from Debian's
    python3 (its venv inside the checkout)."""
    created = subprocess.run(["id", USER], capture_output=True).returncode != 0
    if created:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", USER], check=True)
    user = pwd.getpwnam(USER)
    root = Path(tempfile.mkdtemp(prefix="rnncourse-user-"))  # mode 0700
    try:
        course = root / "course"
        course.mkdir()
        for name in ("nbgrader_config.py", "grading_limits.toml", "requirements.txt",
                     "pyproject.toml", "Makefile", "class.mk"):
            shutil.copy2(REPO / name, course / name)
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
        for folder in ("lib", "source/jacobian", "release/jacobian"):
            shutil.copytree(REPO / folder, course / folder, ignore=ignore)
        for d in (root / "home", root / "home" / "tmp"):
            d.mkdir()
        for path in [root, *root.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
        venv = course / ".venv"
        steps = [["make", "--no-print-directory", "setup", f"PYTHON={SYSTEM_PYTHON}"],
                 [str(venv / "bin/nbgrader"), "generate_assignment", "jacobian", "--force",
                  "--log-level=ERROR"]]
        for argv in steps:
            out = as_user(argv, root / "home", cwd=course,
                          env={"PATH": f"{venv}/bin:/usr/bin:/bin"})
            assert out.returncode == 0, (argv, out.stderr[-2000:])
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if created:
            subprocess.run(["userdel", USER], capture_output=True)


def hand_in(private, folder, student, case="reference", prefix=""):
    """A jacobian submission built from a fixture, `prefix` put before the textbook answer."""
    coursekit.hand_in(folder, student, notebook(private / "course", case, prefix))


def grade(private, folder, *extra, env=None, workers=2):
    user = pwd.getpwnam(USER)
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    venv = private / "course" / ".venv"
    return as_user([str(venv / "bin/rnncourse-grade"), "grade", "jacobian",
                    str(folder), "--workers", str(workers), *extra], private / "home",
                   cwd=private / "course",
                   env={"PATH": f"{venv}/bin:/usr/bin:/bin", **(env or {})})


def lines_by_student(stdout):
    return {line.split()[0]: line for line in stdout.splitlines() if " jacobian " in line}


def test_an_ordinary_user_grades_a_class_from_a_private_folder(private):
    assert os.stat(private).st_mode & 0o777 == 0o700
    folder = private / "class"
    hand_in(private, folder, "ada")
    hand_in(private, folder, "dora", "transposed")
    hand_in(private, folder, "bomber", "blank", FORK_BOMB)
    hand_in(private, folder, "snoop", "blank", SNOOP)
    out = grade(private, folder)
    print(out.stdout, out.stderr[-3000:])
    assert out.returncode == 0
    lines = lines_by_student(out.stdout)
    assert f" {FULL:g} / {FULL:g} " in lines["ada"], out.stdout
    assert f" {TRANSPOSED:g} / {FULL:g} " in lines["dora"], out.stdout
    assert f" 0 / {FULL:g} " in lines["bomber"] and f" 0 / {FULL:g} " in lines["snoop"]
    assert "NOT ISOLATED" not in out.stdout
    import nbformat

    snooped = nbformat.read(private / "course/autograded/snoop/jacobian/jacobian.ipynb", 4)
    (seen,) = [line for cell in snooped.cells for out in cell.get("outputs", [])
               for line in out.get("text", "").splitlines() if line.startswith("SEEN")]
    print(seen)
    assert not any(f"/{name}" in seen for name in ("ada", "dora", "bomber"))
    with gradebook(private / "course") as gb:
        assert gb.find_submission("jacobian", "ada").code_score == FULL
        assert gb.find_submission("jacobian", "dora").code_score == TRANSPOSED


def test_no_sandbox_possible_stops_before_any_score_is_written(private, tmp_path):
    folder = private / "class-refused"
    hand_in(private, folder, "eve")
    gradebook = private / "course" / "gradebook.db"
    before = checksum(gradebook)
    fake = private / "home" / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    for bwrap, cause in ((private / "missing-bwrap", "bubblewrap"),
                         (fake, "unprivileged user namespaces")):
        out = grade(private, folder, env={"RNNCOURSE_BWRAP": str(bwrap)}, workers=1)
        print(out.stderr)
        assert out.returncode == 2
        assert out.stderr.count("\n") == 1 and cause in out.stderr, out.stderr
        assert "nothing recorded" in out.stderr and "--unsafe-no-isolation" in out.stderr
        assert checksum(gradebook) == before


def test_unsafe_grading_says_so_on_every_line(private):
    folder = private / "class-unsafe"
    hand_in(private, folder, "ada")
    out = grade(private, folder, "--unsafe-no-isolation", workers=1,
                env={"RNNCOURSE_BWRAP": str(private / "missing-bwrap")})
    print(out.stdout, out.stderr[-2000:])
    assert out.returncode == 0
    lines = lines_by_student(out.stdout)
    assert lines and all("NOT ISOLATED" in line for line in lines.values())
    assert f" {FULL:g} / {FULL:g} " in lines["ada"]


def test_the_private_checkout_is_really_private(private):
    # the same grading above ran with the venv inside this folder: nobody else can enter
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import os, sys; os.listdir(sys.argv[1])",
                            str(private)], user=65534, group=65534, extra_groups=[],
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "Permission denied" in probe.stderr
