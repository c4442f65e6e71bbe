"""The instructor's side of the graded assignments: one command per step, each wrapping nbgrader.

rnncourse-instructor COMMAND, one of:
    release   [ASSIGNMENT ...]          source/ -> release/, tests -> gradebook.db
    collect   ASSIGNMENT FOLDER_OR_ZIP  -> submitted/<student>/<assignment>/
    autograde [ASSIGNMENT ...]          submitted/ -> autograded/, gradebook.db (sandboxed;
                                        points from the judge, rnngrading.judge)
    feedback  [ASSIGNMENT ...]          autograded/ -> feedback/ (HTML)
    export    [--to grades.csv] [--format grades|canvas]
                                        gradebook.db -> CSV (nbgrader's columns, or Canvas's
                                        gradebook import; a missing submission is empty)
    grades                              print the grade table
    demo      [--dir DIR]               a simulated class, end to end

Every command works on the course root given by --course (default: course.default_course)
and runs nbgrader there. With no ASSIGNMENT, a command covers every assignment of the
course, in course order (course.ASSIGNMENTS).

collect takes a folder holding one folder per student id, each holding that student's
notebook (jacobian.ipynb for the jacobian assignment; anywhere inside the student's
folder), or a .zip of such a folder. Everything is checked before anything is copied:
a missing folder, a malformed notebook, a notebook with an unexpected name or a student
already collected stops the command with a one-line error and changes nothing
(--replace moves earlier copies aside into downloaded/<assignment>/replaced-<time>/).
Each collected submission gets nbgrader's timestamp.txt, so that the assignment's due date
applies: from the zip entries' times (the newest of the student's notebooks), or from an LMS
times CSV given with --times (rnngrading.lms.read_times says its columns). A folder without
--times has no times: collect says so, and no late rule can apply.

Students not on the roster (gradebook.db's students) are not graded once the course has a
roster: collect names them (and collects them), autograde names each again, keeps the
submission in submitted/, and says how to add them.
A course with no roster yet takes every student it grades onto it, and says so.

Errors print one line, "rnncourse-instructor: error: ...", and exit with status 2.
"""

import argparse
import datetime
import re
import shutil
import sys
import zipfile
from pathlib import Path

import nbformat

from .batch import grade_batch
from .course import (
    REPO,
    CourseError,
    GradingSetupError,
    course_root,
    default_course,
    gradebook,
    known_assignments,
    new_course,
    released_notebooks,
)
from .course import nbgrader as run_nbgrader
from .feedback import check_feedback
from .fixtures import load_roster, write_class_submissions
from .gradebook import format_grades, merge_results, quiet_sqlalchemy
from .lms import read_times, timestamp_text, write_canvas_csv, zip_entry_time

DEMO_MARKER = ".instructor-demo"
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
NBGRADER_LOG_LEVEL = {"value": None}  # None: nbgrader's own (INFO); the demo asks for less


def nbgrader(root, *args):
    """course.nbgrader at the log level this run asked for."""
    run_nbgrader(root, *args, log_level=NBGRADER_LOG_LEVEL["value"])


# ------------------------------------------------------------------ course and nbgrader


def pick_assignments(root, names):
    """The assignments to work on: `names`, checked, or all of them in course order."""
    known = known_assignments(root)
    if not names:
        return known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CourseError(
            f"unknown assignment {unknown[0]!r}; the course has: {', '.join(known) or 'none'}"
        )
    return list(names)


def require_in_gradebook(root, assignment):
    """Autograding needs the assignment's test cells in the gradebook (release puts them)."""
    from nbgrader.api import MissingEntry

    if not (root / "gradebook.db").is_file():
        raise CourseError(
            f"no gradebook.db in {root}: run the release command first (it records the tests)"
        )
    with gradebook(root) as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise CourseError(
                f"{assignment!r} is not in gradebook.db: run the release command first"
            ) from None


# ------------------------------------------------------------------ the commands


def release(root, names=()):
    """nbgrader generate_assignment for each assignment: source/ -> release/, tests -> gradebook."""
    for assignment in pick_assignments(root, names):
        print(f"releasing {assignment}", flush=True)
        nbgrader(root, "generate_assignment", assignment, "--force")
    return [root / "release" / a for a in pick_assignments(root, names)]


