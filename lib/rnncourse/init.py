"""Parameter initialisers for the recurrent weight W_h and for a whole RNN."""

import numpy as np

from .checks import check_shape


def small_random(shape, rng, scale=0.01):
    """Gaussian entries with standard deviation `scale` (the classic small init)."""
    return scale * rng.standard_normal(shape)


def orthogonal(H, rng, gain=1.0):
    """An (H, H) orthogonal matrix times `gain`: every singular value equals gain.

    Saxe et al. (2013). Built from the QR decomposition of a Gaussian matrix,
    with the signs fixed so the result is uniformly distributed.
    """
    q, r = np.linalg.qr(rng.standard_normal((H, H)))
    return gain * q * np.sign(np.diag(r))


def with_spectral_radius(H, radius, rng):
    """An (H, H) Gaussian matrix rescaled so that max |eigenvalue| = radius."""
    W = rng.standard_normal((H, H))
    return W * (radius / np.max(np.abs(np.linalg.eigvals(W))))


def init_rnn_params(D, H, V, rng, W_h="orthogonal", scale=0.01, dtype=np.float64):
    """Parameters of an RNN with an output layer.

    D, H, V: input, hidden and output sizes
    W_h:     "orthogonal", "small", "identity", or an (H, H) array to use as is
    returns dict W_x (H, D), W_h (H, H), b_h (H,), W_y (V, H), b_y (V,)
    """
    if isinstance(W_h, str):
        makers = {
            "orthogonal": lambda: orthogonal(H, rng),
            "small": lambda: small_random((H, H), rng, scale),
            "identity": lambda: np.eye(H),  # IRNN, Le et al. (2015), meant for ReLU
        }
        if W_h not in makers:
            raise ValueError(f"W_h must be one of {sorted(makers)} or an array, got {W_h!r}")
        W_h = makers[W_h]()
    check_shape("W_h", W_h, (H, H), ("H", "H"))
    params = {
        "W_x": rng.standard_normal((H, D)) / np.sqrt(D),
        "W_h": np.asarray(W_h),
        "b_h": np.zeros(H),
        "W_y": rng.standard_normal((V, H)) / np.sqrt(H),
        "b_y": np.zeros(V),
    }
    return {k: v.astype(dtype) for k, v in params.items()}
