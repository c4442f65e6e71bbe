"""Lecture 05 sets each BPTT equation next to the line of lib/rnncourse/rnn.py that
computes it. These tests keep that table honest: every quoted line must still be in
rnn.py, word for word, so an edit of the library that leaves the lecture quoting code
that no longer exists fails here."""

import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
LECTURE = REPO / "course" / "05-vanishing-gradient.ipynb"
RNN_SOURCE = REPO / "lib" / "rnncourse" / "rnn.py"
TABLE_HEADING = "### BPTT written out"


def table_rows():
    """The numbered rows of the table: (number, equation text, [quoted code spans])."""
    cells = [c for c in nbformat.read(LECTURE, 4).cells
             if c.cell_type == "markdown" and c.source.startswith(TABLE_HEADING)]
    assert len(cells) == 1, f"expected one markdown cell starting with {TABLE_HEADING!r}"
    rows = []
    for line in cells[0].source.splitlines():
        match = re.match(r"\|\s*(\d+)\s*\|(.*)\|(.*)\|\s*$", line)
        if match:
            number, equation, code = match.groups()
            rows.append((int(number), equation, re.findall(r"`([^`]+)`", code)))
    return rows


def quoted_lines():
    return [(number, span) for number, _, spans in table_rows() for span in spans]


def test_the_table_has_the_nine_numbered_rows():
    assert [number for number, _, _ in table_rows()] == list(range(1, 10))


def test_every_row_quotes_at_least_one_line():
    empty = [number for number, _, spans in table_rows() if not spans]
    assert not empty, f"rows {empty} quote no code"


@pytest.mark.parametrize("number, span", quoted_lines())
def test_quoted_line_is_in_rnn_py(number, span):
    source = RNN_SOURCE.read_text()
    assert span in source, (f"row {number} of the BPTT table in {LECTURE.name} quotes {span!r}, "
                            f"which is not in {RNN_SOURCE.name} any more: update the table")


def test_the_weight_gradients_quote_their_sums_over_time():
    # rows 6-8 must show both the one-step outer product and the += that sums it over t
    spans = {number: spans for number, _, spans in table_rows()}
    for number, name in ((6, "dW_h"), (7, "dW_x"), (8, "db_h")):
        assert any(s.startswith(f"{name} = ") for s in spans[number]), f"row {number}: one step"
        assert f"{name} += {name}_t" in spans[number], f"row {number}: the sum over time steps"
