# ---------------------------------------------------------------------------
# A class in a box (issue 21): a JupyterHub on this machine with an instructor and N students,
# each a system user, nbgrader's exchange between them and the sandboxed grader. Runs as root
# (it creates the users); the logic is rnngrading.classbox (python -m rnngrading.classbox --help).
#   make class [STUDENTS=3] [PORT=8000] [CLASS_DIR=/srv/rnncourse-class] [PREFIX=rnnclass]
#              runs until Ctrl-C; prints the URL and each account's password (once)
#   make class-stop    stops the hub, the proxy, every user's server and kernel (from another shell)
#   make class-clean   stops, then deletes the class's users and their homes (all their work)
# Included by the Makefile (`include class.mk`); alone: make -f Makefile -f class.mk class
STUDENTS ?= 3
CLASS_DIR ?= /srv/rnncourse-class
PREFIX ?= rnnclass
CLASS_PORT = $(if $(filter command line,$(origin PORT)),$(PORT),8000)
CLASSBOX := $(PY) -m rnngrading.classbox --dir "$(CLASS_DIR)"

.PHONY: class class-stop class-clean

class: setup
	@$(CLASSBOX) start --students $(STUDENTS) --port $(CLASS_PORT) --prefix $(PREFIX)

class-stop: setup
	@$(CLASSBOX) stop

class-clean: setup
	@$(CLASSBOX) clean
