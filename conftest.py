"""Loaded by every pytest run in this repo, before any test or notebook starts.

Jupyter, IPython, matplotlib and torch write config and caches under $HOME. A
test run must leave the user's home alone, so all of them point at a temp folder
that is removed at exit. Kernels started by nbval or nbgrader inherit it.
"""

import atexit
import shutil
import tempfile

from rnngrading.course import point_home_at

_scratch = tempfile.mkdtemp(prefix="rnncourse-tests-")
atexit.register(shutil.rmtree, _scratch, ignore_errors=True)
point_home_at(_scratch)
