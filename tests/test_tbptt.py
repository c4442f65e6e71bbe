"""Truncated BPTT: chunks with a carried state reproduce the whole forward pass,
a detached state stops the gradient at the chunk's start, one update per chunk through
the course's one training loop (seqmodels.train), the echo accuracy."""

import numpy as np
import pytest
import torch

from rnncourse import tasks, tbptt
from rnncourse.seqmodels import TokenModel, sequence_loss, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model_and_stream(kind, seed=0, V=4, H=5, L=12, N=3):
    torch.manual_seed(seed)
    model = TokenModel(kind, V, H, V, every_step=True).double()
    x, y = tasks.echo_batch(N, L, 3, V, np.random.default_rng(seed))
    return model, torch.from_numpy(x), torch.from_numpy(y)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_chunks_with_carried_state_equal_the_whole_forward_float64(kind):
    model, x, _ = model_and_stream(kind)
    whole, hs_whole = model(x)
    state, outs = None, []
    for start in range(0, x.shape[1], 5):  # chunks of 5, 5 and 2 steps
        out, _, state = tbptt.forward_with_state(model, x[:, start:start + 5], state)
        outs.append(out)
    assert torch.allclose(torch.cat(outs, dim=1), whole, atol=1e-12, rtol=0)
    final = state[0] if kind == "lstm" else state
    assert torch.allclose(final[0], hs_whole[:, -1], atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_detached_state_stops_the_gradient_at_the_chunk_start(kind):
    """The second chunk's loss, backpropagated: through a detached state it equals the
    gradient of the second chunk run alone from a constant state; without detaching it
    also reaches the first chunk (the earlier inputs get a gradient)."""
    model, x, y = model_and_stream(kind)
    first, second = slice(0, 6), slice(6, 12)
    _, _, state = tbptt.forward_with_state(model, x[:, first])
    out, _, _ = tbptt.forward_with_state(model, x[:, second], tbptt.detach_state(state))
    sequence_loss(out, y[:, second]).backward()
    truncated = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    constant = tbptt.detach_state(state)
    constant = tuple(s.clone() for s in constant) if kind == "lstm" else constant.clone()
    out, _, _ = tbptt.forward_with_state(model, x[:, second], constant)
    sequence_loss(out, y[:, second]).backward()
    for a, b in zip(truncated, (p.grad for p in model.parameters()), strict=True):
        assert torch.allclose(a, b, atol=1e-14, rtol=0)

    model.zero_grad()
    _, _, state = tbptt.forward_with_state(model, x[:, first])
    out, _, _ = tbptt.forward_with_state(model, x[:, second], state)  # not detached
    sequence_loss(out, y[:, second]).backward()
    full = [p.grad for p in model.parameters()]
    assert any(not torch.allclose(a, b) for a, b in zip(truncated, full, strict=True))


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_graph_grows_with_every_chunk_unless_detached(kind):
    model, x, y = model_and_stream(kind, L=16)
    sizes = {True: [], False: []}
    for detach in (True, False):
        state = None
        for start in range(0, 16, 4):
            if detach:
                state = tbptt.detach_state(state)
            out, _, state = tbptt.forward_with_state(model, x[:, start:start + 4], state)
            sizes[detach].append(tbptt.graph_size(sequence_loss(out, y[:, start:start + 4])))
    assert len(set(sizes[True])) == 1  # every detached chunk: the same graph
    growth = np.diff(sizes[False])  # undetached: one more chunk's worth each time
    assert sizes[False][0] == sizes[True][0] and growth.min() == growth.max() > 0


def test_train_tbptt_without_detach_fails_on_the_second_backward():
    model, x, y = model_and_stream("rnn")
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        tbptt.train_tbptt(model, lambda s: (x, y), steps=1, chunk=4, detach=False)


def test_train_tbptt_updates_once_per_chunk_with_targets():
    model, x, y = model_and_stream("lstm")  # delay 3: the first chunk of 2 has no target
    losses = tbptt.train_tbptt(model, lambda s: (x, y), steps=2, chunk=2)
    assert len(losses) == 2 * 5 and np.all(np.isfinite(losses))
    with pytest.raises(ValueError, match="chunk must be at least 1"):
        tbptt.train_tbptt(model, lambda s: (x, y), steps=1, chunk=0)


def test_train_tbptt_is_the_one_training_loop_with_chunk_losses():
    def chunks_of_3(model, tokens, y):
        return tbptt.chunk_losses(model, tokens, y, chunk=3)

    model, x, y = model_and_stream("rnn", seed=4)
    losses = tbptt.train_tbptt(model, lambda s: (x, y), 2, chunk=3, lr=0.05, clip=0.5)
    twin, _, _ = model_and_stream("rnn", seed=4)
    twin_losses = train(twin, lambda s: (x, y), 2, lr=0.05, clip=0.5, losses_of=chunks_of_3)
    assert losses == twin_losses and len(losses) == 2 * 3  # chunk 1 of 4 has no target yet
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters(),
                                                 strict=True))


def test_echo_accuracy_of_a_hand_built_delay_line_and_of_a_blind_model():
    """Delay 1 by hand: block A of h_t holds x_t, block B copies block A of h_{t-1},
    the read-out looks at block B. Then make the read-out blind (every score equal)."""
    V = 3
    model = TokenModel("rnn", V, 2 * V, V, every_step=True).double()
    eye, zero = 5.0 * torch.eye(V, dtype=torch.float64), torch.zeros(V, V, dtype=torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.cell.weight_ih_l0.copy_(torch.cat([eye, zero]))  # block A <- x_t
        model.cell.weight_hh_l0.copy_(torch.cat([torch.cat([zero, zero], 1),
                                                 torch.cat([eye, zero], 1)]))  # B <- A
        model.out.weight.copy_(torch.cat([zero, eye], 1))  # read block B
    assert tbptt.echo_accuracy(model, 1, L=20, V=V, n=200) == 1.0
    with torch.no_grad():
        model.out.weight.zero_()  # argmax of equal scores is class 0: right a third of the time
    assert tbptt.echo_accuracy(model, 1, L=20, V=V, n=300) == pytest.approx(1 / 3, abs=0.03)
