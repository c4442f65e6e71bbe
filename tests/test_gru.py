"""The NumPy GRU step and its step Jacobian (rnncourse.gru) against a real nn.GRUCell,
torch autograd, an independent torch version of Cho et al.'s equations, and central
finite differences."""

import numpy as np
import pytest
import torch
from torch import nn

import rnncourse as rc
from rnncourse import gru

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _torch_cell(D=3, H=4, seed=0, update_bias=None):
    """A seeded float64 nn.GRUCell; update_bias sets PyTorch's update-gate bias b_iz."""
    torch.manual_seed(seed)
    cell = nn.GRUCell(D, H).double()
    if update_bias is not None:
        with torch.no_grad():
            cell.bias_ih[H:2 * H] = update_bias
            cell.bias_hh[H:2 * H] = 0.0
    x = torch.randn(D, dtype=torch.float64)
    h = torch.randn(H, dtype=torch.float64)
    return cell, x, h


def _cho_params(D=3, H=4, seed=0):
    """Random float64 parameters in the course's notation (reset="before")."""
    rng = np.random.default_rng(seed)
    shapes = {"W_z": (H, D), "U_z": (H, H), "b_z": (H,), "W_r": (H, D), "U_r": (H, H),
              "b_r": (H,), "W": (H, D), "U": (H, H), "b": (H,)}
    params = {k: rng.normal(0.0, 0.8, s) for k, s in shapes.items()}
    return params, rng.normal(size=D), rng.normal(size=H)


def _cho_step_torch(x, h, p):
    """Cho et al.'s GRU written again in torch, for autograd (not the code under test)."""
    t = {k: torch.as_tensor(v) for k, v in p.items()}
    z = torch.sigmoid(t["W_z"] @ x + t["U_z"] @ h + t["b_z"])
    r = torch.sigmoid(t["W_r"] @ x + t["U_r"] @ h + t["b_r"])
    h_tilde = torch.tanh(t["W"] @ x + t["U"] @ (r * h) + t["b"])
    return (1 - z) * h + z * h_tilde


def test_step_reproduces_gru_cell_with_reset_after():
    cell, _, _ = _torch_cell(D=5, H=6, seed=1)
    x = torch.randn(3, 5, dtype=torch.float64)
    h = torch.randn(3, 6, dtype=torch.float64)
    ours, cache = gru.gru_step_forward(x.numpy(), h.numpy(), gru.params_from_torch(cell), "after")
    with torch.no_grad():
        ref = cell(x, h).numpy()
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    assert ours.shape == cache["z"].shape == cache["r"].shape == (3, 6)


