"""Recording gradient flow and the alert (rnncourse.recording), against independent
computations: autograd through nn.RNNCell / nn.LSTMCell loops (the autograd_reach fixture
of conftest.py), the NumPy BPTT, np.linalg.eigvals, and records built by hand."""

import statistics
import time

import numpy as np
import pytest
import torch
from torch import nn

import rnncourse as rc
from rnncourse import recording as rec
from rnncourse import tasks
from rnncourse.seqmodels import TokenModel, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_recording_leaves_training_unchanged(kind, token_batches):
    batches = token_batches(5, 3, 6, True, 5)
    runs = []
    for record in (False, True):
        torch.manual_seed(3)
        model = TokenModel(kind, 5, 4, 3, True)
        hook = rec.GradientRecorder(model) if record else None
        runs.append((train(model, lambda s: batches[s], 5, on_step=hook),
                     [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]  # the same losses, bit for bit
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
@pytest.mark.parametrize("every_step", [True, False])
def test_recorded_norms_equal_autograd_dL_dh_t_float64(kind, every_step, token_batches,
                                                       autograd_reach):
    V, n_out, T, steps = 5, 3, 6, 4
    torch.manual_seed(1)
    model = TokenModel(kind, V, 4, n_out, every_step).double()
    batches = token_batches(V, n_out, T, every_step, steps)
    recorder = rec.GradientRecorder(model)
    expected, expected_forget = [], []

    def on_step(step, loss, hs):
        recorder(step, loss, hs)
        norms, forget = autograd_reach(model, *batches[step])  # weights of this step
        expected.append(norms)
        expected_forget.append(forget)

    train(model, lambda s: batches[s], steps, lr=0.05, on_step=on_step)
    record = recorder.record
    assert record.grad_norms.shape == (steps, T)
    np.testing.assert_array_equal(record.steps, np.arange(steps))
    np.testing.assert_allclose(record.grad_norms, np.array(expected), rtol=1e-10, atol=1e-14)
    # the earliest steps get gradient only through the recurrence: nonzero here
    assert np.all(record.grad_norms[:, 0] > 0)
    if kind == "lstm":
        forget_means = np.array([f.mean(axis=(0, 1)) for f in expected_forget])
        np.testing.assert_allclose(record.spectrum.real, forget_means, rtol=1e-12)
        np.testing.assert_array_equal(record.spectrum.imag, 0)


def test_recorded_rnn_norms_equal_numpy_bptt(token_batches):
    """A second, independent reference: the library's NumPy BPTT (rnn_loss's h_grad)."""
    V, H, n_out, T = 4, 5, 3, 8
    torch.manual_seed(2)
    model = TokenModel("rnn", V, H, n_out, every_step=False).double()
    (tokens, y), = token_batches(V, n_out, T, False, 1, seed=5, N=4)
    cell = model.cell
    params = {
        "W_x": cell.weight_ih_l0.detach().numpy().copy(),
        "W_h": cell.weight_hh_l0.detach().numpy().copy(),
        "b_h": (cell.bias_ih_l0 + cell.bias_hh_l0).detach().numpy().copy(),
        "W_y": model.out.weight.detach().numpy().copy(),
        "b_y": model.out.bias.detach().numpy().copy(),
    }
    recorder = rec.GradientRecorder(model)
    train(model, lambda s: (tokens, y), 1, on_step=recorder)
    targets = np.zeros((4, T), dtype=int)
    targets[:, -1] = y.numpy()
    mask = np.zeros((4, T))
    mask[:, -1] = 1.0  # many-to-one: only the last step has a loss
    _, _, h_grad = rc.rnn_loss(params, tasks.one_hot(tokens.numpy(), V), targets, mask)
    np.testing.assert_allclose(recorder.record.grad_norms[0],
                               np.linalg.norm(h_grad, axis=(0, 2)), rtol=1e-10)


def test_recorded_eigenvalues_equal_np_eigvals_of_that_steps_W_h(token_batches):
    V, n_out, T, steps = 5, 3, 6, 5
    torch.manual_seed(4)
    model = TokenModel("rnn", V, 6, n_out, True).double()
    batches = token_batches(V, n_out, T, True, steps)
    recorder = rec.GradientRecorder(model)
    W_hs = []

    def on_step(step, loss, hs):
        recorder(step, loss, hs)
        W_hs.append(model.cell.weight_hh_l0.detach().numpy().copy())

    train(model, lambda s: batches[s], steps, lr=0.1, on_step=on_step)
    spectrum = recorder.record.spectrum
    assert not np.allclose(W_hs[0], W_hs[-1])  # W_h did move, so the check has teeth
    for s, W_h in enumerate(W_hs):
        expected = np.linalg.eigvals(W_h)
        np.testing.assert_allclose(np.sort_complex(spectrum[s]), np.sort_complex(expected),
                                   rtol=1e-10, atol=1e-12)


def test_recorder_by_hand_takes_numpy_bptt_gradients():
    """The NumPy loop's rnn_loss returns dL/dh_t: add() records its norms and W_h's spectrum."""
    rng = np.random.default_rng(0)
    params = rc.init_rnn_params(D=4, H=5, V=3, rng=rng)
    x = tasks.one_hot(rng.integers(0, 4, (2, 6)), 4)
    targets = rng.integers(0, 3, (2, 6))
    recorder = rec.GradientRecorder(kind="rnn", label="NumPy RNN")
    loss, _, h_grad = rc.rnn_loss(params, x, targets)
    recorder.add(0, loss, h_grad, rc.eigenvalues(params["W_h"]))
    record = recorder.record
    assert record.name == "NumPy RNN"
    expected = [np.sqrt(np.sum(h_grad[:, t] ** 2)) for t in range(6)]
    np.testing.assert_allclose(record.grad_norms[0], expected, rtol=1e-12)
    np.testing.assert_allclose(np.abs(record.spectrum[0]), 1.0)  # orthogonal W_h
    with pytest.raises(ValueError, match="kind must be"):
        rec.GradientRecorder()


def test_recorder_every_k_records_those_steps_only(token_batches):
    torch.manual_seed(0)
    model = TokenModel("lstm", 5, 4, 3, True)
    batches = token_batches(5, 3, 6, True, 7)
    recorder = rec.GradientRecorder(model, every=3)
    losses = train(model, lambda s: batches[s], 7, on_step=recorder)
    record = recorder.record
    np.testing.assert_array_equal(record.steps, [0, 3, 6])
    np.testing.assert_allclose(record.loss, np.array(losses)[[0, 3, 6]])
    recorder.close()
    train(model, lambda s: batches[s], 2)  # no longer watched: the record stays as it was
    assert len(recorder.record.steps) == 3 and recorder._tokens is None


def geometric_record(factors, T=10, every=10):
    """Per-step norms that shrink by `factor` per step back from the last: norm at lag l
    is 2 * factor**l (the factor of 2 checks that fractions are relative)."""
    lags = np.arange(T)[::-1]  # column t-1 holds h_t, lag T - t
    norms = np.array([2.0 * f**lags for f in factors])
    S = len(factors)
    return rec.GradientRecord(kind="rnn", steps=np.arange(S) * every, loss=np.ones(S),
                             grad_norms=norms, spectrum=np.zeros((S, 3), dtype=complex))


def test_alert_fires_at_the_right_training_step_and_lag():
    record = geometric_record([0.9, 0.7, 0.5, 0.3, 0.2])
    alert = rec.find_alert(record, threshold=1e-3)
    # fractions reaching h_1 (lag 9): 0.39, 0.040, 2.0e-3, 2.0e-5, 5e-7 -> row 3, step 30
    assert alert.step == 30
    # at that step 0.3**5 = 2.4e-3 is still above 1e-3 and 0.3**6 = 7.3e-4 is below
    assert alert.lag == 6
    assert alert.ratio == pytest.approx(0.3**9)
    assert alert.T == 10 and alert.threshold == 1e-3
    assert "training step 30" in str(alert) and "lag 6" in str(alert)


def test_alert_is_silent_while_the_gradient_stays_above_threshold():
    record = geometric_record([0.9, 0.7, 0.5, 0.3, 0.2])
    assert rec.find_alert(record, threshold=1e-7) is None  # the lowest is 0.2**9 = 5.1e-7
    assert rec.find_alert(geometric_record([0.9, 0.95]), threshold=0.3) is None


def test_alert_early_window_takes_the_largest_of_the_earliest_steps():
    norms = np.array([[1e-6, 1e-2, 1.0, 1.0], [1e-6, 1e-6, 1.0, 1.0]])
    record = rec.GradientRecord("lstm", np.array([0, 5]), np.ones(2), norms,
                               np.zeros((2, 2), dtype=complex))
    assert rec.find_alert(record, 1e-3, early=1).step == 0
    alert = rec.find_alert(record, 1e-3, early=2)
    assert alert.step == 5 and alert.lag == 2
    np.testing.assert_allclose(rec.early_fraction(record, 2), [1e-2, 1e-6])


@pytest.mark.parametrize("threshold", [0, 1, -0.1, 1.5, float("nan"), "0.1", None])
def test_threshold_outside_0_1_raises_a_clear_error(threshold):
    record = geometric_record([0.5])
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        rec.find_alert(record, threshold)


def test_empty_record_raises_a_clear_error():
    with pytest.raises(ValueError, match="record is empty"):
        rec.GradientRecord("rnn", np.array([], dtype=int), np.array([]), np.zeros((0, 5)),
                          np.zeros((0, 3), dtype=complex))
    torch.manual_seed(0)
    recorder = rec.GradientRecorder(TokenModel("rnn", 4, 3, 2, True))
    with pytest.raises(ValueError, match="record is empty"):
        _ = recorder.record


def test_other_bad_inputs_raise_clear_errors():
    record = geometric_record([0.5, 0.4])
    with pytest.raises(ValueError, match="early must be an integer"):
        rec.find_alert(record, 1e-3, early=0)
    with pytest.raises(ValueError, match="early must be an integer"):
        rec.find_alert(record, 1e-3, early=10)
    with pytest.raises(ValueError, match="expected 2 rows"):
        rec.GradientRecord("rnn", np.arange(2), np.ones(3), np.ones((2, 4)), np.ones((2, 2)))
    zero_last = rec.GradientRecord("rnn", np.array([0, 7]), np.ones(2),
                                  np.array([[1.0, 1.0], [1.0, 0.0]]), np.ones((2, 2)))
    with pytest.raises(ValueError, match="zero at training step 7"):
        rec.find_alert(zero_last, 1e-3)
    with pytest.raises(ValueError, match="must be a seqmodels.TokenModel"):
        rec.GradientRecorder(nn.RNN(4, 3))
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="positive integer"):
        rec.GradientRecorder(TokenModel("rnn", 4, 3, 2, True), every=0)


def paired_cpu_ratio(plain, recorded, batch_fn, steps, repeats):
    """Median over repeats of CPU time (recorded run) / CPU time (plain run), the two runs
    of a pair back to back so that both see the same load on the machine."""
    ratios = []
    for _ in range(repeats):
        seconds = []
        for maker in (plain, recorded):
            model, hook = maker()
            start = time.process_time()
            train(model, batch_fn, steps, on_step=hook)
            seconds.append(time.process_time() - start)
        ratios.append(seconds[1] / seconds[0])
    return statistics.median(ratios)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_recording_costs_less_than_twice_the_plain_loop(kind):
    """CPU time (not wall time: other jobs share the machine) of the same training with
    and without recording, every step recorded, the lab's sizes: H = 32, N = 64, T = 36."""
    rng = np.random.default_rng(0)
    batch = tuple(torch.from_numpy(a) for a in (rng.integers(0, 10, (64, 36)),
                                                rng.integers(0, 10, 64)))

    def plain():
        torch.manual_seed(0)
        return TokenModel(kind, 10, 32, 10, False), None

    def recorded():
        torch.manual_seed(0)
        model = TokenModel(kind, 10, 32, 10, False)
        return model, rec.GradientRecorder(model)

    train(*plain()[:1], lambda s: batch, 3)  # warm up
    ratio = paired_cpu_ratio(plain, recorded, lambda s: batch, steps=20, repeats=5)
    print(f"{kind}: recording / plain CPU time = {ratio:.2f}")
    assert ratio < 2.0
