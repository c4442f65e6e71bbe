"""A gradient-flow dashboard: record how much gradient reaches every time step
during real training, raise an alert when the earliest steps stop hearing from
the loss, and look at it (static matplotlib figure, or live with ipywidgets).

Recording and alert logic are pure (arrays in, arrays or an Alert out); the
views only draw what a record holds.

Recording
    hidden_state_gradients  the total gradient reaching every h_t (through the
                      read-out at step t and through every later step), from the
                      read-out's part that a TokenModel's hs.grad holds: nn.RNN and
                      nn.LSTM keep the recurrence inside one op, so hs.grad alone
                      misses the part that flows back through time
    GradientRecorder  an on_step hook for seqmodels.train: per training step, the
                      loss, ||dL/dh_t|| for every t, and the recurrent spectrum
                      (eigenvalues of W_h for the RNN; for the LSTM the mean
                      forget gate of each unit, the eigenvalues of the cell-path
                      Jacobian dc_t/dc_{t-1} = diag(f_t)); or fed by hand with add()
    GradientRecord    what was recorded, as arrays
    ProbedTokenModel  a TokenModel that keeps what reach_grad() needs (for one-off
                      measurements outside a training loop; probed_copy makes one)
Alert
    relative_norms, find_alert, Alert
Views
    plot_heatmap, plot_spectrum, plot_profile, plot_reach, static_figure, live
"""

from dataclasses import dataclass

import numpy as np
import torch

from .gradients import eigenvalues
from .seqmodels import TokenModel

# ---------------------------------------------------------------- recording


