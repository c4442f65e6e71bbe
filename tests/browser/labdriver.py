"""Drive JupyterLab in Debian's Chromium the way a student does.

A student opens a notebook, waits for the kernel, picks Run > Run All Cells and
reads what came out. `LabServer` starts JupyterLab on a free local port with a
token; `Notebooks` opens one notebook at a time in a fresh page, runs it from the
Run menu, reads the error outputs from the notebook model, screenshots it, and
shuts its kernel down before the next notebook opens.

The run itself goes through the UI (menu clicks, sliders moved by keyboard).
JupyterLab is started with `expose_app_in_browser` only so the test can read
what it needs without guessing from pixels: the kernel's status, the cell
outputs (`output_type == "error"`, with ename and evalue) and nbgrader metadata.
"""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def notebooks_in_repo(pattern):
    """Notebooks matching `pattern` under the repo, as repo-relative paths, sorted.

    Read at collection time, so the tests grow as notebooks land.
    """
    return sorted(p.relative_to(REPO).as_posix() for p in REPO.glob(pattern))


LECTURES = notebooks_in_repo("course/*.ipynb")
ASSIGNMENTS = notebooks_in_repo("release/*/*.ipynb")

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

# Settings a fresh JupyterLab would otherwise ask about or act on by itself: the
# news popup and update check (network), and autosave (the test never writes back).
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}

