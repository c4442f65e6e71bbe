"""The NumPy RNN and its BPTT against independent references: torch autograd
in float64 and central finite differences."""

import numpy as np
import pytest
import torch

import rnncourse as rc


def make_problem(N, T, D, H, V, seed):
    rng = np.random.default_rng(seed)
    params = rc.init_rnn_params(D, H, V, rng, W_h=rc.with_spectral_radius(H, 0.9, rng))
    params["b_h"] = 0.1 * rng.standard_normal(H)
    params["b_y"] = 0.1 * rng.standard_normal(V)
    x = rng.standard_normal((N, T, D))
    targets = rng.integers(0, V, size=(N, T))
    mask = (rng.random((N, T)) < 0.8).astype(float)
    mask[:, 0] = 1.0
    h0 = 0.5 * rng.standard_normal((N, H))
    return params, x, targets, mask, h0


def autograd_loss_and_grads(params, x, targets, mask, h0):
    """The same model written directly in torch, differentiated by autograd."""
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    h_t = torch.tensor(h0, requires_grad=True)
    hs = []
    for t in range(x.shape[1]):
        h_t = torch.tanh(torch.tensor(x[:, t]) @ p["W_x"].T + h_t @ p["W_h"].T + p["b_h"])
        h_t.retain_grad()
        hs.append(h_t)
    y = torch.stack(hs, dim=1) @ p["W_y"].T + p["b_y"]
    logp = torch.log_softmax(y, dim=-1)
    nll = -logp.gather(-1, torch.tensor(targets)[..., None])[..., 0]
    m = torch.tensor(mask)
    loss = (nll * m).sum() / m.sum()
    loss.backward()
    grads = {k: v.grad.numpy() for k, v in p.items()}
    h_grads = np.stack([h.grad.numpy() for h in hs], axis=1)
    return loss.item(), grads, h_grads


@pytest.mark.parametrize("N, T, H", [(1, 1, 3), (2, 5, 4), (3, 12, 8), (4, 30, 16)])
def test_bptt_matches_autograd_float64(N, T, H):
    params, x, targets, mask, h0 = make_problem(N, T, D=5, H=H, V=6, seed=N * 100 + T)
    loss, grads, h_grad = rc.rnn_loss(params, x, targets, mask, h0)
    ref_loss, ref_grads, ref_h_grad = autograd_loss_and_grads(params, x, targets, mask, h0)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for name in params:
        assert rc.rel_error(grads[name], ref_grads[name]) < 1e-9, name
    assert rc.rel_error(h_grad, ref_h_grad) < 1e-9


def test_bptt_matches_central_differences():
    params, x, targets, mask, h0 = make_problem(N=2, T=6, D=3, H=4, V=5, seed=7)
    _, grads, _ = rc.rnn_loss(params, x, targets, mask, h0)
    for name in params:
        # numerical_gradient perturbs params[name] in place, so the loss sees each nudge
        numeric = rc.numerical_gradient(
            lambda _: rc.rnn_loss(params, x, targets, mask, h0)[0], params[name]
        )
        assert rc.rel_error(grads[name], numeric) < 1e-7, name


def test_rnn_backward_input_and_initial_state_gradients_match_differences():
    params, x, _, _, h0 = make_problem(N=2, T=4, D=3, H=4, V=2, seed=3)
    W_x, W_h, b_h = params["W_x"], params["W_h"], params["b_h"]
    dh = np.random.default_rng(1).standard_normal((2, 4, 4))

    def scalar(x_, h0_):  # a linear read-out of every h_t makes dh the upstream gradient
        return float(np.sum(rc.rnn_forward(x_, h0_, W_x, W_h, b_h)[0] * dh))

    _, caches = rc.rnn_forward(x, h0, W_x, W_h, b_h)
    grads = rc.rnn_backward(dh, caches)
    assert rc.rel_error(grads["x"], rc.numerical_gradient(lambda x_: scalar(x_, h0), x)) < 1e-8
    assert rc.rel_error(grads["h0"], rc.numerical_gradient(lambda h_: scalar(x, h_), h0)) < 1e-8


