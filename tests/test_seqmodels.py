"""seqmodels: TokenModel shapes and errors, sequence_loss, and the training loop's
hook and clipping, checked against autograd computed separately."""

import numpy as np
import pytest
import torch
from torch import nn

from rnncourse.seqmodels import TokenModel, sequence_loss, train


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
@pytest.mark.parametrize("every_step", [True, False])
def test_token_model_shapes(kind, every_step):
    torch.manual_seed(0)
    model = TokenModel(kind, V=6, H=5, n_out=3, every_step=every_step)
    out, hs = model(torch.randint(0, 6, (4, 7)))
    assert hs.shape == (4, 7, 5)
    assert out.shape == ((4, 7, 3) if every_step else (4, 3))


def test_last_step_output_reads_the_last_hidden_state():
    torch.manual_seed(1)
    model = TokenModel("rnn", V=4, H=3, n_out=2, every_step=False)
    out, hs = model(torch.randint(0, 4, (2, 5)))
    torch.testing.assert_close(out, model.out(hs[:, -1]))


def test_unknown_kind_raises_value_error():
    with pytest.raises(ValueError, match="kind must be one of"):
        TokenModel("gru", V=4, H=3, n_out=2, every_step=False)


@pytest.mark.parametrize("shape", [(5,), (2, 5, 1)])
def test_tokens_of_the_wrong_rank_raise_value_error(shape):
    model = TokenModel("rnn", V=4, H=3, n_out=2, every_step=False)
    with pytest.raises(ValueError, match=r"expected \(N, T\)"):
        model(torch.zeros(shape, dtype=torch.int64))


def test_sequence_loss_is_the_mean_cross_entropy_for_both_shapes():
    torch.manual_seed(2)
    out = torch.randn(3, 4, 5)
    y = torch.randint(0, 5, (3, 4))
    log_p = torch.log_softmax(out, dim=-1)
    manual = -log_p.gather(-1, y[..., None]).mean()
    torch.testing.assert_close(sequence_loss(out, y), manual)
    torch.testing.assert_close(sequence_loss(out[:, 0], y[:, 0]),
                               -log_p[:, 0].gather(-1, y[:, :1]).mean())


def _fixed_batch(V=5, N=4, T=6, seed=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (N, T), generator=g), torch.randint(0, 2, (N,), generator=g)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_hook_sees_hs_grad_equal_to_autograd_through_hs(kind):
    torch.manual_seed(4)
    model = TokenModel(kind, V=5, H=4, n_out=2, every_step=False).double()
    tokens, y = _fixed_batch()
    seen = []

    def on_step(step, loss, hs):
        # weights are not yet updated here: recompute dL/dh_t on a fresh graph
        out_ref, hs_ref = model(tokens)
        (ref,) = torch.autograd.grad(sequence_loss(out_ref, y), hs_ref)
        seen.append((hs.grad.clone(), ref, loss))

    losses = train(model, lambda step: (tokens, y), steps=3, lr=1e-2, clip=None, on_step=on_step)
    assert len(seen) == 3 and len(losses) == 3
    for (got, ref, loss), logged in zip(seen, losses, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-14)
        assert loss == logged
    # as documented: nn.RNN / nn.LSTM keep the recurrence inside one op, so a
    # many-to-one model's hs.grad is the read-out's part only, zero before the last step
    assert torch.count_nonzero(seen[0][0][:, :-1]) == 0
    assert torch.count_nonzero(seen[0][0][:, -1]) > 0


def _grads_at_hook(clip, scale):
    torch.manual_seed(5)
    model = TokenModel("rnn", V=5, H=4, n_out=2, every_step=False).double()
    with torch.no_grad():
        model.out.weight.mul_(scale)  # a large read-out makes a large gradient
    tokens, y = _fixed_batch()
    out, _ = model(tokens)
    unclipped = torch.autograd.grad(sequence_loss(out, y), list(model.parameters()))
    seen = []

    def on_step(step, loss, hs):
        seen.append([p.grad.clone() for p in model.parameters()])

    train(model, lambda step: (tokens, y), steps=1, lr=1e-3, clip=clip, on_step=on_step)
    return unclipped, seen[0]


def _global_norm(grads):
    return torch.sqrt(sum((g**2).sum() for g in grads)).item()


def test_clipping_caps_the_global_norm_and_keeps_the_direction():
    unclipped, clipped = _grads_at_hook(clip=0.5, scale=50.0)
    assert _global_norm(unclipped) > 5.0
    assert _global_norm(clipped) == pytest.approx(0.5, rel=1e-6)
    factor = 0.5 / _global_norm(unclipped)
    for g, g_ref in zip(clipped, unclipped, strict=True):
        torch.testing.assert_close(g, g_ref * factor, rtol=1e-6, atol=1e-12)


def test_small_gradients_and_clip_none_are_left_alone():
    for clip, scale in ((100.0, 1.0), (None, 50.0)):
        unclipped, seen = _grads_at_hook(clip=clip, scale=scale)
        for g, g_ref in zip(seen, unclipped, strict=True):
            torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-14)


def test_train_is_seeded_and_learns_an_easy_batch():
    def run():
        torch.manual_seed(6)
        model = TokenModel("lstm", V=5, H=8, n_out=2, every_step=False)
        tokens, y = _fixed_batch(N=8)
        return train(model, lambda step: (tokens, y), steps=40, lr=3e-2, progress=iter)

    first, second = run(), run()
    assert first == second
    assert first[-1] < 0.5 * first[0]
    assert np.isfinite(first).all()


def test_train_passes_every_step_index_to_batch_fn():
    model = TokenModel("rnn", V=5, H=3, n_out=2, every_step=False)
    tokens, y = _fixed_batch()
    asked = []

    def batch_fn(step):
        asked.append(step)
        return tokens, y

    train(model, batch_fn, steps=4)
    assert asked == [0, 1, 2, 3]
    assert isinstance(model.cell, nn.RNN)