@torch.no_grad()
def hidden_state_gradients(model, tokens, hs, direct):
    """The total gradient reaching every hidden state, from the read-out's part.

    model:  a seqmodels.TokenModel ("rnn" or "lstm"), with the weights used in the
            forward pass that made hs
    tokens: (N, T) the inputs of that pass
    hs:     (N, T, H) its hidden states h_1 .. h_T
    direct: (N, T, H) the read-out's part of dL/dh_t (hs.grad after backward)
    returns reach (N, T, H) with reach[:, t-1] = dL/dh_t, and for the LSTM the forget
            gates f_t (N, T, H) (None for the RNN)

    h_t feeds the read-out at step t and z_{t+1} = W_x x_{t+1} + W_h h_t + b, so going
    backwards dL/dh_t = direct_t + W_h^T dL/dz_{t+1}, and for the tanh RNN
    dL/dz_t = dL/dh_t * (1 - h_t^2). The LSTM's dL/dz_t also needs the cell path:
    dL/dc_t = dL/dh_t * o_t (1 - tanh(c_t)^2) + dL/dc_{t+1} * f_{t+1}.
    Nothing here builds a graph: it runs after the training step's own backward.
    """
    cell = model.cell
    W_hh = cell.weight_hh_l0
    N, T, H = hs.shape
    # time-major and contiguous, so that every per-step slice below is cheap
    direct = direct.transpose(0, 1).contiguous()
    hs_tm = hs.transpose(0, 1).contiguous()
    reach = torch.empty_like(direct)  # (T, N, H), filled from the last step back
    if model.kind == "rnn":
        dz_scale = (1.0 - hs_tm**2).unbind(0)  # tanh'(z_t), from the output h_t
        direct_steps, reach_steps = direct.unbind(0), reach.unbind(0)
        dz = None
        for t in reversed(range(T)):
            # dL/dh_t = direct_t + W_h^T dz_{t+1} (written for rows); the last step gets none
            dh = reach_steps[t].copy_(direct_steps[t]) if dz is None else torch.addmm(
                direct_steps[t], dz, W_hh, out=reach_steps[t])
            dz = dh * dz_scale[t]
        return reach.transpose(0, 1), None
    # LSTM: recompute the gates from the inputs and h_{t-1}, all steps at once and gate by
    # gate (PyTorch stacks i, f, g, o in the rows of the weights); W_x x_t for a one-hot x_t
    # is a column of W_x, hence the row lookup
    in_rows = (cell.weight_ih_l0.view(4, H, -1).transpose(1, 2)
               + (cell.bias_ih_l0 + cell.bias_hh_l0).view(4, 1, H))  # (4, V, H)
    h_prev = torch.cat([hs_tm.new_zeros(1, N, H), hs_tm[:-1]], dim=0).view(1, T * N, H)
    z = torch.baddbmm(in_rows.index_select(1, tokens.T.reshape(-1)), h_prev.expand(4, -1, -1),
                      W_hh.view(4, H, H).transpose(1, 2)).view(4, T, N, H)
    i, f, _, o = torch.sigmoid(z).unbind(0)
    g = _tanh(z[2])
    i_g = i * g
    # the two scans over time run in NumPy: on (N, H) slices its per-call cost is a
    # fraction of torch's, and the arrays are shared, not copied
    f_steps, i_g_steps = f.numpy(), i_g.numpy()
    c = np.zeros((T + 1, N, H), dtype=f_steps.dtype)  # c[t] holds c_t; c_0 = 0
    for t in range(T):
        np.multiply(f_steps[t], c[t], out=c[t + 1])
        c[t + 1] += i_g_steps[t]  # c_t = f_t c_{t-1} + i_t g_t
    c = torch.from_numpy(c)
    c, c_prev = c[1:], c[:-1]
    tanh_c = _tanh(c)
    # the derivatives, written with h_t = o_t tanh(c_t) and sigmoid' = s (1 - s)
    dc_from_dh = torch.addcmul(o, hs_tm, tanh_c, value=-1.0).numpy()  # o (1 - tanh^2 c)
    dz_o = torch.addcmul(hs_tm, hs_tm, o, value=-1.0).numpy()  # tanh(c) o (1 - o)
    # dc_t/dz for the input, forget and candidate gates, laid out as in z
    dz_ifg = hs_tm.new_empty(T, N, 3, H)
    torch.mul(g, torch.addcmul(i, i, i, value=-1.0), out=dz_ifg[:, :, 0])  # g i (1 - i)
    torch.mul(c_prev, torch.addcmul(f, f, f, value=-1.0), out=dz_ifg[:, :, 1])  # c f (1 - f)
    torch.addcmul(i, i_g, g, value=-1.0, out=dz_ifg[:, :, 2])  # i (1 - g^2)
    dz_ifg = dz_ifg.numpy()
    W = W_hh.detach().numpy()
    direct_np, reach_np = direct.numpy(), reach.numpy()
    dz = np.empty((N, 4, H), dtype=W.dtype)  # dL/dz_{t+1}, gate by gate
    dz_rows = dz.reshape(N, 4 * H)
    dc = np.zeros((N, H), dtype=W.dtype)
    for t in reversed(range(T)):
        dh = reach_np[t]
        if t == T - 1:
            dh[...] = direct_np[t]
        else:
            np.matmul(dz_rows, W, out=dh)  # W_h^T dz_{t+1}, written for rows
            dh += direct_np[t]
            dc *= f_steps[t + 1]  # the cell path: dc_{t+1}/dc_t = diag(f_{t+1})
        dc += dh * dc_from_dh[t]
        np.multiply(dc[:, None], dz_ifg[t], out=dz[:, :3])
        np.multiply(dh, dz_o[t], out=dz[:, 3])
    return reach.transpose(0, 1), f.transpose(0, 1)


def _tanh(x):
    """tanh(x) = 2 sigmoid(2x) - 1: the same values, and sigmoid is the faster kernel on
    the CPUs this course runs on."""
    return torch.sigmoid(2.0 * x).mul_(2.0).sub_(1.0)


class ProbedTokenModel(TokenModel):
    """A TokenModel that keeps its last inputs and hidden states, so that after
    backward reach_grad() returns the total dL/dh_t (see hidden_state_gradients).
    Its forward is TokenModel's own: the same numbers, the fused cell."""

    def forward(self, tokens):
        out, hs = super().forward(tokens)
        if hs.requires_grad:
            hs.retain_grad()
        self.tokens, self.hs = tokens, hs
        return out, hs

    def reach_grad(self):
        """(N, T, H) dL/dh_t for every t, after backward through the last forward."""
        hs = getattr(self, "hs", None)
        if hs is None or hs.grad is None:
            raise ValueError("no gradient to read: run forward, then backward, first")
        return hidden_state_gradients(self, self.tokens, hs.detach(), hs.grad)[0]


