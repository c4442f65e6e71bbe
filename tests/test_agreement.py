"""The agreement experiment of lecture 04: seeding, scoring, a tiny budget that learns,
the GRU beside the RNN and LSTM, and stopping a run once it has learned."""

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


def test_gru_models_are_seeded_and_keep_bias_is_gru_only():
    a = agreement.make_agreement_model("gru", 3, H=4)
    b = agreement.make_agreement_model("gru", 3, H=4)
    assert isinstance(a.cell, nn.GRU) and a.cell.hidden_size == 4
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    m = agreement.make_agreement_model("gru", 0, H=4, keep_bias=3.0)
    assert torch.all(m.cell.bias_ih_l0[4:8] == 3.0) and torch.all(m.cell.bias_hh_l0[4:8] == 0)
    with pytest.raises(ValueError, match="keep_bias needs kind 'gru', got 'lstm'"):
        agreement.make_agreement_model("lstm", 0, keep_bias=1.0)
    with pytest.raises(ValueError, match="forget_bias needs kind 'lstm', got 'gru'"):
        agreement.make_agreement_model("gru", 0, forget_bias=1.0)
    with pytest.raises(ValueError, match="kind must be one of"):
        agreement.make_agreement_model("transformer", 0)


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


def test_a_gru_learns_a_short_distance_with_a_small_budget():
    _, losses, acc = agreement.train_agreement("gru", distance=2, seed=0, H=8, steps=60, lr=3e-2)
    assert len(losses) == 60
    assert acc == 1.0


def test_stop_loss_ends_the_same_run_at_the_first_learned_step():
    budget = dict(H=8, steps=60, lr=3e-2)
    _, full, _ = agreement.train_agreement("rnn", 2, 0, **budget)
    _, cut, acc = agreement.train_agreement("rnn", 2, 0, stop_loss=0.05, **budget)
    window = agreement.STOP_WINDOW
    means = [np.mean(full[k - window:k]) for k in range(window, len(full) + 1)]
    first = window + next(i for i, m in enumerate(means) if m < 0.05)
    assert first < 60  # the full run does get there, so the stop is exercised
    assert cut == full[:first]  # the same steps, then no more
    assert acc == 1.0


def test_stopper_hands_out_steps_until_the_window_mean_is_below_threshold():
    stopper = agreement.StopWhenLearned(0.5, window=3)
    taken = []
    for step in stopper.steps(range(100)):
        taken.append(step)
        stopper.on_step(step, [2.0, 0.1, 0.1, 0.1, 2.0][step] if step < 5 else 0.0, None)
    # means of the last three: steps 0-2 0.73, 1-3 0.1 -> stop before step 4
    assert taken == [0, 1, 2, 3]


def test_sweep_shape_determinism_and_progress_hook():
    budget = dict(H=4, steps=3, batch=8)
    wrapped = []

    def progress(runs):
        wrapped.append(list(runs))
        return runs

    acc = agreement.distance_sweep("lstm", [1, 3], [0, 1, 2], progress=progress, **budget)
    again, runs = agreement.distance_sweep("lstm", [1, 3], [0, 1, 2], forget_bias=None,
                                           keep_runs=True, **budget)
    assert acc.shape == (2, 3)
    np.testing.assert_array_equal(acc, again)
    assert sorted(runs) == [(1, 0), (1, 1), (1, 2), (3, 0), (3, 1), (3, 2)]
    assert agreement.agreement_accuracy(runs[3, 2].model, 3) == acc[1, 2] == runs[3, 2].accuracy
    assert all(len(run.losses) == 3 and run.seconds > 0 for run in runs.values())
    assert np.all((acc >= 0) & (acc <= 1))
    assert wrapped == [[(1, 0), (1, 1), (1, 2), (3, 0), (3, 1), (3, 2)]]


def test_sweep_runs_a_gru_with_its_keep_bias():
    acc, runs = agreement.distance_sweep("gru", [2], [0], keep_runs=True, H=4, steps=2,
                                         batch=8, keep_bias=3.0)
    assert acc.shape == (1, 1)
    assert isinstance(runs[2, 0].model.cell, nn.GRU)
    # Adam moves each bias by about lr per step, so it is still near 3 after two steps
    assert torch.all((runs[2, 0].model.cell.bias_ih_l0[4:8] - 3.0).abs() < 0.1)


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
