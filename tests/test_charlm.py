"""The character model against independent references: torch autograd and the
torch twin in float64, central finite differences, and the argmax for greedy sampling."""

import numpy as np
import pytest
import torch

import rnncourse as rc
from rnncourse import charlm, data

NAMES = ["ann", "bob", "eve", "joan", "john", "mia", "zoe", "lee", "amy", "kai", "jo", "ivy"]


def small_problem(H=8, seed=0):
    vocab = data.Vocab()
    params = charlm.init_params(len(vocab), H, np.random.default_rng(seed))
    params["b_h"] += 0.1 * np.random.default_rng(seed + 1).standard_normal(H)
    return vocab, params, data.encode_names(NAMES, vocab)


def test_loss_and_grads_match_torch_autograd_float64():
    vocab, params, batch = small_problem()
    value, grads = charlm.loss_and_grads(params, *batch)
    model = charlm.torch_twin(params)
    reference = charlm.torch_loss(model, *batch)
    reference.backward()
    assert value == pytest.approx(reference.item(), rel=1e-12)
    torch_grads = {
        "W_x": model.rnn.weight_ih_l0.grad, "W_h": model.rnn.weight_hh_l0.grad,
        "b_h": model.rnn.bias_ih_l0.grad, "W_y": model.out.weight.grad, "b_y": model.out.bias.grad,
    }
    for name, g in torch_grads.items():
        assert rc.rel_error(grads[name], g.numpy()) < 1e-10, name
    assert model.rnn.bias_hh_l0.grad is None  # frozen at zero, as the docstring says


def test_gradient_of_W_h_matches_finite_differences():
    vocab, params, batch = small_problem(H=4)
    _, grads = charlm.loss_and_grads(params, *batch)

    def f(W_h):
        return charlm.loss({**params, "W_h": W_h}, *batch)

    numeric = rc.numerical_gradient(f, params["W_h"].copy())
    assert rc.rel_error(grads["W_h"], numeric) < 1e-7


def test_forward_loss_equals_the_training_loss_and_the_padding_is_ignored():
    vocab, params, (inputs, targets, mask) = small_problem()
    value, _ = charlm.loss_and_grads(params, inputs, targets, mask)
    assert charlm.loss(params, inputs, targets, mask) == pytest.approx(value, rel=1e-12)
    scrambled = targets.copy()
    scrambled[mask == 0] = 5  # change only padded targets
    assert charlm.loss(params, inputs, scrambled, mask) == pytest.approx(value, rel=1e-12)


def test_numpy_training_and_the_torch_twin_follow_the_same_path():
    vocab, params, batch = small_problem(H=8)
    twin = charlm.torch_twin(params)
    # max_norm small enough that clipping acts on most steps
    kwargs = dict(steps=12, batch_size=5, lr=0.05, max_norm=0.5, seed=2, eval_every=4,
                  progress=False)
    ours = charlm.train_numpy(params, batch, batch, **kwargs)
    theirs = charlm.train_torch(twin, batch, batch, **kwargs)
    assert (ours["grad_norm"] > 0.5).sum() >= 6
    np.testing.assert_allclose(ours["train_loss"], theirs["train_loss"], rtol=1e-6)
    np.testing.assert_allclose(ours["grad_norm"], theirs["grad_norm"], rtol=1e-6)
    assert ours["val_step"] == theirs["val_step"] == [4, 8, 12]
    np.testing.assert_allclose(ours["val_loss"], theirs["val_loss"], rtol=1e-6)
    # clip_grad_norm_ divides by (norm + 1e-6), the library by norm: a 1e-6 relative nudge
    trained = twin.numpy_params()
    for name in charlm.PARAM_NAMES:
        assert rc.rel_error(params[name], trained[name]) < 1e-6, name


