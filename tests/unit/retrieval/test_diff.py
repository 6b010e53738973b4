"""Index diff: documents and passages added, removed, moved and changed, by chunk id and text hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import IndexVersionError
from keel.retrieval.diff import diff_passages, diff_versions
from keel.retrieval.versions import IndexStore
from tests.unit.retrieval.builders import passage, publish

LEAVE = "Staff get 27 days of annual leave per year."
CARRY = "Up to five days carry over to the next year."
PAY = "Salary is paid on the 25th of each month."


def test_an_edited_passage_is_removed_and_added_and_its_document_changed() -> None:
    before = [passage("leave.md", LEAVE), passage("leave.md", CARRY, n=1), passage("pay.md", PAY)]
    after = [passage("leave.md", LEAVE.replace("27", "30")), passage("leave.md", CARRY, n=1), passage("pay.md", PAY)]
    diff = diff_passages(before, after, a=1, b=2)
    assert [p.chunk_id for p in diff.added] == [after[0].chunk_id]
    assert [p.chunk_id for p in diff.removed] == [before[0].chunk_id]
    assert diff.moved == [] and diff.changed == [] and diff.unchanged == 2
    [doc] = diff.documents
    assert (doc.path, doc.status, doc.passages_added, doc.passages_removed) == ("leave.md", "changed", 1, 1)


def test_same_text_under_a_new_id_is_moved_not_added_and_removed() -> None:
    before = [passage("old/pay.md", PAY)]
    after = [passage("new/pay.md", PAY)]
    diff = diff_passages(before, after)
    assert diff.added == [] and diff.removed == []
    [moved] = diff.moved
    assert moved.other_id == before[0].chunk_id and moved.path == "new/pay.md"
    assert [(d.path, d.status) for d in diff.documents] == [("new/pay.md", "added"), ("old/pay.md", "removed")]


def test_a_new_acl_on_the_same_passage_is_a_change() -> None:
    before = [passage("pay.md", PAY, groups=("everyone",))]
    after = [passage("pay.md", PAY, groups=("finance",))]
    diff = diff_passages(before, after)
    [changed] = diff.changed
    assert changed.fields == ("groups",)
    [doc] = diff.documents
    assert doc.status == "changed" and doc.groups_before == ("everyone",) and doc.groups_after == ("finance",)


def test_a_removed_duplicate_is_still_reported_removed() -> None:
    before = [passage("a.md", PAY), passage("b.md", PAY)]
    after = [passage("a.md", PAY)]
    diff = diff_passages(before, after)
    assert [p.path for p in diff.removed] == ["b.md"] and diff.moved == []


def test_diff_versions_reads_both_folders_and_rejects_unknown_versions(tmp_path: Path) -> None:
    store = IndexStore(tmp_path / "index")
    publish(store, [passage("leave.md", LEAVE), passage("pay.md", PAY)])
    publish(store, [passage("leave.md", LEAVE)])
    body = diff_versions(store, 1, 2).to_dict()
    assert body["summary"] == {
        "documents": {"added": 0, "removed": 1, "changed": 0},
        "passages": {"added": 0, "removed": 1, "moved": 0, "changed": 0, "unchanged": 1},
    }
    assert body["documents"][0]["path"] == "pay.md"
    with pytest.raises(IndexVersionError, match="available: v1, v2"):
        diff_versions(store, 1, 3)
