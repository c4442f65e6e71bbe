"""What the numbers were measured on, how busy it was, and where a run writes its files."""

import contextlib
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from rnngrading import course
from rnngrading.course import REPO, own_bin_first

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_START = time.perf_counter()


def log(message):
    """Progress on stderr, stamped with the seconds since the run started."""
    print(f"[bench {time.perf_counter() - _START:7.1f} s] {message}", file=sys.stderr, flush=True)


def machine_info():
    """What the numbers were measured on."""
    import nbclient
    import nbgrader
    import numpy
    import torch

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = int(line.split()[1]) / 1024**2
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_gb, 1) if mem_gb else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "nbgrader": nbgrader.__version__,
        "nbclient": nbclient.__version__,
        "commit": commit,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def load_average():
    """The 1, 5 and 15 minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]


def point_home_at(scratch):
    """Jupyter, IPython, matplotlib and caches write under scratch; children inherit it."""
    course.point_home_at(scratch)
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    sys.dont_write_bytecode = True
    os.environ["PATH"] = own_bin_first(os.environ.get("PATH", ""))


def run_timed(cmd, cwd=None):
    """Run a command, raise with its stderr if it fails; returns the wall time in seconds."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} ... failed:\n{proc.stderr[-3000:]}")
    return wall
