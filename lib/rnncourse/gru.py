"""The GRU (Cho et al., 2014) in NumPy, in the course's notation: one step, and its
step Jacobian dh_t/dh_{t-1} split into the paths it sums (lecture 06).

    z_t  = sigmoid(W_z x_t + U_z h_{t-1} + b_z)        update gate: how much to renew
    r_t  = sigmoid(W_r x_t + U_r h_{t-1} + b_r)        reset gate: how much old state the
                                                       candidate may read
    h~_t = tanh(W x_t + U (r_t * h_{t-1}) + b)         candidate, reset="before" (Cho et al.)
    h~_t = tanh(W x_t + b + r_t * (U h_{t-1} + b_U))   candidate, reset="after" (nn.GRU)
    h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

The two candidates differ only in where the reset gate acts: before the matrix U (as
Cho et al. wrote it) or after it, with a bias b_U of its own inside (as PyTorch's nn.GRU
and nn.GRUCell and cuDNN compute it). params_from_torch reads an nn.GRUCell into this
notation; PyTorch's update gate is 1 - z_t (its h_t = (1 - z) * n + z * h_{t-1}), so its
update-gate block enters with the opposite sign.

Layout: numerator, row i of a Jacobian is unit i of h_t (as gradients.step_jacobian).
Code works on row vectors, so W x_t is written x_t @ W.T.
"""

import numpy as np

from .checks import check_shape

RESETS = ("before", "after")
_GATE_NAMES = ("W_z", "U_z", "b_z", "W_r", "U_r", "b_r", "W", "U", "b")


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _check_params(params, reset):
    """D and H of a parameter dict, after checking every shape; b_U only for reset="after"."""
    if reset not in RESETS:
        raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
    missing = [k for k in _GATE_NAMES + (("b_U",) if reset == "after" else ()) if k not in params]
    if missing:
        raise ValueError(f"params is missing {missing} (reset={reset!r})")
    H, D = np.shape(params["W_z"])
    for name in ("W_z", "W_r", "W"):
        check_shape(name, params[name], (H, D), ("H", "D"))
    for name in ("U_z", "U_r", "U"):
        check_shape(name, params[name], (H, H), ("H", "H"))
    for name in ("b_z", "b_r", "b") + (("b_U",) if reset == "after" else ()):
        check_shape(name, params[name], (H,), ("H",))
    return D, H


def gru_step_forward(x_t, h_prev, params, reset="before"):
    """One time step of a GRU.

    x_t:    (N, D) inputs at this step
    h_prev: (N, H) hidden state from the previous step
    params: dict of W_z, W_r, W (H, D); U_z, U_r, U (H, H); b_z, b_r, b (H,);
            and b_U (H,) when reset="after"
    reset:  "before" (Cho et al.: U (r * h)) or "after" (PyTorch: r * (U h + b_U))
    returns h_t (N, H) and a cache (a dict: z, r, h_tilde, Uh and the inputs)
    """
    D, H = _check_params(params, reset)
    check_shape("x_t", x_t, (None, D), ("N", "D"))
    check_shape("h_prev", h_prev, (np.shape(x_t)[0], H), ("N", "H"))
    p = params
    z = _sigmoid(x_t @ p["W_z"].T + h_prev @ p["U_z"].T + p["b_z"])
    r = _sigmoid(x_t @ p["W_r"].T + h_prev @ p["U_r"].T + p["b_r"])
    if reset == "before":
        Uh = None
        h_tilde = np.tanh(x_t @ p["W"].T + (r * h_prev) @ p["U"].T + p["b"])
    else:
        Uh = h_prev @ p["U"].T + p["b_U"]  # U h_{t-1} + b_U, kept for the Jacobian
        h_tilde = np.tanh(x_t @ p["W"].T + p["b"] + r * Uh)
    h_t = (1.0 - z) * h_prev + z * h_tilde  # the update-gate path: h_{t-1} scaled, not squashed
    cache = {"x_t": x_t, "h_prev": h_prev, "params": params, "reset": reset,
             "z": z, "r": r, "h_tilde": h_tilde, "Uh": Uh}
    return h_t, cache


