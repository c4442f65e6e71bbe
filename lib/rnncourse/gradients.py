"""Gradient analysis: step Jacobians, their products, spectra, numerical checks.

Layout: numerator layout throughout, row i of a Jacobian is output unit i, so for
h_t = act(z_t), z_t = W_x x_t + W_h h_{t-1} + b_h,
    J_t = dh_t/dh_{t-1} = diag(act'(z_t)) W_h,    diag(1 - h_t^2) W_h for tanh.
Backprop multiplies a gradient by the transpose: dh_{t-1} = W_h^T (dh_t * act'(z_t)).
act' is written in terms of the output h_t (tanh' = 1 - h_t^2), so h alone is enough.
"""

import numpy as np

from .checks import check_shape


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# name: (act, act' written in terms of the output h = act(z), gamma = max act')
ACTIVATIONS = {
    "tanh": (np.tanh, lambda h: 1.0 - h**2, 1.0),
    "sigmoid": (_sigmoid, lambda h: h * (1.0 - h), 0.25),
    "relu": (lambda z: np.maximum(z, 0.0), lambda h: (h > 0).astype(h.dtype), 1.0),
}


def get_activation(name):
    """(act, act' as a function of the output h, gamma = max act') for "tanh",
    "sigmoid" or "relu"."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def step_jacobian(h_t, W_h, activation="tanh"):
    """dh_t/dh_{t-1} = diag(act'(z_t)) W_h, numerator layout (diag(1 - h_t^2) W_h for tanh).

    h_t: (H,) hidden state at step t (the output of the activation, not z_t)
    W_h: (H, H)
    activation: "tanh", "sigmoid" or "relu"
    returns (H, H): row i holds the derivatives of h_t[i]
    """
    _, dact, _ = get_activation(activation)
    H = np.shape(W_h)[0]
    check_shape("W_h", W_h, (H, H), ("H", "H"))
    check_shape("h_t", h_t, (H,), ("H",))
    return dact(h_t)[:, None] * W_h


def jacobian_product(h, W_h, k, activation="tanh"):
    """dh_T/dh_k = J_T J_{T-1} ... J_{k+1} for one sequence.

    h:  (T, H) hidden states h_1 .. h_T of one sequence (h[t-1] = h_t)
    k:  0 <= k <= T; k = T gives the identity
    activation: "tanh", "sigmoid" or "relu"
    returns (H, H)
    """
    T, H = np.shape(h)
    if not 0 <= k <= T:
        raise ValueError(f"k must lie in [0, T] = [0, {T}], got {k}")
    product = np.eye(H, dtype=np.result_type(h, W_h))
    for t in range(T, k, -1):  # multiply on the right: J_T first, J_{k+1} last
        product = product @ step_jacobian(h[t - 1], W_h, activation)
    return product


def gradient_norm_by_lag(h, W_h, dh_T=None, activation="tanh"):
    """Norm of the gradient reaching h_{T-l} from a gradient at h_T alone
    (L = dh_T . h_T).

    h:    (T, H) hidden states h_1 .. h_T of one sequence
    dh_T: (H,) gradient at h_T; a unit vector along the first axis if None
    activation: "tanh", "sigmoid" or "relu", the activation that made h
    returns (T + 1,) norms for lags l = 0 .. T (lag 0 is ||dh_T||, lag T is h_0);
            reversed ([::-1]) they are indexed by step k = T - l
    """
    _, dact, _ = get_activation(activation)
    T, H = np.shape(h)
    g = np.eye(H)[0] if dh_T is None else check_shape("dh_T", dh_T, (H,), ("H",))
    norms = [np.linalg.norm(g)]
    for t in range(T, 0, -1):
        g = W_h.T @ (g * dact(h[t - 1]))  # g^T J_t, as a column
        norms.append(np.linalg.norm(g))
    return np.array(norms)


def eigenvalues(W):
    """Complex eigenvalues of a square matrix."""
    check_shape("W", W, (np.shape(W)[0],) * 2, ("H", "H"))
    return np.linalg.eigvals(W)


def spectral_radius(W):
    """max |eigenvalue|: the growth rate of W^k for large k (linear RNN)."""
    return float(np.max(np.abs(eigenvalues(W))))


def spectral_norm(W):
    """Largest singular value ||W||_2: the most W can stretch any vector."""
    return float(np.linalg.norm(W, 2))


def numerical_jacobian(f, x, eps=1e-6):
    """Central-difference Jacobian of a vector function, numerator layout.

    f: maps an array shaped like x to an array
    x: (n,) point at which to differentiate (float64 recommended)
    returns (m, n) with entry [i, j] = d f_i / d x_j
    """
    x = np.asarray(x, dtype=np.float64)
    columns = []
    for j in range(x.size):
        step = np.zeros_like(x)
        step.flat[j] = eps
        columns.append((np.ravel(f(x + step)) - np.ravel(f(x - step))) / (2 * eps))
    return np.stack(columns, axis=1)


def numerical_gradient(f, x, eps=1e-6):
    """Central-difference gradient of a scalar function of an array.

    f: maps an array shaped like x to a float
    x: array of any shape; it is perturbed in place and restored
    returns an array shaped like x
    """
    grad = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        f_plus = f(x)
        x[idx] = old - eps
        f_minus = f(x)
        x[idx] = old
        grad[idx] = (f_plus - f_minus) / (2 * eps)
    return grad


def rel_error(a, b):
    """||a - b|| / (||a|| + ||b||), 0 when both are zero."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error got shapes {a.shape} and {b.shape}, expected equal shapes")
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)
