"""The total gradient reaching every hidden state (rnncourse.state_gradients): the fast
path against the readable reference, and both against autograd through an explicit
nn.RNNCell / nn.LSTMCell loop (the autograd_reach fixture of conftest.py)."""

import numpy as np
import pytest
import torch

from rnncourse import state_gradients as sg
from rnncourse.seqmodels import TokenModel, sequence_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def backward_through(model, tokens, y):
    """hs (detached) and hs.grad, the read-out's part of dL/dh_t, after one backward."""
    out, hs = model(tokens)
    hs.retain_grad()
    sequence_loss(out, y).backward()
    return hs.detach(), hs.grad


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
@pytest.mark.parametrize("every_step", [True, False])
def test_fast_path_equals_the_readable_reference_float64(kind, every_step, token_batches):
    torch.manual_seed(5)
    model = TokenModel(kind, 6, 5, 3, every_step).double()
    (tokens, y), = token_batches(6, 3, 9, every_step, 1, seed=2, N=4)
    hs, direct = backward_through(model, tokens, y)
    fast, fast_forget = sg.hidden_state_gradients(model, tokens, hs, direct)
    readable, readable_forget = sg.hidden_state_gradients_reference(model, tokens, hs, direct)
    assert fast.shape == readable.shape == (4, 9, 5)
    np.testing.assert_allclose(fast.numpy(), readable.numpy(), rtol=1e-12, atol=1e-15)
    assert (fast_forget is None) == (readable_forget is None) == (kind == "rnn")
    if kind == "lstm":
        np.testing.assert_allclose(fast_forget.numpy(), readable_forget.numpy(), rtol=1e-12)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_readable_reference_equals_autograd_float64(kind, token_batches, autograd_reach):
    torch.manual_seed(6)
    model = TokenModel(kind, 5, 4, 3, every_step=True).double()
    (tokens, y), = token_batches(5, 3, 7, True, 1, seed=3)
    reach, forget = sg.hidden_state_gradients_reference(model, tokens,
                                                        *backward_through(model, tokens, y))
    expected, expected_forget = autograd_reach(model, tokens, y)
    np.testing.assert_allclose(reach.norm(dim=(0, 2)).numpy(), expected, rtol=1e-10)
    if kind == "lstm":
        np.testing.assert_allclose(forget.numpy(), expected_forget, rtol=1e-12)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_fast_path_agrees_with_the_reference_in_float32(kind, token_batches):
    """The training models are float32 by default: the tuned arithmetic (tanh as
    2 sigmoid(2x) - 1, the NumPy scans) stays within float32 rounding of the readable one."""
    torch.manual_seed(7)
    model = TokenModel(kind, 5, 8, 3, every_step=False)
    (tokens, y), = token_batches(5, 3, 12, False, 1, seed=4, N=5)
    hs, direct = backward_through(model, tokens, y)
    fast, _ = sg.hidden_state_gradients(model, tokens, hs, direct)
    readable, _ = sg.hidden_state_gradients_reference(model, tokens, hs, direct)
    np.testing.assert_allclose(fast.numpy(), readable.numpy(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_hs_grad_holds_only_the_readout_part_and_reach_adds_the_rest(kind, token_batches,
                                                                    autograd_reach):
    """Why the recorder needs hidden_state_gradients: nn.RNN / nn.LSTM keep the recurrence
    inside one op, so a many-to-one TokenModel's hs.grad is zero before the last step."""
    torch.manual_seed(0)
    model = TokenModel(kind, 5, 4, 2, every_step=False).double()
    (tokens, y), = token_batches(5, 2, 6, False, 1)
    out, hs = model(tokens)
    hs.retain_grad()
    sequence_loss(out, y).backward()
    assert torch.all(hs.grad[:, :-1] == 0)
    reach, forget = sg.hidden_state_gradients(model, tokens, hs.detach(), hs.grad)
    expected, expected_forget = autograd_reach(model, tokens, y)
    np.testing.assert_allclose(reach.norm(dim=(0, 2)).numpy(), expected, rtol=1e-10)
    assert (forget is None) == (kind == "rnn")
    if forget is not None:
        np.testing.assert_allclose(forget.numpy(), expected_forget, rtol=1e-12)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_probed_copy_reports_the_reaching_gradient_and_leaves_the_model_alone(kind, token_batches,
                                                                             autograd_reach):
    torch.manual_seed(1)
    model = TokenModel(kind, 5, 4, 2, every_step=False).double()
    before = [p.detach().clone() for p in model.parameters()]
    (tokens, y), = token_batches(5, 2, 6, False, 1)
    probed = sg.probed_copy(model)
    out, _ = probed(tokens)
    sequence_loss(out, y).backward()
    expected, _ = autograd_reach(model, tokens, y)
    np.testing.assert_allclose(probed.reach_grad().norm(dim=(0, 2)).numpy(), expected, rtol=1e-10)
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    with pytest.raises(ValueError, match="run forward, then backward"):
        sg.probed_copy(model).reach_grad()
