"""rnngrading: safe, parallel autograding of the course's nbgrader assignments.

Modules, by what they hold:
    course       the course root, its assignments and gradebook, nbgrader run in it
    limits       the grading limits (their one home: the course's grading_limits.toml)
    intake       what students hand in: a folder of student folders, checked before reading
    prechecks    checks of an untrusted notebook, and the pre-flight check of the set-up
    isolation    bubblewrap around each grading kernel, its kernel spec and environment
    launcher     the kernel spec's launcher, run per kernel: a forked kernel or bubblewrap
    kernelfork   kernel templates: grading kernels forked with ipykernel and torch imported,
                 in the same sandbox as bubblewrap's
    zygote       a process that imported nbgrader once and forks one autograde per request
    runner       grading one submission in a scratch course: a Result, measured or not
    judge        the trusted judge: each assignment's checks (source/*/judge.py), its
                 per-student cases, the answers read back as plain data, the verdicts
    probe        nbgrader's Execute that runs the judge's calls in the kernel after the notebook
    probe_kernel what runs in the student's kernel for the judge (sent there as source)
    batch        grading a class in parallel on Dask
    gradebook    merging Results into the course gradebook; the grade table
    outputs      nbgrader preprocessors that cap output in bytes while autograding
    feedback     the feedback preprocessor that hides hidden test regions, and its check
    fixtures     the simulated class: submissions built from fixture cases
    instructor   the instructor's commands (console script rnncourse-instructor)
    cli          sandboxed grading from the command line (console script rnncourse-grade)

Instructors and tests import it; students' notebooks never do.
"""
