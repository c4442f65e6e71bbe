"""The NumPy forward pass against PyTorch's nn.RNN holding the same weights."""

import numpy as np
import pytest
import torch

import rnncourse as rc
from rnncourse.torch_models import TorchRNN


@pytest.mark.parametrize("N, T, D, H, V", [(1, 1, 2, 3, 2), (4, 9, 5, 8, 6), (2, 40, 3, 16, 4)])
def test_numpy_forward_equals_nn_rnn(N, T, D, H, V):
    rng = np.random.default_rng(T)
    params = rc.init_rnn_params(D, H, V, rng)
    params["b_h"] = rng.standard_normal(H)
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    h, _ = rc.rnn_forward(x, h0, params["W_x"], params["W_h"], params["b_h"])
    y = h @ params["W_y"].T + params["b_y"]

    model = TorchRNN.from_numpy(params)
    with torch.no_grad():
        y_t, h_t = model(torch.tensor(x), torch.tensor(h0)[None])
    assert np.max(np.abs(h - h_t.numpy())) < 1e-12
    assert np.max(np.abs(y - y_t.numpy())) < 1e-12


def test_round_trip_through_torch_keeps_parameters():
    params = rc.init_rnn_params(3, 4, 5, np.random.default_rng(0))
    back = TorchRNN.from_numpy(params).numpy_params()
    for name in params:
        np.testing.assert_array_equal(back[name], params[name])


def test_loading_a_wrong_shape_names_the_parameter():
    params = rc.init_rnn_params(3, 4, 5, np.random.default_rng(0))
    model = TorchRNN(3, 4, 5).double()
    params["W_h"] = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"W_h has shape \(4, 3\), expected \(H, H\) = \(4, 4\)"):
        model.load_numpy(params)
