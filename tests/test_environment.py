"""The pinned environment, as `make setup` leaves it, and the Pythons it installs on."""

import glob
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def test_jupyter_processes_do_not_build_the_rfc3987_parsers():
    # jsonschema imports rfc3987_syntax whenever it is installed, and every nbformat,
    # nbgrader and Jupyter process pays 1.4 s for it; the lock leaves it out.
    code = "import sys, nbgrader.apps; print('rfc3987_syntax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_formats_jupyter_events_checks_are_still_checked_without_it():
    # Without rfc3987-syntax, jsonschema's format checker still knows the formats that
    # jsonschema[format-nongpl]'s other packages check (uri through rfc3986-validator,
    # date-time through rfc3339-validator); only the iri formats go unchecked.
    from jsonschema import Draft202012Validator

    checker = Draft202012Validator.FORMAT_CHECKER
    for fmt, good, bad in [("uri", "https://jupyter.org/x", "no scheme here"),
                           ("date-time", "2026-11-30T14:00:00Z", "30 Nov 2026"),
                           ("uri-reference", "../x#y", "\\x y")]:
        validator = Draft202012Validator({"type": "string", "format": fmt},
                                         format_checker=checker)
        assert validator.is_valid(good) and not validator.is_valid(bad), fmt


# ---------------------------------------------------------------------------------------------
# Supported Pythons: the Makefile's PY_MIN..PY_MAX, pyproject's requires-python and
# environment.yml must name the same range, and requirements.txt is generated for PY_MIN.


def _make_range():
    make = (ROOT / "Makefile").read_text()
    lo = re.search(r"^PY_MIN := (\S+)$", make, re.M).group(1)
    hi = re.search(r"^PY_MAX := (\S+)$", make, re.M).group(1)
    return lo, hi


def test_supported_pythons_are_named_the_same_everywhere():
    lo, hi = _make_range()
    major, minor = map(int, hi.split("."))
    expected = f">={lo},<{major}.{minor + 1}"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires.replace(" ", "") == expected
    env = re.search(r"^\s*-\s*python\s*([<>=].*)$", (ROOT / "environment.yml").read_text(), re.M)
    assert env and env.group(1).replace(" ", "") == expected
    # The lock is generated for the oldest of them (its header records the command).
    assert f"--python-version {lo} " in (ROOT / "requirements.txt").read_text()
    # And the range means what it says at its edges.
    spec = SpecifierSet(expected)
    for v, ok in [("3.10.12", False), (lo, True), (f"{hi}.0", True), (f"{hi}.99", True),
                  (f"{major}.{minor + 1}.0", False)]:
        assert (Version(v) in spec) is ok, v
    old = Version(lo)
    if old.micro:
        assert Version(f"{old.major}.{old.minor}.{old.micro - 1}") not in spec


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_make_setup_stops_with_one_line_on_an_unsupported_python(tmp_path):
    lo, hi = _make_range()
    # VENV in tmp_path: the check looks at $(PYTHON) (there is no venv yet) and stops before
    # anything is created.
    out = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "setup", f"VENV={tmp_path}/venv",
         f"PYTHON={tmp_path}/no-such-python3"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2, out
    line = out.stdout.strip()
    assert "\n" not in line, line
    expected = f"Python {lo}-{hi} needed; {tmp_path}/no-such-python3 is missing: run make"
    assert line.startswith(expected), line
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# requirements.txt resolves on every supported Python found here: for each, a throwaway venv in a
# temp folder and `pip install --dry-run --ignore-installed --report` (nothing is installed).
# The three run at once (they mostly wait on the registry); about 1.5 min in all.
# pip is upgraded in the venv for --use-feature=fast-deps: torch 2.13.0's Linux wheels on the
# registry (for 3.12 and 3.13; 3.11 takes the local CPU wheel) and the CUDA wheels they pull in
# carry no separate metadata, so an older pip downloads ~1.4 GB of them per Python to read it.


