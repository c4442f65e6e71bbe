"""The adversarial corpus: each case is built from a fixture submission (reference or
blank, tests/fixtures/submissions/) plus one small hostile change, so it stays small
and honest. `honest` is what the honest part of the submission deserves at most;
`status` is a piece of the one line the instructor must see; `xfail` says why a
defence is impossible inside nbgrader's single kernel.
"""

import json
from pathlib import Path

import nbformat
from coursekit import full, without

# The checkout under test, wherever it was cloned: the attacks aim at its own files.
REPO = str(Path(__file__).resolve().parents[2])

PATCH_ALLCLOSE = "import numpy as np\nnp.allclose = lambda *a, **k: True\n"
WRONG_STEP = "def step_jacobian(x_t, h_prev, W_x, W_h, b_h):\n    return np.zeros((2, 2))\n"
LEAK = """import glob, os
found = []
for p in ['REPO/source', '../../../source', os.path.expanduser('~')]:
    for f in glob.glob(p + '/**/*.ipynb', recursive=True):
        try:
            found.append('BEGIN HIDDEN' in open(f).read())
        except OSError:
            pass
print('LEAKED' if any(found) else 'NO-LEAK')
""".replace("REPO", REPO)
WRITE = """import glob, sqlite3
for p in ['REPO/gradebook.db', '../../../gradebook.db'] + glob.glob('/tmp/**/gradebook.db',
                                                                       recursive=True):
    try:
        con = sqlite3.connect(p); con.execute('update grade set auto_score = 99'); con.commit()
        print('WROTE', p)
    except Exception as exc:
        print('blocked', type(exc).__name__)
for p in ['REPO/source/x.txt', '../../../source/x.txt', 'REPO/lib/rnngrading/runner.py']:
    try:
        open(p, 'a').write('pwned'); print('WROTE', p)
    except Exception as exc:
        print('blocked', type(exc).__name__)
""".replace("REPO", REPO)
NET = """import socket
try:
    socket.create_connection(('1.1.1.1', 53), timeout=3); print('CONNECTED')
except OSError as exc:
    print('no network:', exc.errno)
"""
EQ = """class Always:
    def __eq__(self, other):
        return True
J_at_zero = Always()
"""

# Attacks on the tests themselves: each one used to be able to pass a wrong answer, or a
# hard-coded one, while the tests ran in the student's kernel. The judge compares outside it.
PATCH_LINALG = """import numpy as np
np.linalg.eigvals = lambda W: np.zeros(np.shape(W)[0])
def eigenvalues(W):
    return np.zeros(np.shape(W)[0])
"""
PATCH_TORCH_ALLCLOSE = "import torch\ntorch.allclose = lambda *a, **k: True\n" + WRONG_STEP
FAKE_NUMPY = """import sys, types
import numpy as _real
fake = types.ModuleType("numpy")
fake.__dict__.update({k: getattr(_real, k) for k in dir(_real) if not k.startswith("__")})
fake.allclose = lambda *a, **k: True
fake.array_equal = lambda *a, **k: True
sys.modules["numpy"] = fake
""" + WRONG_STEP
PATCH_IMPORT = """import builtins, types
_real_import = builtins.__import__
def _import(name, *args, **kwargs):
    module = _real_import(name, *args, **kwargs)
    if name == "numpy":
        fake = types.SimpleNamespace(**{k: getattr(module, k) for k in dir(module)
                                        if not k.startswith("__")})
        fake.allclose = lambda *a, **k: True
        return fake
    return module
builtins.__import__ = _import
""" + WRONG_STEP
AFTER = "# (after the answer)\n"
HARD_CODED = AFTER + """def step_jacobian(x_t, h_prev, W_x, W_h, b_h):
    if np.shape(W_h) == (2, 2):  # the visible test's two cases, answered by heart
        return np.array([[0.17960065808, -0.35920131616], [0.070103716545, 0.210311149635]])
    if np.shape(W_h) == (3, 3):
        return (1 - np.tanh(0.4) ** 2) * np.eye(3)
    return np.zeros((len(h_prev), len(h_prev)))
"""
SUBCLASS = AFTER + """class Sneaky(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(self), dtype=bool)
def step_jacobian(x_t, h_prev, W_x, W_h, b_h):
    return np.zeros((len(h_prev), len(h_prev))).view(Sneaky)
"""
OBJECT_ARRAY = AFTER + EQ + ("J_at_zero = np.array([[Always(), Always()], [Always(), Always()]], "
                             "dtype=object)\n")
