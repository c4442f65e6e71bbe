"""The scripts in tools/ as modules, for the tests that call their functions.

tools/ is not a package, so each script is loaded from its path.
"""

import importlib.util
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def load_tool(name):
    """tools/NAME.py, freshly executed and registered in sys.modules as NAME (Dask's
    cloudpickle pickles a module by value only when it finds it there)."""
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