def gru_jacobian_terms(x_t, h_prev, params, reset="before"):
    """dh_t/dh_{t-1} of one example, as the four paths it is the sum of.

    x_t: (D,); h_prev: (H,) one example; params and reset as in gru_step_forward
    returns a dict of (H, H) matrices, numerator layout (row i = unit i of h_t):
      "update":      diag(1 - z_t), the direct path through the update gate's
                     (1 - z_t) * h_{t-1}
      "candidate":   through h~_t with both gates held fixed,
                     diag(z_t (1 - h~_t^2)) U diag(r_t)      (reset="before")
                     diag(z_t (1 - h~_t^2) r_t) U            (reset="after")
      "reset_gate":  through r_t inside h~_t
      "update_gate": through z_t, diag((h~_t - h_{t-1}) z_t (1 - z_t)) U_z
    Their sum is the full Jacobian; "update" + "candidate" is the one with the gates fixed.
    """
    D, H = _check_params(params, reset)
    check_shape("x_t", x_t, (D,), ("D",))
    check_shape("h_prev", h_prev, (H,), ("H",))
    _, cache = gru_step_forward(x_t[None], h_prev[None], params, reset)
    z, r, h_tilde = cache["z"][0], cache["r"][0], cache["h_tilde"][0]
    U, U_r, U_z = params["U"], params["U_r"], params["U_z"]
    dtanh = 1.0 - h_tilde**2              # tanh' written from its output h~_t
    dr = (r * (1.0 - r))[:, None] * U_r   # dr_t/dh_{t-1} = diag(sigmoid') U_r
    if reset == "before":                 # a = W x + U (r * h) + b
        candidate = (z * dtanh)[:, None] * U * r[None, :]
        reset_gate = (z * dtanh)[:, None] * (U * h_prev[None, :]) @ dr
    else:                                 # a = W x + b + r * (U h + b_U)
        candidate = (z * dtanh * r)[:, None] * U
        reset_gate = (z * dtanh * cache["Uh"][0])[:, None] * dr
    return {
        "update": np.diag(1.0 - z),
        "candidate": candidate,
        "reset_gate": reset_gate,
        "update_gate": ((h_tilde - h_prev) * z * (1.0 - z))[:, None] * U_z,
    }


def gru_step_jacobian(x_t, h_prev, params, reset="before", gates_fixed=False):
    """dh_t/dh_{t-1} of one GRU step, numerator layout.

    x_t: (D,); h_prev: (H,) one example; params and reset as in gru_step_forward
    gates_fixed: if True, z_t and r_t are held fixed: diag(1 - z_t) + the candidate's term
    returns (H, H): row i holds the derivatives of h_t[i]
    """
    terms = gru_jacobian_terms(x_t, h_prev, params, reset)
    J = terms["update"] + terms["candidate"]
    if not gates_fixed:
        J = J + terms["reset_gate"] + terms["update_gate"]
    return J


def params_from_torch(cell):
    """The parameters of an nn.GRUCell in this module's notation (use reset="after").

    PyTorch stacks three blocks in the rows of weight_ih (3H, D) and weight_hh (3H, H),
    and of bias_ih and bias_hh (3H,), in the order r, z, n:
      rows [0, H):   reset gate   -> W_r, U_r, b_r = b_ir + b_hr
      rows [H, 2H):  update gate  -> PyTorch's z is our 1 - z, so W_z, U_z, b_z are
                                     minus its blocks (sigmoid(-a) = 1 - sigmoid(a))
      rows [2H, 3H): candidate n  -> W, U, b = b_in, and b_U = b_hn (inside r * (.))
    cell: nn.GRUCell(D, H) with biases
    returns a dict of float64 NumPy arrays
    """
    H = cell.hidden_size
    if getattr(cell, "bias_ih", None) is None:
        raise ValueError(f"cell must be an nn.GRUCell with biases, got {type(cell).__name__}")
    check_shape("cell.weight_ih", cell.weight_ih, (3 * H, None), ("3H", "D"))
    w_ih, w_hh, b_ih, b_hh = (p.detach().cpu().double().numpy()
                              for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih,
                                        cell.bias_hh))
    r, z, n = slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H)
    return {
        "W_r": w_ih[r], "U_r": w_hh[r], "b_r": b_ih[r] + b_hh[r],
        "W_z": -w_ih[z], "U_z": -w_hh[z], "b_z": -(b_ih[z] + b_hh[z]),
        "W": w_ih[n], "U": w_hh[n], "b": b_ih[n], "b_U": b_hh[n],
    }