def probed_copy(model):
    """A ProbedTokenModel holding a copy of a TokenModel's parameters."""
    probed = ProbedTokenModel(model.kind, model.V, model.cell.hidden_size,
                              model.out.out_features, model.every_step)
    probed.to(model.out.weight.dtype).load_state_dict(model.state_dict())
    return probed


@dataclass(frozen=True)
class GradientRecord:
    """Gradient flow over one training run.

    kind:       "rnn" or "lstm"
    steps:      (S,) the training steps recorded
    loss:       (S,) the loss at each of them
    grad_norms: (S, T) ||dL/dh_t||, the norm over the batch and the hidden units
                of the gradient reaching h_t (column t-1 holds h_t)
    spectrum:   (S, H) complex: eigenvalues of W_h (RNN) as used in that step's
                forward pass, or the mean forget gate of each unit (LSTM), the
                eigenvalues of the cell path's Jacobian diag(f_t) on average
    label:      the name shown in the views ("vanilla RNN" or "LSTM" if empty)
    """

    kind: str
    steps: np.ndarray
    loss: np.ndarray
    grad_norms: np.ndarray
    spectrum: np.ndarray
    label: str = ""

    @property
    def name(self):
        return self.label or ("vanilla RNN" if self.kind == "rnn" else "LSTM")

    def __post_init__(self):
        S = len(self.steps)
        if S == 0:
            raise ValueError("the record is empty: no training step was recorded "
                             "(pass the recorder as on_step to seqmodels.train first)")
        for name, arr, ndim in (("loss", self.loss, 1), ("grad_norms", self.grad_norms, 2),
                                ("spectrum", self.spectrum, 2)):
            if np.ndim(arr) != ndim or len(arr) != S:
                raise ValueError(f"{name} has shape {np.shape(arr)}, expected {S} rows "
                                 f"(one per recorded step) and {ndim} axes")

    @property
    def T(self):
        return self.grad_norms.shape[1]

    def index(self, step):
        """Row of the recorded training step closest to `step` (at or before it)."""
        if step is None:
            return len(self.steps) - 1
        return int(np.clip(np.searchsorted(self.steps, step, side="right") - 1,
                           0, len(self.steps) - 1))


