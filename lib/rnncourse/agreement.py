"""The agreement experiment of lecture 04 (reused in 06 and 07): accuracy against
the distance to remember.

One model is trained from scratch for every (kind, distance, seed) on the library's
subject-verb agreement toy (tasks.agreement_batch), with the same budget for the RNN,
the LSTM and the GRU, and scored on a fixed held-out batch. Everything is seeded: the
model's initial weights by torch.manual_seed(seed), the training batches by
np.random.default_rng(seed), the test batch by its own fixed seed.
"""

import copy
import time
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .lstm import set_forget_bias
from .seqmodels import TokenModel, train
from .tasks import AGREE_PLURAL, AGREE_SINGULAR, AGREE_VOCAB, agreement_batch
from .torch_models import TokenGRU, set_keep_bias

# The budget every model gets in lecture 04, whatever its kind and distance.
BUDGET = {"H": 32, "steps": 200, "batch": 64, "lr": 3e-3, "clip": 1.0}
# The LSTM's forget-gate bias in lecture 04: f starts near sigmoid(3) = 0.95, not 0.5.
LSTM_FORGET_BIAS = 3.0
# The GRU's counterpart: its keep gate (PyTorch's z) starts near sigmoid(3) = 0.95.
GRU_KEEP_BIAS = 3.0
# Lecture 04 ends a run once it has learned: its mean training loss over the last
# STOP_WINDOW steps below STOP_LOSS (the right answer then gets about 99%).
STOP_LOSS, STOP_WINDOW = 0.01, 10
TEST_SIZE, TEST_SEED = 1000, 12345
KINDS = ("rnn", "lstm", "gru")


class AgreementRun(NamedTuple):
    """One trained model: the model, its training losses (one per Adam step taken),
    its test accuracy, and the wall time of its training in seconds."""

    model: nn.Module
    losses: list
    accuracy: float
    seconds: float


