"""The unrolled-RNN picture of notebook 02."""

import pytest


def test_unrolled_diagram_is_labelled_and_checks_its_labels():
    import matplotlib

    matplotlib.use("Agg")
    from rnncourse import diagrams

    ax = diagrams.draw_unrolled(["c", "a", "t"])
    assert ax.get_xlabel() == "time step t" and "3 steps" in ax.get_title()
    with pytest.raises(ValueError, match="expected 3"):
        diagrams.draw_unrolled(["c", "a", "t"], ["x"])
