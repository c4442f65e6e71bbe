"""The distance sweep of lecture 04: seeding, scoring, and a tiny budget that learns."""

import numpy as np
import pytest
import torch
from torch import nn

from rnncourse import experiments as exp
from rnncourse.tasks import AGREE_QUERY, agreement_batch


class _Oracle(nn.Module):
    """Reads the subject straight off the first token; `flip` makes it always wrong."""

    def __init__(self, flip=False):
        super().__init__()
        self.flip = flip

    def forward(self, tokens):
        subject = tokens[:, 0] if not self.flip else 1 - tokens[:, 0]
        return nn.functional.one_hot(subject, 2).double(), None


def test_accuracy_scores_an_oracle_one_and_its_opposite_zero():
    assert exp.agreement_accuracy(_Oracle(), distance=7) == 1.0
    assert exp.agreement_accuracy(_Oracle(flip=True), distance=7) == 0.0


def test_accuracy_uses_a_fixed_test_batch_with_the_query_last():
    x1, _ = agreement_batch(exp.TEST_SIZE, 4, np.random.default_rng(exp.TEST_SEED))
    seen = []

    class Recorder(_Oracle):
        def forward(self, tokens):
            seen.append(tokens.clone())
            return super().forward(tokens)

    exp.agreement_accuracy(Recorder(), distance=4)
    exp.agreement_accuracy(Recorder(), distance=4)
    torch.testing.assert_close(seen[0], torch.from_numpy(x1))
    torch.testing.assert_close(seen[0], seen[1])
    assert torch.all(seen[0][:, -1] == AGREE_QUERY)


def test_models_are_seeded_and_forget_bias_is_lstm_only():
    a, b = exp.make_agreement_model("lstm", 3, H=4), exp.make_agreement_model("lstm", 3, H=4)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    m = exp.make_agreement_model("lstm", 0, H=4, forget_bias=3.0)
    assert torch.all(m.cell.bias_ih_l0[4:8] == 3.0)
    with pytest.raises(ValueError, match="forget_bias"):
        exp.make_agreement_model("rnn", 0, forget_bias=1.0)


def test_batches_are_seeded_fresh_and_sized():
    fn1, fn2 = exp.agreement_batches(5, 8, seed=1), exp.agreement_batches(5, 8, seed=1)
    x1, y1 = fn1(0)
    x2, y2 = fn2(0)
    torch.testing.assert_close(x1, x2)
    torch.testing.assert_close(y1, y2)
    assert x1.shape == (8, 7) and x1.dtype == torch.int64
    assert not torch.equal(fn1(1)[0], x1)


def test_a_short_distance_is_learned_with_a_small_budget():
    _, losses, acc = exp.train_agreement("rnn", distance=2, seed=0, H=8, steps=60, lr=3e-2)
    assert len(losses) == 60
    assert acc == 1.0


def test_sweep_shape_determinism_and_progress_hook():
    budget = dict(H=4, steps=3, batch=8)
    wrapped = []

    def progress(runs):
        wrapped.append(list(runs))
        return runs

    acc = exp.distance_sweep("lstm", [1, 3], [0, 1, 2], progress=progress, **budget)
    again = exp.distance_sweep("lstm", [1, 3], [0, 1, 2], forget_bias=None, **budget)
    assert acc.shape == (2, 3)
    np.testing.assert_array_equal(acc, again)
    assert np.all((acc >= 0) & (acc <= 1))
    assert wrapped == [[(1, 0), (1, 1), (1, 2), (3, 0), (3, 1), (3, 2)]]
