"""A small jacobian course and its submissions, for the grading tests.

One home for what the sandbox, batch and ordinary-user tests each need: a course root
with the jacobian assignment released, and a submission built from a fixture with some
code put before the textbook answer (a hostile student's addition, or none).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from toolmodules import load_tool

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "submissions" / "jacobian"
instructor = load_tool("instructor")

# A hostile student's fork bomb: fork until the process limit says no, then report.
FORK_BOMB = """import os, time
children = 0
try:
    while children < 100000:
        if os.fork() == 0:
            time.sleep(45)
            os._exit(0)
        children += 1
except OSError:
    pass
print('FORKED', children)
"""


def make_course(root):
    """root (created) as a course root with jacobian released into its gradebook."""
    root.mkdir(parents=True)
    shutil.copy2(REPO / "nbgrader_config.py", root)
    shutil.copytree(REPO / "source" / "jacobian", root / "source" / "jacobian")
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep
               + os.environ["PATH"])
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "jacobian",
                    "--force", "--log-level=ERROR"], cwd=root, env=env, check=True)
    return root


def notebook(course, case="reference", prefix=""):
    """The jacobian notebook a student with fixture `case` hands in, `prefix` put first
    in the textbook answer cell."""
    nb = instructor.build_submission(course / "source/jacobian/jacobian.ipynb",
                                     course / "release/jacobian/jacobian.ipynb",
                                     FIXTURES / case)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "textbook":
            cell.source = prefix + cell.source
    return nb


def hand_in(folder, student, nb, nested=False):
    """Write nb as FOLDER/student/jacobian.ipynb (nested: .../student/jacobian/...)."""
    import nbformat

    where = folder / student / "jacobian" if nested else folder / student
    where.mkdir(parents=True)
    nbformat.write(nb, where / "jacobian.ipynb")
    return where / "jacobian.ipynb"
