"""A count-based next-token predictor: a fixed window of k previous tokens (an n-gram, n = k + 1).

It works on any sequences of hashable tokens: lists of words (notebook 01) or
strings of characters (the baselines of notebook 03). Each sequence is read as

    start * k, s_1, ..., s_n, end

and every token after the padding, the end marker included, is one position to
predict from the k tokens before it. The model is a table of counts:
counts[context][next token]. A context never seen in training has no counts and
gives no prediction: that is the sparsity that long windows run into.
"""

import math
from collections import Counter, defaultdict


def windows(sequence, k, start, end):
    """Yield (context, next) for every position of one sequence.

    context: a tuple of the k tokens before the position (padded with `start`)
    """
    padded = [start] * k + list(sequence) + [end]
    for i in range(k, len(padded)):
        yield tuple(padded[i - k : i]), padded[i]


class NGram:
    """Next-token counts given the previous k tokens.

    k:     window size, k >= 0 (k = 0 ignores the past: the unigram model)
    start: padding token before a sequence; end: token that ends it
    """

    def __init__(self, k, start="<s>", end="</s>"):
        if not isinstance(k, int) or k < 0:
            raise ValueError(f"k must be an integer >= 0, got {k!r}")
        self.k, self.start, self.end = k, start, end
        self.counts = defaultdict(Counter)

    def fit(self, sequences):
        """Count every (context, next) pair in the sequences; returns self."""
        for sequence in sequences:
            for context, nxt in windows(sequence, self.k, self.start, self.end):
                self.counts[context][nxt] += 1
        return self

    def context(self, history):
        """The last k tokens of the history, padded with `start` at the front."""
        padded = [self.start] * self.k + list(history)
        return tuple(padded[len(padded) - self.k :])

    def seen(self, history):
        """True if the window of this history occurred in training."""
        return self.context(history) in self.counts

    def predict(self, history, top=None):
        """Next tokens after this history, most frequent first.

        returns a list of (token, probability, count), ties broken by token
        order so the result never depends on insertion order; an empty list
        when the window was never seen
        """
        counter = self.counts.get(self.context(history))
        if not counter:
            return []
        total = sum(counter.values())
        ranked = sorted(counter.items(), key=lambda item: (-item[1], str(item[0])))
        return [(token, count / total, count) for token, count in ranked[:top]]

    def prob(self, history, token, alpha=0.0, vocab_size=None):
        """P(token | history) from counts, with add-alpha smoothing if alpha > 0.

        alpha > 0 needs vocab_size (how many different tokens can follow).
        returns nan for a never-seen window when alpha == 0
        """
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if alpha > 0 and not vocab_size:
            raise ValueError("alpha > 0 needs vocab_size, the number of possible next tokens")
        counter = self.counts.get(self.context(history), Counter())
        total = sum(counter.values())
        if alpha == 0:
            return counter[token] / total if total else math.nan
        return (counter[token] + alpha) / (total + alpha * vocab_size)

    def losses(self, sequences, alpha=0.0, vocab_size=None):
        """-log P(next | window) in nats at every position: one list per sequence.

        Raises ValueError if some position gets probability 0 (use alpha > 0).
        """
        out = []
        for sequence in sequences:
            history, row = [], []
            for _, nxt in windows(sequence, self.k, self.start, self.end):
                p = self.prob(history, nxt, alpha, vocab_size)
                if not p > 0:  # 0 or nan
                    raise ValueError(
                        f"P({nxt!r} | {self.context(history)}) is 0 or undefined: "
                        "the pair was never counted; use alpha > 0"
                    )
                row.append(-math.log(p))
                history.append(nxt)
            out.append(row)
        return out

    def cross_entropy(self, sequences, alpha=0.0, vocab_size=None):
        """Mean -log P(next | window) in nats over every position of the sequences."""
        flat = [x for row in self.losses(sequences, alpha, vocab_size) for x in row]
        if not flat:
            raise ValueError("sequences is empty")
        return sum(flat) / len(flat)


def evaluate(model, sequences):
    """How well the window predicts held-out sequences.

    returns a dict:
        positions   number of positions predicted (end markers included)
        coverage    fraction of positions whose window was seen in training
        accuracy    fraction where the most frequent next token is right
                    (an unseen window counts as wrong: it predicts nothing)
        accuracy_when_seen   the same among the covered positions only (nan if none)
    """
    positions = seen = right = 0
    for sequence in sequences:
        history = []
        for _, nxt in windows(sequence, model.k, model.start, model.end):
            positions += 1
            guess = model.predict(history, top=1)
            if guess:
                seen += 1
                right += guess[0][0] == nxt
            history.append(nxt)
    if positions == 0:
        raise ValueError("sequences is empty")
    return {
        "positions": positions,
        "coverage": seen / positions,
        "accuracy": right / positions,
        "accuracy_when_seen": right / seen if seen else math.nan,
    }