def make_agreement_model(kind, seed, H=BUDGET["H"], forget_bias=None, keep_bias=None):
    """A TokenModel (a torch_models.TokenGRU for "gru") for the agreement task with
    seeded initial weights.

    kind: "rnn", "lstm" or "gru"
    forget_bias: None keeps PyTorch's initialisation, a number sets the LSTM's
                 forget-gate bias (lstm.set_forget_bias)
    keep_bias:   the same for the GRU's keep gate z (torch_models.set_keep_bias)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if forget_bias is not None and kind != "lstm":
        raise ValueError(f"forget_bias needs kind 'lstm', got {kind!r}")
    if keep_bias is not None and kind != "gru":
        raise ValueError(f"keep_bias needs kind 'gru', got {kind!r}")
    torch.manual_seed(seed)
    if kind == "gru":
        model = TokenGRU(AGREE_VOCAB, H, 2, every_step=False)
    else:
        model = TokenModel(kind, AGREE_VOCAB, H, 2, every_step=False)
    if forget_bias is not None:
        set_forget_bias(model.cell, forget_bias)
    if keep_bias is not None:
        set_keep_bias(model.cell, keep_bias)
    return model


def agreement_batches(distance, batch, seed):
    """batch_fn for seqmodels.train: fresh seeded agreement batches as tensors."""
    rng = np.random.default_rng(seed)

    def batch_fn(_step):
        x, y = agreement_batch(batch, distance, rng)
        return torch.from_numpy(x), torch.from_numpy(y)

    return batch_fn


def agreement_accuracy(model, distance, n=TEST_SIZE, seed=TEST_SEED):
    """Fraction of a fixed held-out batch whose subject number the model gets right."""
    x, y = agreement_batch(n, distance, np.random.default_rng(seed))
    with torch.no_grad():
        out, _ = model(torch.from_numpy(x))
    return float((out.argmax(dim=-1).numpy() == y).mean())


class StopWhenLearned:
    """Ends a seqmodels.train run once the task is learned: the mean training loss of
    the last `window` steps below `threshold`.

    Pass stopper.on_step as train's on_step (it records each loss) and stopper.steps
    as its progress (it hands out step numbers until the run has learned).
    """

    def __init__(self, threshold, window=STOP_WINDOW):
        self.threshold, self.window, self.losses = threshold, window, []

    def on_step(self, _step, loss, _hs):
        self.losses.append(loss)

    def learned(self):
        recent = self.losses[-self.window:]
        return len(recent) == self.window and sum(recent) / self.window < self.threshold

    def steps(self, step_range):
        for step in step_range:
            if self.learned():
                return
            yield step


def train_agreement(kind, distance, seed, **budget):
    """Train one model on one distance. returns (model, losses, test accuracy).

    budget: keyword arguments of agreement_run (H, steps, batch, lr, clip, forget_bias,
    keep_bias, stop_loss); losses has one entry per Adam step taken
    """
    run = agreement_run(kind, distance, seed, **budget)
    return run.model, run.losses, run.accuracy


def agreement_run(kind, distance, seed, H=BUDGET["H"], steps=BUDGET["steps"],
                  batch=BUDGET["batch"], lr=BUDGET["lr"], clip=BUDGET["clip"],
                  forget_bias=None, keep_bias=None, stop_loss=None):
    """Train one model on one distance with Adam. returns an AgreementRun.

    H, batch, lr, clip: hidden size, batch size, learning rate, gradient-norm clip
    steps:       the most Adam steps the run may take
    forget_bias, keep_bias: the gate initialisation (make_agreement_model)
    stop_loss:   None takes all `steps`; a number ends the run early once the mean
                 training loss of the last STOP_WINDOW steps is below it (StopWhenLearned)
    """
    model = make_agreement_model(kind, seed, H, forget_bias, keep_bias)
    hooks = {}
    if stop_loss is not None:
        stopper = StopWhenLearned(stop_loss)
        hooks = {"on_step": stopper.on_step, "progress": stopper.steps}
    start = time.perf_counter()
    losses = train(model, agreement_batches(distance, batch, seed), steps, lr=lr, clip=clip,
                   **hooks)
    seconds = time.perf_counter() - start
    return AgreementRun(model, losses, agreement_accuracy(model, distance), seconds)


def distance_sweep(kind, distances, seeds, progress=None, keep_runs=False, **budget):
    """Test accuracy of one model kind at every distance and seed.

    distances, seeds: sequences of ints; budget: keyword arguments of agreement_run
    progress:  optional tqdm-like wrapper over the (distance, seed) runs
    keep_runs: also return every run, a dict {(distance, seed): AgreementRun}
    returns an array (len(distances), len(seeds)) of accuracies (and the dict)
    """
    runs = {}
    pairs = [(d, s) for d in distances for s in seeds]
    for d, s in pairs if progress is None else progress(pairs):
        runs[d, s] = agreement_run(kind, d, s, **budget)
    acc = np.array([runs[pair].accuracy for pair in pairs]).reshape(len(distances), len(seeds))
    return (acc, runs) if keep_runs else acc


def cue_signal(model, distance, n=16, seed=0):
    """How far the subject moves the hidden state at every step (the telephone game).

    Runs n sequences twice, once with a singular and once with a plural subject and
    the very same distractors, and measures ||h_t(singular) - h_t(plural)||. It runs a
    float64 copy of the model, so that the gap can fall below float32's resolution.
    returns a (distance + 2,) array, the mean over the n sequences; entry t-1 is step t
    """
    model = copy.deepcopy(model).double()
    x, _ = agreement_batch(n, distance, np.random.default_rng(seed))
    states = []
    for subject in (AGREE_SINGULAR, AGREE_PLURAL):
        x[:, 0] = subject
        with torch.no_grad():
            states.append(model(torch.from_numpy(x))[1])
    return (states[0] - states[1]).norm(dim=-1).mean(dim=0).numpy()
