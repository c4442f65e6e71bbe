"""The gradient reaching every hidden state of a seqmodels.TokenModel, dL/dh_t for
every t: through the read-out at step t and through every later step.

nn.RNN and nn.LSTM keep the recurrence inside one op, so a TokenModel's hs.grad holds
only the read-out's part; the rest is recovered here, after the training step's own
backward, from the weights and the hidden states.

    hidden_state_gradients_reference  the recursion written for reading, one step at a
                      time with torch.tanh and torch.sigmoid: read this one
    hidden_state_gradients            the same numbers, tuned for speed (all gates at
                      once, torch.addcmul, tanh as 2 sigmoid(2x) - 1, the scans over
                      time in NumPy); tests/test_state_gradients.py checks that the two agree
    ProbedTokenModel  a TokenModel that keeps what reach_grad() needs (for one-off
                      measurements outside a training loop; probed_copy makes one)
"""

import numpy as np
import torch
from torch import nn

from .seqmodels import TokenModel


@torch.no_grad()
def hidden_state_gradients_reference(model, tokens, hs, direct):
    """dL/dh_t for every t, from the read-out's part: the readable version of
    hidden_state_gradients (same arguments, same results up to rounding).

    model:  a seqmodels.TokenModel ("rnn" or "lstm")
    tokens: (N, T) the inputs of the forward pass that made hs
    hs:     (N, T, H) its hidden states h_1 .. h_T
    direct: (N, T, H) the read-out's part of dL/dh_t (hs.grad after backward)
    returns reach (N, T, H) with reach[:, t-1] = dL/dh_t, and for the LSTM the forget
            gates f_t (N, T, H) (None for the RNN)

    Backwards from the last step, with z_{t+1} = W_x x_{t+1} + W_h h_t + b:
        dL/dh_t = direct_t + W_h^T dL/dz_{t+1}                    (none after h_T)
    RNN:  dL/dz_t = dL/dh_t * (1 - h_t^2)                         (tanh' from h_t)
    LSTM: dL/dc_t = dL/dh_t * o_t (1 - tanh(c_t)^2) + dL/dc_{t+1} * f_{t+1}
          dL/dz_t = [dL/dc_t g_t i_t (1 - i_t), dL/dc_t c_{t-1} f_t (1 - f_t),
                     dL/dc_t i_t (1 - g_t^2),   dL/dh_t tanh(c_t) o_t (1 - o_t)]
    """
    cell = model.cell
    W_x, W_h = cell.weight_ih_l0, cell.weight_hh_l0  # (G H, V), (G H, H); G = 1 or 4 gates
    b = cell.bias_ih_l0 + cell.bias_hh_l0
    N, T, H = hs.shape
    reach = torch.zeros_like(direct)
    dz = torch.zeros(N, W_h.shape[0], dtype=hs.dtype)  # dL/dz_{t+1}; zero after the last step
    if model.kind == "rnn":
        for t in reversed(range(T)):
            dh = direct[:, t] + dz @ W_h  # W_h^T dL/dz_{t+1}, written for rows
            dz = dh * (1.0 - hs[:, t] ** 2)
            reach[:, t] = dh
        return reach, None
    # LSTM: recompute the gates and the cell of every step from x_t and h_{t-1}
    x = nn.functional.one_hot(tokens, model.V).to(hs.dtype)
    h_prev, c_prev = torch.zeros(N, H, dtype=hs.dtype), torch.zeros(N, H, dtype=hs.dtype)
    steps = []
    for t in range(T):
        z_i, z_f, z_g, z_o = (x[:, t] @ W_x.T + h_prev @ W_h.T + b).chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(z_i), torch.sigmoid(z_f), torch.tanh(z_g), torch.sigmoid(z_o)
        c = f * c_prev + i * g
        steps.append((i, f, g, o, c, c_prev))
        h_prev, c_prev = hs[:, t], c
    dc_next = torch.zeros(N, H, dtype=hs.dtype)  # dL/dc_{t+1}
    f_next = torch.zeros(N, H, dtype=hs.dtype)  # f_{t+1}
    for t in reversed(range(T)):
        i, f, g, o, c, c_prev = steps[t]
        dh = direct[:, t] + dz @ W_h
        dc = dh * o * (1.0 - torch.tanh(c) ** 2) + dc_next * f_next
        dz = torch.cat([dc * g * i * (1.0 - i),  # input gate
                        dc * c_prev * f * (1.0 - f),  # forget gate
                        dc * i * (1.0 - g**2),  # candidate
                        dh * torch.tanh(c) * o * (1.0 - o)], dim=1)  # output gate
        dc_next, f_next = dc, f
        reach[:, t] = dh
    forget = torch.stack([f for _, f, *_ in steps], dim=1)
    return reach, forget


