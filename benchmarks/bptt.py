"""Item 4: NumPy BPTT (rnncourse.rnn.rnn_loss) against torch autograd on the same model.

The timing is pytest-benchmark's: benchmarks/bptt_cases.py holds one case per shape, dtype
and side, run in a child pytest with one BLAS and one torch thread; `time_grid` runs it and
reads its JSON back. The three sides' gradients are compared in this process first, since a
benchmark of different sums would be no use. (pyperf was tried first: it times every case in
worker processes of its own, each importing torch, and took 4 min 24 s for the 6 cases of
the tiny grid on this loaded 2-core machine, against 4.7 s for pytest-benchmark.)
"""

import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

from rnngrading.course import REPO

from .machine import ONE_THREAD

KEY = (32, 100, 64)  # (N, T, H) of the target
D = V = 10  # one-hot inputs and 10 classes, as in the copy task
GRID_FULL = [(1, 100, 64), (32, 20, 64), (32, 100, 16), KEY, (32, 100, 256), (128, 100, 64)]
GRID_QUICK = [(1, 100, 64), KEY]
GRIDS = {"full": GRID_FULL, "quick": GRID_QUICK, "tiny": [(2, 5, 4)]}  # tiny: the tests'
DTYPES = ("float64", "float32")
SIDES = ("numpy", "torch_nn", "torch_loop")
CASES = Path(__file__).with_name("bptt_cases.py")  # the pytest-benchmark cases


def bptt_problem(N, T, H, dtype, seed=0, D=D, V=V):
    """Parameters, one-hot inputs x (N, T, D) and targets (N, T) of one loss evaluation."""
    import numpy as np

    import rnncourse as rc

    rng = np.random.default_rng(seed)
    params = rc.init_rnn_params(D, H, V, rng, dtype=dtype)
    tokens = rng.integers(0, D, size=(N, T))
    x = np.eye(D, dtype=dtype)[tokens]
    targets = rng.integers(0, V, size=(N, T))
    return params, x, targets


