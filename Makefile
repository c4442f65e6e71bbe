# The one entry point. `make lab` to study, `make test` to check everything.
# Both set up .venv first; setup is idempotent and reruns only when the pins change.

PYTHON ?= python3
# The Pythons the pins in requirements.txt install on; pyproject.toml's requires-python and
# environment.yml say the same (tests/test_environment.py checks that they agree).
PY_MIN := 3.11.2
PY_MAX := 3.13
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8888
LAB_ARGS ?=
# Run as root (as in a container or CI), Jupyter refuses to start without this flag.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test test-fast lint clean

setup: $(STAMP)

# The interpreter setup builds on: the venv's if there is one, else $(PYTHON).
SETUP_PY = $(if $(wildcard $(PY)),$(PY),$(PYTHON))
PY_VERSION_OK = import sys; v = lambda s: tuple(map(int, s.split("."))); \
	sys.exit(not (v("$(PY_MIN)") <= sys.version_info[:3] and sys.version_info[:2] <= v("$(PY_MAX)")))
BWRAP_MISSING := bubblewrap (bwrap) missing: sandboxed grading (make grade) will refuse until an \
	administrator runs apt-get install bubblewrap

$(STAMP): requirements.txt pyproject.toml
	@$(SETUP_PY) -c '$(PY_VERSION_OK)' 2>/dev/null || { echo "Python $(PY_MIN)-$(PY_MAX) needed;\
	 $(SETUP_PY) is $$($(SETUP_PY) -c 'import platform; print(platform.python_version())' 2>/dev/null\
	 || echo missing): run make $(if $(wildcard $(PY)),clean setup,setup) PYTHON=python3.12 (or\
	 another $(PY_MIN)-$(PY_MAX))"; exit 2; }
	@command -v bwrap >/dev/null || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null \
		&& echo "installing bubblewrap (bwrap), for make grade's sandbox" \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap \
		>/dev/null && command -v bwrap >/dev/null || echo "$(BWRAP_MISSING)"; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# Exactly what the lock lists (its header says what it leaves out, and why), then torch
	# alone, which adds its CUDA stack only where pip took a CUDA wheel (3.12 and 3.13 here).
	$(PY) -m pip install --quiet --no-deps -r requirements.txt
	$(PY) -m pip install --quiet "$$(grep '^torch==' requirements.txt)"
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $@

lab: setup
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" --port=$(PORT) $(ROOT_FLAG) $(LAB_ARGS)

test: setup
	bash tests/run.sh

# The inner loop: every test but the slow families (pyproject.toml's markers: grading,
# sandbox, notebooks, environment, site; the browser tests and nbval are not in it either).
test-fast: setup
	$(PY) -m pytest tests -q -m "not (grading or sandbox or notebooks or environment or site)"

lint: setup
	$(VENV)/bin/ruff check lib tests benchmarks

