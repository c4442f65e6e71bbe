"""The GRU over tokens (torch_models.TokenGRU) against a GRU written out in NumPy,
nn.GRUCell and central finite differences; its keep-gate bias; its parameter count."""

import numpy as np
import pytest
import torch
from torch import nn

from rnncourse.torch_models import TokenGRU, set_keep_bias


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def numpy_gru_states(x, W_ih, W_hh, b_ih, b_hh):
    """nn.GRU's equations, one step at a time, from h_0 = 0.

    x: (N, T, D); W_ih (3H, D), W_hh (3H, H), b_ih, b_hh (3H,), rows in the order r, z, n
    returns hs (N, T, H)
    """
    N, T, _ = x.shape
    H = W_hh.shape[1]
    rows = {"r": slice(0, H), "z": slice(H, 2 * H), "n": slice(2 * H, 3 * H)}
    h_prev, hs = np.zeros((N, H)), []
    for t in range(T):
        x_part = {g: x[:, t] @ W_ih[s].T + b_ih[s] for g, s in rows.items()}
        h_part = {g: h_prev @ W_hh[s].T + b_hh[s] for g, s in rows.items()}
        r_t = sigmoid(x_part["r"] + h_part["r"])
        z_t = sigmoid(x_part["z"] + h_part["z"])        # PyTorch's z: the share of h kept
        n_t = np.tanh(x_part["n"] + r_t * h_part["n"])  # reset applied after W_hn h
        h_prev = (1 - z_t) * n_t + z_t * h_prev
        hs.append(h_prev)
    return np.stack(hs, axis=1)


def numpy_weights(model):
    cell = model.cell
    return [p.detach().double().numpy() for p in
            (cell.weight_ih_l0, cell.weight_hh_l0, cell.bias_ih_l0, cell.bias_hh_l0)]


def random_model(V, H, n_out, every_step, seed):
    torch.manual_seed(seed)
    model = TokenGRU(V, H, n_out, every_step).double()
    with torch.no_grad():  # biases away from PyTorch's small uniform start, so each counts
        for p in model.parameters():
            p.normal_(0, 0.7)
    return model


@pytest.mark.parametrize("every_step, out_shape", [(False, (4, 2)), (True, (4, 7, 2))])
def test_token_gru_shapes(every_step, out_shape):
    model = TokenGRU(5, 3, 2, every_step)
    out, hs = model(torch.randint(0, 5, (4, 7)))
    assert out.shape == out_shape and hs.shape == (4, 7, 3)
    with pytest.raises(ValueError, match=r"tokens has shape \(7,\), expected \(N, T\)"):
        model(torch.randint(0, 5, (7,)))


@pytest.mark.parametrize("N, T, V, H", [(1, 1, 3, 2), (4, 9, 5, 8), (3, 30, 11, 16)])
def test_token_gru_equals_numpy_gru_float64(N, T, V, H):
    model = random_model(V, H, 2, every_step=True, seed=T)
    tokens = torch.from_numpy(np.random.default_rng(T).integers(0, V, (N, T)))
    with torch.no_grad():
        out, hs = model(tokens)
    expected = numpy_gru_states(np.eye(V)[tokens.numpy()], *numpy_weights(model))
    W_y, b_y = model.out.weight.detach().numpy(), model.out.bias.detach().numpy()
    assert np.max(np.abs(hs.numpy() - expected)) < 1e-12
    assert np.max(np.abs(out.numpy() - (expected @ W_y.T + b_y))) < 1e-12


def test_token_gru_equals_a_loop_of_gru_cells():
    model = random_model(6, 5, 2, every_step=False, seed=1)
    cell = nn.GRUCell(6, 5).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(model.cell, f"{name}_l0"))
    tokens = torch.from_numpy(np.random.default_rng(1).integers(0, 6, (3, 12)))
    x = nn.functional.one_hot(tokens, 6).double()
    h = torch.zeros(3, 5, dtype=torch.float64)
    with torch.no_grad():
        for t in range(12):
            h = cell(x[:, t], h)
        out, hs = model(tokens)
    assert torch.max(torch.abs(hs[:, -1] - h)) < 1e-12
    assert torch.max(torch.abs(out - model.out(h))) < 1e-12


