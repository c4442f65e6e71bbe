"""The syllabus's worked examples, computed with the library, to 4 significant figures.

The expected numbers are the syllabus's verified values; each was also checked by
hand with the closed form tanh(W_x x_t + W_h h_{t-1})."""

import numpy as np
import pytest

import rnncourse as rc

PRICES = np.array([100.0, 102.0, 105.0, 103.0, 108.0])


def example_b(W_h=0.5):
    """Scalar RNN on five closing prices: W_x = 0.01, b = 0, h_0 = 0."""
    h, _ = rc.rnn_forward(
        PRICES[None, :, None], np.zeros((1, 1)), np.array([[0.01]]), np.array([[W_h]]), np.zeros(1)
    )
    return h[0]  # (T, 1)


def sig4(value):
    return float(f"{value:.4g}")


def test_example_b_hidden_states():
    h = example_b()
    assert [sig4(v) for v in h[:, 0]] == [0.7616, 0.8855, 0.9038, 0.9018, 0.9106]
    assert h[0, 0] == pytest.approx(np.tanh(1.0), rel=1e-15)


def test_example_b_local_factors_and_cumulative_product():
    h = example_b()
    local = [rc.step_jacobian(h[t - 1], np.array([[0.5]])).item() for t in range(5, 0, -1)]
    # the syllabus prints them to four decimal places
    assert [round(v, 4) for v in local] == [0.0854, 0.0934, 0.0915, 0.1079, 0.2100]
    cumulative = rc.jacobian_product(h, np.array([[0.5]]), 0).item()
    assert sig4(cumulative) == 1.654e-05  # the syllabus rounds it to 1.65e-5
    assert cumulative == pytest.approx(np.prod(local), rel=1e-12)


SWEEP = (0.1, 0.3, 0.5, 0.7, 0.9, 1.2, 1.5, 2.0)


def closed_form_sweep_value(W_h):
    """dh_5/dh_0 for example B as a plain scalar loop: prod_t W_h (1 - h_t^2)."""
    h, product = 0.0, 1.0
    for price in PRICES:
        h = np.tanh(0.01 * price + W_h * h)
        product *= W_h * (1 - h**2)
    return product


@pytest.mark.parametrize(
    "W_h, printed",
    [(0.1, 6e-8), (0.3, 4.6e-6), (0.5, 1.65e-5), (0.7, 2.23e-5),
     (0.9, 1.85e-5), (1.2, 8.3e-6), (1.5, 2.6e-6), (2.0, 2.5e-7)],
)
def test_example_b_weight_sweep_matches_the_printed_values(W_h, printed):
    # The syllabus prints one to three significant figures. Allow one unit in the
    # last printed place: at W_h = 0.9 the value is 1.8446e-5, printed as 1.85e-5.
    got = rc.jacobian_product(example_b(W_h), np.array([[W_h]]), 0).item()
    mantissa, exponent = f"{printed:.2e}".split("e")
    last_place = 10.0 ** (int(exponent) - (len(mantissa.rstrip("0").replace(".", "")) - 1))
    assert abs(got - printed) <= last_place


def test_example_b_weight_sweep_four_figures():
    got = [rc.jacobian_product(example_b(w), np.array([[w]]), 0).item() for w in SWEEP]
    assert [sig4(g) for g in got] == [sig4(closed_form_sweep_value(w)) for w in SWEEP]
    assert [sig4(g) for g in got] == [
        5.970e-08, 4.640e-06, 1.654e-05, 2.231e-05, 1.845e-05, 8.325e-06, 2.633e-06, 2.499e-07
    ]
    assert got.index(max(got)) == 3  # the peak sits at W_h = 0.7: bigger is no cure


def test_example_c_two_units():
    W_h = np.array([[0.5, 0.1], [0.1, 0.5]])
    W_x = np.array([[0.8], [-0.3]])
    x = np.array([0.5, 0.8, 0.6])[None, :, None]
    h, _ = rc.rnn_forward(x, np.zeros((1, 2)), W_x, W_h, np.zeros(2))
    h_3 = h[0, -1]
    assert [sig4(v) for v in h_3] == [0.6580, -0.2426]
    y_hat = np.array([1.0, 1.0]) @ h_3
    assert sig4(y_hat) == 0.4153
    # the widely printed h_3 ~ [0.81, 0.62], y ~ 1.43 does not follow from these weights
    assert abs(y_hat - 1.43) > 1.0
