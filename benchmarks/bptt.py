"""Item 4: NumPy BPTT (rnncourse.rnn.rnn_loss) against torch autograd on the same model.

The timing is plain code, not pyperf or pytest-benchmark: the target is a ratio, NumPy over
torch, on a machine that others share, and the two sides are sampled in turns (sample i of
each within milliseconds of the other) so that a ratio taken sample by sample sees the same
load on both sides. Both tools time one benchmark to the end before the next starts.
"""

import io
import pstats
import statistics
import sys
import time
from pathlib import Path

KEY = (32, 100, 64)  # (N, T, H) of the target
D = V = 10  # one-hot inputs and 10 classes, as in the copy task
GRID_FULL = [(1, 100, 64), (32, 20, 64), (32, 100, 16), KEY, (32, 100, 256), (128, 100, 64)]
GRID_QUICK = [(1, 100, 64), KEY]


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


def interleaved(fns, repeats, min_sample):
    """{name: `repeats` timings in seconds per call} of each function in `fns`.

    Each sample loops its function until about min_sample seconds, and the functions take
    turns sample by sample, so sample i of each was measured at nearly the same moment:
    a ratio between them is taken sample by sample, as other runs are.
    """
    loops = {}
    for name, fn in fns.items():
        fn()
        fn()  # warm-up: allocator, caches, torch's first-call costs
        start = time.perf_counter()
        fn()
        one = time.perf_counter() - start
        loops[name] = max(1, int(min_sample / max(one, 1e-7))) if one < min_sample else 1
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(loops[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / loops[name])
    return samples


def time_bptt(N, T, H, dtype, repeats=5, min_sample=0.05):
    """Seconds per forward + backward of the same RNN loss: NumPy (rnn_loss) and torch.

    torch_nn:   the library's twin TorchRNN (nn.RNN + nn.Linear), cross-entropy, backward()
    torch_loop: the NumPy code's step loop written in torch ops, autograd for the backward
    returns {"numpy": [...], "torch_nn": [...], "torch_loop": [...], "max_grad_diff": float}
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    import rnncourse as rc
    from rnncourse.torch_models import TorchRNN

    tdtype = {np.float64: torch.float64, np.float32: torch.float32}[np.dtype(dtype).type]
    params, x, targets = bptt_problem(N, T, H, dtype)
    x_t, y_t = torch.as_tensor(x), torch.as_tensor(targets.reshape(-1))
    model = TorchRNN.from_numpy(params, dtype=tdtype)
    weights = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}

    def numpy_step():
        return rc.rnn_loss(params, x, targets)

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

    # the three compute the same gradients: a benchmark of different sums would be no use
    _, grads, _ = numpy_step()
    torch_nn_step()
    torch_loop_step()
    twin = {"W_x": model.rnn.weight_ih_l0.grad, "W_h": model.rnn.weight_hh_l0.grad,
            "b_h": model.rnn.bias_ih_l0.grad, "W_y": model.out.weight.grad,
            "b_y": model.out.bias.grad}
    diff = 0.0
    for k, g in grads.items():
        if g.dtype != np.dtype(dtype):
            raise AssertionError(f"rnn_loss returned {k} as {g.dtype}, expected {np.dtype(dtype)}")
        scale = max(float(np.abs(g).max()), 1e-30)
        diff = max(diff, float(np.abs(g - twin[k].numpy()).max()) / scale,
                   float(np.abs(g - weights[k].grad.numpy()).max()) / scale)
    fns = {"numpy": numpy_step, "torch_nn": torch_nn_step, "torch_loop": torch_loop_step}
    return {**interleaved(fns, repeats, min_sample), "max_grad_diff": diff}


def bptt_worker(grid, repeats):
    """Every (N, T, H) and dtype of the grid; runs in a child with one BLAS/torch thread."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    out = []
    for N, T, H in grid:
        for dtype in (np.float64, np.float32):
            r = time_bptt(N, T, H, dtype, repeats=repeats)
            name = np.dtype(dtype).name
            med = {k: statistics.median(r[k]) for k in ("numpy", "torch_nn", "torch_loop")}
            print(f"[bench] BPTT N={N} T={T} H={H} {name}: NumPy {med['numpy'] * 1e3:.2f} ms, "
                  f"torch nn.RNN {med['torch_nn'] * 1e3:.2f} ms, torch loop "
                  f"{med['torch_loop'] * 1e3:.2f} ms, NumPy/nn.RNN "
                  f"{med['numpy'] / med['torch_nn']:.2f}", file=sys.stderr, flush=True)
            out.append({"N": N, "T": T, "H": H, "dtype": name, **r})
    return out


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