def test_training_lowers_the_validation_loss_below_the_unigram_baseline():
    names = data.load_names()
    train_names, val_names = data.train_val_split(names[::4], val_fraction=0.2, seed=0)
    vocab = data.Vocab()
    train, val = data.encode_names(train_names, vocab), data.encode_names(val_names, vocab)
    params = charlm.init_params(len(vocab), 16, np.random.default_rng(0))
    history = charlm.train_numpy(params, train, val, steps=150, batch_size=32, lr=0.02,
                                 eval_every=50, progress=False)
    from rnncourse import ngram

    unigram = ngram.NGram(0, start=".", end=".").fit(train_names).cross_entropy(val_names)
    assert history["val_loss"][-1] < unigram - 0.2
    assert history["val_loss"][-1] < history["val_loss"][0]


def test_batches_are_deterministic_and_each_epoch_is_a_permutation():
    a = charlm.batch_indices(10, 3, steps=6, seed=1)
    b = charlm.batch_indices(10, 3, steps=6, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert sorted(np.concatenate(a[:3])) == sorted(set(np.concatenate(a[:3])))  # no repeats
    with pytest.raises(ValueError, match="batch_size"):
        charlm.batch_indices(10, 11, steps=1, seed=0)


def test_next_char_probs_is_the_softmax_of_the_twin_at_the_last_step():
    vocab, params, _ = small_problem()
    probs = charlm.next_char_probs(params, vocab, "jo")
    assert probs.shape == (27,) and probs.sum() == pytest.approx(1.0)
    x = torch.nn.functional.one_hot(torch.tensor([[0, *vocab.encode("jo")]]), 27).double()
    y, _ = charlm.torch_twin(params)(x)
    expected = torch.softmax(y[0, -1], dim=-1).detach().numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-12)


def greedy_by_hand(params, vocab, max_len=20):
    name = ""
    while len(name) < max_len:
        token = int(np.argmax(charlm.next_char_probs(params, vocab, name)))
        if token == vocab.boundary:
            break
        name += vocab.itos[token]
    return name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampling_at_temperature_near_zero_is_the_argmax(seed):
    vocab, params, _ = small_problem(H=16, seed=seed)
    params["W_y"] *= 3.0  # sharper scores, so the greedy name differs between seeds
    greedy = greedy_by_hand(params, vocab)
    assert charlm.sample(params, vocab, np.random.default_rng(0), temperature=0) == greedy
    for rng_seed in range(5):
        rng = np.random.default_rng(rng_seed)
        assert charlm.sample(params, vocab, rng, temperature=1e-6) == greedy


def test_sampling_is_reproducible_and_respects_max_len():
    vocab, params, _ = small_problem(H=16)
    a = [charlm.sample(params, vocab, np.random.default_rng(7)) for _ in range(3)]
    b = [charlm.sample(params, vocab, np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    assert all(len(charlm.sample(params, vocab, np.random.default_rng(s), 5.0, max_len=4)) <= 4
               for s in range(10))


def test_bad_input_raises_value_error():
    vocab, params, (inputs, targets, mask) = small_problem()
    with pytest.raises(ValueError, match="mask has shape"):
        charlm.loss(params, inputs, targets, mask[:, :-1])
    with pytest.raises(ValueError, match=r"inputs must hold tokens in \[0, 27\)"):
        charlm.loss_and_grads(params, inputs + 27, targets, mask)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        charlm.next_char_probs(params, vocab, "Jo")
    with pytest.raises(ValueError, match="temperature"):
        charlm.sample(params, vocab, np.random.default_rng(0), temperature=-1.0)


def test_loss_by_position_by_hand_and_its_weighted_mean_is_the_loss():
    vocab, params, (inputs, targets, mask) = small_problem()
    by_pos = charlm.loss_by_position(params, inputs, targets, mask)
    assert by_pos.shape == (inputs.shape[1],)
    # position 0 of every name: -log P(first letter | ".") averaged over the batch, by hand
    p0 = charlm.next_char_probs(params, vocab, "")
    first = np.mean([-np.log(p0[vocab.encode(n)[0]]) for n in NAMES])
    assert by_pos[0] == pytest.approx(first, rel=1e-12)
    counted = mask.sum(axis=0)
    overall = (by_pos * counted).sum() / counted.sum()
    assert overall == pytest.approx(charlm.loss(params, inputs, targets, mask), rel=1e-12)
