"""A character-level RNN language model: the NumPy model, its PyTorch twin, training, sampling.

The model reads a name one character at a time, starting from the boundary
token ".", and predicts the next character at every step (the end marker "." too):

    x_t = one_hot(token_t),  h_t = tanh(W_x x_t + W_h h_{t-1} + b_h),
    p_t = softmax(W_y h_t + b_y)

The NumPy model is the library's RNN (rnncourse.rnn: BPTT, clip_by_global_norm)
plus the NumPy Adam of rnncourse.optim. The PyTorch twin is rnncourse.torch_models.TorchRNN
with the same parameters: its second bias b_hh is frozen at zero, so both models
hold exactly the five arrays W_x, W_h, b_h, W_y, b_y, and from the same start on
the same batches they follow the same path (up to rounding).

Encoded data (from rnncourse.data.encode_names) is a tuple
(inputs (B, T), targets (B, T), mask (B, T)).
"""

import numpy as np
import torch
from tqdm.auto import trange

from . import optim
from .checks import check_shape
from .init import init_rnn_params
from .rnn import (
    clip_by_global_norm,
    rnn_forward,
    rnn_loss,
    rnn_step_forward,
    softmax,
    softmax_cross_entropy,
)
from .tasks import one_hot
from .torch_models import TorchRNN

PARAM_NAMES = ("W_x", "W_h", "b_h", "W_y", "b_y")


def init_params(V, H, rng):
    """Float64 parameters for a V-token model with H hidden units (orthogonal W_h)."""
    return init_rnn_params(D=V, H=H, V=V, rng=rng)


def _check_batch(inputs, targets, mask, V):
    check_shape("inputs", inputs, (None, None), ("N", "T"))
    N, T = np.shape(inputs)
    check_shape("targets", targets, (N, T), ("N", "T"))
    check_shape("mask", mask, (N, T), ("N", "T"))
    for name, tokens in (("inputs", inputs), ("targets", targets)):
        if np.size(tokens) and (np.min(tokens) < 0 or np.max(tokens) >= V):
            raise ValueError(f"{name} must hold tokens in [0, {V}), got [{np.min(tokens)}, "
                             f"{np.max(tokens)}]")


def logits(params, inputs):
    """Scores y (N, T, V) for inputs (N, T) of tokens, starting from h_0 = 0."""
    V, H = params["W_y"].shape
    check_shape("inputs", inputs, (None, None), ("N", "T"))
    x = one_hot(inputs, V)
    h, _ = rnn_forward(x, np.zeros((x.shape[0], H)), params["W_x"], params["W_h"], params["b_h"])
    return h @ params["W_y"].T + params["b_y"]


def loss(params, inputs, targets, mask):
    """Mean cross-entropy per counted step (nats), forward pass only."""
    V = params["W_y"].shape[0]
    _check_batch(inputs, targets, mask, V)
    value, _ = softmax_cross_entropy(logits(params, inputs), targets, mask)
    return value


def loss_by_position(params, inputs, targets, mask):
    """Mean cross-entropy at each step t (nats), over the sequences that reach step t.

    returns (T,): entry t is the loss of predicting character t + 1 (the end marker
            included) given the t characters before it; nan where no sequence counts
    """
    V = params["W_y"].shape[0]
    _check_batch(inputs, targets, mask, V)
    logp = np.log(softmax(logits(params, inputs)))
    picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    counted = mask.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted > 0, -(picked * mask).sum(axis=0) / counted, np.nan)


def loss_and_grads(params, inputs, targets, mask):
    """Loss and gradients of every parameter by the library's BPTT (rnncourse.rnn.rnn_loss)."""
    V = params["W_y"].shape[0]
    _check_batch(inputs, targets, mask, V)
    value, grads, _ = rnn_loss(params, one_hot(inputs, V), targets, mask)
    return value, grads


def batch_indices(n, batch_size, steps, seed):
    """The rows of each of `steps` mini-batches: reshuffled every epoch, fixed by seed.

    returns a list of index arrays; both models train on this same list
    """
    if not 0 < batch_size <= n:
        raise ValueError(f"batch_size must lie in [1, {n}], got {batch_size}")
    rng = np.random.default_rng(seed)
    out, order = [], np.empty(0, dtype=np.int64)
    while len(out) < steps:
        if len(order) < batch_size:
            order = rng.permutation(n)
        out.append(order[:batch_size])
        order = order[batch_size:]
    return out


def _take(data, idx):
    """Rows idx of (inputs, targets, mask), cut to the longest real sequence among them."""
    inputs, targets, mask = data
    T = int(mask[idx].sum(axis=1).max())
    return inputs[idx, :T], targets[idx, :T], mask[idx, :T]


def _history(steps):
    return {"step": [], "train_loss": np.zeros(steps), "grad_norm": np.zeros(steps),
            "val_step": [], "val_loss": []}