def step_functions(N, T, H, dtype):
    """One forward + backward of the same RNN loss, three ways, on the same weights and data.

    numpy:      rnncourse.rnn.rnn_loss (forward, softmax cross-entropy, BPTT)
    torch_nn:   the library's twin TorchRNN (nn.RNN + nn.Linear), cross-entropy, backward()
    torch_loop: the NumPy code's step loop written in torch ops, autograd for the backward
    returns ({side: function of no arguments}, gradients) where gradients() gives
    {side: {"W_x", "W_h", "b_h", "W_y", "b_y": NumPy array}} after one call of each
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    import rnncourse as rc
    from rnncourse.torch_models import TorchRNN

    tdtype = {"float64": torch.float64, "float32": torch.float32}[np.dtype(dtype).name]
    params, x, targets = bptt_problem(N, T, H, np.dtype(dtype).type)
    x_t, y_t = torch.as_tensor(x), torch.as_tensor(targets.reshape(-1))
    model = TorchRNN.from_numpy(params, dtype=tdtype)
    weights = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    numpy_grads = {}

    def numpy_step():
        loss, grads, _ = rc.rnn_loss(params, x, targets)
        numpy_grads.update(grads)
        return loss

    def torch_nn_step():
        model.zero_grad(set_to_none=True)
        scores, _ = model(x_t)
        loss = F.cross_entropy(scores.reshape(-1, V), y_t)
        loss.backward()
        return loss

    def torch_loop_step():
        for w in weights.values():
            w.grad = None
        h_t = torch.zeros(N, H, dtype=tdtype)
        hs = []
        for t in range(T):
            h_t = torch.tanh(x_t[:, t] @ weights["W_x"].T + h_t @ weights["W_h"].T
                             + weights["b_h"])
            hs.append(h_t)
        scores = torch.stack(hs, 1) @ weights["W_y"].T + weights["b_y"]
        loss = F.cross_entropy(scores.reshape(-1, V), y_t)
        loss.backward()
        return loss

    def gradients():
        twin = {"W_x": model.rnn.weight_ih_l0.grad, "W_h": model.rnn.weight_hh_l0.grad,
                "b_h": model.rnn.bias_ih_l0.grad, "W_y": model.out.weight.grad,
                "b_y": model.out.bias.grad}
        return {"numpy": dict(numpy_grads),
                "torch_nn": {k: g.numpy() for k, g in twin.items()},
                "torch_loop": {k: w.grad.numpy() for k, w in weights.items()}}

    fns = {"numpy": numpy_step, "torch_nn": torch_nn_step, "torch_loop": torch_loop_step}
    return fns, gradients


def max_grad_diff(N, T, H, dtype):
    """The largest gradient difference between NumPy and either torch side, relative to the
    largest entry of that gradient; AssertionError if rnn_loss changed the dtype."""
    import numpy as np

    fns, gradients = step_functions(N, T, H, dtype)
    for fn in fns.values():
        fn()
    grads = gradients()
    diff = 0.0
    for k, g in grads["numpy"].items():
        if g.dtype != np.dtype(dtype):
            raise AssertionError(f"rnn_loss returned {k} as {g.dtype}, expected {np.dtype(dtype)}")
        scale = max(float(np.abs(g).max()), 1e-30)
        for side in ("torch_nn", "torch_loop"):
            diff = max(diff, float(np.abs(g - grads[side][k]).max()) / scale)
    return diff


def benchmark_name(N, T, H, dtype, side):
    return f"N={N} T={T} H={H} {dtype} {side}"


def time_grid(grid, min_rounds=5, max_time=1.0):
    """Every shape of GRIDS[grid] and dtype timed by pytest-benchmark, gradients compared first.

    Runs benchmarks/bptt_cases.py in a child pytest with one BLAS and one torch thread; each
    case runs for max_time seconds and at least min_rounds rounds after a short warm-up.
    returns [{"N", "T", "H", "dtype", "numpy": {"median", "min", "max", "n"} in seconds per
    call, "torch_nn": ..., "torch_loop": ..., "max_grad_diff": float}] and the tool's settings
    """
    import pytest_benchmark

    diffs = {(N, T, H, dtype): max_grad_diff(N, T, H, dtype)
             for N, T, H in GRIDS[grid] for dtype in DTYPES}
    with tempfile.TemporaryDirectory(prefix="bptt-timing-") as tmp:
        out = Path(tmp) / "bptt.json"
        # a child pytest of its own: without the variables of an xdist worker that runs this,
        # or pytest-benchmark turns itself off
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env.update(BENCH_BPTT_GRID=grid, **ONE_THREAD)
        subprocess.run([sys.executable, "-m", "pytest", str(CASES), "-q", "--benchmark-only",
                        f"--benchmark-json={out}", f"--benchmark-min-rounds={min_rounds}",
                        f"--benchmark-max-time={max_time}", "--benchmark-warmup=on",
                        "--benchmark-warmup-iterations=5"],
                       cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
        cases = json.loads(out.read_text())["benchmarks"]
    stats = {}
    for case in cases:
        info, st = case["extra_info"], case["stats"]
        stats[info["N"], info["T"], info["H"], info["dtype"], info["side"]] = {
            "median": st["median"], "min": st["min"], "max": st["max"], "n": st["rounds"]}
    rows = []
    for (N, T, H, dtype), diff in diffs.items():
        row = {"N": N, "T": T, "H": H, "dtype": dtype, "max_grad_diff": diff,
               **{side: stats[N, T, H, dtype, side] for side in SIDES}}
        ms = {side: row[side]["median"] * 1e3 for side in SIDES}
        print(f"[bench] BPTT N={N} T={T} H={H} {dtype}: NumPy {ms['numpy']:.2f} ms, torch "
              f"nn.RNN {ms['torch_nn']:.2f} ms, torch loop {ms['torch_loop']:.2f} ms",
              file=sys.stderr, flush=True)
        rows.append(row)
    settings = {"tool": f"pytest-benchmark {pytest_benchmark.__version__}",
                "min_rounds": min_rounds, "max_time": max_time}
    return rows, settings


def profile_bptt(N, T, H, dtype="float64", calls=20):
    """cProfile of rnn_loss at one shape: the top functions by own time."""
    import cProfile

    import numpy as np

    import rnncourse as rc

    params, x, targets = bptt_problem(N, T, H, np.dtype(dtype).type)
    rc.rnn_loss(params, x, targets)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        rc.rnn_loss(params, x, targets)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = sum(v[2] for v in stats.stats.values())
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:10]
    return {"calls": calls, "total": total, "top": [
        f"{v[2] / calls * 1e3:6.2f} ms/call own, {v[1]:6d} calls  "
        f"{Path(f).name if f != '~' else ''}:{line}({n})" for (f, line, n), v in rows]}

