"""Step Jacobians, their products and the spectral helpers against torch
autograd, finite differences and closed forms."""

import numpy as np
import pytest
import torch
from torch.autograd.functional import jacobian

import rnncourse as rc


def random_sequence(T=7, D=3, H=5, seed=0, radius=1.1):
    rng = np.random.default_rng(seed)
    W_x, W_h = rng.standard_normal((H, D)), rc.with_spectral_radius(H, radius, rng)
    b_h, x = 0.2 * rng.standard_normal(H), rng.standard_normal((1, T, D))
    h, _ = rc.rnn_forward(x, np.zeros((1, H)), W_x, W_h, b_h)
    return x[0], W_x, W_h, b_h, h[0]


def torch_step(x_t, W_x, W_h, b_h):
    """h_{t-1} -> h_t as a torch function, for autograd."""
    x_t, W_x, W_h, b_h = (torch.tensor(a) for a in (x_t, W_x, W_h, b_h))
    return lambda h_prev: torch.tanh(W_x @ x_t + W_h @ h_prev + b_h)


def test_step_jacobian_matches_autograd():
    x, W_x, W_h, b_h, h = random_sequence()
    t = 4  # J_t at step t uses h_{t-1} = h[t - 2] and x_t = x[t - 1]
    expected = jacobian(torch_step(x[t - 1], W_x, W_h, b_h), torch.tensor(h[t - 2])).numpy()
    got = rc.step_jacobian(h[t - 1], W_h)
    assert rc.rel_error(got, expected) < 1e-12
    # the denominator-layout object is the transpose: not accepted as the same thing
    assert rc.rel_error(got.T, expected) > 1e-2


def test_step_jacobian_matches_numerical_jacobian():
    x, W_x, W_h, b_h, h = random_sequence(seed=1)
    def f(h_prev):
        return np.tanh(W_x @ x[2] + W_h @ h_prev + b_h)
    assert rc.rel_error(rc.step_jacobian(h[2], W_h), rc.numerical_jacobian(f, h[1])) < 1e-9


@pytest.mark.parametrize("k", [0, 1, 3, 6, 7])
def test_jacobian_product_matches_autograd(k):
    x, W_x, W_h, b_h, h = random_sequence(T=7, seed=2)
    T, H = h.shape

    def h_T_from_h_k(h_k):
        for t in range(k + 1, T + 1):
            h_k = torch_step(x[t - 1], W_x, W_h, b_h)(h_k)
        return h_k

    h_k = torch.tensor(h[k - 1] if k > 0 else np.zeros(H))
    expected = jacobian(h_T_from_h_k, h_k).numpy()
    assert rc.rel_error(rc.jacobian_product(h, W_h, k), expected) < 1e-12


def test_jacobian_product_rejects_k_outside_range():
    *_, W_h, _, h = random_sequence(T=3)
    with pytest.raises(ValueError, match=r"k must lie in \[0, T\] = \[0, 3\], got 4"):
        rc.jacobian_product(h, W_h, 4)


def test_gradient_norm_by_lag_agrees_with_jacobian_products():
    *_, W_h, _, h = random_sequence(T=6, seed=3)
    g = np.random.default_rng(5).standard_normal(h.shape[1])
    norms = rc.gradient_norm_by_lag(h, W_h, g)
    T = h.shape[0]
    expected = [np.linalg.norm(rc.jacobian_product(h, W_h, T - lag).T @ g) for lag in range(T + 1)]
    np.testing.assert_allclose(norms, expected, rtol=1e-12)


def test_linear_rnn_gradient_decays_as_eigenvalue_power():
    # With h = 0 everywhere tanh' = 1, so dh_T/dh_0 = W_h^T; a symmetric W_h with
    # eigenvalues 0.8 and 0.5 and a gradient along the 0.8 eigenvector decays as 0.8^T.
    Q = rc.orthogonal(2, np.random.default_rng(0))
    W_h = Q @ np.diag([0.8, 0.5]) @ Q.T
    norms = rc.gradient_norm_by_lag(np.zeros((50, 2)), W_h, Q[:, 0])
    np.testing.assert_allclose(norms, 0.8 ** np.arange(51), rtol=1e-10)


def test_spectral_helpers_closed_forms():
    theta = 0.3
    R = 0.9 * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    expected = 0.9 * np.exp(np.array([-1j, 1j]) * theta)
    np.testing.assert_allclose(sorted(rc.eigenvalues(R), key=np.imag), expected)
    assert rc.spectral_radius(R) == pytest.approx(0.9, rel=1e-14)
    assert rc.spectral_norm(R) == pytest.approx(0.9, rel=1e-14)
    # a non-normal matrix: both eigenvalues 0.5, yet it stretches a vector by far more
    N = np.array([[0.5, 10.0], [0.0, 0.5]])
    assert rc.spectral_radius(N) == pytest.approx(0.5, rel=1e-12)
    assert rc.spectral_norm(N) == pytest.approx(np.sqrt(np.max(np.linalg.eigvalsh(N.T @ N))))
    # spectral radius is |lambda|, not the largest real part
    assert rc.spectral_radius(np.diag([-1.2, 0.5])) == pytest.approx(1.2)


def test_numerical_gradient_of_a_closed_form():
    x = np.array([[0.3, -1.2], [2.0, 0.7]])
    grad = rc.numerical_gradient(lambda a: float(np.sum(np.sin(a) * a)), x)
    np.testing.assert_allclose(grad, np.cos(x) * x + np.sin(x), rtol=1e-8)
    np.testing.assert_array_equal(x, [[0.3, -1.2], [2.0, 0.7]])  # restored after perturbing


def test_rel_error():
    assert rc.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rc.rel_error([1.0, 0.0], [1.0, 0.0]) == 0.0
    assert rc.rel_error([1.0], [3.0]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"shapes \(2,\) and \(3,\)"):
        rc.rel_error(np.zeros(2), np.zeros(3))


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_step_jacobian_and_product_of_each_activation_match_autograd(activation):
    """act' is computed from the output h_t (tanh 1 - h^2, sigmoid h (1 - h), ReLU h > 0)."""
    rng = np.random.default_rng(2)
    H, T = 4, 5
    W_h, u = rc.with_spectral_radius(H, 1.2, rng), rng.standard_normal((T, H))
    act = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}[activation]
    act_np = rc.gradients.get_activation(activation)[0]
    h = [np.zeros(H)]
    for t in range(T):
        h.append(act_np(W_h @ h[-1] + u[t]))
    h = np.array(h[1:])

    def steps(h_0):
        h_t = h_0
        for t in range(2, T):  # h_2 -> h_T
            h_t = act(torch.tensor(W_h) @ h_t + torch.tensor(u[t]))
        return h_t

    expected = jacobian(steps, torch.tensor(h[1])).numpy()  # dh_T/dh_2
    assert rc.rel_error(rc.jacobian_product(h, W_h, 2, activation), expected) < 1e-12
    one_step = jacobian(lambda h_prev: act(torch.tensor(W_h) @ h_prev + torch.tensor(u[2])),
                        torch.tensor(h[1])).numpy()
    assert rc.rel_error(rc.step_jacobian(h[2], W_h, activation), one_step) < 1e-12
    with pytest.raises(ValueError, match="activation must be one of"):
        rc.step_jacobian(h[2], W_h, "softsign")
