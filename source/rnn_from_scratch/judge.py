"""Judged checks of the rnn_from_scratch assignment (rnngrading.judge): one Part per test cell.

The visible tests' cases come first (their hints are the known mistakes' messages); the
hidden cases are drawn per student from `rng`, with other shapes and scales. References are
the source notebook's own solutions, run in the grader's process. As in the visible tests,
a later part runs with the source's versions of the earlier parts in place of the
student's (Case.replace, their code taken from the source's solution cells), so that each
mistake costs its own part only. Tolerances are the notebook's close(): rtol 1e-4,
atol 1e-6 (float32 precision passes), tighter for the gradient check.
"""

from pathlib import Path

import numpy as np

from rnngrading.judge import Case, Expr, Mistake, Part, cell_code, close

NOTEBOOK = Path(__file__).with_name("rnn_from_scratch.ipynb")
CLOSE = close(rtol=1e-4, atol=1e-6)


def _source(*cell_ids):
    return "\n\n\n".join(cell_code(NOTEBOOK, cell_id) for cell_id in cell_ids)


# the source's solutions, bound in the student's namespace while a later part runs
STEP_FORWARD = Expr(_source("rnn-step-forward"), define="rnn_step_forward")
STEP_BACKWARD = Expr(_source("rnn-step-backward"), define="rnn_step_backward")
FORWARD = Expr(_source("rnn-step-forward", "rnn-forward"), define="rnn_forward")
BACKWARD = Expr(_source("rnn-step-backward", "rnn-backward"), define="rnn_backward")
LOSS = Expr(_source("softmax-cross-entropy"), define="softmax_cross_entropy")
LSTM = Expr(_source("lstm-step-forward"), define="lstm_step_forward")


def _sequence(names, message):
    """Compare a tuple item by item (CLOSE), naming the first item that differs."""

    def compare(got, want):
        if not isinstance(got, (list, tuple)) or len(got) != len(want):
            return message
        for name, g, w in zip(names, got, want, strict=True):
            why = CLOSE(g, w)
            if why:
                return f"{name}: {why}"
        return None

    return compare


# ---- Part 1: rnn_step_forward


def _step_inputs(rng, N, D, H, scale=1.0):
    return (rng.standard_normal((N, D)), np.tanh(rng.standard_normal((N, H))),
            scale * rng.standard_normal((H, D)), scale * rng.standard_normal((H, H)),
            scale * rng.standard_normal(H))


def step_forward_cases(rng):
    r = np.random.default_rng(1)
    x, h = r.standard_normal((2, 3)), np.tanh(r.standard_normal((2, 4)))
    visible = (x, h, r.standard_normal((4, 3)), r.standard_normal((4, 4)), r.standard_normal(4))
    yield Case("rnn_step_forward", visible, label="the visible test's case (N = 2, D = 3, H = 4)",
               hidden=False, inputs_unchanged=True)
    sizes = [(1, 1, int(rng.integers(3, 7)), 1.0),
             (int(rng.integers(4, 8)), int(rng.integers(5, 9)), 2, 3.0),
             (int(rng.integers(2, 5)), int(rng.integers(2, 6)), int(rng.integers(5, 9)), 0.1),
             (int(rng.integers(2, 6)), int(rng.integers(2, 6)), int(rng.integers(2, 6)), 1.0)]
    for N, D, H, scale in sizes:
        yield Case("rnn_step_forward", _step_inputs(rng, N, D, H, scale), inputs_unchanged=True)


CACHE = ("x_t", "h_prev", "W_x", "W_h", "b_h", "h_t")


def compare_step_forward(got, want):
    if not isinstance(got, (list, tuple)) or len(got) != 2:
        return "Return two things: h_t and the cache."
    why = CLOSE(got[0], want[0])
    if why:
        return f"h_t: {why}"
    if not isinstance(got[1], (list, tuple)) or len(got[1]) != 6:
        return "The cache is the tuple (x_t, h_prev, W_x, W_h, b_h, h_t)."
    for name, g, w in zip(CACHE, got[1], want[1], strict=True):
        if CLOSE(g, w):
            return f"cache item {name!r} is not what the order asks for"
    return None


def _with_cache(z_of):
    def wrong(case, want, ref):
        h_t = z_of(*case.args)
        return h_t, (*case.args, h_t)

    return wrong


