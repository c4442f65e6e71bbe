"""A class on a real JupyterHub for the end-to-end test (`pytest tests/hub`).

The `klass` fixture runs `python -m rnngrading.classbox start` (what `make class` runs) in a
folder of its own under /tmp (0755, so its users can reach their homes), with an instructor
and two students whose names start with a random prefix (rc-XXXX-), and jacobian only. The
class's Python environment and proxy are kept between runs in /tmp/rnncourse-class-env and
/tmp/rnncourse-class-proxy (rebuilt when the pins or the lock change; RNNCOURSE_CLASS_ENV and
RNNCOURSE_CLASS_PROXY name others). At the end, pass or fail, the class is stopped as Ctrl-C
stops it, the test checks that none of its processes is left, and `classbox clean` removes the
users and their homes.

Skipped, with the reason on one line: not root (the class's users are system users), no
Chromium, no useradd, no Debian python3, no npm.
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from rnngrading import classbox
from rnngrading.course import REPO, point_home_at

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = REPO / "artifacts" / "hub"
CLASS_ENV = Path(os.environ.get("RNNCOURSE_CLASS_ENV", "/tmp/rnncourse-class-env"))
CLASS_PROXY = Path(os.environ.get("RNNCOURSE_CLASS_PROXY", "/tmp/rnncourse-class-proxy"))
START_S = 900  # the environment's first build included


def skip_reason():
    if os.geteuid() != 0:
        return ("the class's instructor and students are system users, so this test runs as "
                "root only (make class says the same as an ordinary user)")
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set CHROMIUM=)"
    for tool in ("useradd", "userdel", "chpasswd", "npm"):
        if not shutil.which(tool):
            return f"{tool} not found"
    if not os.access(classbox.SYSTEM_PYTHON, os.X_OK):
        return f"no {classbox.SYSTEM_PYTHON} to build the class's environment from"
    return None


def pytest_collection_modifyitems(config, items):
    reason = skip_reason()
    if reason:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session", autouse=True)
def scratch_home(tmp_path_factory):
    """This process and its children (Chromium, pip's cache) write under a temp folder."""
    point_home_at(tmp_path_factory.mktemp("hub-test-home"))


@pytest.fixture(scope="session")
def shots():
    """shots(label, page): a screenshot in artifacts/hub/, numbered in the order taken."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    count = [0]

    def take(label, page):
        count[0] += 1
        path = ARTIFACTS / f"{count[0]:02d}-{label}.png"
        page.screenshot(path=path)
        return path

    return take


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                      headless=True)
        yield chromium
        chromium.close()


class Class:
    """A running class: its folder, roster, passwords, URL and how long it took to start."""

    def __init__(self, folder, info, start_s, proc):
        self.dir, self.info, self.start_s, self.proc = Path(folder), info, start_s, proc
        self.layout = classbox.Layout(folder, info["env"], Path(info["proxy"]).parents[2])
        self.base = f"http://127.0.0.1:{info['port']}"
        self.instructor, self.students = info["instructor"], info["students"]
        self.passwords = info["passwords"]

    def home(self, name):
        return self.layout.homes / name


@pytest.fixture(scope="module")
def klass():
    folder = Path(tempfile.mkdtemp(prefix="rnncourse-hub-"))
    folder.chmod(0o755)
    prefix = f"rc-{secrets.token_hex(2)}"
    credentials = folder / "credentials.json"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = open(ARTIFACTS / "classbox.log", "w")  # noqa: SIM115 (closed below)
    argv = [sys.executable, "-m", "rnngrading.classbox", "--dir", str(folder), "start",
            "--students", "2", "--prefix", prefix, "--assignments", "jacobian",
            "--env", str(CLASS_ENV), "--proxy", str(CLASS_PROXY),
            "--port", str(classbox.free_port()), "--credentials", str(credentials)]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while not credentials.exists():
            if proc.poll() is not None:
                pytest.fail("make class stopped: " + (ARTIFACTS / "classbox.log").read_text())
            if time.monotonic() - started > START_S:
                pytest.fail(f"the class did not start within {START_S} s")
            time.sleep(0.5)
        time.sleep(0.2)
        info = json.loads(credentials.read_text())
        yield Class(folder, info, time.monotonic() - started, proc)
    finally:
        # Ctrl-C, as a teacher stops it; then nothing of the class may be running
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        layout = classbox.Layout(folder, CLASS_ENV, CLASS_PROXY)
        roster = layout.read_roster()
        left = classbox.class_processes(layout, roster) if roster else []
        subprocess.run([sys.executable, "-m", "rnngrading.classbox", "--dir", str(folder),
                        "clean"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
        assert not left, f"processes of the class left after Ctrl-C: {left}"