@torch.no_grad()
def hidden_state_gradients(model, tokens, hs, direct):
    """The total gradient reaching every hidden state, from the read-out's part: the
    fast version of hidden_state_gradients_reference (read that one first).

    model:  a seqmodels.TokenModel ("rnn" or "lstm"), with the weights used in the
            forward pass that made hs
    tokens: (N, T) the inputs of that pass
    hs:     (N, T, H) its hidden states h_1 .. h_T
    direct: (N, T, H) the read-out's part of dL/dh_t (hs.grad after backward)
    returns reach (N, T, H) with reach[:, t-1] = dL/dh_t, and for the LSTM the forget
            gates f_t (N, T, H) (None for the RNN)

    h_t feeds the read-out at step t and z_{t+1} = W_x x_{t+1} + W_h h_t + b, so going
    backwards dL/dh_t = direct_t + W_h^T dL/dz_{t+1}, and for the tanh RNN
    dL/dz_t = dL/dh_t * (1 - h_t^2). The LSTM's dL/dz_t also needs the cell path:
    dL/dc_t = dL/dh_t * o_t (1 - tanh(c_t)^2) + dL/dc_{t+1} * f_{t+1}.
    Nothing here builds a graph: it runs after the training step's own backward.
    """
    cell = model.cell
    W_hh = cell.weight_hh_l0
    N, T, H = hs.shape
    # time-major and contiguous, so that every per-step slice below is cheap
    direct = direct.transpose(0, 1).contiguous()
    hs_tm = hs.transpose(0, 1).contiguous()
    reach = torch.empty_like(direct)  # (T, N, H), filled from the last step back
    if model.kind == "rnn":
        dz_scale = (1.0 - hs_tm**2).unbind(0)  # tanh'(z_t), from the output h_t
        direct_steps, reach_steps = direct.unbind(0), reach.unbind(0)
        dz = None
        for t in reversed(range(T)):
            # dL/dh_t = direct_t + W_h^T dz_{t+1} (written for rows); the last step gets none
            dh = reach_steps[t].copy_(direct_steps[t]) if dz is None else torch.addmm(
                direct_steps[t], dz, W_hh, out=reach_steps[t])
            dz = dh * dz_scale[t]
        return reach.transpose(0, 1), None
    # LSTM: recompute the gates from the inputs and h_{t-1}, all steps at once and gate by
    # gate (PyTorch stacks i, f, g, o in the rows of the weights); W_x x_t for a one-hot x_t
    # is a column of W_x, hence the row lookup
    in_rows = (cell.weight_ih_l0.view(4, H, -1).transpose(1, 2)
               + (cell.bias_ih_l0 + cell.bias_hh_l0).view(4, 1, H))  # (4, V, H)
    h_prev = torch.cat([hs_tm.new_zeros(1, N, H), hs_tm[:-1]], dim=0).view(1, T * N, H)
    z = torch.baddbmm(in_rows.index_select(1, tokens.T.reshape(-1)), h_prev.expand(4, -1, -1),
                      W_hh.view(4, H, H).transpose(1, 2)).view(4, T, N, H)
    i, f, _, o = torch.sigmoid(z).unbind(0)
    g = _tanh(z[2])
    i_g = i * g
    # the two scans over time run in NumPy: on (N, H) slices its per-call cost is a
    # fraction of torch's, and the arrays are shared, not copied
    f_steps, i_g_steps = f.numpy(), i_g.numpy()
    c = np.zeros((T + 1, N, H), dtype=f_steps.dtype)  # c[t] holds c_t; c_0 = 0
    for t in range(T):
        np.multiply(f_steps[t], c[t], out=c[t + 1])
        c[t + 1] += i_g_steps[t]  # c_t = f_t c_{t-1} + i_t g_t
    c = torch.from_numpy(c)
    c, c_prev = c[1:], c[:-1]
    tanh_c = _tanh(c)
    # the derivatives, written with h_t = o_t tanh(c_t) and sigmoid' = s (1 - s)
    dc_from_dh = torch.addcmul(o, hs_tm, tanh_c, value=-1.0).numpy()  # o (1 - tanh^2 c)
    dz_o = torch.addcmul(hs_tm, hs_tm, o, value=-1.0).numpy()  # tanh(c) o (1 - o)
    # dc_t/dz for the input, forget and candidate gates, laid out as in z
    dz_ifg = hs_tm.new_empty(T, N, 3, H)
    torch.mul(g, torch.addcmul(i, i, i, value=-1.0), out=dz_ifg[:, :, 0])  # g i (1 - i)
    torch.mul(c_prev, torch.addcmul(f, f, f, value=-1.0), out=dz_ifg[:, :, 1])  # c f (1 - f)
    torch.addcmul(i, i_g, g, value=-1.0, out=dz_ifg[:, :, 2])  # i (1 - g^2)
    dz_ifg = dz_ifg.numpy()
    W = W_hh.detach().numpy()
    direct_np, reach_np = direct.numpy(), reach.numpy()
    dz = np.empty((N, 4, H), dtype=W.dtype)  # dL/dz_{t+1}, gate by gate
    dz_rows = dz.reshape(N, 4 * H)
    dc = np.zeros((N, H), dtype=W.dtype)
    for t in reversed(range(T)):
        dh = reach_np[t]
        if t == T - 1:
            dh[...] = direct_np[t]
        else:
            np.matmul(dz_rows, W, out=dh)  # W_h^T dz_{t+1}, written for rows
            dh += direct_np[t]
            dc *= f_steps[t + 1]  # the cell path: dc_{t+1}/dc_t = diag(f_{t+1})
        dc += dh * dc_from_dh[t]
        np.multiply(dc[:, None], dz_ifg[t], out=dz[:, :3])
        np.multiply(dh, dz_o[t], out=dz[:, 3])
    return reach.transpose(0, 1), f.transpose(0, 1)


