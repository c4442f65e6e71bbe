"""Sandboxed grading from the command line (the console script rnncourse-grade).

    rnncourse-grade grade-one ASSIGNMENT STUDENT NOTEBOOK [--json]   grade, print one line
    rnncourse-grade grade ASSIGNMENT FOLDER [--workers N | --scheduler ADDR] [--course ROOT]
        grade FOLDER/<student>/<ASSIGNMENT>.ipynb for every student, in parallel on Dask
        distributed, and write each score into ROOT/gradebook.db as it lands [--json: and
        print it then, one JSON line, instead of the sorted report at the end]

A broken set-up stops everything with one line on stderr, "grading stopped, nothing
recorded: ...", and exit status 2. A course error (no such course root) says so the same
way.
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from . import intake
from .batch import grade_batch
from .course import CourseError, GradingSetupError, course_root, default_course
from .gradebook import merge_results
from .limits import Limits, limits_file, load_limits
from .prechecks import preflight
from .runner import Result, grade_one

COURSE_HELP = ("course root (default: $RNNCOURSE_COURSE, else the folder at or above this one "
               "that holds nbgrader_config.py)")
LIMITS_HELP = "limits file (default: grading_limits.toml in the course root)"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="rnncourse-grade", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("grade-one", help="grade one notebook in a sandbox, print the result")
    p.add_argument("assignment")
    p.add_argument("student")
    p.add_argument("notebook")
    p.add_argument("--course", default=None, help=COURSE_HELP)
    p.add_argument("--limits", default=None, help=LIMITS_HELP)
    p.add_argument("--limits-json", default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    p.add_argument("--keep", action="store_true", help="keep the scratch course (debugging)")
    p.add_argument("--save-dir", default=None, help="copy the autograded notebook here")
    p.add_argument("--unsafe-no-isolation", dest="unsafe", action="store_true",
                   help="where no sandbox can be built, run student code without one "
                   "(every line then says NOT ISOLATED)")
    p = sub.add_parser("grade", help="grade a folder of submissions in parallel, merge")
    p.add_argument("assignment")
    p.add_argument("folder", help="FOLDER/<student id>/<assignment>.ipynb (any name is checked)")
    p.add_argument("--course", default=None, help=COURSE_HELP)
    p.add_argument("--limits", default=None, help=LIMITS_HELP)
    p.add_argument("--workers", type=int, default=None, help="default: one per core")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (a real cluster)")
    p.add_argument("--no-merge", action="store_true",
                   help="print only, gradebook and autograded/ untouched")
    p.add_argument("--json", action="store_true",
                   help="one JSON line per submission as it lands (its Result and 'landed', "
                   "seconds since the start), instead of the sorted report")
    p.add_argument("--unsafe-no-isolation", dest="unsafe", action="store_true",
                   help="where no sandbox can be built, run student code without one "
                   "(every line then says NOT ISOLATED)")
    args = parser.parse_args(argv)
    try:
        return _command(args)
    except (GradingSetupError, CourseError) as exc:
        print(f"grading stopped, nothing recorded: {exc}", file=sys.stderr)
        return 2


def _command(args):
    args.course = str(course_root(args.course or default_course()))
    args.limits = args.limits or limits_file(args.course)
    if args.command == "grade-one":
        limits = (Limits(**json.loads(args.limits_json)) if args.limits_json
                  else load_limits(args.limits))
        preflight(args.course, args.assignment, limits, args.unsafe)
        result = grade_one(args.notebook, args.assignment, args.student, args.course, limits,
                           keep=args.keep, save_dir=args.save_dir, unsafe=args.unsafe)
        print(json.dumps(dataclasses.asdict(result)) if args.json else result.line())
        return 0
    limits = load_limits(args.limits)
    folder = Path(args.folder)
    if not folder.is_dir():
        raise GradingSetupError(f"no folder {folder}: give the folder that holds one folder "
                                "per student id")
    found, refused = intake.collect(folder, args.assignment, limits.max_submission_mb * 2**20)
    jobs = [(student, args.assignment, notebook) for student, notebook in found]
    start = time.monotonic()

    def landed(results):
        """Record (and, with --json, print) the scores that came in, as they come in."""
        if not results:
            return
        if not args.no_merge:
            merge_results([r for r in results if intake.SAFE_ID.fullmatch(r.student)],
                          args.course)
        if args.json:
            for r in results:
                print(json.dumps({**dataclasses.asdict(r),
                                  "landed": round(time.monotonic() - start, 3)}), flush=True)

    results = grade_batch(jobs, args.course, limits, args.workers, args.scheduler,
                          fill_autograded=not args.no_merge, unsafe=args.unsafe,
                          on_results=landed)
    refusals = [Result(who, args.assignment, why, {}, 0.0, 0.0, graded=False)
                for who, why in refused]
    landed(refusals)
    results += refusals
    if not args.json:
        for r in sorted(results, key=lambda r: r.student):
            print(r.line())
    measured = sum(r.graded for r in results)
    print(f"{args.assignment}: {measured} graded, {len(results) - measured} not graded, "
          f"{len(results)} in all, in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
