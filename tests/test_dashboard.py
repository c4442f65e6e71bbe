"""The dashboard's views (rnncourse.dashboard): they draw the values a record holds.
Values, not pixels."""

import matplotlib
import numpy as np
import pytest

from rnncourse import dashboard as db
from rnncourse.recording import GradientRecord

matplotlib.use("Agg")


def shrinking_records(T=10):
    """An RNN record whose gradient shrinks by 0.9, 0.5, 0.3 per step back (the alert
    fires at 1e-2), and an LSTM record with the same norms in the other order."""
    lags = np.arange(T)[::-1]
    norms = np.array([2.0 * f**lags for f in (0.9, 0.5, 0.3)])
    steps, loss = np.arange(3) * 10, np.ones(3)
    return (GradientRecord("rnn", steps, loss, norms, np.zeros((3, 3), dtype=complex)),
            GradientRecord("lstm", steps, loss, norms[::-1].copy(), np.full((3, 3), 0.9 + 0j)))


def test_static_figure_draws_the_recorded_values():
    rnn, lstm = shrinking_records()
    fig = db.static_figure([rnn, lstm], threshold=1e-2)
    heatmaps = [ax for ax in fig.axes if "gradient reaching each h_t" in ax.get_title()]
    assert [ax.get_title().split(":")[0] for ax in heatmaps] == ["vanilla RNN", "LSTM"]
    for ax, record in zip(heatmaps, [rnn, lstm], strict=True):
        np.testing.assert_allclose(ax.images[0].get_array(), record.grad_norms.T)
    assert all(ax.get_yscale() == "log" for ax in fig.axes if "fraction" in ax.get_ylabel())
    matplotlib.pyplot.close(fig)


def test_live_panel_and_alert_text_name_the_alerts():
    rnn, lstm = shrinking_records()
    box = db.live([rnn, lstm], threshold=1e-2)
    assert "ALERT vanilla RNN" in box.children[1].value
    assert "no alert for LSTM" not in box.children[1].value
    text = db.alert_text([rnn, lstm], threshold=1e-9)
    assert text.splitlines()[0].startswith("no alert for vanilla RNN")
    matplotlib.pyplot.close("all")


def test_no_records_raises_a_clear_error():
    with pytest.raises(ValueError, match="records is empty"):
        db.static_figure([])
    with pytest.raises(ValueError, match="records is empty"):
        db.live([])