def _is_skipped(parts):
    """Hidden files and folders (.ipynb_checkpoints, .DS_Store) and macOS zip debris."""
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _scan_folder(folder):
    """Relative paths (as tuples of parts) of every file under `folder`."""
    return [p.relative_to(folder).parts for p in sorted(folder.rglob("*")) if p.is_file()]


def _scan_zip(archive):
    """Relative paths of the files in a zip, their contents and their times (lms.zip_entry_time)."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise CourseError(f"not a readable zip archive: {archive}") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        contents = {tuple(Path(m.filename).parts): zf.read(m) for m in members}
        times = {tuple(Path(m.filename).parts): zip_entry_time(m) for m in members}
    return list(contents), contents, times


def plan_collect(root, assignment, source):
    """Check a batch of submissions and say what collect would copy, without copying.

    returns (kind, prefix, students, times): kind "folder" or "zip"; prefix, a folder inside
    the zip that holds the student folders (or ()); students, {student_id: [relative paths]};
    times, {student_id: aware time of the newest of their notebooks} for a zip, else {}
    """
    source = Path(source)
    expected = released_notebooks(root, assignment)
    if not source.exists():
        raise CourseError(f"no such folder or zip: {source}")
    if source.is_dir():
        kind, paths = "folder", _scan_folder(source)
        read = lambda parts: source.joinpath(*parts).read_bytes()  # noqa: E731
    elif source.suffix.lower() == ".zip":
        kind, (paths, contents, entry_times) = "zip", _scan_zip(source)
        read = contents.__getitem__
    else:
        raise CourseError(f"expected a folder or a .zip of student folders, got {source}")
    notebooks = [p for p in paths if p[-1].endswith(".ipynb") and not _is_skipped(p)]
    if not notebooks:
        raise CourseError(f"no notebooks in {source} (expected <student id>/{expected[0]})")
    prefix = ()
    tops = {p[0] for p in notebooks}
    if kind == "zip" and len(tops) == 1 and all(len(p) >= 3 for p in notebooks):
        prefix = (next(iter(tops)),)  # a zip of the folder: student folders one level down
    students = {}
    for parts in notebooks:
        rel = parts[len(prefix):]
        shown = "/".join(parts)
        if len(rel) < 2:
            raise CourseError(
                f"{shown}: a notebook outside a student folder (expected <student id>/{rel[-1]})"
            )
        student, name = rel[0], rel[-1]
        if not STUDENT_ID.match(student):
            raise CourseError(f"{shown}: {student!r} is not a usable student id")
        if name not in expected:
            raise CourseError(
                f"{shown}: not a notebook of {assignment!r} (expected {', '.join(expected)})"
            )
        try:
            nb = nbformat.reads(read(parts).decode("utf-8"), as_version=4)
            nbformat.validate(nb)
        except Exception as exc:  # any failure to read it is the same problem for the instructor
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CourseError(f"{shown}: malformed notebook ({reason[:120]})") from None
        taken = [p for p in students.get(student, []) if p[-1] == name]
        if taken:
            raise CourseError(
                f"{shown}: student {student!r} has two copies of {name} "
                f"(also {'/'.join(taken[0])})"
            )
        students.setdefault(student, []).append(parts)
    times = {} if kind == "folder" else {
        student: max(entry_times[parts] for parts in paths) for student, paths in students.items()}
    return kind, prefix, students, times


def collect(root, assignment, source, replace=False, times=None):
    """Copy a batch of submissions into submitted/<student>/<assignment>/ with nbgrader
    zip_collect, each with its time in timestamp.txt.

    times: an LMS times CSV (lms.read_times); without it, a zip's entry times
    returns the sorted list of student ids collected
    """
    (assignment,) = pick_assignments(root, [assignment])
    source = Path(source).resolve()
    kind, prefix, students, when = plan_collect(root, assignment, source)
    if times is not None:
        listed = read_times(times)
        unlisted = sorted(s for s in students if s not in listed)
        if unlisted:
            raise CourseError(f"{times} gives no time for {', '.join(unlisted[:3])}"
                              f"{' ...' if len(unlisted) > 3 else ''}: add a row per student")
        when = {s: listed[s] for s in students}
    submitted = root / "submitted"
    already = sorted(s for s in students if (submitted / s / assignment).exists())
    if already and not replace:
        shown = ", ".join(already[:3]) + (" ..." if len(already) > 3 else "")
        raise CourseError(
            f"{assignment} already collected for {shown}: use --replace to replace "
            f"(earlier copies are kept under downloaded/{assignment}/)"
        )
    staging = root / "downloaded" / assignment
    archive, extracted = staging / "archive", staging / "extracted"
    for folder in (archive, extracted):
        if folder.exists():
            shutil.rmtree(folder)
    archive.mkdir(parents=True)
    # zip_collect matches this pattern against the absolute path of every extracted file.
    # It starts with ".*/" so that a symlink in the course's path cannot break it.
    base = [".*", "downloaded", re.escape(assignment), "extracted"]
    if kind == "zip":
        shutil.copy2(source, archive / "submissions.zip")  # extracted to extracted/submissions/
        base += ["submissions", *map(re.escape, prefix)]
    else:
        for parts in (p for paths in students.values() for p in paths):
            (archive / Path(*parts)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source.joinpath(*parts), archive / Path(*parts))
    names = "|".join(re.escape(n) for n in released_notebooks(root, assignment))
    ids = "|".join(re.escape(s) for s in sorted(students))
    regexp = (
        "^" + "/".join(base) + f"/(?P<student_id>{ids})/(?:[^/.][^/]*/)*(?P<file_id>{names})$"
    )
    if already:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        for student in already:
            keep = staging / f"replaced-{stamp}" / student
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(submitted / student / assignment), str(keep))
    nbgrader(  # its warnings ("Directory not found. Creating ...") are checked above
        root, "zip_collect", assignment, "--strict", "--log-level=ERROR",
        f"--FileNameCollectorPlugin.named_regexp={regexp}",
    )
    missing = [s for s in students if not (submitted / s / assignment).is_dir()]
    if missing:
        raise CourseError(f"zip_collect did not collect {', '.join(sorted(missing))}")
    for student, moment in when.items():
        (submitted / student / assignment / "timestamp.txt").write_text(timestamp_text(moment))
    print(f"collected {assignment} for {len(students)} students: {', '.join(sorted(students))}")
    roster = read_roster(root) if (root / "gradebook.db").is_file() else set()
    strangers = sorted(s for s in students if roster and s not in roster)
    if strangers:
        print(f"not on the roster (gradebook.db), so autograde will not grade them: "
              f"{', '.join(strangers)}; add each with nbgrader db student add ID (or formgrader's "
              "Manage Students)")
    if when:
        origin = "the times CSV" if times is not None else "the zip entries"
        print(f"submission times from {origin}: {min(when.values()):%Y-%m-%d %H:%M %Z} to "
              f"{max(when.values()):%Y-%m-%d %H:%M %Z}")
    else:
        print("no submission times (a folder keeps none): no late rule can apply; give the "
              "LMS's times with --times FILE.csv (columns student_id,timestamp)")
    return sorted(students)


def autograde(root, names=(), force=False, workers=None, unsafe=False):
    """Grade submitted/ in the sandbox, judged outside the student's kernel (batch.grade_batch
    and rnngrading.judge), into autograded/ and the gradebook. A submission graded since it
    was collected is left alone unless force."""
    for assignment in pick_assignments(root, names):
        require_in_gradebook(root, assignment)
        roster = read_roster(root)
        jobs, skipped, added = [], 0, []
        for folder in sorted((root / "submitted").glob(f"*/{assignment}")):
            student = folder.parent.name
            if roster and student not in roster:
                print(f"  {student:<20} {assignment:<12} not graded: {student!r} is not on the "
                      f"roster (gradebook.db); the submission stays in submitted/{student}/"
                      f"{assignment}/. To grade it: nbgrader db student add {student} "
                      "(or formgrader's Manage Students), then autograde again", flush=True)
                continue
            if not roster:
                added.append(student)
            notebook = folder / f"{assignment}.ipynb"
            done = root / "autograded" / student / assignment / f"{assignment}.ipynb"
            if (not force and done.is_file() and notebook.is_file()
                    and done.stat().st_mtime >= notebook.stat().st_mtime):
                skipped += 1
                continue
            jobs.append((student, assignment, notebook))
        if not jobs:
            print(f"no new submissions of {assignment} in {root / 'submitted'}: nothing to grade"
                  + (f" ({skipped} graded before; --force regrades them)" if skipped else ""))
            continue
        print(f"autograding {assignment}: {len(jobs)} submissions, sandboxed, judged outside "
              "the student's kernel", flush=True)
        if added:
            print(f"  the course has no roster yet (no students in gradebook.db): adding the "
                  f"{len(added)} students graded here: {', '.join(added)}", flush=True)
        try:
            results = grade_batch(jobs, root, workers=workers, fill_autograded=True,
                                  unsafe=unsafe)
        except GradingSetupError as exc:
            raise CourseError(f"grading stopped, nothing recorded: {exc}") from None
        for r in results:
            print("  " + r.line())
        for note in merge_results(results, root):
            print("  " + note)
        for r in results:
            keep_submission_records(root, r.student, assignment)


# What nbgrader collect puts beside a submission and its autograde carries on to autograded/,
# where generate_feedback and release_feedback read them: the submission's time, and the
# secret from which the exchange names the student's feedback page.
SUBMISSION_RECORDS = ("timestamp.txt", "submission_secret.txt")


def keep_submission_records(root, student, assignment):
    """Copy SUBMISSION_RECORDS from submitted/ to autograded/ (the sandboxed grader writes
    the graded notebook only), as nbgrader's own autograde does."""
    graded = root / "autograded" / student / assignment
    if not graded.is_dir():
        return
    for name in SUBMISSION_RECORDS:
        record = root / "submitted" / student / assignment / name
        if record.is_file():
            shutil.copy2(record, graded / name)