def test_params_from_torch_makes_our_z_one_minus_pytorchs():
    cell, x, h = _torch_cell(seed=2)
    H = cell.hidden_size
    a = cell.weight_ih[H:2 * H] @ x + cell.bias_ih[H:2 * H] + cell.weight_hh[H:2 * H] @ h \
        + cell.bias_hh[H:2 * H]
    z_pytorch = torch.sigmoid(a).detach().numpy()
    _, cache = gru.gru_step_forward(x.numpy()[None], h.numpy()[None],
                                    gru.params_from_torch(cell), "after")
    np.testing.assert_allclose(cache["z"][0], 1.0 - z_pytorch, rtol=0, atol=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_jacobian_matches_autograd_on_gru_cell_float64(seed):
    cell, x, h = _torch_cell(D=4, H=5, seed=seed)
    J_autograd = torch.autograd.functional.jacobian(lambda hp: cell(x[None], hp[None])[0], h)
    J = gru.gru_step_jacobian(x.numpy(), h.numpy(), gru.params_from_torch(cell), "after")
    np.testing.assert_allclose(J, J_autograd.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_full_jacobian_matches_autograd_for_chos_equations(seed):
    p, x, h = _cho_params(seed=seed)
    J_autograd = torch.autograd.functional.jacobian(
        lambda hp: _cho_step_torch(torch.as_tensor(x), hp, p), torch.as_tensor(h))
    J = gru.gru_step_jacobian(x, h, p, "before")
    np.testing.assert_allclose(J, J_autograd.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("reset", gru.RESETS)
def test_full_jacobian_matches_central_differences(reset):
    if reset == "after":
        cell, x, h = _torch_cell(seed=3)
        p, x, h = gru.params_from_torch(cell), x.numpy(), h.numpy()
    else:
        p, x, h = _cho_params(seed=3)

    def h_next(hp):
        return gru.gru_step_forward(x[None], hp[None], p, reset)[0][0]

    numeric = rc.numerical_jacobian(h_next, h)
    assert rc.rel_error(gru.gru_step_jacobian(x, h, p, reset), numeric) < 1e-8


def test_gates_fixed_matches_autograd_with_frozen_gates():
    """Gates computed from a constant copy of h_{t-1}: autograd sees only the two direct paths."""
    cell, x, h = _torch_cell(D=3, H=4, seed=4)
    H = cell.hidden_size
    frozen = h.clone()

    def h_next(hp):  # nn.GRUCell's equations, gates fed the frozen state
        gi = cell.weight_ih @ x + cell.bias_ih
        gh_frozen = cell.weight_hh @ frozen + cell.bias_hh
        r = torch.sigmoid(gi[:H] + gh_frozen[:H])
        z_pytorch = torch.sigmoid(gi[H:2 * H] + gh_frozen[H:2 * H])
        n = torch.tanh(gi[2 * H:] + r * (cell.weight_hh[2 * H:] @ hp + cell.bias_hh[2 * H:]))
        return (1 - z_pytorch) * n + z_pytorch * hp

    J_autograd = torch.autograd.functional.jacobian(h_next, h).detach().numpy()
    J = gru.gru_step_jacobian(x.numpy(), h.numpy(), gru.params_from_torch(cell), "after",
                              gates_fixed=True)
    np.testing.assert_allclose(J, J_autograd, rtol=0, atol=1e-12)


@pytest.mark.parametrize("reset", gru.RESETS)
def test_terms_sum_to_the_full_jacobian_and_update_term_is_diag_one_minus_z(reset):
    if reset == "after":
        cell, x, h = _torch_cell(seed=5)
        p, x, h = gru.params_from_torch(cell), x.numpy(), h.numpy()
    else:
        p, x, h = _cho_params(seed=5)
    terms = gru.gru_jacobian_terms(x, h, p, reset)
    np.testing.assert_allclose(sum(terms.values()), gru.gru_step_jacobian(x, h, p, reset),
                               rtol=0, atol=1e-15)
    z = gru.gru_step_forward(x[None], h[None], p, reset)[1]["z"][0]
    np.testing.assert_array_equal(terms["update"], np.diag(1.0 - z))


def test_update_term_dominates_when_pytorchs_update_gate_is_near_one():
    """PyTorch's update-gate bias 6: its z near 1, ours near 0, J near diag(1 - z) = I."""
    cell, x, h = _torch_cell(D=4, H=5, seed=6, update_bias=6.0)
    J_autograd = torch.autograd.functional.jacobian(lambda hp: cell(x[None], hp[None])[0], h)
    p = gru.params_from_torch(cell)
    z = gru.gru_step_forward(x.numpy()[None], h.numpy()[None], p, "after")[1]["z"][0]
    assert z.max() < 0.05
    rest = J_autograd.numpy() - np.diag(1.0 - z)
    assert np.linalg.norm(rest, 2) < 0.1 * np.linalg.norm(np.diag(1.0 - z), 2)


def test_a_swapped_update_gate_is_caught():
    """The commonest GRU slip, z where 1 - z belongs, gives another Jacobian."""
    cell, x, h = _torch_cell(seed=7)
    p = gru.params_from_torch(cell)
    swapped = dict(p, W_z=-p["W_z"], U_z=-p["U_z"], b_z=-p["b_z"])
    J_autograd = torch.autograd.functional.jacobian(lambda hp: cell(x[None], hp[None])[0], h)
    J_swapped = gru.gru_step_jacobian(x.numpy(), h.numpy(), swapped, "after")
    assert np.abs(J_swapped - J_autograd.numpy()).max() > 1e-3


def test_wrong_shapes_and_options_name_the_argument():
    p, x, h = _cho_params(D=3, H=4)
    with pytest.raises(ValueError, match="h_prev"):
        gru.gru_step_forward(x[None], np.zeros((1, 5)), p)
    with pytest.raises(ValueError, match="U_r"):
        gru.gru_step_forward(x[None], h[None], dict(p, U_r=np.zeros((4, 3))))
    with pytest.raises(ValueError, match="reset"):
        gru.gru_step_forward(x[None], h[None], p, reset="middle")
    with pytest.raises(ValueError, match="b_U"):
        gru.gru_step_forward(x[None], h[None], p, reset="after")
    with pytest.raises(ValueError, match="x_t"):
        gru.gru_step_jacobian(x[None], h, p)
    with pytest.raises(ValueError, match="weight_ih"):
        gru.params_from_torch(nn.LSTMCell(3, 4))
