"""Judged checks of the jacobian assignment (rnngrading.judge): one Part per test cell.

The visible tests' cases come first (their hints are the known mistakes' messages); the
hidden cases are drawn per student from `rng`. References are the source notebook's own
solutions, run in the grader's process; tolerances are those of the visible tests.
"""

import numpy as np

from rnngrading.judge import Case, Expr, Mistake, Part, close

# ---- Part 1: step_jacobian


def _step_args(rng, H, D, scale):
    return (rng.standard_normal(D), np.tanh(rng.standard_normal(H)),
            scale * rng.standard_normal((H, D)), scale * rng.standard_normal((H, H)),
            scale * rng.standard_normal(H))


def step_cases(rng):
    visible = (np.array([0.5]), np.array([0.2, -0.4]), np.array([[1.0], [-2.0]]),
               np.array([[0.5, -1.0], [0.25, 0.75]]), np.array([0.1, 0.0]))
    yield Case("step_jacobian", visible, label="the visible test's case (H = 2, D = 1)",
               hidden=False)
    yield Case("step_jacobian", (np.ones(4), np.zeros(3), np.full((3, 4), 0.1), np.eye(3),
                                 np.zeros(3)), label="the visible test's case H = 3, D = 4",
               hidden=False)
    sizes = [(int(rng.integers(3, 9)), int(rng.integers(2, 8)), 0.5),
             (int(rng.integers(3, 9)), int(rng.integers(2, 8)), 1.5),
             (1, 1, 1.0), (int(rng.integers(5, 10)), 2, 3.0), (6, 6, 0.1)]
    for H, D, scale in sizes:
        yield Case("step_jacobian", _step_args(rng, H, D, scale), inputs_unchanged=True)


def _h_t(args):
    x_t, h_prev, W_x, W_h, b_h = args
    return np.tanh(W_x @ x_t + W_h @ h_prev + b_h)


STEP_MISTAKES = (
    Mistake(lambda case, want, ref: np.asarray(want).T,
            "This is the transposed Jacobian: ask which index is the output unit. In numerator "
            "layout row i belongs to h_t[i] and column j to h_{t-1}[j]."),
    Mistake(lambda case, want, ref: (1 - (case.args[2] @ case.args[0] + case.args[3]
                                          @ case.args[1] + case.args[4]) ** 2)[:, None]
            * case.args[3],
            "Check the tanh derivative: it is 1 - h_t^2 (h_t = tanh(z_t), the output), not "
            "1 - z_t^2."),
    Mistake(lambda case, want, ref: (1 - case.args[1] ** 2)[:, None] * case.args[3],
            "The derivative belongs to this step's output h_t, not to the previous state h_{t-1}."),
    Mistake(lambda case, want, ref: case.args[3] * (1 - _h_t(case.args) ** 2)[None, :],
            "diag(1 - h_t^2) multiplies W_h from the left: it scales the rows of W_h, not its "
            "columns."),
)

# ---- Part 2: numerical_jacobian (the function to differentiate is an Expr: built from code
# here and, the same way, in the kernel)


def numerical_cases(rng):
    A = np.array([[1.0, 2.0], [-3.0, 0.5], [0.0, 4.0]])
    yield Case("numerical_jacobian", (Expr("lambda v: A @ v", A=A), np.array([0.3, -0.7])),
               label="the visible test's f(x) = A x", hidden=False, inputs_unchanged=True)
    yield Case("numerical_jacobian", (Expr("lambda v: v**2"), np.array([1.0, -2.0])),
               {"eps": 1e-3}, label="the visible test's f(v) = v**2", hidden=False)
    yield Case("numerical_jacobian", (Expr("lambda v: v**3"), np.array([1.0, -2.0])),
               {"eps": 0.1}, label="the visible test's f(v) = v**3 with eps = 0.1", hidden=False)
    n, m = int(rng.integers(4, 8)), int(rng.integers(2, 4))
    B = rng.standard_normal((m, n))
    yield Case("numerical_jacobian", (Expr("lambda v: np.sin(B @ v) + (B @ v) ** 3 / 10", B=B),
                                      rng.standard_normal(n)), inputs_unchanged=True)
    H, D = 4, 3
    W_x, W_h = rng.standard_normal((H, D)), rng.standard_normal((H, H))
    b_h, x_t = rng.standard_normal(H), rng.standard_normal(D)
    yield Case("numerical_jacobian", (Expr("lambda h: np.tanh(W_x @ x_t + W_h @ h + b_h)",
                                           W_x=W_x, W_h=W_h, b_h=b_h, x_t=x_t),
                                      np.tanh(rng.standard_normal(H))))
    c = float(rng.uniform(1.0, 4.0))
    yield Case("numerical_jacobian", (Expr("lambda v: np.array([v[0], v[0] ** 2, c])",
                                           c=np.float64(c)), np.array([rng.uniform(-3, 3)])))
    eps = float(rng.choice([0.05, 0.2, 0.3]))
    yield Case("numerical_jacobian", (Expr("lambda v: v**3"), rng.uniform(-2, 2, size=3)),
               {"eps": eps})


