"""The gradient-flow dashboard's recording and alert logic, against independent
computations: autograd through nn.RNNCell / nn.LSTMCell loops, the NumPy BPTT,
np.linalg.eigvals, and records built by hand. Values, not pixels."""

import statistics
import time

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

import rnncourse as rc
from rnncourse import dashboard as db
from rnncourse import tasks
from rnncourse.seqmodels import TokenModel, sequence_loss, train

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_batches(V, n_out, T, every_step, steps, seed=0, N=3):
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(steps):
        tokens = torch.randint(0, V, (N, T), generator=g)
        y = torch.randint(0, n_out, (N, T) if every_step else (N,), generator=g)
        batches.append((tokens, y))
    return batches


def reference_reach(model, tokens, y):
    """dL/dh_t by autograd through an explicit nn.RNNCell / nn.LSTMCell loop holding
    copies of the model's weights, h_t.retain_grad() at every step.
    returns (T,) norms over (N, H), and for the LSTM the forget gates (N, T, H)."""
    H, V = model.cell.hidden_size, model.V
    dtype = model.out.weight.dtype
    Cell = nn.RNNCell if model.kind == "rnn" else nn.LSTMCell
    cell = Cell(V, H).to(dtype)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(model.cell, f"{name}_l0"))
    out_layer = nn.Linear(H, model.out.out_features).to(dtype)
    out_layer.load_state_dict(model.out.state_dict())
    x = nn.functional.one_hot(tokens, V).to(dtype)
    N, T = tokens.shape
    h = torch.zeros(N, H, dtype=dtype)
    c = torch.zeros(N, H, dtype=dtype)
    hs, forget = [], []
    for t in range(T):
        if model.kind == "rnn":
            h = cell(x[:, t], h)
        else:
            gates = x[:, t] @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
            forget.append(torch.sigmoid(gates.chunk(4, dim=1)[1]).detach())
            h, c = cell(x[:, t], (h, c))
        h.retain_grad()
        hs.append(h)
    stacked = torch.stack(hs, dim=1)
    out = out_layer(stacked) if model.every_step else out_layer(stacked[:, -1])
    sequence_loss(out, y).backward()
    norms = np.array([h.grad.norm().item() for h in hs])
    return norms, (torch.stack(forget, dim=1).numpy() if forget else None)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_recording_leaves_training_unchanged(kind):
    batches = make_batches(5, 3, 6, True, 5)
    runs = []
    for record in (False, True):
        torch.manual_seed(3)
        model = TokenModel(kind, 5, 4, 3, True)
        hook = db.GradientRecorder(model) if record else None
        runs.append((train(model, lambda s: batches[s], 5, on_step=hook),
                     [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]  # the same losses, bit for bit
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
@pytest.mark.parametrize("every_step", [True, False])
def test_recorded_norms_equal_autograd_dL_dh_t_float64(kind, every_step):
    V, n_out, T, steps = 5, 3, 6, 4
    torch.manual_seed(1)
    model = TokenModel(kind, V, 4, n_out, every_step).double()
    batches = make_batches(V, n_out, T, every_step, steps)
    recorder = db.GradientRecorder(model)
    expected, expected_forget = [], []

    def on_step(step, loss, hs):
        recorder(step, loss, hs)
        norms, forget = reference_reach(model, *batches[step])  # weights of this step
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


def test_recorded_rnn_norms_equal_numpy_bptt():
    """A second, independent reference: the library's NumPy BPTT (rnn_loss's h_grad)."""
    V, H, n_out, T = 4, 5, 3, 8
    torch.manual_seed(2)
    model = TokenModel("rnn", V, H, n_out, every_step=False).double()
    (tokens, y), = make_batches(V, n_out, T, False, 1, seed=5, N=4)
    cell = model.cell
    params = {
        "W_x": cell.weight_ih_l0.detach().numpy().copy(),
        "W_h": cell.weight_hh_l0.detach().numpy().copy(),
        "b_h": (cell.bias_ih_l0 + cell.bias_hh_l0).detach().numpy().copy(),
        "W_y": model.out.weight.detach().numpy().copy(),
        "b_y": model.out.bias.detach().numpy().copy(),
    }
    recorder = db.GradientRecorder(model)
    train(model, lambda s: (tokens, y), 1, on_step=recorder)
    targets = np.zeros((4, T), dtype=int)
    targets[:, -1] = y.numpy()
    mask = np.zeros((4, T))
    mask[:, -1] = 1.0  # many-to-one: only the last step has a loss
    _, _, h_grad = rc.rnn_loss(params, tasks.one_hot(tokens.numpy(), V), targets, mask)
    np.testing.assert_allclose(recorder.record.grad_norms[0],
                               np.linalg.norm(h_grad, axis=(0, 2)), rtol=1e-10)


def test_recorded_eigenvalues_equal_np_eigvals_of_that_steps_W_h():
    V, n_out, T, steps = 5, 3, 6, 5
    torch.manual_seed(4)
    model = TokenModel("rnn", V, 6, n_out, True).double()
    batches = make_batches(V, n_out, T, True, steps)
    recorder = db.GradientRecorder(model)
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
    recorder = db.GradientRecorder(kind="rnn", label="NumPy RNN")
    loss, _, h_grad = rc.rnn_loss(params, x, targets)
    recorder.add(0, loss, h_grad, rc.eigenvalues(params["W_h"]))
    record = recorder.record
    assert record.name == "NumPy RNN"
    expected = [np.sqrt(np.sum(h_grad[:, t] ** 2)) for t in range(6)]
    np.testing.assert_allclose(record.grad_norms[0], expected, rtol=1e-12)
    np.testing.assert_allclose(np.abs(record.spectrum[0]), 1.0)  # orthogonal W_h
    with pytest.raises(ValueError, match="kind must be"):
        db.GradientRecorder()


def test_recorder_every_k_records_those_steps_only():
    torch.manual_seed(0)
    model = TokenModel("lstm", 5, 4, 3, True)
    batches = make_batches(5, 3, 6, True, 7)
    recorder = db.GradientRecorder(model, every=3)
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
    return db.GradientRecord(kind="rnn", steps=np.arange(S) * every, loss=np.ones(S),
                             grad_norms=norms, spectrum=np.zeros((S, 3), dtype=complex))


def test_alert_fires_at_the_right_training_step_and_lag():
    record = geometric_record([0.9, 0.7, 0.5, 0.3, 0.2])
    alert = db.find_alert(record, threshold=1e-3)
    # fractions reaching h_1 (lag 9): 0.39, 0.040, 2.0e-3, 2.0e-5, 5e-7 -> row 3, step 30
    assert alert.step == 30
    # at that step 0.3**5 = 2.4e-3 is still above 1e-3 and 0.3**6 = 7.3e-4 is below
    assert alert.lag == 6
    assert alert.ratio == pytest.approx(0.3**9)
    assert alert.T == 10 and alert.threshold == 1e-3
    assert "training step 30" in str(alert) and "lag 6" in str(alert)


def test_alert_is_silent_while_the_gradient_stays_above_threshold():
    record = geometric_record([0.9, 0.7, 0.5, 0.3, 0.2])
    assert db.find_alert(record, threshold=1e-7) is None  # the lowest is 0.2**9 = 5.1e-7
    assert db.find_alert(geometric_record([0.9, 0.95]), threshold=0.3) is None


def test_alert_early_window_takes_the_largest_of_the_earliest_steps():
    norms = np.array([[1e-6, 1e-2, 1.0, 1.0], [1e-6, 1e-6, 1.0, 1.0]])
    record = db.GradientRecord("lstm", np.array([0, 5]), np.ones(2), norms,
                               np.zeros((2, 2), dtype=complex))
    assert db.find_alert(record, 1e-3, early=1).step == 0
    alert = db.find_alert(record, 1e-3, early=2)
    assert alert.step == 5 and alert.lag == 2
    np.testing.assert_allclose(db.early_fraction(record, 2), [1e-2, 1e-6])


@pytest.mark.parametrize("threshold", [0, 1, -0.1, 1.5, float("nan"), "0.1", None])
def test_threshold_outside_0_1_raises_a_clear_error(threshold):
    record = geometric_record([0.5])
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        db.find_alert(record, threshold)


def test_empty_record_raises_a_clear_error():
    with pytest.raises(ValueError, match="record is empty"):
        db.GradientRecord("rnn", np.array([], dtype=int), np.array([]), np.zeros((0, 5)),
                          np.zeros((0, 3), dtype=complex))
    torch.manual_seed(0)
    recorder = db.GradientRecorder(TokenModel("rnn", 4, 3, 2, True))
    with pytest.raises(ValueError, match="record is empty"):
        _ = recorder.record
    with pytest.raises(ValueError, match="records is empty"):
        db.static_figure([])


def test_other_bad_inputs_raise_clear_errors():
    record = geometric_record([0.5, 0.4])
    with pytest.raises(ValueError, match="early must be an integer"):
        db.find_alert(record, 1e-3, early=0)
    with pytest.raises(ValueError, match="early must be an integer"):
        db.find_alert(record, 1e-3, early=10)
    with pytest.raises(ValueError, match="expected 2 rows"):
        db.GradientRecord("rnn", np.arange(2), np.ones(3), np.ones((2, 4)), np.ones((2, 2)))
    zero_last = db.GradientRecord("rnn", np.array([0, 7]), np.ones(2),
                                  np.array([[1.0, 1.0], [1.0, 0.0]]), np.ones((2, 2)))
    with pytest.raises(ValueError, match="zero at training step 7"):
        db.find_alert(zero_last, 1e-3)
    with pytest.raises(ValueError, match="must be a seqmodels.TokenModel"):
        db.GradientRecorder(nn.RNN(4, 3))
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="positive integer"):
        db.GradientRecorder(TokenModel("rnn", 4, 3, 2, True), every=0)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_hs_grad_holds_only_the_readout_part_and_reach_adds_the_rest(kind):
    """Why the recorder needs hidden_state_gradients: nn.RNN / nn.LSTM keep the recurrence
    inside one op, so a many-to-one TokenModel's hs.grad is zero before the last step."""
    torch.manual_seed(0)
    model = TokenModel(kind, 5, 4, 2, every_step=False).double()
    (tokens, y), = make_batches(5, 2, 6, False, 1)
    out, hs = model(tokens)
    hs.retain_grad()
    sequence_loss(out, y).backward()
    assert torch.all(hs.grad[:, :-1] == 0)
    reach, forget = db.hidden_state_gradients(model, tokens, hs.detach(), hs.grad)
    expected, expected_forget = reference_reach(model, tokens, y)
    np.testing.assert_allclose(reach.norm(dim=(0, 2)).numpy(), expected, rtol=1e-10)
    assert (forget is None) == (kind == "rnn")
    if forget is not None:
        np.testing.assert_allclose(forget.numpy(), expected_forget, rtol=1e-12)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_probed_copy_reports_the_reaching_gradient_and_leaves_the_model_alone(kind):
    torch.manual_seed(1)
    model = TokenModel(kind, 5, 4, 2, every_step=False).double()
    before = [p.detach().clone() for p in model.parameters()]
    (tokens, y), = make_batches(5, 2, 6, False, 1)
    probed = db.probed_copy(model)
    out, _ = probed(tokens)
    sequence_loss(out, y).backward()
    expected, _ = reference_reach(model, tokens, y)
    np.testing.assert_allclose(probed.reach_grad().norm(dim=(0, 2)).numpy(), expected, rtol=1e-10)
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    with pytest.raises(ValueError, match="run forward, then backward"):
        db.probed_copy(model).reach_grad()


def test_static_figure_draws_the_recorded_values():
    rnn = geometric_record([0.9, 0.5, 0.3])
    lstm = db.GradientRecord("lstm", rnn.steps, rnn.loss, rnn.grad_norms[::-1].copy(),
                             np.full((3, 3), 0.9 + 0j))
    fig = db.static_figure([rnn, lstm], threshold=1e-2)
    heatmaps = [ax for ax in fig.axes if "gradient reaching each h_t" in ax.get_title()]
    assert [ax.get_title().split(":")[0] for ax in heatmaps] == ["vanilla RNN", "LSTM"]
    for ax, record in zip(heatmaps, [rnn, lstm], strict=True):
        np.testing.assert_allclose(ax.images[0].get_array(), record.grad_norms.T)
    assert all(ax.get_yscale() == "log" for ax in fig.axes if "fraction" in ax.get_ylabel())
    matplotlib.pyplot.close(fig)
    box = db.live([rnn, lstm], threshold=1e-2)
    assert "ALERT vanilla RNN" in box.children[1].value
    assert "no alert for LSTM" not in box.children[1].value
    matplotlib.pyplot.close("all")


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
        return model, db.GradientRecorder(model)

    train(*plain()[:1], lambda s: batch, 3)  # warm up
    ratio = paired_cpu_ratio(plain, recorded, lambda s: batch, steps=20, repeats=5)
    print(f"{kind}: recording / plain CPU time = {ratio:.2f}")
    assert ratio < 2.0
