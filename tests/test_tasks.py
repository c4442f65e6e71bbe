"""The long-range tasks follow their definitions exactly."""

import numpy as np
import pytest

from rnncourse import tasks


@pytest.mark.parametrize("T", [1, 5, 100])
def test_copy_task_layout(T):
    x, y = tasks.copy_task_batch(16, T, np.random.default_rng(T))
    assert x.shape == y.shape == (16, T + 20)
    symbols = x[:, :10]
    assert symbols.min() >= 1 and symbols.max() <= 8
    assert np.all(x[:, 10 : 10 + T - 1] == 0)  # T - 1 blanks
    assert np.all(x[:, 10 + T - 1] == 9)  # then the delimiter
    assert np.all(x[:, 10 + T :] == 0)  # then 10 blanks
    assert np.all(y[:, : T + 10] == 0)  # target: T + 10 blanks
    np.testing.assert_array_equal(y[:, T + 10 :], symbols)  # then the symbols


def test_copy_task_rejects_bad_delay():
    with pytest.raises(ValueError, match="delay must be at least 1, got 0"):
        tasks.copy_task_batch(2, 0, np.random.default_rng(0))


def test_copy_task_baseline_closed_form():
    assert tasks.copy_task_baseline(100) == pytest.approx(10 * np.log(8) / 120)
    assert round(tasks.copy_task_baseline(100), 3) == 0.173
    # the baseline is the cross-entropy of the memoryless predictor itself
    T = 30
    _, y = tasks.copy_task_batch(1, T, np.random.default_rng(0))
    p = np.zeros((T + 20, 10))
    p[: T + 10, 0] = 1.0
    p[T + 10 :, 1:9] = 1 / 8
    ce = -np.mean(np.log(p[np.arange(T + 20), y[0]]))
    assert ce == pytest.approx(tasks.copy_task_baseline(T), rel=1e-12)


def test_agreement_batch_layout():
    x, y = tasks.agreement_batch(200, 7, np.random.default_rng(0))
    assert x.shape == (200, 9) and y.shape == (200,)
    np.testing.assert_array_equal(x[:, 0], y)
    assert np.all(x[:, -1] == tasks.AGREE_QUERY)
    assert x[:, 1:-1].min() >= 3 and x[:, 1:-1].max() < tasks.AGREE_VOCAB
    assert 0.3 < y.mean() < 0.7


def test_one_hot_and_its_range_check():
    np.testing.assert_array_equal(tasks.one_hot(np.array([[2, 0]]), 3), [[[0, 0, 1], [1, 0, 0]]])
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, 3\), got range \[0, 3\]"):
        tasks.one_hot(np.array([[0, 3]]), 3)


def test_echo_batch_targets_are_the_inputs_delay_steps_back():
    x, y = tasks.echo_batch(4, 10, 3, 5, np.random.default_rng(1))
    assert x.shape == y.shape == (4, 10) and x.min() >= 0 and x.max() < 5
    assert np.all(y[:, :3] == tasks.IGNORE)
    np.testing.assert_array_equal(y[:, 3:], x[:, :7])
    for delay in (0, 10):
        with pytest.raises(ValueError, match="delay must lie in"):
            tasks.echo_batch(4, 10, delay, 5, np.random.default_rng(1))