STEP_FORWARD_MISTAKES = (
    Mistake(_with_cache(lambda x, h, W_x, W_h, b: np.tanh(x @ W_x.T + h @ W_h + b)),
            "W_h is transposed: with row vectors, W_h h_{t-1} is h_prev @ W_h.T."),
    Mistake(_with_cache(lambda x, h, W_x, W_h, b: x @ W_x.T + h @ W_h.T + b),
            "Apply tanh: h_t = tanh(z_t)."),
    Mistake(_with_cache(lambda x, h, W_x, W_h, b: np.tanh(x @ W_x.T + h @ W_h.T)),
            "Add the bias b_h."),
)

# ---- Part 2: rnn_step_backward, on the cache the source's forward makes


def _cache(x_t, h_prev, W_x, W_h, b_h):
    h_t = np.tanh(x_t @ W_x.T + h_prev @ W_h.T + b_h)
    return Expr("(x_t, h_prev, W_x, W_h, b_h, h_t)", x_t=x_t, h_prev=h_prev, W_x=W_x, W_h=W_h,
                b_h=b_h, h_t=h_t)


def step_backward_cases(rng):
    r = np.random.default_rng(2)
    args = (r.standard_normal((3, 2)), np.tanh(r.standard_normal((3, 4))),
            r.standard_normal((4, 2)), r.standard_normal((4, 4)), r.standard_normal(4))
    yield Case("rnn_step_backward", (r.standard_normal((3, 4)), _cache(*args)),
               label="the visible test's case (N = 3, D = 2, H = 4)", hidden=False)
    sizes = [(1, int(rng.integers(4, 7)), int(rng.integers(2, 5)), 1.0),
             (int(rng.integers(5, 8)), 1, int(rng.integers(6, 9)), 2.0),
             (int(rng.integers(2, 4)), int(rng.integers(2, 5)), 1, 0.5),
             (int(rng.integers(2, 6)), int(rng.integers(2, 6)), int(rng.integers(2, 6)), 1.0)]
    for N, D, H, scale in sizes:
        args = _step_inputs(rng, N, D, H, scale)
        yield Case("rnn_step_backward", (rng.standard_normal((N, H)), _cache(*args)))


def _step_grads(dz, cache):
    x_t, h_prev, W_x, W_h = (cache[k] for k in ("x_t", "h_prev", "W_x", "W_h"))
    return dz @ W_x, dz @ W_h, dz.T @ x_t, dz.T @ h_prev, dz.sum(axis=0)


def _dz(case, derivative):
    dh, cache = case.args[0], case.args[1].arrays
    return dh * derivative(cache)


def _z(c):
    return c["x_t"] @ c["W_x"].T + c["h_prev"] @ c["W_h"].T + c["b_h"]


STEP_BACKWARD_MISTAKES = (
    Mistake(lambda case, want, ref: _step_grads(_dz(case, lambda c: 1 - _z(c) ** 2),
                                                case.args[1].arrays),
            "Check the tanh derivative: it is 1 - h_t^2 (h_t = tanh(z_t), the output), not "
            "1 - z_t^2."),
    Mistake(lambda case, want, ref: (*want[:4], _dz(case, lambda c: 1 - c["h_t"] ** 2)),
            "db_h is (H,): sum the gradient over the batch."),
    Mistake(lambda case, want, ref: (want[0], _dz(case, lambda c: 1 - c["h_t"] ** 2)
                                     @ case.args[1].arrays["W_h"].T, *want[2:]),
            "dh_prev uses W_h transposed: with row vectors, the gradient of h_prev @ W_h.T with "
            "respect to h_prev is dz_t @ W_h."),
    Mistake(lambda case, want, ref: (*want[:3], np.asarray(want[3]).T, want[4]),
            "dW_h is transposed: entry [i, j] is sum_n dz[n, i] h_prev[n, j]."),
)

# ---- Part 3: rnn_forward, with the source's rnn_step_forward


def _forward_inputs(rng, N, T, D, H, b_scale=1.0):
    return (rng.standard_normal((N, T, D)), np.tanh(rng.standard_normal((N, H))),
            rng.standard_normal((H, D)), rng.standard_normal((H, H)),
            b_scale * rng.standard_normal(H))


