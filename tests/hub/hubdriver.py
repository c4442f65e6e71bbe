"""Drive a class on the hub in Chromium as its people do: log in, click nbgrader's buttons.

Each person has a browser context of their own (their own hub cookie). The instructor works
in formgrader's Manage Assignments page and a JupyterLab terminal; a student in JupyterLab's
Assignments tab (Nbgrader > Assignment List). Nothing here reads JupyterLab's internals:
what the test checks is what the page shows (buttons, dialogs, outputs, the feedback page).
"""

import re
import time
from pathlib import Path

LAB_READY_S = 120        # a user's server spawned and JupyterLab drawn
ACTION_S = 120           # one formgrader or Assignments-tab action
FEEDBACK_SCORE = re.compile(r"(\w+) \(Score: ([\d.]+) / ([\d.]+)\)")


class Person:
    """One user in a browser context of their own."""

    def __init__(self, browser, base, name, password, shots):
        self.base, self.name, self.shots = base, name, shots
        self.context = browser.new_context(viewport={"width": 1280, "height": 860})
        self.context.set_default_timeout(ACTION_S * 1000)
        self.page = self.context.new_page()
        self.password = password

    @property
    def user_url(self):
        return f"{self.base}/user/{self.name}"

    def shot(self, label, page=None):
        return self.shots(f"{self.name.rsplit('-', 1)[-1]}-{label}", page or self.page)

    def log_in(self):
        """The hub's login form; returns once JupyterLab is drawn (the server spawned)."""
        page = self.page
        page.goto(f"{self.base}/hub/login")
        page.fill("#username_input", self.name)
        page.fill("#password_input", self.password)
        self.shot("login")
        page.click("#login_submit")
        self.wait_for_lab()

    def wait_for_lab(self, page=None):
        page = page or self.page
        page.wait_for_url(re.compile(rf"/user/{re.escape(self.name)}/lab"),
                          timeout=LAB_READY_S * 1000)
        page.wait_for_selector("#jp-main-dock-panel", timeout=LAB_READY_S * 1000)
        page.wait_for_selector("#jupyterlab-splash", state="detached",
                               timeout=LAB_READY_S * 1000)

    def menu(self, top, item):
        page = self.page
        page.locator(".lm-MenuBar-item", has_text=top).first.click()
        page.locator(".lm-Menu-item:visible", has_text=item).first.click()

    # ------------------------------------------------------------ a student's Assignments tab
    def assignments(self):
        """Open (or bring up) the Assignments tab and wait until its lists are loaded."""
        self.menu("Nbgrader", "Assignment List")
        page = self.page
        page.wait_for_selector("#released_assignments_list", state="attached")
        for which in ("released", "fetched", "submitted"):
            page.wait_for_selector(f"#{which}_assignments_list_loading", state="hidden")

    def row(self, which, assignment):
        return self.page.locator(f"#{which}_assignments_list .list_item", has_text=assignment)

    def click_in_row(self, which, assignment, button, then_which, then_button=None):
        """Click `button` in the assignment's row of one list; wait for its row in another."""
        self.row(which, assignment).locator("button", has_text=button).first.click()
        target = self.row(then_which, assignment)
        if then_button:
            target = target.locator("button", has_text=then_button)
        target.first.wait_for(state="visible", timeout=ACTION_S * 1000)

    def fetch(self, assignment):
        self.assignments()
        self.row("released", assignment).first.wait_for(state="visible")
        self.shot("assignments-released")
        self.click_in_row("released", assignment, "Fetch", "fetched", "Submit")
        self.shot("fetched")

    def open_notebook(self, path):
        """Open a notebook of the student's home in JupyterLab; wait until its kernel is idle."""
        page = self.page
        page.goto(f"{self.user_url}/lab/tree/{path}?reset")
        self.wait_for_lab()
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", state="visible")
        # the kernel started and idle, as the status bar says it
        page.locator(".jp-StatusBar-Widget", has_text="Idle").first.wait_for(
            state="visible", timeout=LAB_READY_S * 1000)

    def show(self, text):
        """Scroll the open notebook to the first cell showing `text`."""
        cell = self.page.locator(".jp-Cell", has_text=text).first
        cell.scroll_into_view_if_needed()
        self.page.wait_for_timeout(300)

    def submit(self, assignment):
        self.assignments()
        before = self.row("submitted", assignment).count()
        self.row("fetched", assignment).locator("button", has_text="Submit").first.click()
        deadline = time.monotonic() + ACTION_S
        while self.row("submitted", assignment).count() <= before:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: the submission of {assignment} never "
                                     "appeared in the Submitted list")
            time.sleep(0.3)
        self.shot("submitted")

    def fetch_feedback(self, assignment):
        self.assignments()
        row = self.row("submitted", assignment).first
        row.locator("button", has_text="Fetch Feedback").first.click()
        row.get_by_text("(view feedback)").first.wait_for(state="visible")
        self.shot("feedback-fetched")

    def run_all(self):
        """Run > Run All Cells in the open notebook; wait until the kernel is idle again."""
        page = self.page
        self.menu("Run", "Run All Cells")
        page.wait_for_timeout(500)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                               timeout=ACTION_S * 1000)

    def outputs(self):
        return self.page.locator(".jp-OutputArea-output").all_inner_texts()

    # ------------------------------------------------------------ the instructor's formgrader
    def formgrader(self, assignment, action, expect):
        """Click one of formgrader's buttons (release, collect, generate-feedback,
        release-feedback) in the assignment's row; return the dialog's text, which must
        contain `expect`."""
        page = self.page
        page.goto(f"{self.user_url}/formgrader/manage_assignments")
        button = page.locator("tr", has_text=assignment).locator(f"td.{action} a").first
        button.wait_for(state="visible")
        button.click()
        dialog = page.locator("#success-modal, #error-modal").first
        dialog.wait_for(state="visible", timeout=ACTION_S * 1000)
        page.wait_for_timeout(400)  # the fade-in
        text = dialog.inner_text()
        self.shot(f"formgrader-{action}")
        assert expect in text, f"formgrader {action} of {assignment}: {text}"
        return text

    def terminal(self, command, done_file, timeout):
        """Type `command` into a new JupyterLab terminal; wait until `done_file` (a path
        the test can read) exists; returns the page for a screenshot."""
        page = self.page
        page.goto(f"{self.user_url}/lab?reset")
        self.wait_for_lab()
        self.menu("File", "New")
        page.locator(".lm-Menu-item:visible", has_text="Terminal").first.click()
        term = page.locator(".jp-Terminal").first
        term.wait_for(state="visible")
        page.wait_for_timeout(1500)  # the shell's prompt
        term.click()
        page.keyboard.type(command + "\n")
        deadline = time.monotonic() + timeout
        while not Path(done_file).exists():
            if time.monotonic() > deadline:
                self.shot("terminal-timeout")
                raise AssertionError(f"{command!r} did not finish within {timeout} s")
            time.sleep(1)
        page.wait_for_timeout(800)
        return page

    def close(self):
        self.context.close()
