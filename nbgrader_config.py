"""nbgrader configuration of the course: the course root is the folder holding this file.

Layout (nbgrader's defaults, relative to the root):
    source/<assignment>/      instructor notebooks with solutions and hidden tests
    release/<assignment>/     student versions, made by `nbgrader generate_assignment`
    submitted/<student>/<assignment>/, autograded/..., feedback/...: the grading pipeline
    gradebook.db              the SQLite gradebook

The instructor commands (rnngrading.instructor, the Makefile's "Instructor workflow"
block) run nbgrader from this folder, so this file is what they read. Copied into
another folder with grading_limits.toml, it makes that folder a course root (the
instructor demo and the grading tests rely on this).
"""

import os
import tomllib

c = get_config()  # noqa: F821 (injected by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "rnn-vanishing-gradient"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))

# Per-cell time limit while validating and autograding, in seconds: its one home is
# grading_limits.toml beside this file, which says why it is what it is.
with open(os.path.join(c.CourseDirectory.root, "grading_limits.toml"), "rb") as f:
    c.ExecutePreprocessor.timeout = tomllib.load(f)["limits"]["cell_timeout"]

# A Python warning printed by a student's correct code (a torch or NumPy
# deprecation, say) lands on stderr, and nbgrader scores any test cell with
# stderr output as 0. Warnings never cost points: strip stderr outputs that are
# Python warnings before grading. Other stderr output still counts.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"\b\w*Warning: "

# The kernel's own log (a notice that it talks to nbgrader over local TCP, once per
# submission) says nothing about the student's work: keep it to errors.
c.Execute.extra_arguments = ["--IPKernelApp.log_level=ERROR"]

# Feedback: hidden tests stay hidden. The source of hidden test regions is cut
# from the feedback, and in test cells that have hidden tests, an error shows its
# name and message only, since a traceback quotes the code around the failing line.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "rnngrading.feedback.HideHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# Each assignment's judged checks (source/ASSIGNMENT/judge.py, rnngrading.judge) stay with
# the instructor: never copied into release/ nor into the folder a submission runs in.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "judge.py"]

# The exchange: where release_assignment puts assignments for students to fetch, where
# submit puts their work for collect, and where release_feedback puts feedback pages. By
# default a folder inside the course (one machine, `make lab`); $RNNCOURSE_EXCHANGE names
# another (a shared /srv/nbgrader/exchange on a JupyterHub). The folder must exist before
# formgrader starts, or it disables Release and Collect; it is made here when missing with
# the mode nbgrader's own release_assignment gives it, rwx for everyone (students write into
# it; nbgrader keeps each submission apart inside it), plus the sticky bit, so that no user
# can delete another's folder (nbgrader checks the rwx bits only; rnngrading.classbox makes a
# class's shared exchange the same way). A course folder that cannot be written (a grading
# sandbox) simply goes without: nothing there uses the exchange.
c.Exchange.root = os.environ.get("RNNCOURSE_EXCHANGE") or os.path.join(
    c.CourseDirectory.root, "exchange")
if not os.path.isdir(c.Exchange.root):
    try:
        os.makedirs(c.Exchange.root)
        os.chmod(c.Exchange.root, 0o1777)
    except OSError:
        pass

# Feedback pages read offline: nbgrader's feedback template with MathJax 3 (SVG output, so no
# font files) inlined from the sphinx-mathjax-offline package instead of loaded from a CDN
# (nbgrader's release_feedback copies only the .html files to students, so the page must
# carry everything). rnngrading's templates/feedback holds only the mathjax macro and comes
# first, nbgrader's own templates next (its README says how); the template keeps its name,
# "feedback", which formgrader's Generate Feedback asks for.
c.HTMLExporter.extra_template_basedirs = [
    os.path.join(os.path.dirname(__import__("rnngrading").__file__), "templates"),
    os.path.join(os.path.dirname(__import__("nbgrader").__file__),
                 "server_extensions", "formgrader", "templates"),
]
c.HTMLExporter.filters = {"inline_mathjax": "rnngrading.feedback.inline_mathjax"}

# Late submissions: a due date is set per assignment (`nbgrader db assignment add jacobian
# --duedate="2026-12-01 17:00:00 UTC"`, or formgrader's Manage Assignments); a submission's
# time is its timestamp.txt in submitted/<student>/<assignment>/. nbgrader's
# LateSubmissionPlugin takes a penalty method: "none" (the default: late is flagged, never
# penalised) or "zero" (a late submission scores 0). A custom rule is a subclass of
# nbgrader.plugins.LateSubmissionPlugin whose late_submission_penalty(student_id, score,
# total_seconds_late) returns the points to take off, named here as
# c.AssignLatePenalties.plugin_class = "mymodule.MyPenalty".
c.LateSubmissionPlugin.penalty_method = "none"

# `nbgrader export` (and formgrader's) writes grades.csv with rnngrading.lms.GradesCsv: a
# submission never handed in is an empty score, not 0.0 (nbgrader's own writes 0.0).
c.ExportApp.plugin_class = "rnngrading.lms.GradesCsv"