ENDLESS = AFTER + """def jacobian_product(h, W_h, k):
    while True:  # never returns: the visible test cell times out, then the judge's call
        pass
"""
# Every assert of every later cell removed by an AST transformer: in the kernel, every test
# cell then passes (nbgrader gave full marks); the second hides the hook from the scan.
STRIP = """import ast
class _Strip(ast.NodeTransformer):
    def visit_Assert(self, node):
        return None
get_ipython().ast_transformers.append(_Strip())
"""
WRONG_EVERYWHERE = {  # after each answer cell's own code, so that it is what stays defined
    "numerical_jacobian": AFTER + "def numerical_jacobian(f, x, eps=1e-6):\n"
                                  "    return np.zeros((1, 1))\n",
    "jacobian_product": AFTER + "def jacobian_product(h, W_h, k):\n"
                                "    return np.eye(np.shape(h)[1])\n",
    "textbook": "J_at_zero = np.zeros((2, 2))\n",  # before the cell's own (blank) code
}
STRIP_ASSERTS = {"step_jacobian": AFTER + STRIP + "def step_jacobian(x_t, h_prev, W_x, W_h, b_h):"
                 "\n    return np.zeros((len(h_prev), len(h_prev)))\n", **WRONG_EVERYWHERE}
STRIP_ASSERTS_HIDDEN = {**STRIP_ASSERTS, "step_jacobian": STRIP_ASSERTS["step_jacobian"].replace(
    "get_ipython().ast_transformers", 'getattr(get_ipython(), "ast_" + "transformers")')}
TWO_GB = AFTER + """def step_jacobian(x_t, h_prev, W_x, W_h, b_h):
    return np.broadcast_to(np.float64(0), (2**14, 2**14))  # 2 GiB, at no memory cost
"""