class GradientRecorder:
    """Records gradient flow, one training step at a time.

    As a hook: GradientRecorder(model) with a seqmodels.TokenModel, passed as
    on_step to seqmodels.train(model, ...). After each backward it turns hs.grad
    (the read-out's part) into the total dL/dh_t with hidden_state_gradients, and
    reads W_h's eigenvalues (RNN) or the mean forget gate per unit (LSTM). Training
    itself is untouched: same model, same fused cell, same numbers.
    every: record one training step in `every`
    By hand: GradientRecorder(kind="rnn"), then add(...) from any training loop,
    e.g. the NumPy one, whose rnn_loss already returns dL/dh_t.
    label: the name the views show
    .record gives a GradientRecord of what was seen so far.
    """

    def __init__(self, model=None, every=1, kind=None, label=""):
        if model is not None and not isinstance(model, TokenModel):
            raise ValueError(f"model must be a seqmodels.TokenModel, got {type(model).__name__}")
        if model is None and kind not in ("rnn", "lstm"):
            raise ValueError(f"without a model, kind must be 'rnn' or 'lstm', got {kind!r}")
        if not (isinstance(every, int) and every >= 1):
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.model, self.every, self.label = model, every, label
        self.kind = model.kind if model is not None else kind
        self._tokens = self._hook = None
        if model is not None:  # hs.grad and W_h are at hand in on_step; the inputs are not
            self._hook = model.register_forward_hook(self._keep_tokens)
        self._steps, self._loss, self._norms, self._spectrum = [], [], [], []

    def _keep_tokens(self, module, args, output):
        self._tokens = args[0]

    def close(self):
        """Stop watching the model's inputs (the record stays readable)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = self._tokens = None

    def add(self, step, loss, h_grad, spectrum):
        """Record one training step.

        h_grad:   (N, T, H) dL/dh_t for every t (array or tensor)
        spectrum: (H,) eigenvalues of W_h, or the LSTM's mean forget gate per unit
        """
        h_grad = h_grad.detach().numpy() if torch.is_tensor(h_grad) else np.asarray(h_grad)
        if h_grad.ndim != 3:
            raise ValueError(f"h_grad has shape {h_grad.shape}, expected (N, T, H)")
        self._steps.append(int(step))
        self._loss.append(float(loss))
        self._norms.append(np.linalg.norm(h_grad, axis=(0, 2)))
        self._spectrum.append(np.asarray(spectrum, dtype=complex))

    def __call__(self, step, loss, hs):
        model = self.model
        if model is None:
            raise ValueError("this recorder has no model: call add() from your loop instead")
        if step % self.every:
            return
        if hs.grad is None:
            raise ValueError("hs.grad is None: call hs.retain_grad() before backward "
                             "(seqmodels.train does when it is given on_step)")
        reach, forget = hidden_state_gradients(model, self._tokens, hs.detach(), hs.grad)
        if model.kind == "rnn":
            spectrum = eigenvalues(model.cell.weight_hh_l0.detach().double().numpy())
        else:
            spectrum = forget.mean(dim=(0, 1)).double().numpy()
        self.add(step, loss, reach, spectrum)

    @property
    def record(self):
        return GradientRecord(
            kind=self.kind,
            steps=np.array(self._steps, dtype=int),
            loss=np.array(self._loss),
            grad_norms=np.array(self._norms),
            spectrum=np.array(self._spectrum),
            label=self.label,
        )


# ---------------------------------------------------------------- alert


def _check_threshold(threshold):
    if not (isinstance(threshold, int | float | np.floating) and 0 < threshold < 1):
        raise ValueError(f"threshold is a fraction of the last step's gradient and must lie "
                         f"strictly between 0 and 1, got {threshold!r}")


def relative_norms(record):
    """(S, T) ||dL/dh_t|| / ||dL/dh_T||: each step's gradient as a fraction of the last's."""
    last = record.grad_norms[:, -1]
    if np.any(last <= 0):
        bad = record.steps[np.argmax(last <= 0)]
        raise ValueError(f"the gradient at the last time step is zero at training step {bad}: "
                         "the fraction is undefined (does the loss use the last step?)")
    return record.grad_norms / last[:, None]


@dataclass(frozen=True)
class Alert:
    """The gradient reaching the earliest steps fell below `threshold` of the last step's.

    step:  the first training step where it happened
    lag:   at that step, the smallest lag T - t at which ||dL/dh_t|| / ||dL/dh_T||
           was already below the threshold (how far back the gradient still reached)
    ratio: the fraction that reached the earliest steps at that training step
    """

    name: str
    step: int
    lag: int
    ratio: float
    threshold: float
    T: int

    def __str__(self):
        return (f"ALERT {self.name}: at training step {self.step} the gradient reaching "
                f"h_1 is {self.ratio:.1e} of the last step's (threshold {self.threshold:g}); "
                f"it falls below the threshold at lag {self.lag} (h_{self.T - self.lag} "
                f"of h_1..h_{self.T})")


def early_fraction(record, early=1):
    """(S,) the largest fraction of the last step's gradient reaching any of h_1..h_early."""
    if not (isinstance(early, int | np.integer) and 1 <= early < record.T):
        raise ValueError(f"early must be an integer in [1, T - 1] = [1, {record.T - 1}], "
                         f"got {early!r}")
    return relative_norms(record)[:, :early].max(axis=1)


