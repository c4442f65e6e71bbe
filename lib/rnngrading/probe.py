"""The judge's calls in the student's kernel, after the notebook: nbgrader's side.

JudgedExecute is the autograde step's Execute (outputs.CappedExecute, which caps outputs in
bytes). When the notebook's last cell has run, it runs one extra cell per judged part in the
same kernel: probe_kernel.py's source and a call of run_part. These cells never reach the
notebook. What each part wrote in the kernel's home is copied, as bytes, into the judge's
folder, which the kernel cannot reach: read with O_NOFOLLOW from regular files only, and
at most max_bytes. The inputs go into the kernel's home only now, under a random name, so
no cell of the student's could have read them before.
"""

import inspect
import json
import os
import secrets
import shutil
import stat
from pathlib import Path

from nbformat import NotebookNode
from traitlets import Integer, Unicode

from . import probe_kernel
from .outputs import CappedExecute


def _read_regular(path, max_bytes):
    """The bytes of a regular file (no symlink followed), or None; ValueError if too big."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size > max_bytes:
            raise ValueError(f"{info.st_size} bytes")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(max_bytes + 1)
    finally:
        os.close(fd)


def probe_source():
    return inspect.getsource(probe_kernel)


class JudgedExecute(CappedExecute):
    """Execute, then the judge's calls (see the module's docstring)."""

    judge_dir = Unicode("", help="folder of the judge's spec.json and inputs.npz; answers go "
                        "to its answers/ sub-folder").tag(config=True)
    kernel_dir = Unicode("", help="a folder the kernel reads and writes (its home)"
                         ).tag(config=True)
    part_timeout = Integer(60, help="seconds for the calls of one part").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._judge_spec = None
        if self.judge_dir:
            self._judge_spec = json.loads((Path(self.judge_dir) / "spec.json").read_text())
            (Path(self.judge_dir) / "answers").mkdir(mode=0o700, exist_ok=True)
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index):
        out = super().preprocess_cell(cell, resources, index)
        if self._judge_spec is not None and index == len(self.nb.cells) - 1:
            self._probe()
        return out

    def _probe(self):
        token = secrets.token_hex(8)
        kernel_dir = Path(self.kernel_dir)
        inputs = kernel_dir / f"judge-in-{token}.npz"
        fd = os.open(inputs, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f, open(Path(self.judge_dir) / "inputs.npz", "rb") as src:
            shutil.copyfileobj(src, f)
        source = probe_source()
        answers = Path(self.judge_dir) / "answers"
        self.timeout, cell_timeout = self.part_timeout, self.timeout
        try:
            self._probe_parts(token, kernel_dir, inputs, source, answers)
        finally:
            self.timeout = cell_timeout

    def _probe_parts(self, token, kernel_dir, inputs, source, answers):
        for k, part in enumerate(self._judge_spec["parts"]):
            out = kernel_dir / f"judge-out-{token}-{k}"
            program = (f"{source}\nrun_part(json.loads({json.dumps(part)!r}), {str(inputs)!r}, "
                       f"{str(out)!r}, _student, {int(part['max_bytes'])})\n")
            # the probe's own names live in a namespace of their own, not in the student's
            code = (f"exec(compile({program!r}, '<judge>', 'exec'), "
                    "{'__name__': '_rnngrading_probe', '_student': globals()})\n")
            cell = NotebookNode(cell_type="code", source=code, metadata={}, outputs=[],
                                execution_count=None, id=f"judge-{k}")
            # nbclient keeps the cell it ran at nb.cells[index]: lend it a place, then take
            # it back, with any display ids it registered
            self.nb.cells.append(cell)
            index = len(self.nb.cells) - 1
            try:
                self.execute_cell(cell, index, store_history=False)
            except Exception as exc:  # noqa: BLE001 - a dead kernel ends the probing
                self.log.warning("judge probe stopped: %s", type(exc).__name__)
                break
            finally:
                self.nb.cells.pop()
                for cells in self._display_id_map.values():
                    cells.pop(index, None)
                self._collect(out, answers / part["grade_id"], part["max_bytes"])

    def _collect(self, out, target, max_bytes):
        """Copy one part's answers out of the kernel's reach (regular files only)."""
        for suffix, limit in ((".json", 4 * 2**20), (".npz", max_bytes + 2**20)):
            try:
                data = _read_regular(str(out) + suffix, limit)
            except ValueError:
                data = None
                Path(str(target) + ".toolarge").write_text("1")
            if data is not None:
                Path(str(target) + suffix).write_bytes(data)