def _version_of(python):
    try:
        out = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _candidates(minor):
    """Interpreters that may be Python `minor` (e.g. "3.12"): PATH, /usr, pyenv."""
    found = [shutil.which(f"python{minor}"), f"/usr/bin/python{minor}",
             f"/usr/local/bin/python{minor}", "/usr/bin/python3"]
    # conftest.py points HOME at a temp folder: pyenv lives in the real home.
    homes = {os.environ.get("PYENV_ROOT"), pwd.getpwuid(os.getuid()).pw_dir + "/.pyenv"}
    for pyenv in sorted(h for h in homes if h):
        found += sorted(glob.glob(f"{pyenv}/versions/{minor}*/bin/python3"), reverse=True)
    return [p for p in dict.fromkeys(found) if p and os.access(p, os.X_OK)]


def _find_python(wanted):
    """An interpreter whose version is `wanted` exactly (3.11.2) or within it (3.12)."""
    minor = ".".join(wanted.split(".")[:2])
    for python in _candidates(minor):
        v = _version_of(python)
        if v and (v == wanted or (wanted == minor and v.startswith(minor + "."))):
            return python, v
    return None, None


PYTHONS = [_make_range()[0], "3.12", "3.13"]  # Debian 12's python3, Ubuntu 24.04's, the newest


@pytest.fixture(scope="module")
def resolutions(tmp_path_factory):
    """Start all the dry runs at once; each test waits for its own."""
    base = tmp_path_factory.mktemp("resolve")
    env = dict(os.environ, PIP_CACHE_DIR=str(base / "pip-cache"), PIP_NO_INPUT="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
    jobs = {}
    for wanted in PYTHONS:
        python, version = _find_python(wanted)
        if python is None:
            jobs[wanted] = None
            continue
        d = base / wanted
        d.mkdir()
        venv = d / "venv" / "bin" / "python"
        script = (
            f"set -e; '{python}' -m venv '{d}/venv'; '{venv}' -m pip install -q --upgrade pip; "
            f"exec '{venv}' -m pip install --dry-run --ignore-installed --only-binary=:all: "
            f"--use-feature=fast-deps --report '{d}/report.json' -r '{ROOT}/requirements.txt'"
        )
        with open(d / "log", "w") as log:
            proc = subprocess.Popen(["bash", "-c", script], stdout=log, stderr=subprocess.STDOUT,
                                    env=env, cwd=d)
        jobs[wanted] = (python, version, d, proc, time.monotonic())
    yield jobs
    for job in jobs.values():
        if job and job[3].poll() is None:
            job[3].kill()
            job[3].wait()


@pytest.mark.environment
@pytest.mark.parametrize("wanted", PYTHONS)
def test_requirements_resolve_on_each_supported_python(resolutions, wanted):
    job = resolutions[wanted]
    if job is None:
        pytest.skip(f"no Python {wanted} on this machine")
    python, version, d, proc, started = job
    try:
        rc = proc.wait(timeout=max(1.0, 300 - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "timeout (300 s)"
    log = (d / "log").read_text()
    tail = "\n".join(line for line in log.splitlines() if "is ignored" not in line)[-3000:]
    assert rc == 0, f"{python} ({version}): pip install --dry-run -r requirements.txt: {rc}\n{tail}"
    report = json.loads((d / "report.json").read_text())
    got = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in report["install"]}
    assert report["environment"]["python_full_version"] == version
    # The versions the notebooks' committed outputs depend on are the same on every Python.
    assert got["torch"].split("+")[0] == "2.13.0"
    assert (got["numpy"], got["matplotlib"]) == ("2.4.6", "3.11.2")
    assert got["nbgrader"] == "0.9.6"
    # soupsieve is the one fork of the lock: 3.x and 4.x need 3.11.5 (3.11.2's re lacks
    # working possessive quantifiers).
    assert got["soupsieve"] == ("2.10" if Version(version) < Version("3.11.5") else "4.1.1")
