"""The PyTorch twin of the NumPy RNN (nn.RNN plus a linear read-out), and the GRU over
tokens that lecture 04 sets beside seqmodels' RNN and LSTM."""

import numpy as np
import torch
from torch import nn

from .checks import check_shape
from .seqmodels import TokenModel


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


class TokenGRU(TokenModel):
    """A GRU over integer tokens with a linear read-out: TokenModel's interface and forward.

    V: vocabulary size (inputs are one-hot, so D = V); H: hidden size; n_out: classes
    every_step: True for an output at every step (N, T, n_out), False for one output
                from the last step (N, n_out)
    forward(tokens (N, T) int64) returns (out, hs (N, T, H))

    nn.GRU stacks its gates in the rows of weight_ih / weight_hh in the order r, z, n
    (reset gate, update gate, candidate), and mixes with z as the share it keeps:
        r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}
    so PyTorch's z_t is 1 - z_t of Cho et al. (2014), whose z_t is the share it writes.
    """

    def __init__(self, V, H, n_out, every_step):
        # TokenModel.__init__ builds only its own kinds ("rnn", "lstm"); the attributes
        # its forward reads are set here, in the same order (cell first, then read-out)
        nn.Module.__init__(self)
        self.kind, self.V, self.every_step = "gru", V, every_step
        self.cell = nn.GRU(V, H, batch_first=True)
        self.out = nn.Linear(H, n_out)


def set_keep_bias(gru, value):
    """Set the total bias of nn.GRU's z gate (the share of h_{t-1} kept) to `value`, in place.

    The GRU's counterpart of lstm.set_forget_bias: the z slice [H:2H] of bias_ih gets
    `value` and that of bias_hh gets 0, so an input-free unit starts keeping
    sigmoid(value) of its state per step (0.95 for value 3).
    gru: an nn.GRU (every layer) or nn.GRUCell; returns it
    """
    if isinstance(gru, nn.GRUCell):
        pairs = [(gru.bias_ih, gru.bias_hh)]
    elif isinstance(gru, nn.GRU):
        pairs = [(getattr(gru, f"bias_ih_l{k}"), getattr(gru, f"bias_hh_l{k}"))
                 for k in range(gru.num_layers)]
    else:
        raise ValueError(f"gru must be an nn.GRU or nn.GRUCell, got {type(gru).__name__}")
    H = gru.hidden_size
    with torch.no_grad():
        for bias_ih, bias_hh in pairs:
            bias_ih[H:2 * H] = value
            bias_hh[H:2 * H] = 0.0
    return gru
