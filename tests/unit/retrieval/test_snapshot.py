"""Snapshots: postings in CSR arrays, and passages read back from versions old and new."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from keel.retrieval.snapshot import IndexSnapshot, _postings
from keel.retrieval.versions import IndexStore
from tests.unit.retrieval.builders import passage, publish


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


def test_a_version_written_before_passage_vetting_loads_its_passages_as_unvetted(tmp_path: Path) -> None:
    store = IndexStore(tmp_path / "index")
    vetted = dataclasses.replace(passage("open/a.md", "Pay day is the 25th."), vetted_by="f1")
    version = publish(store, [vetted, passage("open/b.md", "Leave is 27 days.", n=1)])
    snapshot = store.snapshot(version)
    assert [p.vetted_by for p in snapshot.passages([0, 1])] == ["f1", None]
    with sqlite3.connect(store.folder(version) / "passages.db") as conn:
        conn.execute("ALTER TABLE passages DROP COLUMN vetted_by")
    older = IndexSnapshot(store.folder(version))
    assert [p.vetted_by for p in older.passages([0, 1])] == [None, None]
    assert [p.text for p in older.passages([0, 1])] == ["Pay day is the 25th.", "Leave is 27 days."]
