"""LSTM helpers for lecture 06: the gates of a real nn.LSTMCell, its cell-path
Jacobian, the forget-gate bias, and the gradient reaching each hidden state.

PyTorch stacks the four gates in the rows of weight_ih and weight_hh in the order
i, f, g, o (input gate, forget gate, candidate c~_t, output gate):
    i_t = sigmoid(.)  f_t = sigmoid(.)  c~_t = tanh(.)  o_t = sigmoid(.)
    c_t = f_t * c_{t-1} + i_t * c~_t,    h_t = o_t * tanh(c_t)
"""

import torch
from torch import nn

from .checks import check_shape
from .seqmodels import sequence_loss
from .state_gradients import probed_copy

GATE_ORDER = ("i", "f", "g", "o")


def lstm_cell_step(cell, x_t, h_prev, c_prev):
    """One step of an nn.LSTMCell recomputed from its weights, gate by gate.

    cell:   nn.LSTMCell(D, H)
    x_t:    (N, D); h_prev, c_prev: (N, H)
    returns a dict of (N, H) tensors: i, f, g (the candidate c~_t), o, c (c_t), h (h_t)
    """
    D, H = cell.input_size, cell.hidden_size
    check_shape("x_t", x_t, (None, D), ("N", "D"))
    check_shape("h_prev", h_prev, (x_t.shape[0], H), ("N", "H"))
    check_shape("c_prev", c_prev, (x_t.shape[0], H), ("N", "H"))
    pre = x_t @ cell.weight_ih.T + cell.bias_ih + h_prev @ cell.weight_hh.T + cell.bias_hh
    i, f, g, o = pre.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_t = f * c_prev + i * g  # the additive update: the old memory is scaled, not squashed
    h_t = o * torch.tanh(c_t)
    return {"i": i, "f": f, "g": g, "o": o, "c": c_t, "h": h_t}


def cell_path_jacobian(cell, x_t, h_prev, c_prev):
    """dc_t/dc_{t-1} of a real nn.LSTMCell by autograd, with x_t and h_{t-1} held fixed.

    x_t: (D,); h_prev, c_prev: (H,) one example
    returns (H, H), numerator layout (row i = unit i of c_t); it equals diag(f_t)
    """
    def c_next(c):
        return cell(x_t[None], (h_prev[None], c[None]))[1][0]

    return torch.autograd.functional.jacobian(c_next, c_prev)


def _bias_pairs(module):
    """(bias_ih, bias_hh) of each layer of an nn.LSTM, or of an nn.LSTMCell."""
    if isinstance(module, nn.LSTMCell):
        return [(module.bias_ih, module.bias_hh)]
    if isinstance(module, nn.LSTM):
        return [(getattr(module, f"bias_ih_l{k}"), getattr(module, f"bias_hh_l{k}"))
                for k in range(module.num_layers)]
    raise ValueError(f"module must be an nn.LSTM or nn.LSTMCell, got {type(module).__name__}")


def set_forget_bias(module, value):
    """Set the forget gate's total bias to `value` in an nn.LSTM or nn.LSTMCell, in place.

    PyTorch adds two biases, so the forget slice [H:2H] of bias_ih gets `value` and
    that of bias_hh gets 0. At value b, an input-free unit starts with f = sigmoid(b):
    0.5 for PyTorch's default b near 0, 0.73 for b = 1, 0.95 for b = 3.
    returns the module
    """
    H = module.hidden_size
    with torch.no_grad():
        for bias_ih, bias_hh in _bias_pairs(module):
            bias_ih[H:2 * H] = value
            bias_hh[H:2 * H] = 0.0
    return module


def hidden_gradient_norms(model, tokens, y):
    """The gradient reaching each hidden state, for one batch: ||dL/dh_t|| averaged over N.

    The total dL/dh_t, through the read-out at step t and through every later step.
    A TokenModel's own hs.grad holds only the read-out's part (nn.RNN / nn.LSTM keep
    the recurrence inside one op), so this runs a state_gradients.ProbedTokenModel copy.
    model:  a seqmodels.TokenModel (RNN or LSTM)
    tokens: (N, T) int64; y: targets for sequence_loss
    returns a (T,) tensor; the model and its parameters' .grad are left as they were
    """
    probed = probed_copy(model)
    out, _ = probed(tokens)
    sequence_loss(out, y).backward()
    return probed.reach_grad().norm(dim=-1).mean(dim=0)