def read_roster(root):
    """The ids of the students in the course's gradebook (its roster)."""
    with quiet_sqlalchemy(), gradebook(root) as gb:
        return {s.id for s in gb.students}


def add_to_roster(root, students):
    """Put students on the roster (gradebook.db), as `nbgrader db student add` does."""
    with quiet_sqlalchemy(), gradebook(root) as gb:
        for student in students:
            gb.update_or_create_student(student)


def feedback(root, names=()):
    """nbgrader generate_feedback, then a check that no page shows a hidden test."""
    for assignment in pick_assignments(root, names):
        if not any((root / "autograded").glob(f"*/{assignment}")):
            print(f"no autograded {assignment} in {root / 'autograded'}: no feedback to make")
            continue
        nbgrader(root, "generate_feedback", assignment, "--force")
        count = check_feedback(root, assignment)
        print(f"feedback for {assignment}: {count} pages in feedback/, no hidden test shown")


EXPORT_FORMATS = ("grades", "canvas")


def export(root, to="grades.csv", fmt="grades"):
    """The gradebook as CSV: "grades", nbgrader export (one row per student and assignment,
    through rnngrading.lms.GradesCsv); "canvas", Canvas's gradebook import layout. In both, a
    submission never handed in is an empty cell and a real score of 0 is 0."""
    target = (root / to).resolve() if not Path(to).is_absolute() else Path(to)
    if not (root / "gradebook.db").is_file():
        raise CourseError(f"no gradebook.db in {root}: nothing to export yet")
    if fmt == "canvas":
        with gradebook(root) as gb:
            students, assignments = write_canvas_csv(gb, target)
        print(f"Canvas gradebook ({students} students, {assignments} assignments) written to "
              f"{target}: import it in Canvas under Grades > Import")
    else:
        nbgrader(root, "export", f"--to={target}")
        print(f"grades written to {target}")
    return target


