"""The data shipped with the course: first names and a small corpus, and how to encode them.

Files live in rnncourse/data/ (see the README there for provenance and licences);
nothing is downloaded. Names are encoded character by character with one extra
token, the boundary marker ".", which both starts a name (the first input) and
ends it (the last target):

    name "ann"   inputs  . a n n        targets  a n n .
"""

from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent / "data"
BOUNDARY = "."
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def load_names():
    """The 1990 US Census first names: a list of lower-case strings, sorted."""
    return (DATA_DIR / "names.txt").read_text(encoding="ascii").split()


def load_corpus():
    """The course's small English corpus: a list of sentences, each a list of words."""
    lines = (DATA_DIR / "corpus.txt").read_text(encoding="ascii").splitlines()
    return [line.split() for line in lines if line.strip()]


class Vocab:
    """Characters <-> integer tokens. Token 0 is the boundary marker ".".

    chars: the characters other than the boundary, in token order (default a-z)
    """

    def __init__(self, chars=LETTERS):
        chars = list(chars)
        if BOUNDARY in chars or len(set(chars)) != len(chars):
            raise ValueError(f"chars must be distinct and must not contain {BOUNDARY!r}")
        self.itos = [BOUNDARY, *chars]
        self.stoi = {c: i for i, c in enumerate(self.itos)}
        self.boundary = 0

    def __len__(self):
        return len(self.itos)

    def __repr__(self):
        return f"Vocab({''.join(self.itos)!r}, V={len(self)})"

    def encode(self, text):
        """A string to a list of tokens; any character outside the vocabulary raises ValueError."""
        unknown = sorted(set(text) - set(self.stoi))
        if unknown:
            raise ValueError(
                f"{text!r} contains characters outside the vocabulary: {unknown}; "
                f"allowed are {''.join(self.itos)!r}"
            )
        return [self.stoi[c] for c in text]

    def decode(self, tokens):
        """A sequence of tokens back to a string."""
        tokens = [int(t) for t in tokens]
        bad = [t for t in tokens if not 0 <= t < len(self)]
        if bad:
            raise ValueError(f"tokens must lie in [0, {len(self)}), got {bad}")
        return "".join(self.itos[t] for t in tokens)


def train_val_split(items, val_fraction=0.1, seed=0):
    """Shuffle with a fixed seed and cut: returns (train, val), two lists.

    The same items, fraction and seed always give the same split.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    items = list(items)
    order = np.random.default_rng(seed).permutation(len(items))
    n_val = int(round(val_fraction * len(items)))
    if n_val == 0 or n_val == len(items):
        raise ValueError(f"val_fraction={val_fraction} leaves an empty part of {len(items)} items")
    val = [items[i] for i in order[:n_val]]
    train = [items[i] for i in order[n_val:]]
    return train, val


def encode_names(names, vocab):
    """Encode names as padded token arrays for next-character prediction.

    names: list of B strings; vocab: a Vocab
    returns inputs (B, T), targets (B, T) integer arrays and mask (B, T) of 0/1
            floats, with T = longest name + 1. Row b reads
            inputs  [., c_1, ..., c_n, pad...]   targets [c_1, ..., c_n, ., pad...]
            and mask is 1 on the n + 1 real steps. Padding uses the boundary token.
    """
    if len(names) == 0:
        raise ValueError("names is empty")
    encoded = [vocab.encode(name) for name in names]
    if any(len(e) == 0 for e in encoded):
        raise ValueError("names must not contain empty strings")
    T = max(len(e) for e in encoded) + 1
    inputs = np.full((len(names), T), vocab.boundary, dtype=np.int64)
    targets = np.full((len(names), T), vocab.boundary, dtype=np.int64)
    mask = np.zeros((len(names), T))
    for b, e in enumerate(encoded):
        inputs[b, 1 : len(e) + 1] = e
        targets[b, : len(e)] = e
        mask[b, : len(e) + 1] = 1.0
    return inputs, targets, mask
