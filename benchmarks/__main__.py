"""python -m benchmarks [--quick] [--only ITEMS] [--out FOLDER] [--runs N] [--render JSON]
                       [--class-size jacobian=N,eigenvalues=N,copy_task=N]

Run from the repository root; see benchmarks/__init__.py for the items and their targets.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rnngrading.course import REPO

from . import autograde, bptt, classscale, copy_task, notebooks, parallel
from .machine import ONE_THREAD, load_average, log, machine_info, point_home_at
from .report import render
from .stats import TARGETS

OUT = REPO / "benchmarks"
ITEMS = ("notebooks", "autograde", "parallel", "bptt", "copy", "class")


def run_worker(kind, *args):
    """Run a worker (the copy task) in a child, one BLAS and torch thread; returns its JSON."""
    env = dict(os.environ, **ONE_THREAD)
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--worker", kind,
                           *map(str, args)], env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the {kind} worker failed (exit status {proc.returncode})")
    return json.loads(proc.stdout)


def class_sizes(text, quick):
    """{assignment: class size} from "jacobian=12,copy_task=0" (0 leaves one out); the
    assignments not named keep the full size, or the small one with --quick."""
    sizes = dict(classscale.QUICK_SIZES if quick else classscale.SIZES)
    for part in filter(None, text.split(",")):
        name, _, n = part.partition("=")
        if name not in sizes or not n.isdigit():
            raise ValueError(f"{part!r}: give ASSIGNMENT=N with ASSIGNMENT one of "
                             f"{', '.join(sizes)}")
        sizes[name] = int(n)
    return sizes


def measure(chosen, runs, quick, scratch, sizes=None):
    """The chosen items' results, with the load as each started.

    sizes: {assignment: class size} of the class item (default: the full class)
    """
    results = {"quick": quick, "runs": runs, "load_start": load_average(),
               "load_sections": {}, "notes": []}
    log(f"benchmarks {', '.join(chosen)}, {runs} run(s) each; load average "
        f"{results['load_start']}; scratch {scratch}")
    started = time.perf_counter()
    try:
        results["machine"] = machine_info()
        if "bptt" in chosen:  # cheap and sensitive to load: first
            results["load_sections"]["bptt"] = load_average()
            results["bptt"], results["bptt_timing"] = bptt.time_grid(
                "quick" if quick else "full", min_rounds=5 if quick else 10,
                max_time=0.5 if quick else 1.0)
            key = next(r for r in results["bptt"]
                       if (r["N"], r["T"], r["H"]) == bptt.KEY and r["dtype"] == "float64")
            ratio = key["numpy"]["median"] / key["torch_nn"]["median"]
            if ratio > TARGETS["bptt_ratio"] or not quick:
                results["bptt_profile"] = bptt.profile_bptt(*bptt.KEY)
        if "copy" in chosen:
            results["load_sections"]["copy"] = load_average()
            results["copy"] = run_worker("copy", runs)
        if "notebooks" in chosen:
            results["load_sections"]["notebooks"] = load_average()
            results["notebooks"] = notebooks.bench_notebooks(runs, scratch)
        if "autograde" in chosen:
            results["load_sections"]["autograde"] = load_average()
            results["autograde"] = autograde.bench_autograde(runs, scratch)
            results["imports"] = autograde.import_times(runs)
            log(f"import nbgrader.apps: {results['imports']['nbgrader']['median']:.2f} s")
            results["autograde_profile"] = autograde.profile_autograde(scratch)
            log(f"profiled one autograde: {results['autograde_profile']['wall']:.1f} s")
        if "parallel" in chosen:
            results["load_sections"]["parallel"] = load_average()
            results["parallel"] = parallel.bench_parallel(runs, scratch)
        if "class" in chosen:  # one batch per assignment and worker count, whatever --runs
            results["load_sections"]["class"] = load_average()
            results["class_scale"] = classscale.bench_class(scratch, sizes or classscale.SIZES)
    finally:
        results["load_end"] = load_average()
        results["duration_s"] = time.perf_counter() - started
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description="Benchmarks of the course on this machine.")
    parser.add_argument("--quick", action="store_true", help="1 run each, small grid")
    parser.add_argument("--only", default="", help=f"comma-separated: {','.join(ITEMS)}")
    parser.add_argument("--out", default=None, help="folder for RESULTS.md and results.json "
                        "(default: benchmarks/ for a full run; none, print only, otherwise)")
    parser.add_argument("--runs", type=int, default=None, help="runs of the expensive items "
                        "(default 3, or 1 with --quick)")
    parser.add_argument("--class-size", default="", metavar="A=N,...", help="class sizes "
                        "of the class item, e.g. jacobian=12,eigenvalues=12,copy_task=3 (0 "
                        "leaves one out; default 300, 300, 60, or 12, 12, 3 with --quick)")
    parser.add_argument("--render", metavar="RESULTS_JSON", help="write RESULTS.md again from "
                        "a results.json (after a change to the report's wording), no timing")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker == "copy":
        print(json.dumps(copy_task.copy_worker(int(args.args[0]))))
        return 0
    if args.render:
        results = json.loads(Path(args.render).read_text())
        target = Path(args.out or Path(args.render).parent) / "RESULTS.md"
        target.write_text(render(results) + "\n")
        log(f"wrote {target} from {args.render}")
        return 0

    chosen = [s for s in args.only.split(",") if s] or list(ITEMS)
    unknown = [s for s in chosen if s not in ITEMS]
    if unknown:
        parser.error(f"unknown item {unknown[0]!r}; choose from {', '.join(ITEMS)}")
    try:
        sizes = class_sizes(args.class_size, args.quick)
    except ValueError as exc:
        parser.error(f"--class-size {exc}")
    runs = args.runs or (1 if args.quick else 3)
    partial = (args.quick or args.only or args.class_size
               or args.runs is not None and args.runs < 3)
    out = Path(args.out) if args.out else (None if partial else OUT)

    scratch = tempfile.mkdtemp(prefix="rnncourse-bench-")
    point_home_at(scratch)
    try:
        results = measure(chosen, runs, bool(args.quick), scratch, sizes)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = render(results)
    if out is None:
        print(text)
    else:
        out.mkdir(parents=True, exist_ok=True)
        (out / "RESULTS.md").write_text(text + "\n")
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        log(f"wrote {out / 'RESULTS.md'} and {out / 'results.json'}")
    log(f"done in {results['duration_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
