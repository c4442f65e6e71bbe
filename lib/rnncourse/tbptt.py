"""Truncated backpropagation through time over long streams, and a stream task
that measures how far back the truncated gradient lets a model learn.

    forward_with_state  a TokenModel's forward with a state in and the final state out
    detach_state        cut a carried state from the graph of the chunk before
    train_tbptt         Adam over chunks of `chunk` steps, the state carried between chunks
    echo_batch          a stream task: y_t = x_{t - delay}, exactly `delay` steps of memory
    echo_accuracy       how well a model echoes, over whole streams, no truncation
    graph_size          how many autograd nodes a backward from a tensor would visit
"""

import numpy as np
import torch
from torch import nn

from .seqmodels import sequence_loss

IGNORE = -100  # a target sequence_loss skips (the ignore_index of PyTorch's cross_entropy)


def forward_with_state(model, tokens, state=None):
    """Run a seqmodels.TokenModel from a given state, with its read-out at every step
    (whatever the model's every_step).

    tokens: (N, T) int64
    state:  None (zeros), or the state returned by the previous call:
            h (1, N, H) for an RNN, a pair (h, c) of (1, N, H) for an LSTM
    returns out (N, T, n_out), hs (N, T, H), and the state after the last step
    """
    if tokens.dim() != 2:
        raise ValueError(f"tokens has shape {tuple(tokens.shape)}, expected (N, T)")
    x = nn.functional.one_hot(tokens, model.V).to(model.out.weight.dtype)
    hs, state = model.cell(x, state)
    return model.out(hs), hs, state


def detach_state(state):
    """The same values, cut from the graph: the next chunk's backward stops here."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def train_tbptt(model, batch_fn, steps, chunk, lr=1e-2, clip=1.0, detach=True, progress=None):
    """Truncated BPTT: one Adam update per chunk of `chunk` time steps.

    batch_fn: step -> (tokens (N, L), targets (N, L)): a batch of long streams;
              targets equal to IGNORE do not count
    steps:    number of batches; each gives ceil(L / chunk) updates
    chunk:    how many time steps one backward goes through, at most
    detach:   cut the carried state between chunks (False is the classic mistake:
              the second backward then runs into the first chunk's freed graph)
    The state starts at zero for every batch (the streams of a new batch are unrelated
    to the last one) and is carried from chunk to chunk within it.
    returns a list of losses, one per update (chunks with no counted target are
    run forward, to carry the state, but give no update)
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    step_range = range(steps) if progress is None else progress(range(steps))
    for step in step_range:
        tokens, y = batch_fn(step)
        state = None
        for start in range(0, tokens.shape[1], chunk):
            if detach:
                state = detach_state(state)
            out, _, state = forward_with_state(model, tokens[:, start:start + chunk], state)
            y_chunk = y[:, start:start + chunk]
            if not (y_chunk != IGNORE).any():
                continue
            loss = sequence_loss(out, y_chunk)
            optimiser.zero_grad()
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimiser.step()
            losses.append(loss.item())
    return losses


def echo_batch(N, L, delay, V, rng):
    """Streams of random symbols; the target at step t is the symbol at step t - delay.

    N: batch size; L: stream length; delay: 1 <= delay < L; V: number of symbols
    rng: a np.random.Generator
    returns x (N, L) in [0, V) and y (N, L), with y = IGNORE for the first `delay`
    steps (nothing to echo yet)
    """
    if not 1 <= delay < L:
        raise ValueError(f"delay must lie in [1, L - 1] = [1, {L - 1}], got {delay}")
    x = rng.integers(0, V, size=(N, L))
    y = np.full_like(x, IGNORE)
    y[:, delay:] = x[:, :-delay]
    return x, y


def echo_accuracy(model, delay, L, V, n=500, seed=12345):
    """Fraction of counted steps echoed right, on a fixed held-out batch of whole streams."""
    x, y = echo_batch(n, L, delay, V, np.random.default_rng(seed))
    with torch.no_grad():
        out, _, _ = forward_with_state(model, torch.from_numpy(x))
    counted = y != IGNORE
    return float((out.argmax(dim=-1).numpy() == y)[counted].mean())


def graph_size(tensor):
    """Number of autograd nodes reachable from tensor.grad_fn: the work a backward
    from `tensor` would do (it grows with every chunk when the state is not detached)."""
    seen, todo = set(), [tensor.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        todo.extend(next_node for next_node, _ in node.next_functions)
    return len(seen)
