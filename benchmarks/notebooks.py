"""Item 1: every course notebook run top to bottom with nbclient, wall time and slowest cell."""

import datetime
import shutil
import statistics
import time
from pathlib import Path

from rnngrading.course import REPO

from .machine import log
from .stats import summarize

COURSE = REPO / "course"


def cell_seconds(cell):
    """Wall time of one executed cell from nbclient's timing metadata, or None."""
    execution = cell.get("metadata", {}).get("execution", {})
    start = execution.get("iopub.status.busy") or execution.get("iopub.execute_input")
    end = execution.get("shell.execute_reply") or execution.get("iopub.status.idle")
    if not (start and end):
        return None
    parse = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def execute_notebook(path, workdir, timeout=600):
    """Run a copy of the notebook at `path` in `workdir` with nbclient, kernel start included.

    returns (wall seconds, [seconds per code cell, in order], error text or None)
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / Path(path).name
    shutil.copy2(path, copy)
    nb = nbformat.read(copy, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    error = None
    start = time.perf_counter()
    try:  # the kernel's own log (a TCP warning on every start) goes to a file, not our stderr
        with open(workdir / "kernel.log", "w") as kernel_log:
            client.execute(stderr=kernel_log)
    except CellExecutionError as exc:
        text = str(exc).strip()
        error = text.splitlines()[-1][:200] if text else "CellExecutionError"
    wall = time.perf_counter() - start
    cells = [cell_seconds(c) for c in nb.cells if c.cell_type == "code"]
    return wall, cells, error


def empty_notebook(scratch):
    """A notebook with one empty code cell: its run time is the kernel's start and stop."""
    import nbformat

    path = Path(scratch) / "empty.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("pass"))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


def first_line(path, code_index):
    """First non-blank line of the code cell with this index, for the report."""
    import nbformat

    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    lines = [line for line in code[code_index].source.splitlines() if line.strip()]
    return (lines[0] if lines else "")[:60]


def bench_notebooks(runs, scratch):
    """Every course notebook, `runs` times, runs interleaved so load spreads evenly."""
    notebooks = sorted(COURSE.glob("*.ipynb"))
    raw = {nb.name: {"walls": [], "cells": [], "errors": []} for nb in notebooks}
    empty = empty_notebook(scratch)
    kernel = []
    execute_notebook(empty, Path(scratch) / "warm-up")  # first kernel start warms the caches
    for run in range(runs):
        wall, _, _ = execute_notebook(empty, Path(scratch) / f"empty-{run}")
        kernel.append(wall)
        log(f"notebooks run {run + 1}/{runs}: empty notebook (kernel start) {wall:.2f} s")
        for nb in notebooks:
            wall, cells, error = execute_notebook(nb, Path(scratch) / f"nb-{run}-{nb.stem}")
            raw[nb.name]["walls"].append(wall)
            raw[nb.name]["cells"].append(cells)
            if error:
                raw[nb.name]["errors"].append(error)
            slow = max((s or 0.0) for s in cells) if cells else 0.0
            log(f"notebook {nb.name} run {run + 1}/{runs}: {wall:.1f} s, slowest cell "
                f"{slow:.1f} s" + (f", ERROR {error}" if error else ""))
    results = {"kernel_start": summarize(kernel), "notebooks": {}}
    for nb in notebooks:
        r = raw[nb.name]
        per_cell = list(zip(*r["cells"], strict=True))
        medians = [statistics.median([s or 0.0 for s in c]) for c in per_cell]
        slowest = max(range(len(medians)), key=medians.__getitem__) if medians else None
        results["notebooks"][nb.name] = {
            "wall": summarize(r["walls"]),
            "cells_total": summarize([sum(s or 0.0 for s in run) for run in r["cells"]]),
            "slowest_cell": None if slowest is None else {
                "index": slowest,
                "first_line": first_line(nb, slowest),
                **summarize([s or 0.0 for s in per_cell[slowest]]),
            },
            "errors": r["errors"],
        }
    return results
