"""Recording gradient flow during training, and the alert: how much gradient reaches
every time step, training step by training step, and when the earliest steps stop
hearing from the loss. Pure logic, arrays in and arrays or an Alert out; the views
that draw a record are in dashboard.

    GradientRecorder  an on_step hook for seqmodels.train: per training step, the
                      loss, ||dL/dh_t|| for every t (state_gradients.hidden_state_gradients),
                      and the recurrent spectrum (eigenvalues of W_h for the RNN; for the
                      LSTM the mean forget gate of each unit, the eigenvalues of the
                      cell-path Jacobian dc_t/dc_{t-1} = diag(f_t)); or fed by hand with add()
    GradientRecord    what was recorded, as arrays
    relative_norms    ||dL/dh_t|| / ||dL/dh_T|| for every recorded step
    early_fraction    the largest of those fractions over the earliest time steps
    find_alert, Alert the first training step at which that fraction fell below a threshold
"""

from dataclasses import dataclass

import numpy as np
import torch

from .gradients import eigenvalues
from .seqmodels import TokenModel
from .state_gradients import hidden_state_gradients


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


# ---------------------------------------------------------------- the alert


def check_threshold(threshold):
    """Raise a ValueError unless threshold is a number strictly between 0 and 1."""
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
    check_threshold(threshold)
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