def forward_cases(rng):
    r = np.random.default_rng(3)
    visible = _forward_inputs(r, 2, 5, 3, 4, b_scale=0.5)
    yield Case("rnn_forward", visible, returns="(result[0], list(result[1]))",
               replace={"rnn_step_forward": STEP_FORWARD},
               label="the visible test's case (N = 2, T = 5, D = 3, H = 4)", hidden=False)
    sizes = [(1, 1, int(rng.integers(2, 4)), int(rng.integers(3, 5))),
             (int(rng.integers(4, 6)), int(rng.integers(8, 12)), 1, 2),
             (int(rng.integers(2, 4)), 2, int(rng.integers(4, 7)), int(rng.integers(5, 8))),
             (int(rng.integers(2, 5)), int(rng.integers(3, 7)), int(rng.integers(2, 5)), 3)]
    for N, T, D, H in sizes:
        yield Case("rnn_forward", _forward_inputs(rng, N, T, D, H),
                   returns="(result[0], list(result[1]))",
                   replace={"rnn_step_forward": STEP_FORWARD})


def compare_forward(got, want):
    if not isinstance(got, (list, tuple)) or len(got) != 2:
        return "Return two things: h and the list of caches."
    why = CLOSE(got[0], want[0])
    if why:
        return f"h: {why}"
    if not isinstance(got[1], (list, tuple)) or len(got[1]) != len(want[1]):
        n = len(got[1]) if isinstance(got[1], (list, tuple)) else "no list"
        return f"One cache per time step: expected {len(want[1])}, got {n}"
    if CLOSE(got[1], want[1]):
        return "The caches must be in time order: caches[t - 1] belongs to step t."
    return None


def _states(x, h0, W_x, W_h, b_h, restart=False):
    h_t, states, caches = h0, [], []
    for t in range(x.shape[1]):
        h_prev = h0 if restart else h_t
        h_t = np.tanh(x[:, t] @ W_x.T + h_prev @ W_h.T + b_h)
        states.append(h_t)
        caches.append((x[:, t], h_prev, W_x, W_h, b_h, h_t))
    return np.stack(states, axis=1), caches


FORWARD_MISTAKES = (
    Mistake(lambda case, want, ref: (np.swapaxes(want[0], 0, 1), want[1]),
            "Batch-first: h is (N, T, H), not (T, N, H)."),
    Mistake(lambda case, want, ref: (np.concatenate([case.args[1][:, None], want[0][:, :-1]],
                                                    axis=1), want[1]),
            "Off by one: h[:, 0] is h_1, the state after the first step; h0 is not part of h."),
    Mistake(lambda case, want, ref: _states(*case.args, restart=True),
            "Each step must start from the previous h_t, not from h0 again."),
)

# ---- Part 4: rnn_backward, on the caches of the source's forward, with its step backward


def _caches(x, h0, W_x, W_h, b_h):
    hs = _states(x, h0, W_x, W_h, b_h)[0]
    return Expr("[(x[:, t], h0 if t == 0 else hs[:, t - 1], W_x, W_h, b_h, hs[:, t]) "
                "for t in range(x.shape[1])]", x=x, h0=h0, W_x=W_x, W_h=W_h, b_h=b_h, hs=hs)


BACKWARD_REPLACE = {"rnn_step_forward": STEP_FORWARD, "rnn_step_backward": STEP_BACKWARD}


def backward_cases(rng):
    r = np.random.default_rng(4)
    x, h0 = r.standard_normal((2, 4, 3)), np.tanh(r.standard_normal((2, 5)))
    W = (r.standard_normal((5, 3)), 0.8 * r.standard_normal((5, 5)), 0.3 * r.standard_normal(5))
    yield Case("rnn_backward", (r.standard_normal((2, 4, 5)), _caches(x, h0, *W)),
               replace=BACKWARD_REPLACE, hidden=False,
               label="the visible test's case (N = 2, T = 4, D = 3, H = 5)")
    sizes = [(1, 1, 2, int(rng.integers(3, 5))), (3, int(rng.integers(10, 13)), 1, 4),
             (int(rng.integers(4, 6)), int(rng.integers(5, 8)), int(rng.integers(6, 9)), 2),
             (int(rng.integers(2, 5)), int(rng.integers(3, 6)), int(rng.integers(2, 5)),
              int(rng.integers(5, 8)))]
    for N, T, D, H in sizes:
        x, h0, *W = _forward_inputs(rng, N, T, D, H)
        yield Case("rnn_backward", (rng.standard_normal((N, T, H)), _caches(x, h0, *W)),
                   replace=BACKWARD_REPLACE)


