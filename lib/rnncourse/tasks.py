"""Synthetic long-range tasks whose difficulty is one knob: the distance to remember.

All return integer token arrays, batch-first; one_hot turns them into (N, T, V) inputs.

    copy_task_batch  the copy-memory task
    agreement_batch  subject-verb agreement across distractors
    echo_batch       a stream task: y_t = x_{t - delay}, exactly `delay` steps of memory
"""

import numpy as np

COPY_BLANK, COPY_DELIMITER, COPY_VOCAB = 0, 9, 10
COPY_LENGTH = 10  # symbols to remember


def copy_task_batch(N, delay, rng):
    """The copy-memory task (Arjovsky, Shah and Bengio, 2016).

    Input:  10 symbols from {1..8}, delay - 1 blanks (0), the delimiter 9, 10 blanks.
    Target: delay + 10 blanks, then the 10 symbols.
    N: batch size; delay: the steps between the last symbol and the delimiter, plus one
    (delay >= 1; the sequence length T is delay + 20); rng: a np.random.Generator
    returns x (N, delay + 20) and y (N, delay + 20), integers in [0, 10)
    """
    if delay < 1:
        raise ValueError(f"delay must be at least 1, got {delay}")
    symbols = rng.integers(1, 9, size=(N, COPY_LENGTH))
    x = np.zeros((N, delay + 2 * COPY_LENGTH), dtype=np.int64)
    y = np.zeros_like(x)
    x[:, :COPY_LENGTH] = symbols
    x[:, COPY_LENGTH + delay - 1] = COPY_DELIMITER
    y[:, -COPY_LENGTH:] = symbols
    return x, y


def copy_task_baseline(delay):
    """Cross-entropy per step of the best memoryless guess: 10 log 8 / (delay + 20).

    It predicts blanks with certainty for delay + 10 steps, then a uniform guess
    over the 8 symbols for the last 10.
    """
    return COPY_LENGTH * np.log(8) / (delay + 2 * COPY_LENGTH)


AGREE_SINGULAR, AGREE_PLURAL, AGREE_QUERY = 0, 1, 2
AGREE_N_DISTRACTORS = 8
AGREE_VOCAB = 3 + AGREE_N_DISTRACTORS


def agreement_batch(N, distance, rng):
    """A subject-verb agreement toy: remember a cue across `distance` distractors.

    Each sequence is a subject token (0 = singular, 1 = plural), then `distance`
    distractor tokens drawn from {3 .. 10}, then the query token 2 ("the verb
    comes now"). The label is the subject's number, to be read off h at the query.
    returns x (N, distance + 2) integers in [0, 11) and y (N,) in {0, 1}
    """
    if distance < 0:
        raise ValueError(f"distance must be >= 0, got {distance}")
    y = rng.integers(0, 2, size=N)
    x = np.empty((N, distance + 2), dtype=np.int64)
    x[:, 0] = y
    x[:, 1:-1] = rng.integers(3, AGREE_VOCAB, size=(N, distance))
    x[:, -1] = AGREE_QUERY
    return x, y


IGNORE = -100  # a target sequence_loss skips (the ignore_index of PyTorch's cross_entropy)


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


def one_hot(tokens, V, dtype=np.float64):
    """(N, T) integers in [0, V) to (N, T, V) one-hot vectors."""
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= V):
        raise ValueError(f"tokens must lie in [0, {V}), got range [{tokens.min()}, {tokens.max()}]")
    return np.eye(V, dtype=dtype)[tokens]
