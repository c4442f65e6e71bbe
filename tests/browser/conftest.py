"""The course as students meet it: JupyterLab in Debian's headless Chromium.

Run with `pytest tests/browser` (tests/conftest.py keeps them out of `pytest tests`).
One JupyterLab serves a temp copy of the course for the whole session, one
Chromium drives it, and one notebook (one kernel) is open at a time.

Artifacts (artifacts/browser/, ignored by git): a screenshot of every notebook
after its run, FAILED-<test>.png for every failing test, times.txt with the time
of each notebook, and jupyterlab.log.

Chromium: /usr/bin/chromium, or the CHROMIUM environment variable. Without one,
every test that needs the browser is skipped and the run says so on one line.
"""

import os
import sys
import time
from pathlib import Path

import pytest
from labdriver import ASSIGNMENTS, CHROMIUM_ARGS, LECTURES, REPO, LabServer, Notebooks, copy_course
from playwright.sync_api import sync_playwright

ARTIFACTS = REPO / "artifacts" / "browser"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))


def _no_chromium_reason():
    if os.access(CHROMIUM, os.X_OK):
        return None
    return (f"no Chromium at {CHROMIUM} (install Debian's: apt-get install -y chromium, "
            "or set CHROMIUM=/path/to/chromium)")


def pytest_collection_modifyitems(config, items):
    """Skip everything without a Chromium; keep each notebook's tests together.

    The widget tests reuse the page of the notebook run just before them, so the
    tests are ordered by notebook (lectures, then assignments), each notebook's
    run-all test first.
    """
    reason = _no_chromium_reason()
    order = {path: i for i, path in enumerate(LECTURES + ASSIGNMENTS)}
    browser_items = [it for it in items if Path(str(it.path)).parent == Path(__file__).parent]
    if reason:
        config.stash[_skip_key] = reason
        for item in browser_items:
            if "notebooks" in item.fixturenames:
                item.add_marker(pytest.mark.skip(reason=reason))
        return
    position = {id(it): i for i, it in enumerate(items)}

    def key(item):
        path = getattr(item, "callspec", None) and item.callspec.params.get("path")
        return (order.get(path, len(order)), position[id(item)])

    slots = sorted(position[id(it)] for it in browser_items)
    for slot, item in zip(slots, sorted(browser_items, key=key), strict=True):
        items[slot] = item


_skip_key = pytest.StashKey[str]()
_notebooks_key = pytest.StashKey[object]()
_started_key = pytest.StashKey[float]()


@pytest.fixture(scope="session")
def lab(request, tmp_path_factory):
    """JupyterLab on a free local port with a token, serving a temp copy of the course."""
    request.config.stash[_started_key] = time.monotonic()
    root = tmp_path_factory.mktemp("course-root")
    copy_course(REPO, root)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in [*ARTIFACTS.glob("*.png"), ARTIFACTS / "times.txt"]:
        old.unlink(missing_ok=True)  # this run's pictures only
    jupyter = str(Path(sys.executable).with_name("jupyter"))
    server = LabServer(root, tmp_path_factory.mktemp("lab-home"), jupyter,
                       ARTIFACTS / "jupyterlab.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                      headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def notebooks(request, lab, browser, tmp_path_factory):
    """Open, run and screenshot notebooks; one page and one kernel at a time."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    nbs = Notebooks(lab, context, ARTIFACTS)
    request.config.stash[_notebooks_key] = nbs
    yield nbs
    nbs.close()
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A screenshot of the page as it was when a browser test failed."""
    report = yield
    if report.failed and call.when == "call":
        nbs = item.config.stash.get(_notebooks_key, None)
        if nbs is not None and nbs.current is not None and not nbs.current.page.is_closed():
            name = "FAILED-" + "".join(c if c.isalnum() or c in "-_." else "_"
                                       for c in item.name) + ".png"
            try:
                nbs.current.page.screenshot(path=ARTIFACTS / name)
                report.sections.append(("failure screenshot", str(ARTIFACTS / name)))
            except Exception as exc:  # a failure report must not fail on its screenshot
                report.sections.append(("failure screenshot", f"not taken: {exc}"))
    return report


def pytest_terminal_summary(terminalreporter, config):
    reason = config.stash.get(_skip_key, None)
    if reason:
        terminalreporter.write_line(f"browser tests SKIPPED: {reason}")
        return
    nbs = config.stash.get(_notebooks_key, None)
    if nbs is None or not nbs.times:
        return
    lines = [f"{'notebook':<48} {'kernel up':>9} {'run all':>8} {'total':>7}"]
    for path, (open_s, run_s) in nbs.times.items():
        lines.append(f"{path:<48} {open_s:>8.1f}s {run_s:>7.1f}s {open_s + run_s:>6.1f}s")
    started = config.stash.get(_started_key, None)
    if started is not None:
        total = time.monotonic() - started
        lines.append(f"{'all browser tests, JupyterLab start to stop':<68} {total:>6.1f}s")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines.append(f"machine: {os.cpu_count()} cores, load average at the end {load} (1, 5, 15 min)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "times.txt").write_text("\n".join(lines) + "\n")
    terminalreporter.section("notebook times in JupyterLab (Chromium)")
    for line in lines:
        terminalreporter.write_line(line)
