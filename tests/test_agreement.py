"""The agreement experiment of lecture 04: seeding, scoring, and a tiny budget that learns."""

import numpy as np
import pytest
import torch
from torch import nn

import rnncourse as rc
from rnncourse import agreement
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
    assert agreement.agreement_accuracy(_Oracle(), distance=7) == 1.0
    assert agreement.agreement_accuracy(_Oracle(flip=True), distance=7) == 0.0


def test_accuracy_uses_a_fixed_test_batch_with_the_query_last():
    x1, _ = agreement_batch(agreement.TEST_SIZE, 4, np.random.default_rng(agreement.TEST_SEED))
    seen = []

    class Recorder(_Oracle):
        def forward(self, tokens):
            seen.append(tokens.clone())
            return super().forward(tokens)

    agreement.agreement_accuracy(Recorder(), distance=4)
    agreement.agreement_accuracy(Recorder(), distance=4)
    torch.testing.assert_close(seen[0], torch.from_numpy(x1))
    torch.testing.assert_close(seen[0], seen[1])
    assert torch.all(seen[0][:, -1] == AGREE_QUERY)


def test_models_are_seeded_and_forget_bias_is_lstm_only():
    a = agreement.make_agreement_model("lstm", 3, H=4)
    b = agreement.make_agreement_model("lstm", 3, H=4)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    m = agreement.make_agreement_model("lstm", 0, H=4, forget_bias=3.0)
    assert torch.all(m.cell.bias_ih_l0[4:8] == 3.0)
    with pytest.raises(ValueError, match="forget_bias"):
        agreement.make_agreement_model("rnn", 0, forget_bias=1.0)


def test_batches_are_seeded_fresh_and_sized():
    fn1, fn2 = agreement.agreement_batches(5, 8, seed=1), agreement.agreement_batches(5, 8, seed=1)
    x1, y1 = fn1(0)
    x2, y2 = fn2(0)
    torch.testing.assert_close(x1, x2)
    torch.testing.assert_close(y1, y2)
    assert x1.shape == (8, 7) and x1.dtype == torch.int64
    assert not torch.equal(fn1(1)[0], x1)


def test_a_short_distance_is_learned_with_a_small_budget():
    _, losses, acc = agreement.train_agreement("rnn", distance=2, seed=0, H=8, steps=40, lr=3e-2)
    assert len(losses) == 40
    assert acc == 1.0


def test_sweep_shape_determinism_and_progress_hook():
    budget = dict(H=4, steps=3, batch=8)
    wrapped = []

    def progress(runs):
        wrapped.append(list(runs))
        return runs

    acc = agreement.distance_sweep("lstm", [1, 3], [0, 1, 2], progress=progress, **budget)
    again, models = agreement.distance_sweep("lstm", [1, 3], [0, 1, 2], forget_bias=None,
                                       keep_models=True, **budget)
    assert acc.shape == (2, 3)
    np.testing.assert_array_equal(acc, again)
    assert sorted(models) == [(1, 0), (1, 1), (1, 2), (3, 0), (3, 1), (3, 2)]
    assert agreement.agreement_accuracy(models[3, 2], 3) == acc[1, 2]
    assert np.all((acc >= 0) & (acc <= 1))
    assert wrapped == [[(1, 0), (1, 1), (1, 2), (3, 0), (3, 1), (3, 2)]]


def test_cue_signal_matches_two_numpy_forward_passes():
    model = agreement.make_agreement_model("rnn", 0, H=5)
    signal = agreement.cue_signal(model, distance=6, n=3, seed=4)
    assert model.out.weight.dtype == torch.float32  # the model itself is left alone
    x, _ = agreement_batch(3, 6, np.random.default_rng(4))
    cell = model.cell
    with torch.no_grad():
        W_x, W_h = cell.weight_ih_l0.numpy(), cell.weight_hh_l0.numpy()
        b_h = (cell.bias_ih_l0.double() + cell.bias_hh_l0.double()).numpy()
    states = []
    for subject in (0, 1):
        x[:, 0] = subject
        h, _ = rc.rnn_forward(rc.tasks.one_hot(x, 11), np.zeros((3, 5)), W_x, W_h, b_h)
        states.append(h)
    expected = np.linalg.norm(states[0] - states[1], axis=-1).mean(axis=0)
    assert signal.shape == (8,)
    np.testing.assert_allclose(signal, expected, rtol=1e-10)


def test_cue_signal_is_zero_when_the_model_cannot_tell_the_subjects_apart():
    model = agreement.make_agreement_model("lstm", 1, H=4)
    with torch.no_grad():
        model.cell.weight_ih_l0[:, 1] = model.cell.weight_ih_l0[:, 0]
    assert np.all(agreement.cue_signal(model, distance=5) == 0.0)