def _bptt(case, carry=True, keep=None, times=None):
    """BPTT in NumPy; carry=False drops dh_next; keep=t keeps the weight gradients of step
    t only; times: the steps the loop visits."""
    dh, c = case.args[0], case.args[1].arrays
    x, h0, W_x, W_h, hs = c["x"], c["h0"], c["W_x"], c["W_h"], c["hs"]
    N, T, H = dh.shape
    dx, dh_next = np.zeros(x.shape), np.zeros((N, H))
    total = [np.zeros(W_x.shape), np.zeros(W_h.shape), np.zeros(H)]
    for t in reversed(range(T)) if times is None else times(T):
        dz = (dh[:, t] + (dh_next if carry else 0)) * (1 - hs[:, t] ** 2)
        h_prev = h0 if t == 0 else hs[:, t - 1]
        dx[:, t], dh_next = dz @ W_x, dz @ W_h
        step = (dz.T @ x[:, t], dz.T @ h_prev, dz.sum(axis=0))
        if keep is None or keep % T == t:
            total = [a + b for a, b in zip(total, step, strict=True)]
    return dx, dh_next, *total


BACKWARD_MISTAKES = (
    Mistake(lambda case, want, ref: _bptt(case, keep=0),
            "dW_h holds only the first step's share: the weight gradients were overwritten at "
            "each step instead of summed over time (dW_h += ..., not dW_h = ...)."),
    Mistake(lambda case, want, ref: _bptt(case, keep=-1),
            "dW_h holds only the last step's share: sum the weight gradients over all steps."),
    Mistake(lambda case, want, ref: _bptt(case, carry=False),
            "The gradient from later steps is missing: send dh[:, t] + dh_next into each step, "
            "where dh_next is the dh_prev that step t + 1 returned (a forgotten dh_next)."),
    Mistake(lambda case, want, ref: _bptt(case, times=lambda T: range(T - 1, 0, -1)),
            "Off by one in the time loop: dx[:, 0] is zero, so the loop never reached the first "
            "step (reversed(range(T)) runs T - 1, ..., 0)."),
    Mistake(lambda case, want, ref: _bptt(case, times=lambda T: range(T - 2, -1, -1)),
            "Off by one in the time loop: dx[:, T - 1] is zero, so the loop skipped the last "
            "step."),
    Mistake(lambda case, want, ref: (want[0], np.zeros_like(want[1]), *want[2:]),
            "dh0 is zero: return the dh_next left after the first step."),
)

# ---- Part 5: softmax_cross_entropy


def loss_cases(rng):
    r = np.random.default_rng(5)
    y, targets = 2 * r.standard_normal((2, 3, 5)), r.integers(0, 5, size=(2, 3))
    returns = "(float(result[0]), result[1])"
    yield Case("softmax_cross_entropy", (y, targets), returns=returns, inputs_unchanged=True,
               label="the visible test's case (N = 2, T = 3, V = 5)", hidden=False)
    yield Case("softmax_cross_entropy", (np.array([[[1000.0, 0.0, -1000.0], [0.0, 800.0, 0.0]]]),
                                         np.array([[0, 2]])), returns=returns,
               label="the visible test's large scores (1000 and 800)", hidden=False)
    sizes = [(1, 1, 2, 3.0), (int(rng.integers(3, 6)), int(rng.integers(5, 9)), 3, 3.0),
             (int(rng.integers(2, 4)), 2, int(rng.integers(9, 14)), 3.0),
             (int(rng.integers(1, 4)), int(rng.integers(2, 5)), int(rng.integers(3, 7)), 600.0)]
    for N, T, V, scale in sizes:
        yield Case("softmax_cross_entropy", (scale * rng.standard_normal((N, T, V)),
                                             rng.integers(0, V, size=(N, T))),
                   returns=returns, inputs_unchanged=True)


def compare_loss(got, want):
    if not isinstance(got, (list, tuple)) or len(got) != 2:
        return "Return two things: the loss and dy."
    values = [np.asarray(v) for v in got if not isinstance(v, (str, dict, list, tuple))]
    if (np.all(np.isfinite(want[1])) and any(v.dtype.kind in "fc" and not np.all(np.isfinite(v))
                                             for v in values)):
        return ("Not finite for large scores: subtract each row's maximum before np.exp, and "
                "take log p as the shifted scores minus the log of their exp-sum (np.log of a "
                "probability that underflowed to 0 is -inf).")
    return _sequence(("the loss", "dy"), "Return two things: the loss and dy.")(got, want)


def _times(factor_loss, factor_dy):
    def wrong(case, want, ref):
        N, T, _ = case.args[0].shape
        scale = {"NT": N * T, "T": T, "1": 1}
        return want[0] * scale[factor_loss], np.asarray(want[1]) * scale[factor_dy]

    return wrong


