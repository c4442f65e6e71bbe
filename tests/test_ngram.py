"""The count-based window predictor against counts worked out by hand on a tiny corpus.

Training corpus: "a b a" and "b a c". With k = 1 the (context -> next) pairs are
    <s>->a  a->b  b->a  a->end      <s>->b  b->a  a->c  c->end
so after "a": b, end, c once each; after "b": a twice; after "<s>": a once, b once.
"""

import math

import pytest

from rnncourse import ngram

TRAIN = [["a", "b", "a"], ["b", "a", "c"]]
END = "</s>"


def test_counts_by_hand_k1():
    model = ngram.NGram(1).fit(TRAIN)
    assert dict(model.counts[("a",)]) == {"b": 1, END: 1, "c": 1}
    assert dict(model.counts[("b",)]) == {"a": 2}
    assert dict(model.counts[("<s>",)]) == {"a": 1, "b": 1}
    assert model.prob(["a"], "b") == pytest.approx(1 / 3)
    # ties are broken by token order: "</s>" < "b" < "c" as strings
    assert model.predict(["b", "a"]) == [(END, 1 / 3, 1), ("b", 1 / 3, 1), ("c", 1 / 3, 1)]


def test_context_takes_the_last_k_tokens_with_padding():
    model = ngram.NGram(3)
    assert model.context(["x"]) == ("<s>", "<s>", "x")
    assert model.context(["w", "x", "y", "z"]) == ("x", "y", "z")
    assert ngram.NGram(0).context(["x", "y"]) == ()


def test_unseen_window_predicts_nothing():
    model = ngram.NGram(2).fit(TRAIN)
    assert model.predict(["c", "a"]) == []
    assert not model.seen(["c", "a"])
    assert math.isnan(model.prob(["c", "a"], "b"))


def test_coverage_and_accuracy_by_hand():
    held_out = [["c", "a", "b"]]  # positions: c, a, b, end
    # k = 1: every window (<s>, c, a, b) was seen; top guesses a, end, end, a: all wrong
    assert ngram.evaluate(ngram.NGram(1).fit(TRAIN), held_out) == {
        "positions": 4, "coverage": 1.0, "accuracy": 0.0, "accuracy_when_seen": 0.0,
    }
    # k = 2: windows (<s>,<s>) and (a,b) were seen, (<s>,c) and (c,a) were not
    result = ngram.evaluate(ngram.NGram(2).fit(TRAIN), held_out)
    assert result["coverage"] == 0.5
    # (<s>,<s>) guesses a (tie with b), (a,b) guesses a: the truth is c and end
    assert result["accuracy"] == 0.0
    # "b a": (<s>,<s>)->b wrong (guess a), (<s>,b)->a right, (b,a)->end right (tie end, c)
    assert ngram.evaluate(ngram.NGram(2).fit(TRAIN), [["b", "a"]])["accuracy"] == pytest.approx(
        2 / 3
    )


def test_unigram_cross_entropy_by_hand():
    # k = 0 counts every position: a 3, b 2, c 1, end 2 (8 in all)
    model = ngram.NGram(0).fit(TRAIN)
    expected = -(math.log(3 / 8) + math.log(2 / 8) + math.log(2 / 8)) / 3  # "a b" + end
    assert model.cross_entropy([["a", "b"]]) == pytest.approx(expected, rel=1e-12)


def test_add_alpha_smoothing_by_hand():
    model = ngram.NGram(1).fit(TRAIN)
    # after "a": 3 counts; 5 possible next tokens (a, b, c, d, end)
    assert model.prob(["a"], "d", alpha=1.0, vocab_size=5) == pytest.approx(1 / 8)
    assert model.prob(["a"], "b", alpha=1.0, vocab_size=5) == pytest.approx(2 / 8)
    with pytest.raises(ValueError, match="never counted"):
        model.cross_entropy([["a", "d"]])
    assert model.cross_entropy([["a", "d"]], alpha=1.0, vocab_size=5) > 0


def test_works_on_strings_of_characters():
    model = ngram.NGram(1, start=".", end=".").fit(["ann", "anna"])
    # after "n": n twice, end once, a once
    assert model.prob("an", "n") == pytest.approx(2 / 4)
    assert model.predict("")[0] == ("a", 1.0, 2)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="k must be an integer"):
        ngram.NGram(-1)
    with pytest.raises(ValueError, match="vocab_size"):
        ngram.NGram(1).fit(TRAIN).prob(["a"], "b", alpha=1.0)
    with pytest.raises(ValueError, match="empty"):
        ngram.evaluate(ngram.NGram(1).fit(TRAIN), [])


def test_window_table_and_explorer_follow_the_slider():
    import matplotlib

    matplotlib.use("Agg")
    from rnncourse import ngram_widget as nw

    table = nw.WindowTable(TRAIN, [["c", "a", "b"]], k_values=[1, 2])
    assert table.scores[2]["coverage"] == 0.5  # the hand count above
    assert table.predict("b a", 1) == (("a",), [(END, 1 / 3, 1), ("b", 1 / 3, 1), ("c", 1 / 3, 1)])
    box = nw.window_explorer(table, ["b a", "c a"], k=1)
    slider, prompt, report = box.children
    assert "window k = 1" in report.value and "100%" in report.value
    slider.value = 2
    assert "window k = 2" in report.value and "50%" in report.value
    prompt.value = "c a"
    assert "never occurred" in report.value
    with pytest.raises(ValueError, match="k must be one of"):
        table.predict("a", 3)
    rows = nw.prediction_rows(table, ["c a"])
    assert rows == [("c a", 1, "a", "</s> (0.33)"), ("c a", 2, "c a", "(unseen window)")]
    fig = nw.plot_window_tradeoff(table)
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()



def test_losses_per_position_by_hand():
    model = ngram.NGram(1).fit(TRAIN)
    # "b a": <s>->b is 1/2, b->a is 2/2, a->end is 1/3
    (row,) = model.losses([["b", "a"]])
    assert row == pytest.approx([math.log(2), 0.0, math.log(3)])
