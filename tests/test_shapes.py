"""A wrong shape raises ValueError naming the argument, what it got and what it wanted."""

import re

import numpy as np
import pytest

import rnncourse as rc

N, D, H = 2, 3, 4
GOOD = {
    "x_t": np.zeros((N, D)),
    "h_prev": np.zeros((N, H)),
    "W_x": np.zeros((H, D)),
    "W_h": np.zeros((H, H)),
    "b_h": np.zeros(H),
}


def raises_shape(message):
    """Expect a ValueError whose message contains exactly this text."""
    return pytest.raises(ValueError, match=re.escape(message))


@pytest.mark.parametrize(
    "name, bad, message",
    [
        ("x_t", np.zeros((N, D + 1)), "x_t has shape (2, 4), expected (N, D) = (any, 3)"),
        ("h_prev", np.zeros((N, H, 1)), "h_prev has shape (2, 4, 1), expected (N, H) = (2, 4)"),
        ("h_prev", np.zeros((N + 1, H)), "h_prev has shape (3, 4), expected (N, H) = (2, 4)"),
        ("W_h", np.zeros((H, H + 1)), "W_h has shape (4, 5), expected (H, H) = (4, 4)"),
        ("b_h", np.zeros((1, H)), "b_h has shape (1, 4), expected (H,) = (4,)"),
    ],
)
def test_rnn_step_forward_names_the_bad_argument(name, bad, message):
    args = dict(GOOD, **{name: bad})
    with raises_shape(message):
        rc.rnn_step_forward(**args)


def test_sequence_functions_check_shapes():
    with raises_shape("x has shape (2, 3), expected (N, T, D)"):
        rc.rnn_forward(np.zeros((N, D)), np.zeros((N, H)), GOOD["W_x"], GOOD["W_h"], GOOD["b_h"])
    with raises_shape("h0 has shape (4,), expected (N, H) = (2, 4)"):
        rc.rnn_forward(np.zeros((N, 5, D)), np.zeros(H), GOOD["W_x"], GOOD["W_h"], GOOD["b_h"])
    with raises_shape("targets has shape (2, 4), expected (N, T) = (2, 5)"):
        rc.softmax_cross_entropy(np.zeros((2, 5, 3)), np.zeros((2, 4), int))
    with raises_shape("h_t has shape (3,), expected (H,) = (4,)"):
        rc.step_jacobian(np.zeros(3), np.zeros((4, 4)))
    with raises_shape("W has shape (2, 3), expected (H, H)"):
        rc.spectral_radius(np.zeros((2, 3)))


def test_check_shape_returns_its_input_and_accepts_wildcards():
    a = np.zeros((5, 2))
    assert rc.check_shape("a", a, (None, 2)) is a
    with raises_shape("a has shape (5, 2), expected (5, 3)"):
        rc.check_shape("a", a, (5, 3))
