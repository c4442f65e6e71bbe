"""Issue 21's class, end to end on a real JupyterHub, in headless Chromium.

The instructor releases jacobian from formgrader; two students fetch it in JupyterLab's
Assignments tab, open it and submit it with the tab's Submit button (one the reference
answers, one a partly done notebook: tests/fixtures/submissions/jacobian/{reference,partial});
the instructor collects in formgrader, autogrades in the sandbox from a JupyterLab terminal
(`rnncourse-instructor autograde jacobian`, as the instructor's own user), then generates and
releases feedback in formgrader; each student fetches the feedback and reads their score on
the feedback page. Then the second student tries to read the first one's work, through
JupyterLab's Open from Path and through a kernel, and is refused.

How the answers get in: the test writes the student's notebook into the folder Fetch made
(as that student, through su's equivalent: a process with the student's uid) before the
student opens it, so what the browser shows and submits is the student's file. Typing three
functions into CodeMirror cell by cell would test CodeMirror, not the class.

Screenshots of every step: artifacts/hub/NN-WHO-STEP.png. The times (hub start, whole flow)
are printed and written to artifacts/hub/times.txt.
"""

import contextlib
import json
import os
import pwd
import re
import signal
import sqlite3
import subprocess
import sys
import time

import nbformat
import pytest
from coursekit import full, without
from hubdriver import FEEDBACK_SCORE, Person
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from rnngrading.classbox import class_processes
from rnngrading.course import FIXTURES, REPO
from rnngrading.fixtures import build_submission

pytestmark = pytest.mark.hub

ASSIGNMENT = "jacobian"
SOURCE = REPO / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
# Independent of the grader: the points each case should get, from the source's test cells
# (tests/test_assignments_grading.py's EXPECTED says the same of these two fixtures).
CASES = {"reference": full(ASSIGNMENT),
         "partial": without(ASSIGNMENT, "test_jacobian_product", "test_textbook")}
AUTOGRADE_S = 300

SNOOP = '''import glob, os
inbound, other = {inbound!r}, {other!r}
tries = [("list the inbound", lambda: os.listdir(inbound)),
         ("glob the inbound", lambda: glob.glob(inbound + "/*") or "nothing found"),
         ("list their home", lambda: os.listdir(other)),
         ("open their notebook", lambda: open(other + "/{a}/{a}.ipynb").read()[:40])]
for what, attempt in tries:
    try:
        print(what, "-> READ:", attempt())
    except OSError as exc:
        print(what, "-> REFUSED:", exc)
'''


def total_points(notebook):
    return sum(c.metadata.get("nbgrader", {}).get("points", 0) for c in notebook.cells
               if c.metadata.get("nbgrader", {}).get("grade"))


def write_as(name, path, notebook):
    """Write a notebook into a user's home as that user (the file is theirs, 0644)."""
    user = pwd.getpwnam(name)
    subprocess.run(["/bin/sh", "-c", 'cat > "$1"', "sh", str(path)],
                   input=nbformat.writes(notebook).encode(), check=True,
                   user=user.pw_uid, group=user.pw_gid, extra_groups=[])


