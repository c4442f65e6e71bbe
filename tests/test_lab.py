"""`make lab` serves JupyterLab on the course, and a notebook in course/ imports the library."""

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


@pytest.fixture(scope="module")
def lab():
    port, token = free_port(), "course-test-token"
    args = f"--no-browser --ServerApp.ip=127.0.0.1 --IdentityProvider.token={token}"
    proc = subprocess.Popen(
        ["make", "-s", "lab", f"PORT={port}", f"LAB_ARGS={args}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            get(f"{base}/api/status?token={token}")
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"make lab exited early:\n{proc.stdout.read().decode()}")
            time.sleep(0.3)
    else:
        os.killpg(proc.pid, 15)
        pytest.fail("JupyterLab did not answer within 60 s")
    yield base, token
    os.killpg(proc.pid, 15)
    proc.wait(timeout=20)


def test_make_lab_answers_200_on_lab(lab):
    base, token = lab
    status, body = get(f"{base}/lab?token={token}")
    assert status == 200 and b"JupyterLab" in body


def test_lab_serves_the_repo_root_with_the_course_in_it(lab):
    base, token = lab
    _, body = get(f"{base}/api/contents?token={token}")
    names = {item["name"] for item in json.loads(body)["content"]}
    assert {"course", "release", "lib"} <= names


def test_a_notebook_in_course_imports_the_library(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import rnncourse, sys\nprint(rnncourse.__file__)")]
    NotebookClient(nb, timeout=60, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "course")}}).execute()
    printed = nb.cells[0].outputs[0]["text"].strip()
    assert Path(printed).resolve() == REPO / "lib" / "rnncourse" / "__init__.py"