def _one_sided(case, want, ref):
    f = eval(case.args[0].code, {"np": np, **case.args[0].arrays})  # noqa: S307
    x = np.asarray(case.args[1], dtype=float)
    eps = case.kwargs.get("eps", 1e-6)
    cols = [(np.asarray(f(x + eps * e)) - np.asarray(f(x))) / eps for e in np.eye(x.size)]
    return np.stack(cols, axis=1)


NUMERICAL_MISTAKES = (
    Mistake(lambda case, want, ref: np.asarray(want).T,
            "Rows must be the outputs f_i and columns the inputs x_j: the Jacobian is (m, n)."),
    Mistake(_one_sided, "This looks like a one-sided difference. Use (f(x + eps e_j) - "
            "f(x - eps e_j)) / (2 eps)."),
)

# ---- Part 3: jacobian_product


def product_cases(rng):
    sizes = [(3, 2, 4, 1.0), (5, 3, 7, 1.0), (2, 4, 1, 0.7), (4, 1, 12, 2.0), (1, 2, 3, 1.5)]
    for H, D, T, scale in sizes:
        W_x, W_h = scale * rng.standard_normal((H, D)), scale * rng.standard_normal((H, H))
        b_h, h0 = 0.2 * rng.standard_normal(H), np.tanh(rng.standard_normal(H))
        x = rng.standard_normal((T, D))
        states = [h0]
        for t in range(T):
            states.append(np.tanh(W_x @ x[t] + W_h @ states[-1] + b_h))
        h = np.array(states[1:])
        for k in range(T + 1):
            yield Case("jacobian_product", (h, W_h, k))


def _factors(case):
    h, W_h, _ = case.args
    return {t: (1 - h[t - 1] ** 2)[:, None] * W_h for t in range(1, len(h) + 1)}


def _product(factors, order):
    out = np.eye(len(next(iter(factors.values())))) if factors else None
    for t in order:
        out = out @ factors[t]
    return out


PRODUCT_MISTAKES = (
    Mistake(lambda case, want, ref: _product(_factors(case), range(case.args[2] + 1,
                                                                   len(case.args[0]) + 1)),
            "Wrong order: dh_T/dh_k = J_T ... J_{k+1}, with J_T on the left."),
    Mistake(lambda case, want, ref: _product({t: f.T for t, f in _factors(case).items()},
                                             range(len(case.args[0]), case.args[2], -1)),
            "The factor is transposed: in numerator layout J_t = diag(1 - h_t^2) W_h scales "
            "the rows of W_h."),
    Mistake(lambda case, want, ref: _product(_factors(case), range(len(case.args[0]),
                                                                   case.args[2] + 1, -1)),
            "One factor short: the product runs down to J_{k+1}."),
    Mistake(lambda case, want, ref: _product(_factors(case), range(len(case.args[0]) - 1,
                                                                   case.args[2] - 1, -1))
            if case.args[2] >= 1 else np.full((1, 1), np.nan),
            "Off by one: the factors are J_T down to J_{k+1}, J_t built from h_t = h[t - 1]."),
)

# ---- Part 4: the textbook case, a value


def textbook_cases(rng):
    yield Case(name="J_at_zero", label="J_at_zero", hidden=False)


PARTS = [
    Part("test_step_jacobian", step_cases, close(rtol=1e-4, atol=1e-6, scale=1.0),
         STEP_MISTAKES),
    Part("test_numerical_jacobian", numerical_cases, close(rtol=1e-5, atol=1e-6),
         NUMERICAL_MISTAKES),
    Part("test_jacobian_product", product_cases, close(rtol=1e-4, atol=1e-6, scale=1e-3),
         PRODUCT_MISTAKES),
    Part("test_textbook", textbook_cases, close(rtol=1e-5, atol=1e-8),
         (Mistake(lambda case, want, ref: np.asarray(want).T,
                  "This is W_h transposed: in numerator layout row i is output unit i, so "
                  "J = W_h itself."),)),
]
SOURCE_CELLS = ("textbook-setup",)
