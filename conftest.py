"""Loaded by every pytest run in this repo, before any test or notebook starts.

Jupyter, IPython, matplotlib and torch write config and caches under $HOME. A
test run must leave the user's home alone, so all of them point at a temp folder
that is removed at exit. Kernels started by nbval or nbgrader inherit it.
"""

import atexit
import os
import shutil
import tempfile

_scratch = tempfile.mkdtemp(prefix="rnncourse-tests-")
atexit.register(shutil.rmtree, _scratch, ignore_errors=True)
for _var, _sub in {
    "HOME": "home",
    "JUPYTER_CONFIG_DIR": "jupyter-config",
    "JUPYTER_DATA_DIR": "jupyter-data",
    "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
    "IPYTHONDIR": "ipython",
    "MPLCONFIGDIR": "matplotlib",
    "XDG_CACHE_HOME": "cache",
}.items():
    os.makedirs(os.path.join(_scratch, _sub), exist_ok=True)
    os.environ[_var] = os.path.join(_scratch, _sub)
