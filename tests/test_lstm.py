"""LSTM helpers against a real nn.LSTMCell, autograd, finite differences and NumPy BPTT."""

import numpy as np
import pytest
import torch
from torch import nn

import rnncourse as rc
from rnncourse import lstm
from rnncourse.seqmodels import TokenModel, sequence_loss


def _cell_and_inputs(D=3, H=4, N=2, seed=0):
    torch.manual_seed(seed)
    cell = nn.LSTMCell(D, H).double()
    x = torch.randn(N, D, dtype=torch.float64)
    h = torch.randn(N, H, dtype=torch.float64)
    c = torch.randn(N, H, dtype=torch.float64)
    return cell, x, h, c


def test_gate_by_gate_step_reproduces_lstm_cell():
    cell, x, h, c = _cell_and_inputs()
    ours = lstm.lstm_cell_step(cell, x, h, c)
    h_ref, c_ref = cell(x, (h, c))
    torch.testing.assert_close(ours["h"], h_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours["c"], c_ref, rtol=1e-12, atol=1e-12)
    for name in ("i", "f", "o"):
        assert torch.all((ours[name] > 0) & (ours[name] < 1)), name
    assert torch.all(ours["g"].abs() < 1)


def test_cell_path_jacobian_is_diag_of_the_forget_gate():
    cell, x, h, c = _cell_and_inputs(seed=1)
    J = lstm.cell_path_jacobian(cell, x[0], h[0], c[0])
    f = lstm.lstm_cell_step(cell, x[:1], h[:1], c[:1])["f"][0]
    torch.testing.assert_close(J, torch.diag(f), rtol=1e-12, atol=1e-12)


def test_cell_path_jacobian_matches_central_differences():
    cell, x, h, c = _cell_and_inputs(seed=2)

    def c_next(c_prev):
        with torch.no_grad():
            return cell(x[:1], (h[:1], torch.as_tensor(c_prev)[None]))[1][0].numpy()

    numeric = rc.numerical_jacobian(c_next, c[0].numpy())
    J = lstm.cell_path_jacobian(cell, x[0], h[0], c[0]).numpy()
    assert rc.rel_error(J, numeric) < 1e-8


@pytest.mark.parametrize("value", [0.0, 1.0, 3.0])
def test_set_forget_bias_on_a_cell_gives_sigmoid_of_the_bias(value):
    cell, x, h, c = _cell_and_inputs(seed=3)
    lstm.set_forget_bias(cell, value)
    zeros = torch.zeros(1, cell.input_size, dtype=torch.float64)
    hz = torch.zeros(1, cell.hidden_size, dtype=torch.float64)
    f = lstm.lstm_cell_step(cell, zeros, hz, hz)["f"]
    torch.testing.assert_close(f, torch.full_like(f, 1 / (1 + np.exp(-value))))


def test_set_forget_bias_touches_only_the_forget_slice_of_every_layer():
    torch.manual_seed(0)
    net = nn.LSTM(3, 5, num_layers=2)
    before = {k: v.clone() for k, v in net.named_parameters()}
    lstm.set_forget_bias(net, 2.0)
    for k in range(2):
        b_ih, b_hh = getattr(net, f"bias_ih_l{k}"), getattr(net, f"bias_hh_l{k}")
        assert torch.all(b_ih[5:10] == 2.0) and torch.all(b_hh[5:10] == 0.0)
        for name, b in ((f"bias_ih_l{k}", b_ih), (f"bias_hh_l{k}", b_hh)):
            torch.testing.assert_close(b[:5], before[name][:5])
            torch.testing.assert_close(b[10:], before[name][10:])


def test_set_forget_bias_rejects_other_modules():
    with pytest.raises(ValueError, match="nn.LSTM"):
        lstm.set_forget_bias(nn.RNN(2, 3), 1.0)


def test_hidden_gradient_norms_match_numpy_bptt_for_the_rnn():
    torch.manual_seed(4)
    V, H, N, T = 5, 6, 3, 7
    model = TokenModel("rnn", V, H, 2, every_step=False).double()
    tokens = torch.randint(0, V, (N, T))
    y = torch.randint(0, 2, (N,))
    ours = lstm.hidden_gradient_norms(model, tokens, y).numpy()

    # independent route: the NumPy BPTT of rnncourse.rnn with the same weights
    cell, out = model.cell, model.out
    with torch.no_grad():
        W_x, W_h = cell.weight_ih_l0.numpy(), cell.weight_hh_l0.numpy()
        b_h = (cell.bias_ih_l0 + cell.bias_hh_l0).numpy()
        logits = model(tokens)[0]
        p = torch.softmax(logits, dim=-1).numpy()
    x = rc.tasks.one_hot(tokens.numpy(), V)
    h, caches = rc.rnn_forward(x, np.zeros((N, H)), W_x, W_h, b_h)
    dlogits = (p - np.eye(2)[y.numpy()]) / N
    dh = np.zeros((N, T, H))
    dh[:, -1] = dlogits @ out.weight.detach().numpy()
    reach = rc.rnn_backward(dh, caches)["h"]
    np.testing.assert_allclose(ours, np.linalg.norm(reach, axis=-1).mean(axis=0), rtol=1e-10)


def test_hidden_gradient_norms_leave_parameter_grads_alone():
    torch.manual_seed(5)
    model = TokenModel("lstm", 4, 3, 2, every_step=True)
    tokens = torch.randint(0, 4, (2, 6))
    y = torch.randint(0, 2, (2, 6))
    norms = lstm.hidden_gradient_norms(model, tokens, y)
    assert norms.shape == (6,) and not norms.requires_grad
    assert all(p.grad is None for p in model.parameters())
    out, _ = model(tokens)
    assert sequence_loss(out, y).requires_grad