LOSS_MISTAKES = (
    Mistake(_times("NT", "NT"), "That is the sum over the N T positions: average it (divide by "
            "N T)."),
    Mistake(_times("T", "T"), "That is divided by N only (summed over time): average over all "
            "N T positions."),
    Mistake(_times("1", "NT"), "dy is the gradient of the sum: divide it by N T too."),
    Mistake(_times("1", "T"), "dy is divided by N only: divide by N T, like the loss."),
)

# ---- Part 6: numerical_gradient (f is an Expr: built from code here and in the kernel)


def gradient_cases(rng):
    x = np.array([[1.0, -2.0, 0.0], [0.5, 3.0, -0.25]])
    yield Case("numerical_gradient", (Expr("lambda v: float(np.sum(v**2))"), x), {"eps": 1e-3},
               label="the visible test's sum(x^2) with eps = 1e-3", hidden=False,
               inputs_unchanged=True)
    W, v = np.array([[0.3, -1.2], [2.0, 0.0], [-0.7, 0.4]]), np.array([1.5, -0.5])
    yield Case("numerical_gradient", (Expr("lambda W: float(np.tanh(W @ v).sum())", v=v), W),
               label="the visible test's sum(tanh(W v))", hidden=False, inputs_unchanged=True)
    shape = tuple(int(n) for n in rng.integers(2, 5, size=3))
    yield Case("numerical_gradient", (Expr("lambda a: float(np.sum(np.sin(a) * a**2))"),
                                      rng.standard_normal(shape)), inputs_unchanged=True)
    yield Case("numerical_gradient", (Expr("lambda a: float(a[0] ** 3)"),
                                      np.array([rng.uniform(1.0, 3.0)])), {"eps": 1e-2},
               inputs_unchanged=True)
    m, n = int(rng.integers(2, 5)), int(rng.integers(2, 5))
    yield Case("numerical_gradient",
               (Expr("lambda W: float(np.tanh(W @ v).sum() + 0.1 * np.sum(W**2) ** 1.5)",
                     v=rng.standard_normal(n)), rng.standard_normal((m, n))),
               {"eps": float(rng.choice([1e-4, 1e-5]))}, inputs_unchanged=True)


def _one_sided(sign):
    def wrong(case, want, ref):
        f = eval(case.args[0].code, {"np": np, **case.args[0].arrays})  # noqa: S307
        x = np.array(case.args[1], dtype=float)
        eps = case.kwargs.get("eps", 1e-6)
        grad = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            moved = x.copy()
            moved[i] += sign * eps
            grad[i] = sign * (f(moved) - f(x)) / eps
        return grad

    return wrong


GRADIENT_MISTAKES = (
    Mistake(_one_sided(1), "This is a one-sided difference, off by eps: use (f(x + eps e_i) - "
            "f(x - eps e_i)) / (2 eps)."),
    Mistake(_one_sided(-1), "This is a one-sided (backward) difference."),
)

# ---- Part 7: lstm_step_forward


def _lstm_inputs(rng, N, D, H, c_scale=1.0):
    return (rng.standard_normal((N, D)), np.tanh(rng.standard_normal((N, H))),
            c_scale * rng.standard_normal((N, H)), rng.standard_normal((4 * H, D)),
            rng.standard_normal((4 * H, H)), rng.standard_normal(4 * H))


def lstm_cases(rng):
    returns = "(result[0], result[1], result[2])"
    yield Case("lstm_step_forward", _lstm_inputs(np.random.default_rng(7), 2, 3, 4),
               returns=returns, label="the visible test's case (N = 2, D = 3, H = 4)",
               hidden=False)
    sizes = [(1, 1, 1), (int(rng.integers(4, 7)), 2, int(rng.integers(5, 8))),
             (int(rng.integers(2, 4)), int(rng.integers(6, 9)), 2),
             (int(rng.integers(2, 5)), int(rng.integers(2, 5)), int(rng.integers(2, 5)))]
    for N, D, H in sizes:
        yield Case("lstm_step_forward", _lstm_inputs(rng, N, D, H, c_scale=2.0), returns=returns,
                   inputs_unchanged=True)


GATES = ("i", "f", "g", "o")


