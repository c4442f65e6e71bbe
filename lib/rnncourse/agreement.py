"""The agreement experiment of lecture 04 (reused in 06 and 07): accuracy against
the distance to remember.

One model is trained from scratch for every (kind, distance, seed) on the library's
subject-verb agreement toy (tasks.agreement_batch), with the same budget for the RNN
and the LSTM, and scored on a fixed held-out batch. Everything is seeded: the model's
initial weights by torch.manual_seed(seed), the training batches by
np.random.default_rng(seed), the test batch by its own fixed seed.
"""

import copy

import numpy as np
import torch

from .lstm import set_forget_bias
from .seqmodels import TokenModel, train
from .tasks import AGREE_PLURAL, AGREE_SINGULAR, AGREE_VOCAB, agreement_batch

# The budget every model gets in lecture 04, whatever its kind and distance.
BUDGET = {"H": 32, "steps": 200, "batch": 64, "lr": 3e-3, "clip": 1.0}
# The LSTM's forget-gate bias in lecture 04: f starts near sigmoid(3) = 0.95, not 0.5.
LSTM_FORGET_BIAS = 3.0
TEST_SIZE, TEST_SEED = 1000, 12345


def make_agreement_model(kind, seed, H=BUDGET["H"], forget_bias=None):
    """A TokenModel for the agreement task with seeded initial weights.

    kind: "rnn" or "lstm"; forget_bias: None keeps PyTorch's initialisation,
    a number sets the LSTM's forget-gate bias (lstm.set_forget_bias)
    """
    torch.manual_seed(seed)
    model = TokenModel(kind, AGREE_VOCAB, H, 2, every_step=False)
    if forget_bias is not None:
        if kind != "lstm":
            raise ValueError(f"forget_bias needs kind 'lstm', got {kind!r}")
        set_forget_bias(model.cell, forget_bias)
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


def train_agreement(kind, distance, seed, H=BUDGET["H"], steps=BUDGET["steps"],
                    batch=BUDGET["batch"], lr=BUDGET["lr"], clip=BUDGET["clip"],
                    forget_bias=None):
    """Train one model on one distance. returns (model, losses, test accuracy)."""
    model = make_agreement_model(kind, seed, H, forget_bias)
    losses = train(model, agreement_batches(distance, batch, seed), steps, lr=lr, clip=clip)
    return model, losses, agreement_accuracy(model, distance)


def distance_sweep(kind, distances, seeds, progress=None, keep_models=False, **budget):
    """Test accuracy of one model kind at every distance and seed.

    distances, seeds: sequences of ints; budget: keyword arguments of train_agreement
    progress:    optional tqdm-like wrapper over the (distance, seed) runs
    keep_models: also return the trained models, a dict {(distance, seed): model}
    returns an array (len(distances), len(seeds)) of accuracies (and the dict)
    """
    runs = [(d, s) for d in distances for s in seeds]
    models, acc = {}, []
    for d, s in runs if progress is None else progress(runs):
        models[d, s], _, accuracy = train_agreement(kind, d, s, **budget)
        acc.append(accuracy)
    acc = np.array(acc).reshape(len(distances), len(seeds))
    return (acc, models) if keep_models else acc


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