def demo(dest=None, names=(), fixtures=None):
    """A simulated class, end to end, in a folder of its own (the repository is left alone).

    Copies the course (config and source/) to `dest`, releases it, builds the class's
    submissions from the fixtures, collects them (one assignment from a zip, as an LMS
    would hand it over), autogrades, makes and checks the feedback, exports the CSV and
    prints the grade table.
    returns the demo's course root
    """
    dest = Path(dest or REPO / "artifacts" / "instructor-demo").resolve()
    # Progress comes from this script's own lines. nbgrader's warnings here are all
    # expected ones (a checksum "changed" for every test cell with hidden tests).
    NBGRADER_LOG_LEVEL["value"] = "ERROR"
    if dest.exists():
        if not (dest / DEMO_MARKER).exists():
            raise CourseError(f"{dest} exists and is not an earlier demo: pick another --dir")
        shutil.rmtree(dest)
    chosen = pick_assignments(REPO, names)
    new_course(dest, chosen, release=False)  # released again below, from source/
    (dest / DEMO_MARKER).write_text("made by rnncourse-instructor demo; safe to delete\n")
    root = course_root(dest)
    release(root, chosen)
    roster = load_roster(*([fixtures] if fixtures else []))
    add_to_roster(root, roster)  # the class list first, as an instructor would
    for i, assignment in enumerate(chosen):
        folder = root / "downloads" / assignment
        write_class_submissions(root, assignment, folder, roster, *([fixtures] if fixtures else []))
        if i == 1:  # hand one assignment over as a zip of the folder
            archive = shutil.make_archive(str(folder), "zip", root / "downloads", assignment)
            collect(root, assignment, archive)
        else:
            collect(root, assignment, folder)
    autograde(root, chosen)
    feedback(root, chosen)
    export(root, "grades.csv")
    export(root, "canvas.csv", "canvas")
    print()
    print(format_grades(root))
    return root


