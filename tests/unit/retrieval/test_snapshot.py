"""Snapshot postings: the CSR arrays hold every term's rows in order with their frequencies."""

from __future__ import annotations

from keel.retrieval.snapshot import _postings


def test_postings_list_sorted_terms_with_rows_in_order_and_term_frequencies() -> None:
    rows = [["salary", "band", "salary"], [], ["band", "leave"], ["salary"]]
    vocab, indptr, term_rows, tfs, lengths = _postings(rows)
    assert vocab.tolist() == ["band", "leave", "salary"]
    assert indptr.tolist() == [0, 2, 3, 5]
    assert term_rows.tolist() == [0, 2, 2, 0, 3]
    assert tfs.tolist() == [1.0, 1.0, 1.0, 2.0, 1.0]
    assert lengths.tolist() == [3.0, 0.0, 2.0, 1.0]
    assert (term_rows.dtype.name, tfs.dtype.name, lengths.dtype.name, indptr.dtype.name) == (
        "int32",
        "float32",
        "float32",
        "int64",
    )


def test_postings_of_nothing_are_empty() -> None:
    vocab, indptr, term_rows, tfs, lengths = _postings([])
    assert vocab.size == 0 and term_rows.size == 0 and tfs.size == 0 and lengths.size == 0
    assert indptr.tolist() == [0]