clean:
	rm -rf $(VENV) lib/*.egg-info

# ---------------------------------------------------------------------------
# Instructor workflow: the graded assignments (nbgrader). One command per step;
# the logic lives in rnngrading.instructor (console script rnncourse-instructor, see its
# --help), which wraps nbgrader.
#   make instructor-release                    source/ -> release/ (+ tests into gradebook.db)
#   make instructor-collect ASSIGNMENT=jacobian FROM=path/to/folder-or.zip [REPLACE=1] [TIMES=times.csv]
#   make instructor-autograde [ASSIGNMENT=...]  submitted/ -> autograded/ + gradebook.db
#   make instructor-feedback [ASSIGNMENT=...]   autograded/ -> feedback/ (hidden tests left out)
#   make instructor-export [FORMAT=canvas] [TO=...]  gradebook.db -> grades.csv (or canvas.csv)
#   make instructor-grades                      print the grade table
#   make instructor-demo                        a simulated class, end to end, in artifacts/
ASSIGNMENT ?=
FROM ?=
REPLACE ?=
TIMES ?=
TO ?=
FORMAT ?=
INSTRUCTOR := $(VENV)/bin/rnncourse-instructor

.PHONY: instructor-release instructor-collect instructor-autograde instructor-feedback \
	instructor-export instructor-grades instructor-demo

instructor-release: setup
	$(INSTRUCTOR) release $(ASSIGNMENT)

instructor-collect: setup
	@test -n "$(ASSIGNMENT)" -a -n "$(FROM)" || \
		{ echo "usage: make instructor-collect ASSIGNMENT=jacobian FROM=folder-or-zip"; exit 2; }
	$(INSTRUCTOR) collect $(ASSIGNMENT) "$(FROM)" $(if $(REPLACE),--replace,) \
		$(if $(TIMES),--times "$(TIMES)",)

instructor-autograde: setup
	$(INSTRUCTOR) autograde $(ASSIGNMENT) $(if $(UNSAFE),--unsafe-no-isolation,)

instructor-feedback: setup
	$(INSTRUCTOR) feedback $(ASSIGNMENT)

instructor-export: setup
	$(INSTRUCTOR) export --format $(or $(FORMAT),grades) \
		--to "$(or $(TO),$(if $(filter canvas,$(FORMAT)),canvas.csv,grades.csv))"

instructor-grades: setup
	$(INSTRUCTOR) grades

instructor-demo: setup
	$(INSTRUCTOR) demo

# ---------------------------------------------------------------------------
# Safe parallel autograde (rnngrading, console script rnncourse-grade; limits in
# grading_limits.toml).
# Each submission is graded in its own scratch course, its kernel in bubblewrap: no
# network, its own PIDs, user id (or user namespace), home and /tmp, rlimits, nothing of the
# course or of other submissions in sight; scores merged into gradebook.db and the graded
# notebooks put in autograded/ (so make instructor-feedback works after it). A pre-flight
# kernel checks the set-up first. Where no sandbox can be built it refuses; UNSAFE=1 then
# grades without one, and every line says NOT ISOLATED.
#   make grade ASSIGNMENT=jacobian [FROM=submitted] [WORKERS=2] [SCHEDULER=...] [UNSAFE=1]
# FROM holds one folder per student id with that student's notebook inside, as
# <id>/<assignment>.ipynb or nbgrader's <id>/<assignment>/<assignment>.ipynb, student by
# student (default: nbgrader's submitted/). SCHEDULER (or DASK_SCHEDULER_ADDRESS) sends
# the jobs to a running Dask cluster whose workers see this repository at the same path.
WORKERS ?=
SCHEDULER ?=
UNSAFE ?=
.PHONY: grade
grade: setup
	@test -n "$(ASSIGNMENT)" || { echo "usage: make grade ASSIGNMENT=jacobian [WORKERS=2]"; exit 2; }
	$(VENV)/bin/rnncourse-grade grade $(ASSIGNMENT) "$(or $(FROM),submitted)" \
		$(if $(WORKERS),--workers $(WORKERS),) $(if $(SCHEDULER),--scheduler $(SCHEDULER),) \
		$(if $(UNSAFE),--unsafe-no-isolation,)

# ---------------------------------------------------------------------------
# Benchmarks (issues 9 and 19): how fast the course runs and grades, written to
# benchmarks/RESULTS.md and benchmarks/results.json. About 20 minutes, plus about two
# hours for a class of 300 + 300 + 60 submissions graded with 1 and 2 workers (the item
# `class`); not part of `make test`. `$(PY) -m benchmarks --quick` prints a one-run
# version instead (the class at 12 + 12 + 3, about 15 minutes).
.PHONY: bench

bench: setup
	$(PY) -m benchmarks

# ---------------------------------------------------------------------------
# The course as a static website (issue 20): site/build.py stages the committed notebooks and
# runs Sphinx with myst-nb (nothing is executed; MathJax is served from the site itself) into
# site/_build/html, which is not committed. Any Sphinx warning fails it. The repository and
# JupyterHub URLs of the launch buttons are settings at the top of site/conf.py.
.PHONY: site

site: setup
	$(PY) site/build.py --strict

# ---------------------------------------------------------------------------
# A class in a box (issue 21): make class, make class-stop, make class-clean; see class.mk.
include class.mk