@pytest.fixture(scope="module")
def flow(klass, browser, shots):
    """The whole class, once: returns what each student saw, and the times."""
    started = time.monotonic()
    seen = {"start_s": klass.start_s, "hub_s": klass.info["timings"]["hub_s"],
            "env_s": klass.info["timings"]["env_s"]}
    teacher = Person(browser, klass.base, klass.instructor,
                     klass.passwords[klass.instructor], shots)
    ada, bo = (Person(browser, klass.base, s, klass.passwords[s], shots) for s in klass.students)
    cases = dict(zip(klass.students, CASES, strict=True))
    try:
        teacher.log_in()
        teacher.shot("lab")
        teacher.formgrader(ASSIGNMENT, "release", f"Successfully released '{ASSIGNMENT}'")

        for student in (ada, bo):
            student.log_in()
            student.fetch(ASSIGNMENT)
            folder = klass.home(student.name) / ASSIGNMENT
            fetched = folder / f"{ASSIGNMENT}.ipynb"
            answer = build_submission(SOURCE, fetched, FIXTURES / ASSIGNMENT / cases[student.name])
            write_as(student.name, fetched, answer)
            student.open_notebook(f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb")
            student.show("def step_jacobian")
            student.shot(f"opened-{cases[student.name]}")
            student.submit(ASSIGNMENT)

        teacher.formgrader(ASSIGNMENT, "collect",
                           f"Successfully collected submissions of '{ASSIGNMENT}'")
        home = klass.home(klass.instructor)
        done = home / "autograde.status"
        page = teacher.terminal(
            f"cd ~/course && rnncourse-instructor autograde {ASSIGNMENT} 2>&1 | tee "
            f"~/autograde.log; echo ${{PIPESTATUS[0]}} > ~/autograde.status",
            done, AUTOGRADE_S)
        teacher.shot("terminal-autograde", page)
        seen["autograde_log"] = (home / "autograde.log").read_text()
        assert done.read_text().strip() == "0", seen["autograde_log"]
        teacher.formgrader(ASSIGNMENT, "generate-feedback",
                           f"Successfully generated feedback of '{ASSIGNMENT}'")
        teacher.formgrader(ASSIGNMENT, "release-feedback",
                           f"Successfully released feedback of '{ASSIGNMENT}'")

        for student in (ada, bo):
            student.fetch_feedback(ASSIGNMENT)
            pages = sorted((klass.home(student.name) / ASSIGNMENT / "feedback")
                           .glob(f"*/{ASSIGNMENT}.html"))
            assert len(pages) == 1, pages
            relative = pages[0].relative_to(klass.home(student.name)).as_posix()
            page = student.context.new_page()
            page.goto(f"{student.user_url}/files/{relative}")
            header = page.locator("h4", has_text="Score:").first.inner_text()
            with contextlib.suppress(PlaywrightTimeout):  # the math, typeset offline
                page.locator("mjx-container").first.wait_for(state="attached", timeout=20_000)
            math = page.locator("mjx-container").count()
            student.shot("feedback-page", page)
            lines = [line for line in page.locator("body").inner_text().splitlines()
                     if "Judged outside your kernel" in line]
            seen[student.name] = {"case": cases[student.name], "header": header,
                                  "judged": lines, "math": math}
            page.close()
        seen["flow_s"] = time.monotonic() - started
    except Exception:
        for person in (teacher, ada, bo):
            with contextlib.suppress(Exception):
                person.shot("FAILED")
        raise
    try:
        yield seen
    finally:
        for person in (teacher, ada, bo):
            person.close()


def test_each_student_reads_their_own_score_on_their_feedback(klass, flow):
    total = total_points(nbformat.read(SOURCE, as_version=4))
    for student in klass.students:
        saw = flow[student]
        print(f"{student} ({saw['case']}): {saw['header']}; formulas typeset by MathJax "
              f"on the page: {saw['math']}")
        for line in saw["judged"]:
            print("   ", line)
        name, score, out_of = FEEDBACK_SCORE.search(saw["header"]).groups()
        assert name == ASSIGNMENT
        assert (float(score), float(out_of)) == (CASES[saw["case"]], total), saw
    print(flow["autograde_log"])
    assert flow["autograde_log"].count("NOT ISOLATED") == 0
    times = (f"class environment built in {flow['env_s']:.0f} s (0: reused); make class ready "
             f"in {flow['start_s']:.0f} s; the hub answered {flow['hub_s']:.1f} s after its "
             f"start; the whole flow in the browser {flow['flow_s']:.0f} s")
    print(times)
    (REPO / "artifacts" / "hub" / "times.txt").write_text(times + "\n")


def test_a_student_cannot_read_another_students_work(klass, flow, browser, shots):
    ada, bo = klass.students
    course_id = re.search(r"course_id = '([^']+)'", (
        klass.layout.jupyter / "common" / "nbgrader_config.py").read_text()).group(1)
    inbound = klass.layout.exchange / course_id / "inbound"
    assert any(p.name.startswith(f"{ada}+{ASSIGNMENT}+") for p in inbound.iterdir())
    snoop = Person(browser, klass.base, bo, klass.passwords[bo], shots)
    try:
        snoop.log_in()
        # the file browser: Open from Path, to the exchange's inbound and to ada's notebook
        refusals = {}
        here = klass.home(bo)
        for label, target in (("inbound", inbound),
                              ("their notebook", klass.home(ada) / ASSIGNMENT /
                               f"{ASSIGNMENT}.ipynb")):
            snoop.menu("File", "Open from Path")
            dialog = snoop.page.locator(".jp-Dialog").first
            dialog.locator("input").first.fill(os.path.relpath(target, here))
            snoop.page.keyboard.press("Enter")
            error = snoop.page.locator(".jp-Dialog", has_text="annot").first
            error.wait_for(state="visible")
            refusals[label] = " ".join(error.inner_text().split())
            snoop.shot(f"open-path-{label.replace(' ', '-')}")
            error.locator("button").last.click()
        # a kernel: the same from Python
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SNOOP.format(
            inbound=str(inbound), other=str(klass.home(ada)), a=ASSIGNMENT))])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        write_as(bo, here / "snoop.ipynb", nb)
        snoop.open_notebook("snoop.ipynb")
        snoop.run_all()
        snoop.page.locator(".jp-OutputArea-output", has_text="open their notebook").first \
            .wait_for(state="visible")
        kernel = "\n".join(snoop.outputs()).splitlines()
        snoop.shot("kernel-refused")
    finally:
        snoop.close()
    for label, text in refusals.items():
        print(f"file browser, {label}: {text}")
    for line in kernel:
        print("kernel:", line)
    assert all("annot" in text for text in refusals.values()), refusals
    attempts = [line for line in kernel if " -> " in line]
    assert len(attempts) == 4, kernel
    assert all("REFUSED" in line or "nothing found" in line for line in attempts), kernel


