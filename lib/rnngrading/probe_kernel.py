"""What runs inside the student's kernel when the judge calls the student's functions.

This module's source is sent to the sandboxed kernel as a cell (rnngrading.probe), after the
student's notebook has run; it has no imports of this package. For each call of one graded
part it builds the arguments from the judge's input file, calls the student's function (or
reads a name), and writes what came back as plain data only: a JSON tree of numbers,
strings, lists and dicts, whose arrays go to an .npz file of numeric arrays (no pickles).
Nothing here decides a score: the trusted judge (rnngrading.judge) reads the files back
and compares in its own process. Whatever the student's code does to this code (a patched
json or numpy, a replaced builtin) can only change the student's own answers.

plain() is also what the judge applies to its reference values, so both sides are
compared in the same form.
"""

import json
import math
import os

MAX_ITEMS = 10_000  # elements of one list, tuple or dict
MAX_DEPTH = 8


class TooLarge(Exception):
    pass


def plain(value, arrays, max_bytes, depth=0):
    """(JSON-able tree, after adding its arrays to `arrays`) of a returned value.

    numbers, strings, None and bools stay; arrays, NumPy scalars and torch tensors become
    {"a": key} with a plain (not subclassed) numeric copy in arrays[key]; lists, tuples and
    dicts with string keys are walked; anything else is {"error": "..."} that names its
    type. A value whose arrays add up to more than max_bytes is refused.
    """
    import numpy as np

    if depth > MAX_DEPTH:
        return {"error": "nested too deeply"}
    kind = type(value)
    if value is None or kind in (bool, str):
        return value
    if kind is int:
        return value if abs(value) < 2**53 else {"f": repr(float(value))}
    if kind is float:
        return value if math.isfinite(value) else {"f": repr(value)}
    if kind is complex:
        return {"c": [plain(value.real, arrays, max_bytes), plain(value.imag, arrays, max_bytes)]}
    if kind in (list, tuple):
        if len(value) > MAX_ITEMS:
            return {"error": f"a {kind.__name__} of {len(value)} items"}
        return {kind.__name__: [plain(v, arrays, max_bytes, depth + 1) for v in value]}
    if kind is dict:
        if len(value) > MAX_ITEMS or not all(type(k) is str for k in value):
            return {"error": "a dict whose keys are not all strings"}
        return {"dict": [[k, plain(v, arrays, max_bytes, depth + 1)] for k, v in value.items()]}
    module = getattr(kind, "__module__", "") or ""
    if module.startswith("torch") and hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
        kind = type(value)
    if isinstance(value, (np.ndarray, np.generic)):
        note = None if kind in (np.ndarray,) or isinstance(value, np.generic) else kind.__name__
        view = np.asarray(value)  # no copy yet: the size is checked first
        if view.dtype.kind not in "biufcU" or view.dtype.fields:
            return {"error": f"an array of dtype {view.dtype}, not numbers"}
        used = sum(a.nbytes for a in arrays.values())
        if used + view.nbytes > max_bytes:
            raise TooLarge(f"{view.nbytes + used} bytes returned (at most {max_bytes})")
        array = np.array(view, copy=True, subok=False)
        key = f"a{len(arrays)}"
        arrays[key] = array
        return {"a": key, "subclass": note} if note else {"a": key}
    return {"error": f"an object of type {kind.__name__}"}


def _argument(spec, inputs, namespace):
    """One argument: {"a": key} an input array (a fresh copy), {"expr": code, "names":
    {name: key}} an expression of the judge's evaluated with those arrays, numpy as np and
    (if importable) torch, or a JSON value as it is."""
    import numpy as np

    if isinstance(spec, dict) and "a" in spec:
        return np.array(inputs[spec["a"]], copy=True)
    if isinstance(spec, dict) and "expr" in spec:
        scope = {"np": np, **{name: np.array(inputs[key], copy=True)
                              for name, key in spec.get("names", {}).items()}}
        try:
            import torch

            scope["torch"] = torch
        except ImportError:
            pass
        scope.update({name: namespace[name] for name in spec.get("globals", [])
                      if name in namespace})
        if spec.get("define"):
            exec(spec["expr"], scope)  # the judge's own code, not the student's
            return scope[spec["define"]]
        return eval(spec["expr"], scope)  # the judge's own expression, not the student's
    return spec


def run_part(part, inputs_path, out_path, namespace, max_bytes):
    """Run every call of one part; write out_path + ".json" and ".npz"."""
    import numpy as np

    inputs = dict(np.load(inputs_path, allow_pickle=False)) if os.path.exists(inputs_path) else {}
    arrays, results = {}, []
    try:
        for call in part["calls"]:
            results.append(_one_call(call, inputs, namespace, arrays, max_bytes))
    except TooLarge as exc:
        arrays.clear()
        results = [{"error": f"too large: {exc}"}]
    with open(out_path + ".npz", "wb") as f:
        np.savez(f, **arrays)
    with open(out_path + ".json", "w") as f:
        json.dump({"part": part["grade_id"], "results": results}, f)


def _one_call(call, inputs, namespace, arrays, max_bytes):
    saved = {}
    try:
        for name, spec in call.get("replace", {}).items():
            saved[name] = namespace.get(name, _MISSING)
            namespace[name] = _argument(spec, inputs, namespace)
        args = [_argument(a, inputs, namespace) for a in call.get("args", [])]
        kwargs = {k: _argument(v, inputs, namespace) for k, v in call.get("kwargs", {}).items()}
        if call.get("function"):
            if call["function"] not in namespace:
                return {"error": f"{call['function']} is not defined"}
            result = namespace[call["function"]](*args, **kwargs)
        else:
            if call["name"] not in namespace:
                return {"error": f"{call['name']} is not defined"}
            result = namespace[call["name"]]
        if call.get("returns"):
            import numpy as np

            scope = {"result": result, "args": args, "kwargs": kwargs, "np": np}
            result = eval(call["returns"], scope)  # the judge's own expression
        tree = {"value": plain(result, arrays, max_bytes)}
        if call.get("inputs_after"):
            import numpy as np

            kept = [a if isinstance(a, np.ndarray) else None for a in args]
            tree["inputs_after"] = plain(kept, arrays, max_bytes)
        return tree
    except TooLarge:
        raise
    except BaseException as exc:  # noqa: BLE001 - the student's error is the answer
        if isinstance(exc, KeyboardInterrupt):
            raise
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    finally:
        for name, value in saved.items():
            if value is _MISSING:
                namespace.pop(name, None)
            else:
                namespace[name] = value


_MISSING = object()
