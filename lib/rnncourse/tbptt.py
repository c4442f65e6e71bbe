"""Truncated backpropagation through time over long streams, and how far back the
truncated gradient lets a model learn (on the echo task, tasks.echo_batch).

    forward_with_state  a TokenModel's forward with a state in and the final state out
    detach_state        cut a carried state from the graph of the chunk before
    chunk_losses        the losses of a batch chunk by chunk, the state carried between chunks
    train_tbptt         seqmodels.train with one Adam update per chunk
    echo_accuracy       how well a model echoes (tasks.echo_batch), over whole streams,
                        no truncation
    graph_size          how many autograd nodes a backward from a tensor would visit
"""

import numpy as np
import torch
from torch import nn

from .seqmodels import sequence_loss, train
from .tasks import IGNORE, echo_batch


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


def chunk_losses(model, tokens, y, chunk, detach=True):
    """The losses of one batch of streams, chunk by chunk, the state carried between
    chunks: the losses_of of seqmodels.train for truncated BPTT.

    tokens: (N, L); y: (N, L), targets equal to tasks.IGNORE do not count
    chunk:  how many time steps one backward goes through, at most
    detach: cut the carried state between chunks (False is the classic mistake:
            the second backward then runs into the first chunk's freed graph)
    yields (loss, hs) for every chunk with a counted target; the others are run
    forward, to carry the state, but give no loss
    """
    state = None
    for start in range(0, tokens.shape[1], chunk):
        if detach:
            state = detach_state(state)
        out, hs, state = forward_with_state(model, tokens[:, start:start + chunk], state)
        y_chunk = y[:, start:start + chunk]
        if not (y_chunk != IGNORE).any():
            continue
        yield sequence_loss(out, y_chunk), hs


def train_tbptt(model, batch_fn, steps, chunk, lr=1e-2, clip=1.0, detach=True, progress=None):
    """Truncated BPTT: seqmodels.train with one Adam update per chunk of `chunk` time steps.

    batch_fn: step -> (tokens (N, L), targets (N, L)): a batch of long streams;
              targets equal to tasks.IGNORE do not count
    steps:    number of batches; each gives ceil(L / chunk) updates
    chunk, detach: as in chunk_losses
    The state starts at zero for every batch (the streams of a new batch are unrelated
    to the last one) and is carried from chunk to chunk within it.
    returns a list of losses, one per update
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")

    def losses_of(model, tokens, y):
        return chunk_losses(model, tokens, y, chunk, detach)

    return train(model, batch_fn, steps, lr=lr, clip=clip, progress=progress,
                 losses_of=losses_of)


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
