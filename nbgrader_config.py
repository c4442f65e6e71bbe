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
