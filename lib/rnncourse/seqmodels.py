"""PyTorch sequence models for the long-range tasks, and the one training loop they
all use (tbptt.train_tbptt included).

Every model's forward returns (out, hs): hs (N, T, H) is the sequence of hidden
states, kept in the graph (hs.retain_grad() before backward, then hs.grad).
Careful: nn.RNN / nn.LSTM run the recurrence inside one op, so hs.grad holds
only the read-out's part of dL/dh_t (zero before the last step for a
many-to-one model), not the part that flows back from later steps. For the
total gradient reaching each h_t see state_gradients.hidden_state_gradients.
"""

import torch
from torch import nn


class TokenModel(nn.Module):
    """An RNN or LSTM over integer tokens, with a linear read-out.

    kind:   "rnn" (tanh) or "lstm"
    V:      vocabulary size (inputs are one-hot, so D = V)
    H:      hidden size
    n_out:  number of output classes
    every_step: True for an output at every step (copy task, (N, T, n_out)),
                False for one output from the last step (agreement, (N, n_out))
    forward(tokens (N, T) int64) returns (out, hs (N, T, H))
    """

    def __init__(self, kind, V, H, n_out, every_step):
        super().__init__()
        cells = {
            "rnn": lambda: nn.RNN(V, H, batch_first=True),
            "lstm": lambda: nn.LSTM(V, H, batch_first=True),
        }
        if kind not in cells:
            raise ValueError(f"kind must be one of {sorted(cells)}, got {kind!r}")
        self.kind, self.V, self.every_step = kind, V, every_step
        self.cell = cells[kind]()
        self.out = nn.Linear(H, n_out)

    def forward(self, tokens):
        if tokens.dim() != 2:
            raise ValueError(f"tokens has shape {tuple(tokens.shape)}, expected (N, T)")
        x = nn.functional.one_hot(tokens, self.V).to(self.out.weight.dtype)
        hs, _ = self.cell(x)
        out = self.out(hs) if self.every_step else self.out(hs[:, -1])
        return out, hs


def sequence_loss(out, y):
    """Mean cross-entropy; out (N, T, C) with y (N, T), or out (N, C) with y (N,)."""
    return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def whole_sequence(model, tokens, y):
    """One loss per batch, over the whole sequence: the losses_of of a plain train().

    yields (loss, hs) once: the mean cross-entropy and the hidden states (N, T, H)
    """
    out, hs = model(tokens)
    yield sequence_loss(out, y), hs


def train(model, batch_fn, steps, lr=1e-2, clip=1.0, on_step=None, progress=None,
          losses_of=whole_sequence):
    """Adam with global-norm gradient clipping, one fresh batch per step, one update
    per loss that losses_of gives for the batch.

    batch_fn:  step -> (tokens (N, T) int64 tensor, targets tensor)
    steps:     number of batches
    clip:      max global gradient norm, or None for no clipping
    on_step:   optional callback(step, loss, hs) called after backward and before
               the update; hs.grad then holds the read-out's part of dL/dh_t
               (see the module docstring)
    progress:  optional iterable wrapper such as tqdm.auto.tqdm
    losses_of: (model, tokens, targets) -> iterable of (loss, hs), one update each;
               whole_sequence gives one per batch, tbptt.chunk_losses one per chunk
    returns a list of losses, one per update
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    step_range = range(steps) if progress is None else progress(range(steps))
    for step in step_range:
        tokens, y = batch_fn(step)
        for loss, hs in losses_of(model, tokens, y):
            if on_step is not None:
                hs.retain_grad()
            optimiser.zero_grad()
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            if on_step is not None:
                on_step(step, loss.item(), hs)
            optimiser.step()
            losses.append(loss.item())
    return losses
