"""Benchmarks of the course: how long students wait and how long grading takes, on this machine.

    python -m benchmarks            the full run (every item at least 3 times), writes
                                    benchmarks/RESULTS.md and benchmarks/results.json
    python -m benchmarks --quick    one run of each, a small grid: for development; prints
                                    the report instead of writing it (unless --out)
    python -m benchmarks --only bptt,copy   some items only (same rule as --quick)
    python -m benchmarks --only class --class-size jacobian=12,eigenvalues=12,copy_task=3
                                    the class item at a development size (also --quick's)

Run from the repository root. Modules, one per item, each with its target (PASS or MISS in
the report), and the helpers they share:
    notebooks   every course notebook run top to bottom with nbclient in a temp copy:
                wall time (< 90 s) and slowest cell (< 30 s)
    autograde   nbgrader autograde of each assignment's reference solution in a temp
                course, alone and in a batch of 5, against plain nbclient on the same
                cells (ratio <= 1.5)
    parallel    20 submissions autograded one after the other and two at a time, by
                nbgrader and by the sandboxed rnncourse-grade (speedup >= 1.6 on 2 cores)
    bptt        rnncourse.rnn.rnn_loss (NumPy forward + BPTT) against torch autograd on
                the same model and shapes, float64 and float32 (within 3x at N=32, T=100, H=64),
                timed by pytest-benchmark on the cases in bptt_cases.py
    copy_task   training time until the LSTM beats the memoryless baseline on the copy
                task, with the assignment's own code, delay, model size and budget
    classscale  the item `class`: a class of 300 jacobian, 300 eigenvalues and 60 copy_task
                submissions (every fixture case in fixed proportions, 2% hostile: endless
                loops, memory bombs) graded by `rnncourse-grade grade` with 1 and 2 workers:
                submissions a minute, time per submission (median, p95), when the last
                score lands (jacobian on 2 workers >= 60 a minute, the honest part; the same
                scores both ways; nothing graded without isolation). About two hours;
                one batch per assignment and worker count whatever --runs says
    stats       medians, ratios run by run, number formats, the targets and PASS or MISS
    machine     what the numbers were measured on, the load, the scratch home, progress lines
    courses     scratch nbgrader courses with fixture submissions, and their scores
    profiling   cProfile of a command, summarised by named parts
    report      RESULTS.md rendered from the template RESULTS.md.j2 (Jinja2)

Progress goes to stderr, one summary line per measurement. Everything a run writes
(Jupyter, IPython and matplotlib settings, scratch courses, kernels' files) lives in a
temp folder removed at the end; only the results files are written in the repository.
Not part of the test suite: tests/test_bench.py checks the cheap parts only.
"""