def test_step_backward_uses_one_minus_h_squared():
    rng = np.random.default_rng(0)
    x_t, h_prev = rng.standard_normal((1, 2)), rng.standard_normal((1, 3))
    W_x, W_h, b_h = rng.standard_normal((3, 2)), rng.standard_normal((3, 3)), np.ones(3)
    h_t, cache = rc.rnn_step_forward(x_t, h_prev, W_x, W_h, b_h)
    z_t = x_t @ W_x.T + h_prev @ W_h.T + b_h
    np.testing.assert_allclose(h_t, np.tanh(z_t), rtol=1e-15)
    dh_t = np.ones((1, 3))
    _, _, _, _, db_h = rc.rnn_step_backward(dh_t, cache)
    np.testing.assert_allclose(db_h, 1.0 / np.cosh(z_t[0]) ** 2, rtol=1e-12)


def test_softmax_cross_entropy_closed_form():
    # Uniform scores over V classes give log V whatever the target.
    y = np.zeros((2, 3, 4))
    loss, dy = rc.softmax_cross_entropy(y, np.array([[0, 1, 2], [3, 0, 1]]))
    assert loss == pytest.approx(np.log(4), rel=1e-14)
    assert dy.sum() == pytest.approx(0.0, abs=1e-15)  # each row of p - onehot sums to 0


def test_masked_steps_do_not_contribute():
    params, x, targets, _, h0 = make_problem(N=2, T=5, D=3, H=4, V=3, seed=11)
    mask = np.ones((2, 5))
    mask[1, 3:] = 0
    changed = targets.copy()
    changed[1, 3:] = (changed[1, 3:] + 1) % 3
    loss_a, grads_a, _ = rc.rnn_loss(params, x, targets, mask, h0)
    loss_b, grads_b, _ = rc.rnn_loss(params, x, changed, mask, h0)
    assert loss_a == loss_b
    for name in params:
        np.testing.assert_array_equal(grads_a[name], grads_b[name])


def test_empty_mask_is_an_error():
    with pytest.raises(ValueError, match="no counted steps"):
        rc.softmax_cross_entropy(np.zeros((1, 2, 3)), np.zeros((1, 2), int), np.zeros((1, 2)))


def test_clipping_keeps_direction_and_caps_norm():
    rng = np.random.default_rng(0)
    grads = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    norm = np.sqrt(sum(np.sum(g**2) for g in grads.values()))
    clipped, reported = rc.clip_by_global_norm(grads, max_norm=norm / 10)
    assert reported == pytest.approx(norm, rel=1e-14)
    flat = np.concatenate([grads["a"].ravel(), grads["b"]])
    flat_c = np.concatenate([clipped["a"].ravel(), clipped["b"]])
    assert np.linalg.norm(flat_c) == pytest.approx(norm / 10, rel=1e-12)
    cosine = flat @ flat_c / (np.linalg.norm(flat) * np.linalg.norm(flat_c))
    assert cosine == pytest.approx(1.0, abs=1e-14)
    # Under the cap nothing changes, and the input is never modified in place.
    same, _ = rc.clip_by_global_norm(grads, max_norm=norm * 2)
    for k in grads:
        np.testing.assert_array_equal(same[k], grads[k])
    assert np.linalg.norm(flat) == pytest.approx(norm, rel=1e-14)


def test_initialisers():
    rng = np.random.default_rng(0)
    Q = rc.orthogonal(6, rng, gain=1.5)
    np.testing.assert_allclose(np.linalg.svd(Q, compute_uv=False), 1.5, rtol=1e-12)
    W = rc.with_spectral_radius(6, 0.9, rng)
    assert np.max(np.abs(np.linalg.eigvals(W))) == pytest.approx(0.9, rel=1e-12)
    params = rc.init_rnn_params(3, 4, 5, rng, W_h="identity")
    np.testing.assert_array_equal(params["W_h"], np.eye(4))
    assert {k: v.shape for k, v in params.items()} == {
        "W_x": (4, 3), "W_h": (4, 4), "b_h": (4,), "W_y": (5, 4), "b_y": (5,)
    }
    with pytest.raises(ValueError, match="W_h must be one of"):
        rc.init_rnn_params(3, 4, 5, rng, W_h="zeros")