def compare_lstm(got, want):
    if not isinstance(got, (list, tuple)) or len(got) != 3:
        return "Return h_t, c_t and the dict of gates."
    if not isinstance(got[2], dict) or set(got[2]) != set(GATES):
        keys = sorted(got[2]) if isinstance(got[2], dict) else type(got[2]).__name__
        return f"gates has the keys 'i', 'f', 'g', 'o', got {keys}"
    return _sequence(("c_t", "h_t", *(f"gates[{k!r}]" for k in GATES)), "")(
        (got[1], got[0], *(got[2][k] for k in GATES)),
        (want[1], want[0], *(want[2][k] for k in GATES)))


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _lstm(x, h, c, W_x, W_h, b, order="ifgo", g_of=np.tanh, squash_c=True):
    """One LSTM step in NumPy: block k of the pre-activations is gate order[k]."""
    H = h.shape[1]
    a = x @ W_x.T + h @ W_h.T + b
    blocks = {k: a[:, n * H:(n + 1) * H] for n, k in enumerate(order)}
    gates = {k: _sigmoid(blocks[k]) for k in "ifo"}
    gates["g"] = g_of(blocks["g"])
    c_t = gates["f"] * c + gates["i"] * gates["g"]
    return gates["o"] * (np.tanh(c_t) if squash_c else c_t), c_t, gates


LSTM_MISTAKES = (
    Mistake(lambda case, want, ref: _lstm(*case.args, order="ifog"),
            "The gates are in the wrong order: nn.LSTMCell stacks them i, f, g, o (the candidate "
            "g third, the output gate o last)."),
    Mistake(lambda case, want, ref: _lstm(*case.args, g_of=_sigmoid),
            "The candidate g uses tanh (values in -1 .. 1), not the sigmoid."),
    Mistake(lambda case, want, ref: _lstm(*case.args, squash_c=False),
            "h_t = o_t * tanh(c_t): the tanh is missing."),
)

# ---- Part 8: lstm_cell_jacobian, with the source's lstm_step_forward


def cell_jacobian_cases(rng):
    r = np.random.default_rng(8)
    x, h, c = r.standard_normal(2), np.tanh(r.standard_normal(3)), np.array([0.0, -1.5, 0.8])
    W = (r.standard_normal((12, 2)), r.standard_normal((12, 3)), r.standard_normal(12))
    replace = {"lstm_step_forward": LSTM}
    yield Case("lstm_cell_jacobian", (x, h, c, *W), replace=replace, hidden=False,
               label="the visible test's case (D = 2, H = 3)")
    for D, H in [(1, 1), (int(rng.integers(3, 6)), int(rng.integers(4, 7))),
                 (2, int(rng.integers(6, 9))), (int(rng.integers(4, 8)), 2)]:
        args = (rng.standard_normal(D), np.tanh(rng.standard_normal(H)), rng.standard_normal(H),
                rng.standard_normal((4 * H, D)), rng.standard_normal((4 * H, H)),
                rng.standard_normal(4 * H))
        yield Case("lstm_cell_jacobian", args, replace=replace)


def _one_example(case):
    x, h, c, *W = case.args
    h_t, c_t, gates = _lstm(x[None], h[None], c[None], *W)
    return c_t[0], {k: v[0] for k, v in gates.items()}


CELL_JACOBIAN_MISTAKES = (
    Mistake(lambda case, want, ref: _one_example(case)[1]["f"],
            "Return the (H, H) matrix diag(f_t), not the vector f_t."),
    Mistake(lambda case, want, ref: np.diag(_one_example(case)[1]["i"]),
            "That is the input gate i_t. c_{t-1} is multiplied by the forget gate f_t."),
    Mistake(lambda case, want, ref: np.diag(
        (lambda c_t, g: g["o"] * (1 - np.tanh(c_t) ** 2) * g["f"])(*_one_example(case))),
            "That is dh_t/dc_(t-1), through h_t = o_t tanh(c_t). The cell path asks for "
            "dc_t/dc_(t-1)."),
)

# ---- Part 9: train_rnn, with the source's Parts 1-5; judged on the losses and the parameters


KEYS = ("W_x", "W_h", "b_h", "W_y", "b_y")
TRAIN_RETURNS = f"([float(v) for v in result], [args[0][k] for k in {KEYS!r}])"
TRAIN_REPLACE = {"rnn_step_forward": STEP_FORWARD, "rnn_step_backward": STEP_BACKWARD,
                 "rnn_forward": FORWARD, "rnn_backward": BACKWARD,
                 "softmax_cross_entropy": LOSS}