def find_alert(record, threshold, early=1):
    """The first recorded training step at which every one of the `early` earliest
    steps receives less than `threshold` of the last step's gradient, or None.

    record:    a GradientRecord
    threshold: a fraction in (0, 1), e.g. 1e-3
    early:     how many of the first time steps count as "the earliest"
    returns an Alert, or None when the gradient never fell that low
    """
    _check_threshold(threshold)
    frac = early_fraction(record, early)
    below = np.nonzero(frac < threshold)[0]
    if below.size == 0:
        return None
    s = int(below[0])
    rel = relative_norms(record)[s]
    lags = np.arange(1, record.T)  # lag l is h_{T-l}, column T-1-l
    lag = int(lags[np.argmax(rel[record.T - 1 - lags] < threshold)])
    return Alert(name=record.name, step=int(record.steps[s]), lag=lag, ratio=float(frac[s]),
                 threshold=float(threshold), T=record.T)


# ---------------------------------------------------------------- views

PALETTE = ("tab:red", "tab:orange", "tab:blue", "tab:green", "tab:purple")


def plot_heatmap(record, ax, threshold=None, early=1, step=None, vmin=None, vmax=None):
    """||dL/dh_t|| as colour (log scale), time step t up, training step across.

    threshold: if given, marks the alert (white cross) and the first training step
               at which it fires (dashed line)
    step:      if given, marks that training step (solid line)
    """
    import matplotlib.colors as mcolors

    norms = np.maximum(record.grad_norms, np.finfo(float).tiny)
    steps = record.steps
    half = (steps[1] - steps[0]) / 2 if len(steps) > 1 else 0.5
    mesh = ax.imshow(norms.T, origin="lower", aspect="auto", interpolation="nearest",
                     extent=(steps[0] - half, steps[-1] + half, 0.5, record.T + 0.5),
                     norm=mcolors.LogNorm(vmin=vmin, vmax=vmax), cmap="viridis")
    ax.figure.colorbar(mesh, ax=ax, label="||dL/dh_t|| (log scale)")
    ax.set(title=f"{record.name}: gradient reaching each h_t", xlabel="training step",
           ylabel="time step t")
    if step is not None:
        ax.axvline(record.steps[record.index(step)], color="white", lw=1)
    if threshold is not None:
        alert = find_alert(record, threshold, early)
        if alert is not None:
            ax.axvline(alert.step, color="white", ls="--", lw=1)
            ax.plot([alert.step], [record.T - alert.lag], "wx", ms=9, mew=2)
    return mesh


def plot_spectrum(record, ax, step=None, colour=PALETTE[0]):
    """The recurrent spectrum on the complex plane with the unit circle.

    RNN: eigenvalues of W_h at the first recorded step (grey) and at `step`
    (coloured). LSTM: the mean forget gate of each unit: on the real axis, inside (0, 1).
    """
    s = record.index(step)
    theta = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(theta), np.sin(theta), color="black", lw=0.8, label="unit circle")
    ax.axhline(0, color="grey", lw=0.4)
    ax.axvline(0, color="grey", lw=0.4)
    first, now = record.spectrum[0], record.spectrum[s]
    what = "eigenvalues of W_h" if record.kind == "rnn" else "mean forget gate per unit"
    ax.scatter(first.real, first.imag, s=14, color="grey", alpha=0.6,
               label=f"step {record.steps[0]}")
    ax.scatter(now.real, now.imag, s=14, color=colour, label=f"step {record.steps[s]}")
    ax.set_aspect("equal")
    lim = max(1.1, float(np.abs(record.spectrum).max()) * 1.05)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="real part", ylabel="imaginary part",
           title=f"{record.name}: {what}")
    ax.legend(loc="lower left", fontsize="small")


def plot_profile(records, ax, step=None, threshold=None):
    """||dL/dh_t|| / ||dL/dh_T|| against the lag T - t at one training step, log scale."""
    for j, record in enumerate(records):
        s = record.index(step)
        rel = relative_norms(record)[s]
        lags = np.arange(record.T)[::-1]
        ax.semilogy(lags, rel, color=PALETTE[j % len(PALETTE)], marker=".", ms=3,
                    label=f"{record.name}, step {record.steps[s]}")
    if threshold is not None:
        ax.axhline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set(title="gradient reaching h_t, as a fraction of the last step's",
           xlabel="lag T - t (steps back from the end)",
           ylabel="||dL/dh_t|| / ||dL/dh_T|| (log scale)")
    ax.legend(fontsize="small")