def test_an_ordinary_user_is_told_make_class_needs_root(klass, tmp_path):
    folder = tmp_path / "class"
    out = subprocess.run([str(klass.layout.python), "-m", "rnngrading.classbox", "--dir",
                          str(folder), "start"], capture_output=True, text=True,
                         user=65534, group=65534, extra_groups=[], cwd="/",
                         env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    print(out.stderr)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "needs root" in out.stderr
    assert "administrator" in out.stderr and not folder.exists()


def test_only_the_class_logs_in(klass, browser, shots):
    """A system account outside the class (root) and a wrong password are both refused."""
    ada = klass.students[0]
    context = browser.new_context()
    try:
        page = context.new_page()
        for name, password in (("root", "x"), (ada, klass.passwords[ada] + "x")):
            page.goto(f"{klass.base}/hub/login")
            page.fill("#username_input", name)
            page.fill("#password_input", password)
            page.click("#login_submit")
            message = page.locator(".login_error").first
            message.wait_for(state="visible")
            text = " ".join(message.inner_text().split())
            print(f"login as {name}: {text}")
            shots(f"login-refused-{name.rsplit('-', 1)[-1]}", page)
            assert "/hub/login" in page.url and "Invalid" in text, (page.url, text)
    finally:
        context.close()


def test_class_stop_keeps_the_work_and_a_student_added_to_the_roster_joins(klass, flow):
    """make class-stop ends every process and keeps accounts and work; a name added to
    class.json gets an account, a password and a gradebook entry at the next start."""
    classbox = [sys.executable, "-m", "rnngrading.classbox", "--dir", str(klass.dir)]
    ada, newcomer = klass.students[0], klass.students[0].rsplit("-", 1)[0] + "-s9"
    stopped = subprocess.run([*classbox, "stop"], capture_output=True, text=True)
    print(stopped.stdout)
    assert stopped.returncode == 0 and "no process of the class left" in stopped.stdout
    klass.proc.wait(timeout=60)  # make class, in its shell, ends too
    assert not class_processes(klass.layout, klass.layout.read_roster())
    graded = klass.home(klass.instructor) / "course" / "autograded" / ada / ASSIGNMENT
    assert (klass.home(ada) / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file() and graded.is_dir()

    roster = klass.layout.read_roster()
    roster["students"].append(newcomer)
    klass.layout.roster.write_text(json.dumps(roster))
    credentials = klass.dir / "credentials-again.json"
    again = subprocess.Popen([*classbox, "start", "--port", str(roster["port"]),
                              "--env", roster["env"], "--proxy", str(klass.layout.proxy),
                              "--credentials", str(credentials)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not credentials.exists() and again.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(0.2)
        assert credentials.exists(), "make class did not start again (its output is below)"
        info = json.loads(credentials.read_text())
        assert set(info["passwords"]) == {newcomer}, info["passwords"]
        assert (klass.home(newcomer).stat().st_mode & 0o777) == 0o700
        with sqlite3.connect(klass.home(klass.instructor) / "course" / "gradebook.db") as db:
            students = {row[0] for row in db.execute("select id from student")}
        assert {*klass.students, newcomer} <= students, students
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(again.pid, signal.SIGINT)  # Ctrl-C
        out, _ = again.communicate(timeout=60)
        print(out)
    assert "no process of the class left" in out
    assert not class_processes(klass.layout, klass.layout.read_roster())
