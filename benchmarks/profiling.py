"""cProfile of a command, summarised by named parts and the top functions by own time."""

import io
import pstats
import subprocess
import sys
import time
from pathlib import Path


def profile_command(args, cwd, prof, parts):
    """Run `python -m cProfile ARGS` and summarise the profile by `parts`.

    parts: [(label, file name ending, function name)], looked up by cumulative time
    returns {"wall", "profiled_total", "parts": {label: seconds}, "top": [lines]}
    """
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), *args], cwd=cwd,
                   check=True, capture_output=True)
    return {"wall": time.perf_counter() - start, **summarize_profile(prof, parts)}


def summarize_profile(prof, parts):
    """Cumulative seconds of the named parts, and the top functions by own time."""
    stats = pstats.Stats(str(prof), stream=io.StringIO())
    total = max(v[3] for v in stats.stats.values())
    found = {}
    for label, ending, function in parts:
        hits = [v[3] for (f, _, n), v in stats.stats.items()
                if f.endswith(ending) and n == function]
        if hits:
            found[label] = max(hits)
    top = []
    for (f, line, n), v in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:12]:
        short = "/".join(Path(f).parts[-2:]) if f != "~" else ""
        top.append(f"{v[2]:6.2f} s own, {v[0]:7d} calls  {short}:{line}({n})")
    return {"profiled_total": total, "parts": found, "top": top}