KERNEL_START_S = 120     # open the notebook until its kernel is connected and idle
RUN_ALL_S = 300          # Run All Cells until the kernel is idle again
SCREENSHOT_MAX_PX = 16000  # Chromium cannot paint a taller page in one piece


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """JupyterLab on 127.0.0.1:<free port> with a token, serving `root`.

    home: a temp folder; HOME, the Jupyter dirs, IPython and matplotlib all live
    under it, and the user settings above are written there before the start.
    """

    def __init__(self, root, home, jupyter, log_path):
        self.root, self.home = Path(root), Path(home)
        self.port, self.token = free_port(), "browser-test-" + os.urandom(8).hex()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        for var, sub in {
            "HOME": "home", "JUPYTER_CONFIG_DIR": "jupyter-config",
            "JUPYTER_DATA_DIR": "jupyter-data", "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
            "IPYTHONDIR": "ipython", "MPLCONFIGDIR": "matplotlib", "XDG_CACHE_HOME": "cache",
        }.items():
            env[var] = str(self.home / sub)
            os.makedirs(env[var], exist_ok=True)
        settings = Path(env["JUPYTER_CONFIG_DIR"]) / "lab" / "user-settings"
        for name, values in USER_SETTINGS.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(json.dumps(values))
        cmd = [
            jupyter, "lab", "--no-browser", f"--port={self.port}", "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
            "--LabApp.expose_app_in_browser=True",
        ]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self._log = open(log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_until_up(log_path)

    def _wait_until_up(self, log_path, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.api("GET", "status")
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"jupyter lab exited early, see {log_path}") from None
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"jupyter lab did not answer within {timeout} s, see {log_path}")

    def api(self, method, path, timeout=30):
        request = urllib.request.Request(f"{self.base}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def url(self, notebook_path):
        quoted = urllib.parse.quote(notebook_path)
        return f"{self.base}/lab/tree/{quoted}?reset&token={self.token}"

    def shutdown_kernels(self):
        """Shut down every session and kernel, so one notebook's memory is freed."""
        for session in self.api("GET", "sessions"):
            self.api("DELETE", f"sessions/{session['id']}")
        for kernel in self.api("GET", "kernels"):
            self.api("DELETE", f"kernels/{kernel['id']}")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self._log.close()


def copy_course(repo, root):
    """The student's checkout, minus what the browser must not touch.

    JupyterLab serves a copy, so a run can never write outputs or checkpoints
    into the shared tree (and nbgrader's Validate, which saves first, is safe).
    """
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.egg-info")
    for name in ("course", "release", "lib"):
        if (repo / name).is_dir():
            shutil.copytree(repo / name, root / name, ignore=ignore)
    for name in ("nbgrader_config.py",):
        if (repo / name).is_file():
            shutil.copy2(repo / name, root / name)


@dataclass
class CellError:
    cell: int          # index among all cells, as JupyterLab counts them (0-based)
    ename: str
    evalue: str
    nbgrader: dict     # the cell's nbgrader metadata ({} for an ordinary cell)
    source: str        # the cell's code as the notebook holds it

    def __str__(self):
        where = f"cell {self.cell}"
        if self.nbgrader.get("grade_id"):
            where += f" ({self.nbgrader['grade_id']})"
        return f"{where}: {self.ename}: {self.evalue}"


@dataclass
class NotebookRun:
    path: str
    page: object
    open_s: float = 0.0      # page load until the kernel is connected and idle
    run_s: float = 0.0       # Run All Cells until the kernel is idle again
    finished: bool = False   # Run All Cells came back (with or without errors)
    errors: list = field(default_factory=list)
    screenshot: Path = None


# JavaScript run in the page. `nb()` is the notebook panel the test opened.
_NB = """(path) => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return w && w.context && w.context.path === path ? w : null;
}"""

_KERNEL_READY = f"""(path) => {{
  const w = ({_NB})(path);
  const k = w && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}}"""

# Remember when the Run menu's command has finished: its result is the promise
# of NotebookActions.runAll, which settles once the last cell ran or one failed.
_WATCH_RUN = """(commands) => {
  window.__runDone = false;
  const app = window.jupyterapp;
  const watch = (_, args) => {
    if (!commands.includes(args.id)) return;
    app.commands.commandExecuted.disconnect(watch);
    Promise.resolve(args.result).finally(() => { window.__runDone = true; });
  };
  app.commands.commandExecuted.connect(watch);
}"""

_RUN_FINISHED = f"""(path) => {{
  const w = ({_NB})(path);
  const k = w && w.sessionContext.session && w.sessionContext.session.kernel;
  if (k && ['dead', 'unknown'].includes(k.status)) return 'kernel ' + k.status;
  if (!window.__runDone || !k || k.status !== 'idle') return false;
  const indicator = w.node.querySelector('.jp-Notebook-ExecutionIndicator');
  if (indicator && indicator.dataset.status !== 'idle') return false;
  for (const cell of w.content.model.cells) {{
    if (cell.type === 'code' && cell.executionState === 'running') return false;
  }}
  return 'idle';
}}"""

_ERRORS = f"""(path) => {{
  const w = ({_NB})(path);
  const errors = [];
  const cells = w.content.model.cells;
  for (let i = 0; i < cells.length; i++) {{
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    for (let j = 0; j < cell.outputs.length; j++) {{
      const out = cell.outputs.get(j).toJSON();
      if (out.output_type === 'error') {{
        errors.push({{cell: i, ename: out.ename, evalue: out.evalue,
                     nbgrader: cell.getMetadata('nbgrader') || {{}},
                     source: cell.sharedModel.getSource()}});
      }}
    }}
  }}
  return errors;
}}"""


_FIRST_UNRUN = f"""(path) => {{
  const cells = ({_NB})(path).content.model.cells;
  for (let i = 0; i < cells.length; i++) {{
    const cell = cells.get(i);
    if (cell.type === 'code' && cell.executionCount === null
        && cell.sharedModel.getSource().trim() !== '') return i;
  }}
  return -1;
}}"""


class Notebooks:
    """Open and run notebooks one at a time in one browser, one kernel at a time."""

    def __init__(self, lab, context, artifacts):
        self.lab, self.context, self.artifacts = lab, context, Path(artifacts)
        self.current = None  # the NotebookRun whose page and kernel are still open
        self.times = {}      # path -> (open_s, run_s)

    def open(self, path):
        """Open `path` in a fresh page; return once its kernel is connected and idle."""
        self.close()
        page = self.context.new_page()
        run = self.current = NotebookRun(path, page)
        start = time.monotonic()
        page.goto(self.lab.url(path))
        page.wait_for_function(_KERNEL_READY, arg=path, timeout=KERNEL_START_S * 1000)
        run.open_s = time.monotonic() - start
        return run

    def run_all(self, path):
        """Open `path`, click Run > Run All Cells, wait until the kernel is idle again.

        JupyterLab stops at the first cell that raises, as it does for a student.
        """
        run = self.open(path)
        page = run.page
        start = time.monotonic()
        page.evaluate(_WATCH_RUN, ["runmenu:run-all"])
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
        self._wait_for_run(run)
        run.run_s = time.monotonic() - start
        run.finished = True
        run.errors = self.errors(run)
        self.times[path] = (run.open_s, run.run_s)
        return run

    def ran(self, path):
        """The run of `path` still open from the test before, or a fresh run of it."""
        if self.current is not None and self.current.path == path:
            if not self.current.finished:
                raise AssertionError(f"{path} did not finish Run All Cells (see its own test)")
            return self.current
        return self.run_all(path)

    def run_on_past_errors(self, run):
        """After Run All stopped at an error, run the cells it skipped, to the end.

        A cell that raises makes the kernel abort the executions queued behind it, so
        after Run All some cells never ran (no execution count). Which ones depends on
        timing: on a busy machine a later cell can run while an earlier one was
        aborted. So: run all below the first cell that never ran, again until every
        code cell has run once; every error of the notebook is then seen. The added
        time counts into the notebook's run time.
        """
        start = time.monotonic()
        page = run.page
        first = page.evaluate(_FIRST_UNRUN, run.path)
        while first >= 0:
            page.evaluate(_WATCH_RUN, ["notebook:run-all-below"])
            page.evaluate(
                f"""([p, i]) => {{ const w = ({_NB})(p); w.content.activeCellIndex = i;
                     window.jupyterapp.commands.execute('notebook:run-all-below'); }}""",
                [run.path, first])
            self._wait_for_run(run)
            after = page.evaluate(_FIRST_UNRUN, run.path)
            if after == first:  # the cell did not run at all: stop rather than spin
                break
            first = after
        run.errors = self.errors(run)
        run.run_s += time.monotonic() - start
        self.times[run.path] = (run.open_s, run.run_s)
        return run

    def _wait_for_run(self, run):
        outcome = run.page.wait_for_function(_RUN_FINISHED, arg=run.path,
                                             timeout=RUN_ALL_S * 1000, polling=200)
        outcome = outcome.json_value()
        if outcome != "idle":
            raise AssertionError(f"{run.path}: {outcome} while running all cells")

    def errors(self, run):
        return [CellError(**e) for e in run.page.evaluate(_ERRORS, run.path)]

    def screenshot(self, run, name=None):
        """The whole notebook in one picture, scrolled to its first error if any."""
        page = run.page
        name = name or run.path.replace("/", "__").removesuffix(".ipynb") + ".png"
        path = self.artifacts / name
        self.artifacts.mkdir(parents=True, exist_ok=True)
        viewport = page.viewport_size
        scroller = f"(p) => ({_NB})(p).content.node.querySelector('.jp-WindowedPanel-outer')"
        try:
            height = page.evaluate(
                f"(p) => {{ const s = ({scroller})(p); return s ? s.scrollHeight : 0; }}", run.path)
            extra = viewport["height"] - page.evaluate(
                f"(p) => {{ const s = ({scroller})(p); return s ? s.clientHeight : 0; }}", run.path)
            tall = min(SCREENSHOT_MAX_PX, max(viewport["height"], height + extra))
            page.set_viewport_size({"width": viewport["width"], "height": tall})
            first_error = run.errors[0].cell if run.errors else -1
            page.evaluate(
                f"""([p, i]) => {{ const nb = ({_NB})(p).content;
                      if (i >= 0) nb.widgets[i].node.scrollIntoView({{block: 'start'}});
                      else ({scroller})(p).scrollTop = 0; }}""",
                [run.path, first_error])
            page.wait_for_timeout(300)
            page.screenshot(path=path)
        finally:
            page.set_viewport_size(viewport)
        run.screenshot = path
        return path

    def close(self):
        """Close the open notebook's page and shut its kernel down (never saving)."""
        if self.current is not None:
            self.current.page.close()  # no beforeunload prompt: the dirty notebook is dropped
            self.current = None
        self.lab.shutdown_kernels()