def _problem(seed, N=3, T=4, V=5, H=4, scale=0.8):
    """The visible test's problem_9: start parameters, one-hot inputs and next tokens."""
    r = np.random.default_rng(seed)
    params = {"W_x": scale * r.standard_normal((H, V)), "W_h": scale * r.standard_normal((H, H)),
              "b_h": 0.1 * r.standard_normal(H), "W_y": scale * r.standard_normal((V, H)),
              "b_y": 0.1 * r.standard_normal(V)}
    tokens = r.integers(0, V, size=(N, T + 1))
    return params, np.eye(V)[tokens[:, :-1]], tokens[:, 1:]


def _loss_grads(p, x, targets):
    """The mean cross-entropy and the gradients of the five parameters, in NumPy."""
    N, T, _ = x.shape
    h_t, states = np.zeros((N, p["W_h"].shape[0])), []
    for t in range(T):
        h_t = np.tanh(x[:, t] @ p["W_x"].T + h_t @ p["W_h"].T + p["b_h"])
        states.append(h_t)
    h = np.stack(states, axis=1)
    y = h @ p["W_y"].T + p["b_y"]
    y = y - y.max(axis=-1, keepdims=True)
    log_p = y - np.log(np.exp(y).sum(axis=-1, keepdims=True))
    onehot = np.eye(y.shape[-1])[targets]
    dy = (np.exp(log_p) - onehot) / (N * T)
    grads = {"W_x": 0 * p["W_x"], "W_h": 0 * p["W_h"], "b_h": 0 * p["b_h"],
             "W_y": np.einsum("ntv,nth->vh", dy, h), "b_y": dy.sum(axis=(0, 1))}
    dh, dh_next = dy @ p["W_y"], 0
    for t in reversed(range(T)):
        dz = (dh[:, t] + dh_next) * (1 - h[:, t] ** 2)
        h_prev = h[:, t - 1] if t else np.zeros_like(h_t)
        grads["W_x"] = grads["W_x"] + dz.T @ x[:, t]
        grads["W_h"] = grads["W_h"] + dz.T @ h_prev
        grads["b_h"] = grads["b_h"] + dz.sum(axis=0)
        dh_next = dz @ p["W_h"]
    return float(-(log_p * onehot).sum() / (N * T)), grads


def _norm(grads):
    return float(np.sqrt(sum(np.sum(g**2) for g in grads.values())))


def _params(params):
    return Expr("dict(" + ", ".join(f"{k}={k}" for k in KEYS) + ")", **params)


def _train_case(params, x, targets, steps, lr, max_norm, label=None):
    return Case("train_rnn", (_params(params), x, targets, steps, lr, max_norm),
                returns=TRAIN_RETURNS, replace=TRAIN_REPLACE, label=label or "",
                hidden=label is None)


def train_cases(rng):
    params, x, targets = _problem(9)
    yield _train_case(params, x, targets, 1, 0.5, 1e9,
                      "the visible test's one step without clipping")
    norm = _norm(_loss_grads(params, x, targets)[1])
    yield _train_case(params, x, targets, 1, 0.5, norm / 10,
                      "the visible test's one step where clipping acts (max_norm = norm / 10)")
    yield _train_case(*_problem(19), 3, 0.3, 1.0, "the visible test's three steps")
    for fraction in (0.2, 0.9, 100.0):  # clipping at every step, at some, never
        for _ in range(50):
            N, T, V, H = (int(rng.integers(1, 6)), int(rng.integers(2, 8)),
                          int(rng.integers(3, 9)), int(rng.integers(3, 7)))
            params, x, targets = _problem(int(rng.integers(2**31)), N, T, V, H, scale=1.2)
            norm = _norm(_loss_grads(params, x, targets)[1])
            args = (params, x, targets, 4, float(rng.uniform(0.1, 0.8)), fraction * norm)
            if _tame(*args):
                break
        yield _train_case(*args)


def _sgd(params, x, targets, steps, lr, max_norm, rounded=False):
    """The parameters after `steps` clipped steps; rounded: as if stored in float32."""
    f32 = (lambda a: a.astype(np.float32).astype(np.float64)) if rounded else (lambda a: a)
    p = {k: f32(v) for k, v in params.items()}
    for _ in range(steps):
        grads = {k: f32(g) for k, g in _loss_grads(p, x, targets)[1].items()}
        scale = min(1.0, max_norm / _norm(grads))
        p = {k: f32(p[k] - lr * scale * grads[k]) for k in KEYS}
    return p