def plot_reach(records, ax, threshold=None, early=1, step=None):
    """The fraction reaching the earliest steps over training, log scale, with alerts."""
    for j, record in enumerate(records):
        colour = PALETTE[j % len(PALETTE)]
        ax.semilogy(record.steps, early_fraction(record, early), color=colour, label=record.name)
        if threshold is not None:
            alert = find_alert(record, threshold, early)
            if alert is not None:
                ax.plot([alert.step], [alert.ratio], "o", mfc="none", ms=10, color=colour)
    if threshold is not None:
        ax.axhline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:g}")
    if step is not None:
        ax.axvline(step, color="grey", lw=1)
    first = "h_1" if early == 1 else f"max over h_1..h_{early}"
    ax.set(title=f"reach: gradient at {first} / at h_T over training", xlabel="training step",
           ylabel="fraction of the last step's (log scale)")
    ax.legend(fontsize="small")


def static_figure(records, threshold=1e-3, early=1, step=None):
    """Side by side, one column per record: heat map, spectrum; then the profile at
    `step` and the reach over training for all records together. Returns the Figure."""
    import matplotlib.pyplot as plt

    records = list(records)
    if not records:
        raise ValueError("records is empty: pass at least one GradientRecord")
    _check_threshold(threshold)
    n = len(records)
    fig = plt.figure(figsize=(5.5 * max(n, 2), 13))
    grid = fig.add_gridspec(3, 2 * n, height_ratios=[1, 1.15, 1], left=0.05, right=0.97,
                            bottom=0.05, top=0.96, wspace=0.6, hspace=0.3)
    lo = min(float(np.min(r.grad_norms[r.grad_norms > 0], initial=np.inf)) for r in records)
    hi = max(float(np.max(r.grad_norms)) for r in records)
    for j, record in enumerate(records):
        plot_heatmap(record, fig.add_subplot(grid[0, 2 * j:2 * j + 2]), threshold, early, step,
                     vmin=lo, vmax=hi)
        plot_spectrum(record, fig.add_subplot(grid[1, 2 * j:2 * j + 2]), step,
                      PALETTE[j % len(PALETTE)])
    plot_profile(records, fig.add_subplot(grid[2, :n]), step, threshold)
    plot_reach(records, fig.add_subplot(grid[2, n:]), threshold, early, step)
    return fig


def alert_text(records, threshold, early=1):
    """One line per record: the alert, or that the gradient never fell that low."""
    lines = []
    for record in records:
        alert = find_alert(record, threshold, early)
        lines.append(str(alert) if alert is not None else
                     f"no alert for {record.name}: over {len(record.steps)} recorded steps "
                     f"the gradient reaching h_1 never fell below {threshold:g} of the last step's")
    return "\n".join(lines)


def live(records, threshold=1e-3, early=1):
    """The dashboard as ipywidgets: a slider over training steps, a threshold control
    and the alert text, redrawing static_figure on every change. Returns the widget."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    records = list(records)
    if not records:
        raise ValueError("records is empty: pass at least one GradientRecord")
    _check_threshold(threshold)
    steps = sorted({int(s) for r in records for s in r.steps})
    step_slider = widgets.SelectionSlider(options=steps, value=steps[-1],
                                          description="training step", continuous_update=False,
                                          layout=widgets.Layout(width="60%"))
    threshold_slider = widgets.FloatLogSlider(value=threshold, base=10, min=-8, max=-0.5,
                                              step=0.25, description="threshold",
                                              continuous_update=False, readout_format=".0e")
    message = widgets.HTML()
    figure_out = widgets.Output()

    def redraw(_=None):
        message.value = "<br>".join(alert_text(records, threshold_slider.value, early)
                                    .split("\n"))
        with figure_out:
            figure_out.clear_output(wait=True)
            fig = static_figure(records, threshold_slider.value, early, step_slider.value)
            fig.set_dpi(72)  # lighter to redraw and to store in the notebook
            display(fig)
            plt.close(fig)

    step_slider.observe(redraw, names="value")
    threshold_slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([step_slider, threshold_slider]), message, figure_out])
