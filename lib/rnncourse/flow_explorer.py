"""The gradient-flow explorer of lecture 05: how much of a gradient at h_T reaches
each earlier h_k.

Two layers, kept apart so the numbers can be tested without drawing anything:
    gradient_flow(...)        the pure computation: per-step gradient norms and the bound
                              (the norms by gradients.gradient_norm_by_lag)
    plot_gradient_flow(...)   one matplotlib figure of those numbers, log scale
    widget(...)               ipywidgets controls that redraw the plot

The network is a recurrent net with no read-out, run on random input drive u_t:
    z_t = W_h h_{t-1} + u_t,   h_t = act(z_t),   h_0 = 0,
and a unit gradient is placed at h_T. Backprop multiplies by the transposed
step Jacobian J_t = diag(act'(z_t)) W_h at every step, so the norm reaching h_k obeys
    ||dL/dh_k|| <= (gamma * ||W_h||_2)^(T - k),
with gamma the largest value of act' (tanh 1, sigmoid 1/4, ReLU 1).
"""

import numpy as np

from .checks import check_shape
from .gradients import (
    ACTIVATIONS,
    get_activation,
    gradient_norm_by_lag,
    spectral_norm,
    spectral_radius,
)
from .init import orthogonal, with_spectral_radius

W_H_KINDS = ("orthogonal", "gaussian")


def recurrent_matrix(H, radius, kind, rng):
    """An (H, H) W_h with spectral radius `radius`.

    kind "orthogonal": radius times an orthogonal matrix, so ||W_h||_2 = radius too;
    kind "gaussian":   a Gaussian matrix rescaled to that radius; it is not normal,
                       and its spectral norm is about twice its spectral radius.
    """
    if kind == "orthogonal":
        return orthogonal(H, rng, gain=radius)
    if kind == "gaussian":
        return with_spectral_radius(H, radius, rng)
    raise ValueError(f"kind must be one of {W_H_KINDS}, got {kind!r}")


def hidden_states(W_h, u, activation="tanh"):
    """Run h_t = act(W_h h_{t-1} + u_t) from h_0 = 0.

    W_h: (H, H); u: (T, H) input drive, u[t-1] = u_t
    returns h (T, H) with h[t-1] = h_t
    """
    act, _, _ = get_activation(activation)
    H = np.shape(W_h)[0]
    check_shape("W_h", W_h, (H, H), ("H", "H"))
    check_shape("u", u, (None, H), ("T", "H"))
    h = np.empty_like(u, dtype=np.float64)
    h_t = np.zeros(H)
    for t in range(len(u)):
        h_t = act(W_h @ h_t + u[t])
        h[t] = h_t
    return h


def gradient_flow(T, radius, activation="tanh", H=32, kind="orthogonal", input_scale=0.5,
                  trials=1, seed=0):
    """The numbers the explorer plots.

    T:           sequence length; radius: spectral radius of W_h
    activation:  "tanh", "sigmoid" or "relu"; kind: "orthogonal" or "gaussian" W_h
    input_scale: standard deviation of the random drive u_t added to z_t
    trials:      independent draws of W_h, drive and the unit gradient at h_T
    returns a dict:
        k       (T + 1,) steps 0 .. T
        norms   (trials, T + 1) ||dL/dh_k|| for a unit gradient at h_T
        typical (T + 1,) geometric mean over trials (the right average for products)
        bound   (trials, T + 1) (gamma ||W_h||_2)^(T - k) of each trial's W_h
        gamma, spectral_radius (trials,), spectral_norm (trials,)
    """
    _, _, gamma = get_activation(activation)
    if T < 1 or trials < 1:
        raise ValueError(f"T and trials must be at least 1, got T={T}, trials={trials}")
    rng = np.random.default_rng(seed)
    k = np.arange(T + 1)
    norms, bound, radii, snorms = [], [], [], []
    for _ in range(trials):
        W_h = recurrent_matrix(H, radius, kind, rng)
        u = input_scale * rng.standard_normal((T, H))
        dh_T = rng.standard_normal(H)
        dh_T /= np.linalg.norm(dh_T)
        h = hidden_states(W_h, u, activation)
        norms.append(gradient_norm_by_lag(h, W_h, dh_T, activation)[::-1])  # by step k
        snorms.append(spectral_norm(W_h))
        radii.append(spectral_radius(W_h))
        bound.append((gamma * snorms[-1]) ** (T - k).astype(np.float64))
    norms = np.array(norms)
    with np.errstate(divide="ignore"):
        typical = np.exp(np.log(norms).mean(axis=0))
    return {
        "k": k,
        "norms": norms,
        "typical": typical,
        "bound": np.array(bound),
        "gamma": gamma,
        "spectral_radius": np.array(radii),
        "spectral_norm": np.array(snorms),
        "settings": dict(T=T, radius=radius, activation=activation, H=H, kind=kind,
                         input_scale=input_scale, trials=trials, seed=seed),
    }


