"""Connectivity (lecture 03) against independent references: central finite differences
on the one-hot inputs, and a hand computation for a one-step RNN. The per-letter widget
is built and poked: its controls redraw the view with the values they hold."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnncourse import charlm, data  # noqa: E402
from rnncourse import connectivity as cn  # noqa: E402
from rnncourse import connectivity_widget as cw  # noqa: E402

NAMES = ["ann", "joan", "eve", "john"]


def tiny(kind, H=5, seed=0):
    """A tiny float64 model with biases made non-zero, so no term hides at zero."""
    model = cn.char_model(kind, len(data.Vocab()), H, seed=seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bias" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model


def log_p(model, x, targets):
    """log p_t(target_t) (N, T) from a float one-hot (or perturbed) input x (N, T, V)."""
    with torch.no_grad():
        y, _ = model(torch.as_tensor(x))
        logp = torch.log_softmax(y, dim=-1).numpy()
    return np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]


@pytest.mark.parametrize("kind", cn.KINDS)
def test_connectivity_matches_central_finite_differences(kind):
    vocab = data.Vocab()
    model = tiny(kind)
    inputs, targets, _ = data.encode_names(NAMES, vocab)
    C = cn.connectivity(model, inputs, targets)
    x = np.eye(len(vocab))[inputs]
    N, T, V = x.shape
    grad = np.zeros((N, T, T, V))  # d log p_t / d x_s[v], every row at once
    eps = 1e-6
    for s in range(T):
        for v in range(V):
            up, down = x.copy(), x.copy()
            up[:, s, v] += eps
            down[:, s, v] -= eps
            grad[:, :, s, v] = (log_p(model, up, targets) - log_p(model, down, targets)) / (2 * eps)
    expected = np.linalg.norm(grad, axis=-1)
    np.testing.assert_allclose(C, expected, rtol=1e-6, atol=1e-9)


def test_one_step_rnn_matches_the_hand_computation():
    # one step: h = tanh(W_ih x + b), y = W_y h + b_y, and
    # d log p(c) / dx = W_ih^T diag(1 - h^2) W_y^T (e_c - p)
    model = tiny("RNN", H=4, seed=2)
    W_ih = model.cell.weight_ih_l0.detach().numpy()
    b = (model.cell.bias_ih_l0 + model.cell.bias_hh_l0).detach().numpy()
    W_y, b_y = model.out.weight.detach().numpy(), model.out.bias.detach().numpy()
    token, target = 3, 7
    x = np.eye(27)[token]
    h = np.tanh(W_ih @ x + b)
    y = W_y @ h + b_y
    p = np.exp(y - y.max()) / np.exp(y - y.max()).sum()
    by_hand = W_ih.T @ ((1 - h**2) * (W_y.T @ (np.eye(27)[target] - p)))
    C = cn.connectivity(model, np.array([[token]]), np.array([[target]]))
    assert C.shape == (1, 1, 1)
    assert C[0, 0, 0] == pytest.approx(np.linalg.norm(by_hand), rel=1e-10)


@pytest.mark.parametrize("kind", cn.KINDS)
def test_connectivity_is_causal_and_does_not_mix_rows(kind):
    vocab = data.Vocab()
    model = tiny(kind)
    inputs, targets, _ = data.encode_names(NAMES, vocab)
    C = cn.connectivity(model, inputs, targets)
    T = inputs.shape[1]
    assert np.all(C[:, np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] == 0)
    assert np.all(C[:, np.tril_indices(T)[0], np.tril_indices(T)[1]] > 0)
    alone = cn.connectivity(model, inputs[1:2], targets[1:2])
    np.testing.assert_allclose(alone[0], C[1], rtol=1e-12)


def test_by_distance_averages_the_diagonals_over_counted_steps():
    C = np.zeros((2, 3, 3))
    C[0] = [[1, 0, 0], [2, 3, 0], [4, 5, 6]]
    C[1] = [[7, 0, 0], [8, 9, 0], [10, 11, 12]]
    mask = np.array([[1, 1, 1], [1, 1, 0]])  # row 1's step 2 is padding
    mean, count = cn.by_distance(C, mask)
    # k = 0: C[0,0,0], C[0,1,1], C[0,2,2], C[1,0,0], C[1,1,1]; k = 1: 2, 5, 8; k = 2: 4
    np.testing.assert_allclose(mean, [(1 + 3 + 6 + 7 + 9) / 5, (2 + 5 + 8) / 3, 4])
    np.testing.assert_array_equal(count, [5, 3, 1])


def test_by_distance_refuses_arrays_of_the_wrong_shape():
    with pytest.raises(ValueError, match="mask has shape"):
        cn.by_distance(np.zeros((2, 3, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="C has shape"):
        cn.by_distance(np.zeros((2, 3, 4)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="C has shape"):
        cn.by_distance(np.zeros((3, 3)), np.ones((3, 3)))


def test_name_connectivity_reads_the_prefix_and_predicts_the_next_character():
    vocab = data.Vocab()
    model = tiny("GRU")
    first = cn.name_connectivity(model, vocab, "john", 0)
    assert (first["read"], first["target"], first["conn"].shape) == (".", "j", (1,))
    mid = cn.name_connectivity(model, vocab, "john", 3)
    assert (mid["read"], mid["target"], mid["conn"].shape) == (".joh", "n", (4,))
    last = cn.name_connectivity(model, vocab, "john", 4)
    assert (last["read"], last["target"]) == (".john", ".")
    inputs, targets, _ = data.encode_names(["john"], vocab)
    np.testing.assert_allclose(mid["conn"], cn.connectivity(model, inputs, targets)[0, 3, :4],
                               rtol=1e-12)
    logp = cn.log_probs(model, inputs)[0, 3]
    assert mid["p_target"] == pytest.approx(np.exp(logp[vocab.stoi["n"]]))
    assert mid["top"] == vocab.itos[int(np.argmax(logp))]
    with pytest.raises(ValueError, match="position must lie in"):
        cn.name_connectivity(model, vocab, "john", 5)


def test_char_model_refuses_an_unknown_kind_and_trains_with_charlm():
    with pytest.raises(ValueError, match="kind must be one of"):
        cn.CharModel("Transformer", 27, 4)
    vocab = data.Vocab()
    batch = data.encode_names(NAMES * 5, vocab)
    model = cn.char_model("LSTM", len(vocab), 8, seed=0)
    before = charlm.torch_loss(model, *batch).item()
    history = charlm.train_torch(model, batch, batch, steps=30, batch_size=20, lr=0.05,
                                 eval_every=30, progress=False)
    assert history["val_loss"][-1] < before - 0.5


def models_for_widget():
    return {kind: tiny(kind, seed=i) for i, kind in enumerate(cn.KINDS)}


def test_static_view_has_one_row_per_model_and_a_shared_colour_scale():
    vocab = data.Vocab()
    models = models_for_widget()
    fig, infos = cw.plot_name_connectivity(models, vocab, "john", 3)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(cn.KINDS)
    assert ".joh" in ax.get_title()
    norm, cmap = cw.colour_scale(infos), matplotlib.colormaps[cw.CMAP]
    values = np.concatenate([info["conn"] for info in infos.values()])
    assert norm.vmax == pytest.approx(values.max())  # one scale for all rows
    boxes = [p.get_facecolor() for p in ax.patches if p.get_facecolor() != (1, 1, 1, 1)]
    assert len(boxes) == values.size  # every character read is coloured, by its value
    np.testing.assert_allclose(boxes, cmap(norm(np.maximum(values, norm.vmin))), atol=1e-12)
    matplotlib.pyplot.close(fig)


def test_explorer_redraws_with_the_name_and_position_it_shows(monkeypatch):
    vocab = data.Vocab()
    models = models_for_widget()
    drawn = []
    real = cw.plot_name_connectivity

    def recording(models, vocab, name, position, ax=None):
        drawn.append((name, position))
        return real(models, vocab, name, position, ax)

    monkeypatch.setattr(cw, "plot_name_connectivity", recording)
    box = cw.explorer(models, vocab, ["johnathan", "eve"], position=6)
    menu, slider = box.children[0].children
    assert drawn == [("johnathan", 6)] and slider.max == 9
    slider.value = 7
    assert drawn[-1] == ("johnathan", 7)
    menu.value = "eve"  # shorter: the slider's range and value follow
    assert (slider.max, slider.value) == (3, 3) and drawn[-1] == ("eve", 3)
    menu.value = "johnathan"  # longer: the value stays, the view still redraws
    assert slider.max == 9 and drawn[-1] == ("johnathan", 3)
    matplotlib.pyplot.close("all")
