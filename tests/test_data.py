"""The shipped data and its encoding: names file, corpus, vocabulary, split, padded arrays."""

import string

import numpy as np
import pytest

from rnncourse import data


def test_names_file_is_clean_sorted_and_distinct():
    names = data.load_names()
    assert len(names) == 5163  # the count stated in lib/rnncourse/data/README.md
    assert names == sorted(set(names))
    assert all(set(name) <= set(string.ascii_lowercase) for name in names)
    assert {"john", "mary", "anna", "james"} <= set(names)


def test_corpus_is_lower_case_words():
    sentences = data.load_corpus()
    assert len(sentences) == 244  # the count stated in the data README
    assert sum(len(s) for s in sentences) == 1944
    words = {w for s in sentences for w in s}
    assert all(set(w) <= set(string.ascii_lowercase) for w in words)
    assert ["the", "weather", "today", "is", "very", "cold"] in sentences


def test_vocab_has_the_boundary_first_then_a_to_z():
    vocab = data.Vocab()
    assert len(vocab) == 27
    assert vocab.itos[0] == data.BOUNDARY == "." and vocab.boundary == 0
    assert vocab.encode("az") == [1, 26]


def test_vocab_round_trip_on_every_name():
    vocab = data.Vocab()
    for name in data.load_names():
        assert vocab.decode(vocab.encode(name)) == name


def test_unknown_character_raises_a_clear_error():
    vocab = data.Vocab()
    with pytest.raises(ValueError, match=r"outside the vocabulary: \['-', 'J'\]"):
        vocab.encode("Jean-luc")
    with pytest.raises(ValueError, match="tokens must lie in"):
        vocab.decode([0, 27])
    with pytest.raises(ValueError, match="distinct"):
        data.Vocab("abca")


def test_split_is_deterministic_disjoint_and_complete():
    items = [f"item{i}" for i in range(100)]
    train, val = data.train_val_split(items, val_fraction=0.2, seed=3)
    assert (train, val) == data.train_val_split(items, val_fraction=0.2, seed=3)
    assert len(val) == 20 and len(train) == 80
    assert sorted(train + val) == sorted(items)
    assert set(val) != set(data.train_val_split(items, val_fraction=0.2, seed=4)[1])


def test_split_rejects_a_fraction_that_leaves_nothing():
    with pytest.raises(ValueError, match="strictly between"):
        data.train_val_split(range(10), val_fraction=1.0)
    with pytest.raises(ValueError, match="empty part"):
        data.train_val_split(range(3), val_fraction=0.1)


def test_encode_names_by_hand():
    vocab = data.Vocab()
    inputs, targets, mask = data.encode_names(["ab", "c"], vocab)
    # inputs ". a b" and ". c (pad)"; targets "a b ." and "c . (pad)"
    np.testing.assert_array_equal(inputs, [[0, 1, 2], [0, 3, 0]])
    np.testing.assert_array_equal(targets, [[1, 2, 0], [3, 0, 0]])
    np.testing.assert_array_equal(mask, [[1, 1, 1], [1, 1, 0]])


def test_encode_names_targets_are_inputs_shifted_by_one():
    vocab = data.Vocab()
    names = data.load_names()[:50]
    inputs, targets, mask = data.encode_names(names, vocab)
    lengths = mask.sum(axis=1).astype(int)
    np.testing.assert_array_equal(lengths, [len(n) + 1 for n in names])
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(inputs[b, 1:n], targets[b, : n - 1])
        assert targets[b, n - 1] == vocab.boundary


def test_encode_names_rejects_empty_input():
    vocab = data.Vocab()
    with pytest.raises(ValueError, match="empty"):
        data.encode_names([], vocab)
    with pytest.raises(ValueError, match="empty strings"):
        data.encode_names(["ann", ""], vocab)
