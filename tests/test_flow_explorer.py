"""The gradient-flow explorer: the numbers it plots, against closed forms, the
library's tanh reference, and torch autograd. The widget is only built and poked."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import rnncourse as rc  # noqa: E402
from rnncourse import flow_explorer as fe  # noqa: E402


@pytest.mark.parametrize("radius", [0.5, 0.9, 1.0, 1.3])
def test_linear_orthogonal_case_is_radius_to_the_power_T_minus_k(radius):
    # no drive: h stays at 0, tanh'(0) = 1, and an orthogonal W_h scales every vector by radius
    flow = fe.gradient_flow(T=30, radius=radius, activation="tanh", H=8, kind="orthogonal",
                            input_scale=0.0, trials=2)
    expected = radius ** (30.0 - np.arange(31))
    np.testing.assert_allclose(flow["norms"], np.tile(expected, (2, 1)), rtol=1e-10)
    np.testing.assert_allclose(flow["bound"], np.tile(expected, (2, 1)), rtol=1e-10)


def test_linear_gaussian_case_matches_matrix_powers():
    rng = np.random.default_rng(3)
    W_h = fe.recurrent_matrix(6, 0.9, "gaussian", rng)
    dh_T = rng.standard_normal(6)
    h = fe.hidden_states(W_h, np.zeros((12, 6)), "tanh")
    norms = rc.gradient_norm_by_lag(h, W_h, dh_T, "tanh")[::-1]  # by step k
    expected = [np.linalg.norm(np.linalg.matrix_power(W_h.T, 12 - k) @ dh_T) for k in range(13)]
    np.testing.assert_allclose(norms, expected, rtol=1e-10)
    assert rc.spectral_radius(W_h) == pytest.approx(0.9)


def test_hidden_states_agree_with_the_library_rnn_forward():
    rng = np.random.default_rng(0)
    W_h = fe.recurrent_matrix(5, 1.1, "gaussian", rng)
    u = 0.7 * rng.standard_normal((9, 5))
    h = fe.hidden_states(W_h, u, "tanh")
    h_ref, _ = rc.rnn_forward(u[None], np.zeros((1, 5)), np.eye(5), W_h, np.zeros(5))
    np.testing.assert_allclose(h, h_ref[0], rtol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_gradient_norms_match_torch_autograd(activation):
    rng = np.random.default_rng(1)
    T, H = 7, 4
    W_h = fe.recurrent_matrix(H, 1.2, "gaussian", rng)
    u = rng.standard_normal((T, H))
    dh_T = rng.standard_normal(H)
    h = fe.hidden_states(W_h, u, activation)
    ours = rc.gradient_norm_by_lag(h, W_h, dh_T, activation)[::-1]  # by step k

    act = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}[activation]
    W = torch.tensor(W_h)
    hs = [torch.zeros(H, dtype=torch.float64, requires_grad=True)]
    for t in range(T):
        hs.append(act(W @ hs[-1] + torch.tensor(u[t])))
    loss = torch.dot(torch.tensor(dh_T), hs[-1])
    grads = torch.autograd.grad(loss, hs, allow_unused=True)
    ref = [0.0 if g is None else g.norm().item() for g in grads]
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("kind", ["orthogonal", "gaussian"])
def test_norms_never_exceed_the_bound(activation, kind):
    flow = fe.gradient_flow(T=40, radius=1.5, activation=activation, H=16, kind=kind,
                            input_scale=1.0, trials=3, seed=5)
    assert np.all(flow["norms"] <= flow["bound"] * (1 + 1e-9))
    assert flow["gamma"] == {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0}[activation]


def test_sigmoid_bound_uses_a_quarter():
    flow = fe.gradient_flow(T=10, radius=1.0, activation="sigmoid", H=4, kind="orthogonal",
                            input_scale=0.0)
    np.testing.assert_allclose(flow["bound"][0], 0.25 ** (10.0 - np.arange(11)), rtol=1e-12)


def test_relu_with_no_drive_is_all_dead_and_passes_nothing_back():
    flow = fe.gradient_flow(T=10, radius=0.9, activation="relu", H=4, input_scale=0.0)
    assert flow["norms"][0, -1] == pytest.approx(1.0)
    assert np.all(flow["norms"][0, :-1] == 0.0)


def test_gradient_flow_shapes_spectra_and_seeding():
    flow = fe.gradient_flow(T=12, radius=0.8, H=6, kind="orthogonal", trials=4, seed=2)
    assert flow["norms"].shape == flow["bound"].shape == (4, 13)
    assert flow["typical"].shape == (13,)
    np.testing.assert_array_equal(flow["k"], np.arange(13))
    np.testing.assert_allclose(flow["spectral_radius"], 0.8)
    np.testing.assert_allclose(flow["spectral_norm"], 0.8)
    np.testing.assert_allclose(flow["typical"], np.exp(np.log(flow["norms"]).mean(axis=0)))
    again = fe.gradient_flow(T=12, radius=0.8, H=6, kind="orthogonal", trials=4, seed=2)
    np.testing.assert_array_equal(flow["norms"], again["norms"])


@pytest.mark.parametrize("bad", [dict(activation="softplus"), dict(kind="diagonal"),
                                 dict(T=0), dict(trials=0)])
def test_bad_arguments_raise_value_error(bad):
    args = dict(T=5, radius=0.9) | bad
    with pytest.raises(ValueError):
        fe.gradient_flow(**args)


def test_hidden_states_checks_shapes():
    with pytest.raises(ValueError, match="u has shape"):
        fe.hidden_states(np.eye(3), np.zeros((5, 4)))


def test_plot_is_log_scale_titled_and_labelled():
    ax = fe.plot_gradient_flow(fe.gradient_flow(T=20, radius=0.9, activation="relu", trials=3))
    assert ax.get_yscale() == "log"
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    matplotlib.pyplot.close("all")


def test_explorer_widget_redraws_when_a_control_changes(monkeypatch):
    calls = []
    original = fe.gradient_flow

    def spy(**kwargs):
        calls.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(fe, "gradient_flow", spy)
    panel = fe.widget(H=8, T=20)
    T_slider = panel.children[0].children[0]
    T_slider.value = 30
    panel.children[0].children[2].value = "sigmoid"
    assert [c["T"] for c in calls] == [20, 30, 30]
    assert calls[-1]["activation"] == "sigmoid"
    matplotlib.pyplot.close("all")