def plot_gradient_flow(flow, ax=None):
    """Draw a gradient_flow result: norms per step on a log scale, the bound dashed.

    Zero norms (every unit of a ReLU net dead) cannot sit on a log axis and are left out.
    returns the matplotlib Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    k, norms = flow["k"], flow["norms"]
    shown = np.where(norms > 0, norms, np.nan)
    if len(norms) > 1:
        ax.semilogy(k, shown.T, color="tab:blue", alpha=0.25, lw=0.8)
    typical = np.where(flow["typical"] > 0, flow["typical"], np.nan)
    label = "gradient norm" + (" (geometric mean)" if len(norms) > 1 else "")
    ax.semilogy(k, typical, color="tab:blue", lw=2, label=label)
    ax.semilogy(k, flow["bound"].max(axis=0), "k--", lw=1.2,
                label=r"bound $(\gamma\,\|W_h\|_2)^{T-k}$")
    s = flow["settings"]
    ax.set_title(f"{s['activation']}, {s['kind']} $W_h$, radius {s['radius']:g}, T = {s['T']}")
    ax.set_xlabel("step k")
    ax.set_ylabel(r"$\|\partial L / \partial h_k\|$")
    finite = np.concatenate([shown[np.isfinite(shown)], [1.0]])
    ax.set_ylim(max(finite.min() / 10, 1e-60), max(finite.max(), 1.0) * 1e3)
    ax.legend(loc="lower right", fontsize=8)
    return ax


def widget(H=32, seed=0, T=50, radius=0.9, activation="tanh", kind="orthogonal",
           input_scale=0.5):
    """An ipywidgets panel: sliders for T, radius and input drive, menus for the
    activation and the kind of W_h; every change recomputes gradient_flow and redraws.

    returns the widget (display it, or leave it as a cell's last expression)
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    controls = {
        "T": widgets.IntSlider(value=T, min=5, max=200, step=5, description="T"),
        "radius": widgets.FloatSlider(value=radius, min=0.1, max=2.0, step=0.05,
                                      description="radius"),
        "activation": widgets.Dropdown(options=list(ACTIVATIONS), value=activation,
                                       description="activation"),
        "kind": widgets.Dropdown(options=list(W_H_KINDS), value=kind, description="W_h"),
        "input_scale": widgets.FloatSlider(value=input_scale, min=0.0, max=2.0, step=0.1,
                                           description="input"),
    }
    out = widgets.Output()

    def redraw(_change=None):
        values = {name: w.value for name, w in controls.items()}
        flow = gradient_flow(H=H, seed=seed, **values)
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(6, 3.5))
            plot_gradient_flow(flow, ax)
            plt.show()
            plt.close(fig)

    for w in controls.values():
        w.observe(redraw, names="value")
    redraw()
    names = list(controls)
    return widgets.VBox([widgets.HBox([controls[n] for n in names[:3]]),
                         widgets.HBox([controls[n] for n in names[3:]]), out])
