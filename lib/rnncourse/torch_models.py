"""The PyTorch twin of the NumPy RNN: nn.RNN plus a linear read-out."""

import numpy as np
import torch
from torch import nn

from .checks import check_shape


class TorchRNN(nn.Module):
    """tanh RNN with an output layer, batch-first, same maths as rnncourse.rnn.

    forward(x (N, T, D), h0 (1, N, H) or None) returns y (N, T, V), h (N, T, H)
    """

    def __init__(self, D, H, V):
        super().__init__()
        self.rnn = nn.RNN(D, H, nonlinearity="tanh", batch_first=True)
        self.out = nn.Linear(H, V)

    def forward(self, x, h0=None):
        h, _ = self.rnn(x, h0)
        return self.out(h), h

    @classmethod
    def from_numpy(cls, params, dtype=torch.float64):
        """Build a model holding the NumPy params (W_x, W_h, b_h, W_y, b_y).

        nn.RNN has two biases, b_ih and b_hh, that are simply added: b_ih gets
        b_h and b_hh is zero.
        """
        H, D = np.shape(params["W_x"])
        V = np.shape(params["W_y"])[0]
        model = cls(D, H, V).to(dtype)
        model.load_numpy(params)
        return model

    def load_numpy(self, params):
        """Copy NumPy params into this model in place, checking every shape."""
        H, D = self.rnn.hidden_size, self.rnn.input_size
        V = self.out.out_features
        targets = {
            "W_x": (self.rnn.weight_ih_l0, (H, D), ("H", "D")),
            "W_h": (self.rnn.weight_hh_l0, (H, H), ("H", "H")),
            "b_h": (self.rnn.bias_ih_l0, (H,), ("H",)),
            "W_y": (self.out.weight, (V, H), ("V", "H")),
            "b_y": (self.out.bias, (V,), ("V",)),
        }
        with torch.no_grad():
            for name, (tensor, shape, symbols) in targets.items():
                value = check_shape(name, np.asarray(params[name]), shape, symbols)
                tensor.copy_(torch.as_tensor(value, dtype=tensor.dtype))
            self.rnn.bias_hh_l0.zero_()
        return self

    def numpy_params(self):
        """The parameters as a NumPy dict, with the two RNN biases summed into b_h."""
        with torch.no_grad():
            return {
                "W_x": self.rnn.weight_ih_l0.numpy().copy(),
                "W_h": self.rnn.weight_hh_l0.numpy().copy(),
                "b_h": (self.rnn.bias_ih_l0 + self.rnn.bias_hh_l0).numpy().copy(),
                "W_y": self.out.weight.numpy().copy(),
                "b_y": self.out.bias.numpy().copy(),
            }