def test_gradients_equal_central_differences_of_the_numpy_gru():
    V, H, N, T = 4, 3, 5, 6
    model = random_model(V, H, 2, every_step=False, seed=0)
    rng = np.random.default_rng(0)
    tokens, y = rng.integers(0, V, (N, T)), rng.integers(0, 2, N)
    out, _ = model(torch.from_numpy(tokens))
    nn.functional.cross_entropy(out, torch.from_numpy(y)).backward()

    x = np.eye(V)[tokens]
    params = numpy_weights(model) + [model.out.weight.detach().double().numpy(),
                                     model.out.bias.detach().double().numpy()]
    grads = [p.grad.numpy() for p in (model.cell.weight_ih_l0, model.cell.weight_hh_l0,
                                      model.cell.bias_ih_l0, model.cell.bias_hh_l0,
                                      model.out.weight, model.out.bias)]

    def loss(ps):
        logits = numpy_gru_states(x, *ps[:4])[:, -1] @ ps[4].T + ps[5]
        logits = logits - logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return -log_p[np.arange(N), y].mean()

    eps = 1e-6
    for k, (p, g) in enumerate(zip(params, grads, strict=True)):
        numeric = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            shifted = [q.copy() for q in params]
            shifted[k][i] = p[i] + eps
            up = loss(shifted)
            shifted[k][i] = p[i] - eps
            numeric[i] = (up - loss(shifted)) / (2 * eps)
        assert np.max(np.abs(g - numeric)) < 1e-8, f"parameter {k}"


@pytest.mark.parametrize("make", [lambda: nn.GRU(3, 4, batch_first=True), lambda: nn.GRUCell(3, 4)])
def test_keep_bias_makes_a_zero_weight_unit_keep_sigmoid_of_it(make):
    gru = make().double()
    # every weight zero and the candidate's biases zero, so n_t = tanh(0) = 0 and
    # h_t = z_t * h_{t-1}, with z_t = sigmoid(its bias); the reset gate keeps its random bias
    with torch.no_grad():
        for name, p in gru.named_parameters():
            p.zero_() if "weight" in name else p.normal_()
            if "bias" in name:
                p[8:12] = 0.0
    assert set_keep_bias(gru, 3.0) is gru
    h_prev = torch.tensor([[1.0, -2.0, 0.5, 4.0]], dtype=torch.float64)
    x = torch.zeros(1, 3, dtype=torch.float64)
    if isinstance(gru, nn.GRUCell):
        h_t = gru(x, h_prev)
    else:
        h_t = gru(x[:, None], h_prev[None])[0][:, 0]
    keep = 1 / (1 + np.exp(-3.0))
    assert torch.max(torch.abs(h_t - keep * h_prev)) < 1e-12


def test_keep_bias_sets_only_the_z_rows_and_refuses_an_lstm():
    gru = nn.GRU(3, 4, num_layers=2)
    before = {name: p.detach().clone() for name, p in gru.named_parameters()}
    set_keep_bias(gru, 2.0)
    for layer in (0, 1):
        for kind, value in (("ih", 2.0), ("hh", 0.0)):
            name = f"bias_{kind}_l{layer}"
            b = getattr(gru, name).detach()
            assert torch.all(b[4:8] == value)
            assert torch.equal(b[:4], before[name][:4])
            assert torch.equal(b[8:], before[name][8:])
    with pytest.raises(ValueError, match="nn.GRU or nn.GRUCell, got LSTM"):
        set_keep_bias(nn.LSTM(3, 4), 1.0)


@pytest.mark.parametrize("V, H, n_out", [(11, 32, 2), (4, 3, 5)])
def test_parameter_count_is_three_quarters_of_the_lstms_gates(V, H, n_out):
    gates = H * (V + H) + 2 * H  # one gate: W_i (H, V), W_h (H, H) and two biases
    read_out = n_out * (H + 1)
    gru = TokenGRU(V, H, n_out, every_step=False)
    lstm = nn.LSTM(V, H, batch_first=True)
    assert sum(p.numel() for p in gru.parameters()) == 3 * gates + read_out
    assert sum(p.numel() for p in lstm.parameters()) == 4 * gates