def train_numpy(params, train, val, steps, batch_size=32, lr=1e-2, max_norm=5.0, seed=0,
                eval_every=100, progress=True, desc="NumPy RNN"):
    """Train the NumPy model in place: library BPTT, global-norm clipping, Adam.

    params:     from init_params; updated in place
    train, val: encoded (inputs, targets, mask) tuples
    returns a history dict: train_loss (steps,) and grad_norm (steps,) per step
            (the norm before clipping), val_step and val_loss every eval_every
            steps and at the end
    """
    optimiser = optim.Adam(params, lr=lr)
    history = _history(steps)
    bar = trange(steps, desc=desc, disable=not progress)
    for step, idx in zip(bar, batch_indices(len(train[0]), batch_size, steps, seed), strict=True):
        value, grads = loss_and_grads(params, *_take(train, idx))
        grads, norm = clip_by_global_norm(grads, max_norm)
        optimiser.step(params, grads)
        history["train_loss"][step], history["grad_norm"][step] = value, norm
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            history["val_step"].append(step + 1)
            history["val_loss"].append(loss(params, *val))
            bar.set_postfix(val_loss=f"{history['val_loss'][-1]:.3f}")
    history["val_loss"] = np.array(history["val_loss"])
    return history


def torch_twin(params, dtype=torch.float64):
    """A TorchRNN holding a copy of the NumPy params, with b_hh frozen at zero."""
    model = TorchRNN.from_numpy(params, dtype=dtype)
    model.rnn.bias_hh_l0.requires_grad_(False)
    return model


def _torch_batch(model, inputs, targets, mask):
    V = model.out.out_features
    dtype = model.out.weight.dtype
    x = torch.nn.functional.one_hot(torch.as_tensor(inputs), V).to(dtype)
    return x, torch.as_tensor(targets), torch.as_tensor(mask, dtype=dtype)


def torch_loss(model, inputs, targets, mask):
    """Mean cross-entropy per counted step of the PyTorch model (a tensor, with grad)."""
    _check_batch(inputs, targets, mask, model.out.out_features)
    x, t, m = _torch_batch(model, inputs, targets, mask)
    y, _ = model(x)
    per_step = torch.nn.functional.cross_entropy(y.transpose(1, 2), t, reduction="none")
    return (per_step * m).sum() / m.sum()


def train_torch(model, train, val, steps, batch_size=32, lr=1e-2, max_norm=5.0, seed=0,
                eval_every=100, progress=True, desc="PyTorch twin"):
    """Train the PyTorch model in place: autograd, clip_grad_norm_, torch.optim.Adam.

    Same arguments, same batches (for the same seed) and same history as train_numpy.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(trainable, lr=lr)
    history = _history(steps)
    bar = trange(steps, desc=desc, disable=not progress)
    for step, idx in zip(bar, batch_indices(len(train[0]), batch_size, steps, seed), strict=True):
        optimiser.zero_grad()
        value = torch_loss(model, *_take(train, idx))
        value.backward()
        norm = torch.nn.utils.clip_grad_norm_(trainable, max_norm)
        optimiser.step()
        history["train_loss"][step], history["grad_norm"][step] = value.item(), norm.item()
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            with torch.no_grad():
                history["val_step"].append(step + 1)
                history["val_loss"].append(torch_loss(model, *val).item())
            bar.set_postfix(val_loss=f"{history['val_loss'][-1]:.3f}")
    history["val_loss"] = np.array(history["val_loss"])
    return history


def next_char_probs(params, vocab, prefix):
    """P(next character | the name so far is `prefix`), a (V,) array in vocab order.

    The model reads the boundary token and then the prefix, as in training.
    """
    tokens = np.array([[vocab.boundary, *vocab.encode(prefix)]])
    return softmax(logits(params, tokens)[0, -1])


def sample(params, vocab, rng, temperature=1.0, max_len=20):
    """Sample one name, one character at a time, until the end marker or max_len characters.

    temperature: scores are divided by it before the softmax; below 1 sharpens
                 the distribution, above 1 flattens it; 0 always takes the most
                 likely character (greedy), the limit of temperature -> 0
    returns the name as a string (without the marker)
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    V, H = params["W_y"].shape
    h_t = np.zeros((1, H))
    token, out = vocab.boundary, []
    for _ in range(max_len):
        x_t = np.eye(V)[[token]]
        h_t, _ = rnn_step_forward(x_t, h_t, params["W_x"], params["W_h"], params["b_h"])
        y_t = (h_t @ params["W_y"].T + params["b_y"])[0]
        if temperature == 0:
            token = int(np.argmax(y_t))
        else:
            token = int(rng.choice(V, p=softmax(y_t / temperature)))
        if token == vocab.boundary:
            break
        out.append(token)
    return vocab.decode(out)
