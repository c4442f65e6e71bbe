"""A class in a box: a JupyterHub on this machine with an instructor, students and the exchange.

python -m rnngrading.classbox COMMAND (the Makefile's `make class`, `class-stop`, `class-clean`):
    start  [--students N] [--port P] [--dir CLASS_DIR] [--prefix NAME] [--assignments A ...]
    stop   [--dir CLASS_DIR]    stop the hub, its proxy, every user's server and kernel
    clean  [--dir CLASS_DIR]    stop, then delete the class's users and their homes

`start` runs in the foreground until Ctrl-C (or `stop` from another shell). It needs root,
since every account is a system user. What it builds in CLASS_DIR (default
/srv/rnncourse-class, world-readable so the users can run what is in it):

    env/        the class's Python environment, from Debian's /usr/bin/python3: the pinned
                requirements.txt (--no-deps), the torch pin, and the course package installed
                non-editable (the repository may sit in a private folder and so may root's
                own Python: the users can run neither). Built once, rebuilt when the pins
                change; the course package is reinstalled when lib/ or pyproject.toml change.
    proxy/      configurable-http-proxy, `npm ci` from class/package-lock.json
    home/USER   each user's home (0700): PREFIX-instructor with a copy of the course in
                ~/course (config, limits, source/ with the judges, release/, gradebook.db,
                .judge_secret 0600), and PREFIX-s1 ... PREFIX-sN
    exchange/   nbgrader's exchange (1777: anyone may create, nobody may delete another's;
                nbgrader makes each course's inbound 0733, so a student can write into it
                but not list it)
    jupyter/    the Jupyter config dirs the spawner puts on JUPYTER_CONFIG_PATH: common/
                (course id and exchange), instructor/ (the course's own nbgrader_config.py,
                formgrader on), student/ (formgrader, create-assignment and the course list
                off, server and lab extensions alike)
    hub/        (0700, root) the hub's config (class/jupyterhub_config.py, copied), database,
                cookie secret, pid files and log
    class.json  the roster and ports, which the hub's config reads; once made, the roster is
                the class's: a name added to "students" gets an account at the next start

Authentication is PAM (JupyterHub's default, PAMAuthenticator) with passwords set by chpasswd
and printed once; spawning is LocalProcessSpawner running `jupyterhub-singleuser` (JupyterLab,
default URL /lab) as each user. A university hub keeps everything here but those two: its
authenticator (LDAP, OAuth, LTI) and its spawner (systemd, Docker, Kubernetes), with the same
exchange, config dirs and environment mounted into each user's server.
"""

import argparse
import contextlib
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .course import ASSIGNMENTS, REPO

DEFAULT_DIR = Path("/srv/rnncourse-class")
DEFAULT_PREFIX = "rnnclass"
SYSTEM_PYTHON = "/usr/bin/python3"
CLASS_FILES = REPO / "class"
HUB_CONFIG = CLASS_FILES / "jupyterhub_config.py"
# What the instructor's copy of the course holds (besides source/ and release/).
COURSE_FILES = ("nbgrader_config.py", "grading_limits.toml")
# PATH of every process of the class: its own environment first, then the system's.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HUB_START_S = 60
USER_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
STOP_WAIT_S = 20


class ClassError(Exception):
    """Something the person running the class can fix: reported as one line."""


def say(*parts):
    print("class:", *parts, flush=True)


# ---------------------------------------------------------------- the class's layout
class Layout:
    """Where each part of a class lives under its folder."""

    def __init__(self, folder, env=None, proxy=None):
        self.dir = Path(folder).resolve()
        # resolved: pip writes this path into the environment's scripts
        self.env = Path(env).resolve() if env else (self.dir / "env").resolve()
        self.proxy = Path(proxy).resolve() if proxy else self.dir / "proxy"
        self.homes = self.dir / "home"
        self.exchange = self.dir / "exchange"
        self.jupyter = self.dir / "jupyter"
        self.hub = self.dir / "hub"
        self.roster = self.dir / "class.json"

    @property
    def python(self):
        return self.env / "bin" / "python"

    @property
    def proxy_command(self):
        return self.proxy / "node_modules" / ".bin" / "configurable-http-proxy"

    def read_roster(self):
        if not self.roster.is_file():
            return None
        return json.loads(self.roster.read_text())


