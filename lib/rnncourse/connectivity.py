"""Connectivity: how strongly each earlier input moves a prediction (lecture 03).

Madsen's "Visualizing memorization in RNNs" (Distill, 2019) measures what a recurrent
network remembers by a gradient: the connectivity from the input at step s to the
prediction at step t is the size of

    d log p_t(target_t) / d x_s,    s <= t,

the gradient of the log-probability the model gives the true next character at step
t with respect to the whole one-hot input vector x_s (V numbers), measured by its
Euclidean norm. It is zero for s > t (the model cannot see ahead). Its average
against the distance k = t - s says how far back the model's predictions reach.

The character models here are the three recurrent cells of PyTorch, nn.RNN (tanh),
nn.LSTM and nn.GRU, each over one-hot characters with a linear read-out, as
rnncourse.torch_models.TorchRNN: forward(x) returns (scores, hidden states), so
rnncourse.charlm.torch_loss and charlm.train_torch train them unchanged.

Encoded data (from rnncourse.data.encode_names) is a tuple
(inputs (B, T), targets (B, T), mask (B, T)).
"""

import numpy as np
import torch
from torch import nn

from .checks import check_shape
from .data import encode_names

KINDS = ("RNN", "LSTM", "GRU")


class CharModel(nn.Module):
    """A one-layer RNN, LSTM or GRU over one-hot characters, with a linear read-out.

    kind: "RNN" (tanh), "LSTM" or "GRU"; V: vocabulary size (D = V); H: hidden size
    forward(x (N, T, V) one-hot, float) returns y (N, T, V) scores, h (N, T, H)
    """

    def __init__(self, kind, V, H):
        super().__init__()
        cells = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}
        if kind not in cells:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.cell = cells[kind](V, H, batch_first=True)
        self.out = nn.Linear(H, V)

    def forward(self, x):
        h, _ = self.cell(x)
        return self.out(h), h


def char_model(kind, V, H, seed, dtype=torch.float64):
    """A CharModel with PyTorch's default initialisation drawn from torch seed `seed`."""
    torch.manual_seed(seed)
    return CharModel(kind, V, H).to(dtype)


def one_hot_inputs(model, inputs):
    """Tokens (N, T) -> one-hot float tensor (N, T, V) in the model's dtype, with grad."""
    check_shape("inputs", inputs, (None, None), ("N", "T"))
    V = model.out.out_features
    x = nn.functional.one_hot(torch.as_tensor(np.asarray(inputs)), V)
    return x.to(model.out.weight.dtype).requires_grad_(True)


def log_probs(model, inputs):
    """log P(next character) (N, T, V) as a NumPy array, for inputs (N, T) of tokens."""
    with torch.no_grad():
        y, _ = model(one_hot_inputs(model, inputs))
        return torch.log_softmax(y, dim=-1).numpy()


def connectivity(model, inputs, targets):
    """The connectivity of every prediction to every earlier input, by autograd.

    inputs, targets: (N, T) tokens; targets[n, t] is the character whose
                     log-probability at step t is differentiated (the true next one)
    returns C (N, T, T): C[n, t, s] = || d log p_t(targets[n, t]) / d x_s || for row n,
            the norm over the V entries of the one-hot input x_s; 0 where s > t

    One backward pass per step t serves the whole batch: the rows do not interact,
    so the gradient of the sum over rows, taken at row n, is row n's own gradient.
    """
    check_shape("inputs", inputs, (None, None), ("N", "T"))
    N, T = np.shape(inputs)
    check_shape("targets", targets, (N, T), ("N", "T"))
    x = one_hot_inputs(model, inputs)
    y, _ = model(x)
    chosen = torch.as_tensor(np.asarray(targets))[..., None]
    picked = torch.log_softmax(y, dim=-1).gather(-1, chosen)[..., 0]  # (N, T)
    C = np.zeros((N, T, T))
    for t in range(T):
        (grad,) = torch.autograd.grad(picked[:, t].sum(), x, retain_graph=t + 1 < T)
        C[:, t, : t + 1] = grad[:, : t + 1].norm(dim=-1).detach().numpy()
    return C


def by_distance(C, mask):
    """Average connectivity at each distance k = t - s, over the counted steps t.

    C:    (N, T, T) from connectivity; mask (N, T) marks the counted steps t
    returns (mean (T,), count (T,)): mean[k] averages C[n, t, t - k] over all
            counted (n, t) with t >= k; count[k] is how many there are (mean nan if 0)
    """
    check_shape("C", C, (None, None, None), ("N", "T", "T"))
    N, T, _ = np.shape(C)
    check_shape("C", C, (N, T, T), ("N", "T", "T"))
    check_shape("mask", mask, (N, T), ("N", "T"))
    counted = np.asarray(mask, dtype=bool)
    mean, count = np.full(T, np.nan), np.zeros(T, dtype=int)
    for k in range(T):
        t = np.arange(k, T)
        values = C[:, t, t - k][counted[:, t]]
        count[k] = values.size
        if values.size:
            mean[k] = values.mean()
    return mean, count


def name_connectivity(model, vocab, name, position):
    """What one prediction inside one name depends on.

    name:     a name in the vocabulary, e.g. "john"
    position: how many of its letters have been read, 0 .. len(name); the model has
              read "." and name[:position] and predicts name[position] (the end
              marker "." when position == len(name))
    returns a dict: read (the characters read, a string of length position + 1),
            target (the true next character), p_target (the model's probability of it),
            top (the model's most likely next character), conn (position + 1,) the
            connectivity to each character read
    """
    if not 0 <= position <= len(name):
        raise ValueError(f"position must lie in [0, {len(name)}] for {name!r}, got {position}")
    inputs, targets, _ = encode_names([name], vocab)
    inputs, targets = inputs[:, : position + 1], targets[:, : position + 1]
    read, target = vocab.decode(inputs[0]), vocab.itos[targets[0, -1]]
    C = connectivity(model, inputs, targets)
    logp = log_probs(model, inputs)[0, -1]
    return {"read": read, "target": target, "p_target": float(np.exp(logp[targets[0, -1]])),
            "top": vocab.itos[int(np.argmax(logp))], "conn": C[0, -1]}