# ------------------------------------------------------------------ command line


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="rnncourse-instructor", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--course", default=None, help="course root (default: "
                        "$RNNCOURSE_COURSE, else the folder at or above this one that holds "
                        "nbgrader_config.py)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("release", help="release/ from source/ (nbgrader generate_assignment)")
    p.add_argument("assignments", nargs="*")
    p = sub.add_parser("collect", help="collect a folder or zip of submissions into submitted/")
    p.add_argument("assignment")
    p.add_argument("source", help="folder with one folder per student id, or a .zip of it")
    p.add_argument("--replace", action="store_true", help="replace earlier copies (kept aside)")
    p.add_argument("--times", default=None, metavar="FILE.csv", help="the submission times the "
                   "LMS gives: a CSV with columns student_id,timestamp (default: a zip's entry "
                   "times)")
    p = sub.add_parser("autograde", help="autograde submitted/ into autograded/ and the gradebook")
    p.add_argument("assignments", nargs="*")
    p.add_argument("--force", action="store_true", help="regrade submissions graded before")
    p.add_argument("--unsafe-no-isolation", dest="unsafe", action="store_true",
                   help="where no sandbox can be built, grade without one (NOT ISOLATED)")
    p = sub.add_parser("feedback", help="feedback HTML for students, hidden tests left out")
    p.add_argument("assignments", nargs="*")
    p = sub.add_parser("export", help="export the gradebook to CSV (nbgrader's or Canvas's)")
    p.add_argument("--to", default="grades.csv", help="CSV file, relative to the course root")
    p.add_argument("--format", dest="fmt", choices=EXPORT_FORMATS, default="grades",
                   help="grades: nbgrader's columns, a row per student and assignment; "
                   "canvas: Canvas's gradebook import (a row per student)")
    sub.add_parser("grades", help="print the grade table")
    p = sub.add_parser("demo", help="simulated class: release, collect, autograde, feedback, CSV")
    p.add_argument("--dir", default=None, help="folder for the demo course "
                   "(default: artifacts/instructor-demo)")
    p.add_argument("--assignments", nargs="*", default=(), help="default: all of them")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            demo(args.dir, args.assignments)
            return 0
        root = course_root(args.course or default_course())
        if args.command == "release":
            release(root, args.assignments)
        elif args.command == "collect":
            collect(root, args.assignment, args.source, args.replace, args.times)
        elif args.command == "autograde":
            autograde(root, args.assignments, args.force, unsafe=args.unsafe)
        elif args.command == "feedback":
            feedback(root, args.assignments)
        elif args.command == "export":
            export(root, args.to, args.fmt)
        elif args.command == "grades":
            if not (root / "gradebook.db").is_file():
                raise CourseError(f"no gradebook.db in {root}: nothing graded yet")
            print(format_grades(root))
    except CourseError as exc:
        print(f"rnncourse-instructor: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
