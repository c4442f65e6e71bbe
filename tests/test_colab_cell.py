"""The first code cell of every lecture installs the course library where it is missing.

On Colab, or in any fresh environment, `rnncourse` is not installed and the lecture's imports
would fail. The cell (id "colab-install") then runs pip with the arguments in the environment
variable RNNCOURSE_PIP_SOURCE, or else with the course's repository: the same URL and branch
that site/conf.py gives the launch buttons (its defaults; a test below keeps the two equal).
Where `rnncourse` can be imported (JupyterLab, CI, nbval) it does nothing, prints nothing and
imports nothing: it only looks the package up, so lecture 03 can still set its BLAS threads
before NumPy is first imported. Its committed output is empty, so nbval checks exactly that.

The real install is tested in a fresh virtual environment without the course library
(marker `environment`), with pip kept off the network.
"""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LECTURES = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("course/0*.ipynb"))
CELL_ID = "colab-install"


def code_cells(notebook):
    nb = json.loads((ROOT / notebook).read_text(encoding="utf-8"))
    return [cell for cell in nb["cells"] if cell["cell_type"] == "code"]


def install_cell_source(notebook=LECTURES[0]):
    return "".join(code_cells(notebook)[0]["source"])


def site_setting(name):
    """The default of a setting of site/conf.py, `NAME = os.environ.get("VAR", default)`."""
    tree = ast.parse((ROOT / "site" / "conf.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == [name]:
            return ast.literal_eval(node.value.args[1])
    raise LookupError(f"site/conf.py sets no {name}")


def test_every_lecture_starts_with_the_same_install_cell_with_no_output():
    assert len(LECTURES) == 7
    source = install_cell_source()
    for notebook in LECTURES:
        first = code_cells(notebook)[0]
        assert first["id"] == CELL_ID, notebook
        assert first["outputs"] == [] and first["execution_count"] is None, notebook
        assert "".join(first["source"]) == source, f"{notebook}: another version of the cell"
    assert source.startswith("# Colab")  # it says what it is for
    assert "RNNCOURSE_PIP_SOURCE" in source


def test_its_default_source_is_the_repository_and_branch_the_site_names():
    # One home for the repository: site/conf.py. A deployment that changes it there changes
    # it in the lectures' install cell too (this test says where).
    defaults = re.findall(r'"(git\+[^"]+)"', install_cell_source())
    url, branch = site_setting("REPOSITORY_URL"), site_setting("BRANCH")
    assert defaults == [f"git+{url}@{branch}"]


def run_cell(python, source, env, cwd):
    return subprocess.run([str(python), "-c", source], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def test_where_rnncourse_is_installed_it_prints_nothing_and_imports_nothing(tmp_path):
    probe = install_cell_source() + textwrap.dedent("""
        import sys
        print(sorted(m for m in ("rnncourse", "numpy", "torch") if m in sys.modules))
        """)
    env = dict(os.environ, RNNCOURSE_PIP_SOURCE="--no-index /no/such/source")
    done = run_cell(sys.executable, probe, env, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")


@pytest.mark.environment
def test_in_a_fresh_environment_it_installs_the_library_and_the_lecture_imports_it(tmp_path):
    # A venv from the base interpreter of this one, without rnncourse; a .pth file makes this
    # venv's packages importable (numpy, torch, pip, setuptools). A path added by a .pth is not
    # a site directory, so the .pth files in it (the editable rnncourse) are not run.
    fresh = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(fresh)], check=True, timeout=120)
    python = fresh / "bin" / "python"
    purelib = Path(run_cell(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                            None, tmp_path).stdout.strip())
    assert purelib.is_relative_to(fresh)
    (purelib / "course_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(HOME=str(tmp_path / "home"), MPLCONFIGDIR=str(tmp_path / "mpl"),
               MPLBACKEND="Agg", PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    missing = run_cell(python, "import rnncourse", env, tmp_path)
    assert "No module named 'rnncourse'" in missing.stderr, missing.stdout + missing.stderr
    assert run_cell(python, "import numpy, torch, setuptools", env, tmp_path).returncode == 0

    # The source: a copy of what the build needs, so that the build writes into temp only.
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", source)
    shutil.copytree(ROOT / "lib", source / "lib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # No network: no index, no dependencies (numpy and torch are there), setuptools from the
    # path above instead of an isolated build environment; --ignore-installed so pip never
    # touches the rnncourse record it can see through the .pth file.
    env["RNNCOURSE_PIP_SOURCE"] = (f"--no-index --no-deps --no-build-isolation "
                                   f"--ignore-installed {source}")

    # The lecture's first two cells in one process, as in a kernel: install, then the imports.
    first, second = ("".join(cell["source"]) for cell in code_cells(LECTURES[1])[:2])
    check = "import rnncourse; print('FROM', rnncourse.__file__)"
    done = run_cell(python, "\n".join([first, second, check]), env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    origin = Path(done.stdout.split("FROM ")[-1].strip())
    assert origin.is_relative_to(purelib), origin

    # Installed now: run again, the cell says and does nothing.
    env["RNNCOURSE_PIP_SOURCE"] = "--no-index /no/such/source"
    again = run_cell(python, first, env, tmp_path)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