def _tame(*args):
    """True when float32 rounding moves the trained parameters by at most a twentieth of
    the tolerance: a large step on a steep loss amplifies rounding, and a loop in float32
    (full marks) must not fail for it."""
    exact, rounded = _sgd(*args), _sgd(*args, rounded=True)
    return all(np.all(np.abs(rounded[k] - exact[k]) <= 0.05 * (1e-6 + 1e-4 * np.abs(exact[k])))
               for k in KEYS)


def _clip(mode):
    def clipped(grads, max_norm):
        if mode == "global":
            return {k: g * min(1.0, max_norm / _norm(grads)) for k, g in grads.items()}
        if mode == "per_array":
            return {k: g * min(1.0, max_norm / np.linalg.norm(g)) for k, g in grads.items()}
        if mode == "entries":
            return {k: np.clip(g, -max_norm, max_norm) for k, g in grads.items()}
        return grads

    return clipped


def _train(clip="global", sign=1.0, store=True, after=False):
    """A wrong training loop: how it clips, which way it steps, whether it stores the new
    arrays in params, whether each loss is taken after its update."""

    def wrong(case, want, ref):
        p = dict(case.args[0].arrays)
        x, targets, steps, lr, max_norm = case.args[1:]
        losses, new = [], dict(p)
        for _ in range(steps):
            loss, grads = _loss_grads(new, x, targets)
            grads = _clip(clip)(grads, max_norm)
            new = {k: new[k] - sign * lr * grads[k] for k in KEYS}
            losses.append(_loss_grads(new, x, targets)[0] if after else loss)
            if not store:
                new = p
        return losses, [new[k] if store else p[k] for k in KEYS]

    return wrong


TRAIN_MISTAKES = (
    Mistake(_train(store=False), "The parameters did not change: store the new arrays in "
            "params (params[k] = ...)."),
    Mistake(lambda case, want, ref: (want[0], [case.args[0].arrays[k] for k in KEYS]),
            "The parameters did not change: store the new arrays in params (params[k] = ...)."),
    Mistake(_train(sign=-1.0), "Step downhill: subtract lr * gradient."),
    Mistake(_train(clip="none"), "No clipping: when the global norm of the gradients is above "
            "max_norm, every gradient must be scaled by max_norm / norm."),
    Mistake(_train(clip="per_array"), "Each array was clipped on its own: clip the global norm "
            "of all five gradients together."),
    Mistake(_train(clip="entries"), "That clips each entry (np.clip); scale the whole gradient "
            "by max_norm / norm instead."),
    Mistake(_train(after=True), "Each loss is measured before its own update, from h0 = 0."),
)


def compare_train(got, want):
    if not isinstance(got, (list, tuple)) or len(got) != 2:
        return "Return the list of losses."
    if len(got[0]) != len(want[0]):
        return f"One loss per step: expected {len(want[0])}, got {len(got[0])}"
    if CLOSE(got[0], want[0]):
        return "The losses, one before each update, are off."
    return _sequence(tuple(f"after the steps, {k}" for k in KEYS), "")(got[1], want[1])


PARTS = [
    Part("test_rnn_step_forward", step_forward_cases, compare_step_forward,
         STEP_FORWARD_MISTAKES),
    Part("test_rnn_step_backward", step_backward_cases,
         _sequence(("dx_t", "dh_prev", "dW_x", "dW_h", "db_h"),
                   "Return five gradients: dx_t, dh_prev, dW_x, dW_h, db_h."),
         STEP_BACKWARD_MISTAKES),
    Part("test_rnn_forward", forward_cases, compare_forward, FORWARD_MISTAKES),
    Part("test_rnn_backward", backward_cases,
         _sequence(("dx", "dh0", "dW_x", "dW_h", "db_h"),
                   "Return five gradients: dx, dh0, dW_x, dW_h, db_h."),
         BACKWARD_MISTAKES),
    Part("test_softmax_cross_entropy", loss_cases, compare_loss, LOSS_MISTAKES),
    Part("test_numerical_gradient", gradient_cases, close(rtol=1e-6, atol=1e-7),
         GRADIENT_MISTAKES),
    Part("test_lstm_step_forward", lstm_cases, compare_lstm, LSTM_MISTAKES),
    Part("test_lstm_cell_jacobian", cell_jacobian_cases, CLOSE, CELL_JACOBIAN_MISTAKES),
    Part("test_train_rnn", train_cases, compare_train, TRAIN_MISTAKES),
]
