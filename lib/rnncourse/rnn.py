"""A tanh RNN in NumPy, batch-first: forward, backpropagation through time, loss.

Notation as in the syllabus:
    z_t = W_x x_t + W_h h_{t-1} + b_h,   h_t = tanh(z_t),   y_t = W_y h_t + b_y
Code works on row vectors (a batch is (N, ...)), so W_x x_t is written x_t @ W_x.T.
"""

import numpy as np

from .checks import check_shape


def rnn_step_forward(x_t, h_prev, W_x, W_h, b_h):
    """One time step of a tanh RNN.

    x_t:    (N, D) inputs at this step
    h_prev: (N, H) hidden state from the previous step
    W_x:    (H, D), W_h: (H, H), b_h: (H,)
    returns h_t (N, H) and a cache for rnn_step_backward
    """
    H, D = np.shape(W_x)
    N = np.shape(x_t)[0] if np.ndim(x_t) == 2 else None
    check_shape("x_t", x_t, (None, D), ("N", "D"))
    check_shape("h_prev", h_prev, (N, H), ("N", "H"))
    check_shape("W_h", W_h, (H, H), ("H", "H"))
    check_shape("b_h", b_h, (H,), ("H",))
    z_t = x_t @ W_x.T + h_prev @ W_h.T + b_h
    h_t = np.tanh(z_t)
    return h_t, (x_t, h_prev, W_x, W_h, h_t)


def rnn_step_backward(dh_t, cache):
    """Backward pass of one step.

    dh_t:  (N, H) gradient of the loss with respect to h_t
    cache: from rnn_step_forward
    returns dx_t (N, D), dh_prev (N, H), dW_x (H, D), dW_h (H, H), db_h (H,)
    """
    x_t, h_prev, W_x, W_h, h_t = cache
    # tanh'(z_t) = 1 - tanh(z_t)^2 = 1 - h_t^2: computed from the output, not from z_t
    dz_t = dh_t * (1.0 - h_t**2)
    dx_t = dz_t @ W_x
    dh_prev = dz_t @ W_h  # the column form is W_h^T dz_t
    dW_x = dz_t.T @ x_t
    dW_h = dz_t.T @ h_prev
    db_h = dz_t.sum(axis=0)
    return dx_t, dh_prev, dW_x, dW_h, db_h


def rnn_forward(x, h0, W_x, W_h, b_h):
    """Run the RNN over whole sequences.

    x:  (N, T, D) inputs
    h0: (N, H) initial hidden state (use zeros for h_0 = 0)
    returns h (N, T, H) with h[:, t-1] = h_t, and a cache for rnn_backward
    """
    H, D = np.shape(W_x)
    check_shape("x", x, (None, None, D), ("N", "T", "D"))
    N, T, _ = x.shape
    check_shape("h0", h0, (N, H), ("N", "H"))
    h = np.empty((N, T, H), dtype=np.result_type(x, W_h))
    caches = []
    h_t = h0
    for t in range(T):
        h_t, cache = rnn_step_forward(x[:, t], h_t, W_x, W_h, b_h)
        h[:, t] = h_t
        caches.append(cache)
    return h, caches


def rnn_backward(dh, caches):
    """Backpropagation through time.

    dh:     (N, T, H) gradient of the loss with respect to each h_t, from the
            loss at that step only (what the output layer sends down)
    caches: from rnn_forward
    returns a dict of gradients: x (N, T, D), h0 (N, H), W_x, W_h, b_h, and
            h (N, T, H): the total gradient reaching each h_t, from the loss at
            step t and from every later step (plot its norm per step)
    """
    N, T, H = dh.shape
    check_shape("dh", dh, (None, len(caches), None), ("N", "T", "H"))
    x_1, _, W_x, W_h, _ = caches[0]
    dx = np.zeros((N, T, x_1.shape[1]), dtype=dh.dtype)
    dh_reach = np.zeros_like(dh)
    dW_x, dW_h, db_h = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros(H, dh.dtype)
    dh_next = np.zeros((N, H), dtype=dh.dtype)  # gradient flowing back from step t+1
    for t in reversed(range(T)):
        dh_reach[:, t] = dh[:, t] + dh_next
        dx[:, t], dh_next, dW_x_t, dW_h_t, db_h_t = rnn_step_backward(dh_reach[:, t], caches[t])
        dW_x += dW_x_t  # the same weights at every step: their gradients add up
        dW_h += dW_h_t
        db_h += db_h_t
    return {"x": dx, "h0": dh_next, "W_x": dW_x, "W_h": dW_h, "b_h": db_h, "h": dh_reach}


def softmax(y):
    """Softmax over the last axis, shifted for numerical safety."""
    e = np.exp(y - y.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_cross_entropy(y, targets, mask=None):
    """Mean cross-entropy of softmax(y) against integer targets.

    y:       (N, T, V) scores
    targets: (N, T) integer class indices in [0, V)
    mask:    (N, T) optional, 1 where a step counts and 0 for padding
    returns loss (float, mean over counted steps) and dy (N, T, V)
    """
    N, T, V = np.shape(y)
    check_shape("targets", targets, (N, T), ("N", "T"))
    mask = np.ones((N, T)) if mask is None else check_shape("mask", mask, (N, T), ("N", "T"))
    count = mask.sum()
    if count == 0:
        raise ValueError("mask has no counted steps")
    p = softmax(y)
    n_idx, t_idx = np.meshgrid(np.arange(N), np.arange(T), indexing="ij")
    p_target = p[n_idx, t_idx, targets]
    loss = -(np.log(np.maximum(p_target, 1e-300)) * mask).sum() / count
    dy = p.copy()
    dy[n_idx, t_idx, targets] -= 1.0
    dy *= (mask / count)[:, :, None]
    return float(loss), dy


def rnn_loss(params, x, targets, mask=None, h0=None):
    """Forward and backward through the whole model: RNN, output layer, loss.

    params:  dict with W_x (H, D), W_h (H, H), b_h (H,), W_y (V, H), b_y (V,)
    x:       (N, T, D) inputs; targets (N, T) integers; mask (N, T) optional
    h0:      (N, H) initial state, zeros if None
    returns loss, grads (a dict with the same keys as params), and h_grad
            (N, T, H): the gradient reaching each hidden state
    """
    W_x, W_h, b_h, W_y, b_y = (params[k] for k in ("W_x", "W_h", "b_h", "W_y", "b_y"))
    N, H = np.shape(x)[0], W_h.shape[0]
    check_shape("W_y", W_y, (None, H), ("V", "H"))
    h0 = np.zeros((N, H), dtype=W_h.dtype) if h0 is None else h0
    h, caches = rnn_forward(x, h0, W_x, W_h, b_h)
    y = h @ W_y.T + b_y
    loss, dy = softmax_cross_entropy(y, targets, mask)
    grads = rnn_backward(dy @ W_y, caches)
    grads_out = {k: grads[k] for k in ("W_x", "W_h", "b_h")}
    grads_out["W_y"] = np.einsum("ntv,nth->vh", dy, h)
    grads_out["b_y"] = dy.sum(axis=(0, 1))
    return loss, grads_out, grads["h"]


def clip_by_global_norm(grads, max_norm):
    """Scale all gradients together so that their joint L2 norm is at most max_norm.

    grads:    dict of arrays
    returns (clipped dict, norm before clipping); the direction never changes
    """
    total = float(np.sqrt(sum(np.sum(g**2) for g in grads.values())))
    scale = min(1.0, max_norm / total) if total > 0 else 1.0
    return {k: g * scale for k, g in grads.items()}, total