# name: (assignment, base, {answer grade_id: code put first (or after, AFTER)} or a special,
#        honest, status, xfail)
CASES = {
    "overwritten_tests": ("jacobian", "blank", "overwrite_tests", 0, "modified", None),
    "deleted_tests": ("jacobian", "blank", "delete_tests", 0, "deleted", None),
    "duplicated_ids": ("eigenvalues", "reference", "dup_ids", full("eigenvalues"),
                       "duplicated cell ids", None),
    "changed_points_and_types": ("jacobian", "blank", "change_meta", 0, "restored", None),
    "infinite_loop": ("jacobian", "reference", {"textbook": "while True:\n    pass\n"},
                      without("jacobian", "test_textbook"),
                      "timeout in cell textbook", None),
    "memory_bomb": ("eigenvalues", "blank",
                    {"eigenvalues": "x = [bytearray(2**26) for _ in range(10**4)]\n"}, 0,
                    "memory limit", None),
    "sys_exit": ("jacobian", "reference", {"textbook": "import sys\nsys.exit(0)\n"},
                 full("jacobian"),
                 "sys.exit()", None),
    "os_exit": ("jacobian", "reference", {"step_jacobian": "import os\nos._exit(0)\n"}, 0,
                "kernel died", None),
    "kill_kernel": ("eigenvalues", "reference",
                    {"eigenvalues": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"},
                    0, "kernel died", None),
    "megabytes_of_output": ("jacobian", "reference",
                            {"textbook": "for i in range(60000):\n    print('x' * 80)\n"},
                            full("jacobian"),
                            "output truncated", None),
    "patched_allclose": ("jacobian", "blank", {"step_jacobian": PATCH_ALLCLOSE + WRONG_STEP}, 0,
                         "suspicious", None),
    "patched_linalg": ("eigenvalues", "blank", {"eigenvalues": PATCH_LINALG}, 0,
                       "suspicious", None),
    "patched_torch_allclose": ("jacobian", "blank", {"step_jacobian": PATCH_TORCH_ALLCLOSE}, 0,
                               "suspicious", None),
    "fake_numpy_module": ("jacobian", "blank", {"step_jacobian": FAKE_NUMPY}, 0, "sys.modules",
                          None),
    "patched_import": ("jacobian", "blank", {"step_jacobian": PATCH_IMPORT}, 0, "__import__",
                       None),
    "hard_coded_visible_answer": ("jacobian", "reference", {"step_jacobian": HARD_CODED},
                                  without("jacobian", "test_step_jacobian"),
                                  "visible test's cases, not the hidden ones", None),
    "ndarray_subclass": ("jacobian", "reference", {"step_jacobian": SUBCLASS},
                         without("jacobian", "test_step_jacobian"), "ndarray subclass", None),
    "object_array": ("jacobian", "reference", {"textbook": OBJECT_ARRAY},
                     without("jacobian", "test_textbook"), "dtype object", None),
    "asserts_stripped": ("jacobian", "blank", STRIP_ASSERTS, 0, "hooks the kernel", None),
    "asserts_stripped_unflagged": ("jacobian", "blank", STRIP_ASSERTS_HIDDEN, 0, "tampered with",
                                   None),
    "endless_function": ("jacobian", "reference", {"jacobian_product": ENDLESS},
                         without("jacobian", "test_jacobian_product"), "did not finish", None),
    "two_gb_array": ("jacobian", "reference", {"step_jacobian": TWO_GB},
                     without("jacobian", "test_step_jacobian"), "too large", None),
    "patched_np_testing": ("eigenvalues", "blank",
                           {"eigenvalues": "import numpy as np\n"
                            "np.testing.assert_allclose = lambda *a, **k: None\n"}, 0,
                           "suspicious", None),
    "patched_builtins": ("jacobian", "blank",
                         {"step_jacobian": "import builtins\nbuiltins.isinstance = "
                          "lambda *a: True\n" + WRONG_STEP}, 0, "suspicious", None),
    "eq_always_true": ("jacobian", "blank", {"textbook": EQ}, 0, "suspicious", None),
    "writes_gradebook_and_source": ("eigenvalues", "blank", {"eigenvalues": WRITE}, 0, "", None),
    "reads_hidden_tests": ("jacobian", "blank", {"step_jacobian": LEAK}, 0, "", None),
    "network": ("eigenvalues", "blank", {"eigenvalues": NET}, 0, "", None),
    "input_call": ("eigenvalues", "reference", {"eigenvalues": "name = input('name? ')\n"},
                   full("eigenvalues"),
                   "input()", None),
    "invalid_json": ("jacobian", "reference", "invalid_json", 0, "invalid notebook JSON", None),
    "wrong_name": ("eigenvalues", "reference", "wrong_name", 0, "wrongly named", None),
    "null_bytes": ("jacobian", "reference", "null_bytes", 0, "null bytes", None),
    "copy_task_os_exit": ("copy_task", "blank", {"copy_task_batch": "import os\nos._exit(3)\n"},
                          0, "kernel died", None),
    "copy_task_wrong_name": ("copy_task", "reference", "wrong_name", 0, "wrongly named", None),
}


def _cells(nb):
    return {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}


def make(name, build_submission, course, fixtures):
    """(file name, bytes) of adversarial case `name`."""
    assignment, base, change, *_ = CASES[name]
    nb = build_submission(course / "source" / assignment / f"{assignment}.ipynb",
                          course / "release" / assignment / f"{assignment}.ipynb",
                          fixtures / assignment / base)
    filename = f"{assignment}.ipynb"
    cells = _cells(nb)
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("points")
             and not c.metadata["nbgrader"].get("solution")]
    if isinstance(change, dict):
        for gid, code in change.items():
            if code.startswith(AFTER):  # replaces what the cell defines
                cells[gid].source = cells[gid].source + "\n" + code
            else:
                cells[gid].source = code + "\n" + cells[gid].source
    elif change == "overwrite_tests":
        for cell in tests:
            cell.source = "pass"
    elif change == "delete_tests":
        nb.cells = [c for c in nb.cells if c not in tests]
    elif change == "dup_ids":
        for cell in nb.cells:
            cell["id"] = "same"
    elif change == "change_meta":
        for cell in tests:
            cell.metadata["nbgrader"]["points"] = 100
        tests[-1].cell_type = "markdown"
        tests[-1].pop("outputs", None)
        tests[-1].pop("execution_count", None)
        answer = cells["step_jacobian"]
        answer.metadata["nbgrader"].update(grade=True, solution=False, locked=True, points=50)
    elif change == "wrong_name":
        filename = f"{assignment}_final.ipynb"
    text = json.dumps(nbformat.from_dict(nb), indent=1)
    if change == "invalid_json":
        return filename, text[: len(text) // 2].encode()
    if change == "null_bytes":
        return filename, text.replace('"cells": [', '"cells": [\n', 1).encode().replace(
            b"import numpy", b"import\x00numpy", 1)
    return filename, text.encode()