def require_root():
    if os.geteuid() != 0:
        raise ClassError(
            "make class creates a system user for the instructor and for each student, which "
            "needs root: run it as root (sudo make class), or have an administrator create the "
            "accounts and run it (README, 'A class on a JupyterHub')")


def require_reachable(layout):
    """Every class user runs the environment and the proxy and reaches the class folder: each
    folder above them must let others through (x for others). ClassError naming the first
    that does not (a mktemp -d or a home folder is 0700)."""
    for target in (layout.dir, layout.env, layout.proxy):
        for folder in [*reversed(target.parents)]:
            if folder.exists() and not folder.stat().st_mode & 0o001:
                raise ClassError(
                    f"{folder} (mode {folder.stat().st_mode & 0o777:o}) keeps the class's users "
                    f"out of {target}: put CLASS_DIR (and RNNCOURSE_CLASS_ENV, "
                    "RNNCOURSE_CLASS_PROXY) where every user can reach it, e.g. "
                    f"/srv/rnncourse-class, or chmod o+x {folder}")


def digest(*paths):
    """sha256 over files (a folder: its .py, .toml and template files, sorted by path)."""
    h = hashlib.sha256()
    for path in map(Path, paths):
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
            and not p.name.endswith(".pyc") and ".egg-info" not in str(p))
        for f in files:
            h.update(str(f.relative_to(path.parent)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def run(argv, what, **kw):
    """Run a set-up step; ClassError naming it (and its last lines) if it fails."""
    out = subprocess.run(argv, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        tail = " | ".join((out.stderr or out.stdout).strip().splitlines()[-3:])
        raise ClassError(f"{what} failed (exit {out.returncode}): {tail}")
    return out


# ---------------------------------------------------------------- environment and proxy
def build_env(layout, python=SYSTEM_PYTHON):
    """The class's Python environment, which every user can run; returns the seconds spent
    (0 when it was up to date). requirements.txt changed: rebuilt from scratch; lib/ or
    pyproject.toml changed: the course package reinstalled."""
    pins = digest(REPO / "requirements.txt")  # pyproject.toml: the package step below
    package = digest(REPO / "pyproject.toml", REPO / "lib")
    pins_stamp, package_stamp = layout.env / ".rnncourse-pins", layout.env / ".rnncourse-package"
    start = time.monotonic()
    if not (pins_stamp.is_file() and pins_stamp.read_text() == pins):
        if not os.access(python, os.X_OK):
            raise ClassError(f"no {python} to build the class's environment from: install "
                             "Debian's python3 and python3-venv (apt-get install python3-venv)")
        say(f"building the class's Python environment in {layout.env} from {python} "
            "(once; 4 to 7 minutes on 2 cores)")
        shutil.rmtree(layout.env, ignore_errors=True)
        layout.env.parent.mkdir(parents=True, exist_ok=True)
        run([python, "-m", "venv", str(layout.env)], "python3 -m venv")
        pip = [str(layout.python), "-m", "pip", "install", "--quiet"]
        torch_pin = next(line.split(";")[0].strip() for line in
                         (REPO / "requirements.txt").read_text().splitlines()
                         if line.startswith("torch=="))
        run([*pip, "--no-deps", "-r", str(REPO / "requirements.txt")], "pip install -r")
        run([*pip, torch_pin], f"pip install {torch_pin}")
        package_stamp.unlink(missing_ok=True)
    if not (package_stamp.is_file() and package_stamp.read_text() == package):
        # From a copy: pip builds in the source tree, and the repository is not ours to write.
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "rnncourse"
            copy.mkdir()
            shutil.copy2(REPO / "pyproject.toml", copy)
            shutil.copytree(REPO / "lib", copy / "lib", ignore=shutil.ignore_patterns(
                "__pycache__", "*.egg-info", "*.pyc"))
            # every file of the packages, not only their .py files and declared data (the
            # feedback page's templates, say): what an editable install would see
            (copy / "MANIFEST.in").write_text("graft lib\nglobal-exclude *.pyc\n")
            run([str(layout.python), "-m", "pip", "install", "--quiet", "--no-deps",
                 "--no-build-isolation", "--force-reinstall", str(copy)],
                "pip install of the course package")
        run([str(layout.python), "-m", "pip", "check"], "pip check")
        package_stamp.write_text(package)
    else:
        return 0.0
    pins_stamp.write_text(pins)
    run(["chmod", "-R", "a+rX", str(layout.env)], "chmod (the environment readable by all)")
    return time.monotonic() - start


def install_proxy(layout):
    """configurable-http-proxy from class/package-lock.json (npm ci); seconds spent."""
    lock = digest(CLASS_FILES / "package.json", CLASS_FILES / "package-lock.json")
    stamp = layout.proxy / ".rnncourse-lock"
    if stamp.is_file() and stamp.read_text() == lock and layout.proxy_command.exists():
        return 0.0
    if not shutil.which("npm"):
        raise ClassError("npm not found: the hub's proxy (configurable-http-proxy) installs "
                         "with npm; install Node.js and npm (apt-get install nodejs npm)")
    start = time.monotonic()
    say(f"installing configurable-http-proxy into {layout.proxy} (npm ci)")
    shutil.rmtree(layout.proxy, ignore_errors=True)
    layout.proxy.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(CLASS_FILES / name, layout.proxy / name)
    run(["npm", "ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"],
        "npm ci (configurable-http-proxy)", cwd=layout.proxy,
        env={**os.environ, "npm_config_cache": str(layout.proxy / ".npm-cache")})
    shutil.rmtree(layout.proxy / ".npm-cache", ignore_errors=True)
    stamp.write_text(lock)
    return time.monotonic() - start


# ---------------------------------------------------------------- users
def account_names(prefix, students):
    return f"{prefix}-instructor", [f"{prefix}-s{i}" for i in range(1, students + 1)]


def create_user(name, home):
    """A system user with its own group and a 0700 home; returns its password."""
    run(["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/bash",
         "--user-group", name], f"useradd {name}")
    home.chmod(0o700)
    password = secrets.token_urlsafe(12)
    run(["chpasswd"], f"chpasswd for {name}", input=f"{name}:{password}\n")
    return password


def as_user(name, argv, what, cwd=None, env=None):
    """Run argv as the class user `name`, with a clean environment and the class's PATH."""
    user = pwd.getpwnam(name)
    base = {"HOME": user.pw_dir, "USER": name, "LOGNAME": name, "LANG": "C.UTF-8",
            "PATH": SYSTEM_PATH}
    base.update(env or {})
    return run(argv, what, user=user.pw_uid, group=user.pw_gid, extra_groups=[],
               cwd=cwd or user.pw_dir, env=base)


def chown_tree(path, name):
    user = pwd.getpwnam(name)
    for p in [path, *Path(path).rglob("*")]:
        os.chown(p, user.pw_uid, user.pw_gid, follow_symlinks=False)


def install_course(layout, instructor, students, assignments):
    """The instructor's copy of the course in ~/course: config, limits, source/ (with the
    judges), release/; the assignments generated into its gradebook and the students added;
    the judge's secret made (0600). None when it is already there (left alone)."""
    home = Path(pwd.getpwnam(instructor).pw_dir)
    course = home / "course"
    if (course / "nbgrader_config.py").is_file():
        return None
    staging = home / ".course-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name in COURSE_FILES:
        shutil.copy2(REPO / name, staging / name)
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.pyc")
    for assignment in assignments:
        shutil.copytree(REPO / "source" / assignment, staging / "source" / assignment,
                        ignore=ignore)
    chown_tree(staging, instructor)
    env = class_env(layout, "instructor", home)
    as_user(instructor, [str(layout.env / "bin" / "rnncourse-instructor"), "--course", str(staging),
                         "release", *assignments], "releasing the assignments", env=env)
    add_students(layout, instructor, students, staging)
    as_user(instructor, [str(layout.python), "-c", "import sys; from rnngrading.judge import "
                         "course_secret; course_secret(sys.argv[1])", str(staging)],
            "making the judge's secret", env=env)
    staging.rename(course)
    return course


def add_students(layout, instructor, students, course=None):
    """Students into the instructor's gradebook (nbgrader db student add, as the instructor)."""
    home = Path(pwd.getpwnam(instructor).pw_dir)
    course = course or home / "course"
    for student in students:
        as_user(instructor, [str(layout.env / "bin" / "nbgrader"), "db", "student", "add",
                             student, "--log-level=ERROR"], f"adding {student} to the gradebook",
                cwd=course, env=class_env(layout, "instructor", home))


# ---------------------------------------------------------------- Jupyter configuration
STUDENT_SERVER_CONFIG = {"ServerApp": {"jpserver_extensions": {
    "nbgrader.server_extensions.formgrader": False,
    "nbgrader.server_extensions.course_list": False,
}}}
STUDENT_LAB_CONFIG = {"disabledExtensions": {
    "@jupyter/nbgrader:formgrader": True,
    "@jupyter/nbgrader:create-assignment": True,
    "@jupyter/nbgrader:course-list": True,
}}
# Everyone's terminals: a plain bash that keeps the server's PATH (the class's environment
# first); jupyter_server's default, a login shell, resets PATH from /etc/profile.
COMMON_SERVER_CONFIG = {"ServerApp": {"terminado_settings": {"shell_command": ["/bin/bash"]}}}
# JupyterLab offline: no news, no update check (settings overrides of the environment).
LAB_OVERRIDES = {"@jupyterlab/apputils-extension:notification": {
    "fetchNews": "false", "checkForUpdates": False}}


def course_id():
    """The course id, read from the course's own nbgrader_config.py (its one home)."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", str(REPO)).load_config() \
        .CourseDirectory.course_id


def write_jupyter_config(layout, instructor):
    """The three config dirs (common, instructor, student) and JupyterLab's overrides."""
    common, teacher, student = (layout.jupyter / n for n in ("common", "instructor", "student"))
    for d in (common, teacher, student / "labconfig"):
        d.mkdir(parents=True, exist_ok=True)
    exchange_lines = (f"c.CourseDirectory.course_id = {course_id()!r}\n"
                      f"c.Exchange.root = {str(layout.exchange)!r}\n")
    (common / "nbgrader_config.py").write_text(
        "# The class's course and its shared exchange (rnngrading.classbox writes this file).\n"
        "c = get_config()  # noqa: F821\n" + exchange_lines)
    course = Path(pwd.getpwnam(instructor).pw_dir) / "course"
    (teacher / "nbgrader_config.py").write_text(
        "# The instructor's course: its own nbgrader_config.py, then the class's exchange.\n"
        "c = get_config()  # noqa: F821\n"
        f"load_subconfig({str(course / 'nbgrader_config.py')!r})  # noqa: F821\n"
        + exchange_lines)
    (common / "jupyter_server_config.json").write_text(json.dumps(COMMON_SERVER_CONFIG))
    (student / "jupyter_server_config.json").write_text(json.dumps(STUDENT_SERVER_CONFIG))
    (student / "labconfig" / "page_config.json").write_text(json.dumps(STUDENT_LAB_CONFIG))
    settings = layout.env / "share" / "jupyter" / "lab" / "settings"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "overrides.json").write_text(json.dumps(LAB_OVERRIDES))
    for p in [layout.jupyter, *layout.jupyter.rglob("*"), settings / "overrides.json"]:
        p.chmod(0o755 if p.is_dir() else 0o644)


def class_env(layout, role, home):
    """The environment of a class user's processes (the hub's spawner sets the same)."""
    env = {"PATH": f"{layout.env / 'bin'}:{SYSTEM_PATH}",
           "JUPYTER_CONFIG_PATH": f"{layout.jupyter / role}:{layout.jupyter / 'common'}",
           "RNNCOURSE_EXCHANGE": str(layout.exchange)}
    if role == "instructor":
        env["RNNCOURSE_COURSE"] = str(Path(home) / "course")
    return env


# ---------------------------------------------------------------- the hub
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port):
    """Whether a server could listen on the port now (connections of a server stopped a moment
    ago, in TIME_WAIT, do not count: the proxy binds with SO_REUSEADDR too)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def prepare(layout, students=3, port=None, prefix=DEFAULT_PREFIX, assignments=ASSIGNMENTS,
            new_passwords=False):
    """Everything but the hub's start: environment, proxy, users, course, config. Returns
    (roster, passwords, timings); passwords only for accounts made (or reset) now."""
    require_root()
    for tool in ("useradd", "chpasswd", "userdel"):
        if not shutil.which(tool):
            raise ClassError(f"{tool} not found: the class's accounts are made with the "
                             "shadow utilities (apt-get install passwd)")
    require_reachable(layout)
    os.umask(0o022)
    layout.dir.mkdir(parents=True, exist_ok=True)
    layout.dir.chmod(0o755)
    old = layout.read_roster()
    if old:  # the roster is the class's from now on: names added to it get accounts
        instructor, names, prefix = old["instructor"], old["students"], old["prefix"]
        if (instructor, names) != account_names(prefix, students):
            say(f"the class in {layout.dir}: {instructor} and {len(names)} students, as "
                f"{layout.roster} lists them (STUDENTS and PREFIX apply to a new class only)")
    else:
        instructor, names = account_names(prefix, students)
        strangers = []
        for name in [instructor, *names]:
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                strangers.append(name)
        if strangers:
            raise ClassError(f"users named {', '.join(strangers)} already exist and are not "
                             "in a class here: pick another prefix (PREFIX=...) or remove them")
    bad = [n for n in [instructor, *names] if not USER_NAME.fullmatch(n)]
    if bad:
        raise ClassError(f"{', '.join(map(repr, bad))} in {layout.roster} cannot be a user name "
                         "(lower-case letters, digits, - and _, at most 32, a letter first)")
    # the roster first: whatever happens next, class-clean knows whom to remove
    roster = {"instructor": instructor, "students": names, "prefix": prefix,
              "port": port or 8000, "dir": str(layout.dir), "env": str(layout.env),
              "proxy": str(layout.proxy_command), "exchange": str(layout.exchange),
              "jupyter": str(layout.jupyter)}
    layout.roster.write_text(json.dumps(roster, indent=1))
    layout.roster.chmod(0o644)
    timings = {"env_s": build_env(layout), "proxy_s": install_proxy(layout)}
    passwords = {}
    layout.homes.mkdir(exist_ok=True)
    layout.homes.chmod(0o755)
    for name in [instructor, *names]:
        try:
            pwd.getpwnam(name)
        except KeyError:
            passwords[name] = create_user(name, layout.homes / name)
            continue
        if new_passwords:
            passwords[name] = secrets.token_urlsafe(12)
            run(["chpasswd"], f"chpasswd for {name}", input=f"{name}:{passwords[name]}\n")
    layout.exchange.mkdir(exist_ok=True)
    layout.exchange.chmod(0o1777)
    start = time.monotonic()
    if not install_course(layout, instructor, names, list(assignments)):
        add_students(layout, instructor, [n for n in names if n in passwords])
    timings["course_s"] = time.monotonic() - start
    write_jupyter_config(layout, instructor)
    layout.hub.mkdir(exist_ok=True)
    layout.hub.chmod(0o700)
    shutil.copy2(HUB_CONFIG, layout.hub / "jupyterhub_config.py")
    return roster, passwords, timings


def start_hub(layout, roster):
    """Start JupyterHub (and through it the proxy) in a session of its own; wait until it
    answers. Returns (process, seconds to answer)."""
    port = roster["port"]
    if not port_is_free(port):
        raise ClassError(f"port {port} on 127.0.0.1 is in use (another class, or make lab?): "
                         "make class-stop, or pick another with PORT=...")
    roster.update(hub_port=free_port(), proxy_api_port=free_port())
    layout.roster.write_text(json.dumps(roster, indent=1))
    env = {"PATH": f"{layout.env / 'bin'}:{SYSTEM_PATH}", "HOME": str(layout.hub),
           "LANG": "C.UTF-8", "RNNCOURSE_CLASS": str(layout.roster)}
    log = open(layout.hub / "jupyterhub.log", "ab")  # noqa: SIM115 (the hub's, for its life)
    start = time.monotonic()
    hub = subprocess.Popen([str(layout.env / "bin" / "jupyterhub"), "-f",
                            str(layout.hub / "jupyterhub_config.py")], cwd=layout.hub, env=env,
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    (layout.hub / "classbox.pid").write_text(str(hub.pid))
    url = f"http://127.0.0.1:{port}/hub/api/"
    while time.monotonic() - start < HUB_START_S:
        if hub.poll() is not None:
            raise ClassError(f"the hub exited at start (status {hub.returncode}): see "
                             f"{layout.hub / 'jupyterhub.log'}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                json.load(r)
            return hub, time.monotonic() - start
        except OSError:
            time.sleep(0.2)
    stop(layout)
    raise ClassError(f"the hub did not answer within {HUB_START_S} s: see "
                     f"{layout.hub / 'jupyterhub.log'}")


# ---------------------------------------------------------------- stopping and cleaning
def _processes():
    """(pid, uid, session id) of every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        uid = int(next(line.split()[1] for line in status.splitlines()
                       if line.startswith("Uid:")))
        session = int(stat.rsplit(")", 1)[1].split()[4])
        yield int(entry.name), uid, session


def class_processes(layout, roster):
    """Processes of the class: the hub's session (hub, proxy) and every process of a class
    user (servers, kernels, terminals, grading sandboxes)."""
    uids = set()
    for name in [roster["instructor"], *roster["students"]]:
        with contextlib.suppress(KeyError):
            uids.add(pwd.getpwnam(name).pw_uid)
    sessions = set()
    for name in ("classbox.pid", "jupyterhub.pid", "jupyterhub-proxy.pid"):
        with contextlib.suppress(OSError, ValueError):
            sessions.add(int((layout.hub / name).read_text()))
    me = os.getpid()
    return [pid for pid, uid, session in _processes()
            if pid != me and (uid in uids or session in sessions)]


def stop(layout, quiet=False):
    """Stop the hub (it stops the proxy and every server), then end whatever of the class is
    still running. Users, homes and the course stay. Returns how many processes remained."""
    roster = layout.read_roster()
    if roster is None:
        if not quiet:
            say(f"no class in {layout.dir}: nothing to stop")
        return 0
    pidfile = layout.hub / "classbox.pid"
    with contextlib.suppress(OSError, ValueError):
        hub = int(pidfile.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(hub, signal.SIGTERM)  # the hub stops the servers and the proxy
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline and Path(f"/proc/{hub}").exists():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(hub, os.WNOHANG)
            time.sleep(0.2)
    left = class_processes(layout, roster)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = class_processes(layout, roster)
        if not left:
            break
    for name in ("classbox.pid", "jupyterhub.pid", "jupyterhub-proxy.pid"):
        (layout.hub / name).unlink(missing_ok=True)
    if not quiet:
        say("stopped: no process of the class left" if not left
            else f"{len(left)} processes would not end: {left}")
    return len(left)


def clean(layout):
    """Stop, then delete the class's users, their homes (the course copy and all the students'
    work with them), the exchange, the hub's state and the roster. The environment and proxy
    stay for the next class (rm -rf CLASS_DIR removes them too)."""
    require_root()
    roster = layout.read_roster()
    if roster is None:
        say(f"no class in {layout.dir}: nothing to clean")
        return
    stop(layout, quiet=True)
    for name in [roster["instructor"], *roster["students"]]:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            run(["userdel", name], f"userdel {name}")
        shutil.rmtree(layout.homes / name, ignore_errors=True)
    for path in (layout.exchange, layout.jupyter, layout.hub):
        shutil.rmtree(path, ignore_errors=True)
    layout.roster.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        layout.homes.rmdir()
    proxy = Path(roster["proxy"]).parents[2]
    say(f"removed {1 + len(roster['students'])} accounts, their homes and the exchange; "
        f"{roster['env']} and {proxy} stay for the next class")


# ---------------------------------------------------------------- the command line
GUIDE = """\
Open http://127.0.0.1:{port}/ and log in. Passwords are printed once, here; an account made
earlier keeps its password (--new-passwords sets new ones).
  instructor  {instructor}: formgrader (Nbgrader > Formgrader) releases, collects, makes and
              releases feedback; autograde, sandboxed, from a terminal in JupyterLab:
                  rnncourse-instructor autograde ASSIGNMENT
  students    {students}: Nbgrader > Assignments to fetch, submit and fetch feedback
Stop: Ctrl-C here, or make class-stop from another shell (users and their work stay).
Remove the accounts and all their work: make class-clean.
Real students: add their user names to "students" in {roster} and start the class again:
each new name gets an account, a 0700 home, a password (printed) and a place in the gradebook.
A university hub keeps the exchange, the config dirs and the environment and swaps the
authenticator and the spawner in {hub}/jupyterhub_config.py (marked there)."""


def cmd_start(args):
    layout = Layout(args.dir, args.env, args.proxy)
    started = time.monotonic()
    roster, passwords, timings = prepare(layout, args.students, args.port, args.prefix,
                                         args.assignments or ASSIGNMENTS, args.new_passwords)
    hub, up_s = start_hub(layout, roster)
    timings["hub_s"] = up_s
    say(f"environment {timings['env_s']:.0f} s, proxy {timings['proxy_s']:.0f} s, course "
        f"{timings['course_s']:.0f} s; the hub answered {up_s:.1f} s after its start; "
        f"ready {time.monotonic() - started:.0f} s after make class")
    say(f"serving the class at http://127.0.0.1:{roster['port']}/")
    for name, password in passwords.items():
        print(f"  {name:24s} password {password}", flush=True)
    print(GUIDE.format(port=roster["port"], instructor=roster["instructor"],
                       students=", ".join(roster["students"]), roster=layout.roster,
                       hub=layout.hub), flush=True)
    if args.credentials:
        fd = os.open(args.credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"passwords": passwords, "timings": timings, **roster}, f)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # Ctrl-C, even where the shell started it ignoring it
    try:
        status = hub.wait()
        say(f"the hub exited (status {status}); stopping what is left")
    except KeyboardInterrupt:
        say("stopping the class")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        pidfile = layout.hub / "classbox.pid"
        if pidfile.is_file() and pidfile.read_text() == str(hub.pid):
            stop(layout)
        else:  # make class-stop stopped it (and may have started the class again since)
            say("stopped by make class-stop")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m rnngrading.classbox",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default=os.environ.get("CLASS_DIR") or DEFAULT_DIR,
                        help=f"the class's folder (default {DEFAULT_DIR})")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="build what is missing and run the hub until Ctrl-C")
    start.add_argument("--students", type=int, default=3)
    start.add_argument("--port", type=int, default=8000)
    start.add_argument("--prefix", default=DEFAULT_PREFIX,
                       help="account names: PREFIX-instructor, PREFIX-s1, ...")
    start.add_argument("--assignments", nargs="*", help="default: all four")
    start.add_argument("--env", help="the class's Python environment (default CLASS_DIR/env)")
    start.add_argument("--proxy", help="where the proxy is installed (default CLASS_DIR/proxy)")
    start.add_argument("--new-passwords", action="store_true",
                       help="set and print new passwords for accounts made earlier")
    start.add_argument("--credentials", help="also write the passwords to this file (0600)")
    sub.add_parser("stop", help="stop the hub, the proxy, every server and kernel")
    sub.add_parser("clean", help="stop, then delete the accounts and their homes")
    args = parser.parse_args(argv)
    if getattr(args, "students", 1) < 1:
        parser.error("--students must be at least 1")
    layout = Layout(args.dir, getattr(args, "env", None), getattr(args, "proxy", None))
    try:
        if args.command == "start":
            return cmd_start(args)
        if args.command == "stop":
            require_root()
            return 1 if stop(layout) else 0
        clean(layout)
        return 0
    except ClassError as exc:
        print(f"make class: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