def _tanh(x):
    """tanh(x) = 2 sigmoid(2x) - 1: the same values, and sigmoid is the faster kernel on
    the CPUs this course runs on."""
    return torch.sigmoid(2.0 * x).mul_(2.0).sub_(1.0)


class ProbedTokenModel(TokenModel):
    """A TokenModel that keeps its last inputs and hidden states, so that after
    backward reach_grad() returns the total dL/dh_t (see hidden_state_gradients).
    Its forward is TokenModel's own: the same numbers, the fused cell."""

    def forward(self, tokens):
        out, hs = super().forward(tokens)
        if hs.requires_grad:
            hs.retain_grad()
        self.tokens, self.hs = tokens, hs
        return out, hs

    def reach_grad(self):
        """(N, T, H) dL/dh_t for every t, after backward through the last forward."""
        hs = getattr(self, "hs", None)
        if hs is None or hs.grad is None:
            raise ValueError("no gradient to read: run forward, then backward, first")
        return hidden_state_gradients(self, self.tokens, hs.detach(), hs.grad)[0]


def probed_copy(model):
    """A ProbedTokenModel holding a copy of a TokenModel's parameters."""
    probed = ProbedTokenModel(model.kind, model.V, model.cell.hidden_size,
                              model.out.out_features, model.every_step)
    probed.to(model.out.weight.dtype).load_state_dict(model.state_dict())
    return probed
