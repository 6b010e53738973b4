"""What changed between two index versions, by stable chunk id and text hash.

A passage's id is derived from its document's path, its heading, its text and its
occurrence, so the same id in both versions is the same passage. Passages are
classified as:

* ``added``: an id only in the newer version whose text is new;
* ``removed``: an id only in the older version whose text is gone;
* ``moved``: the same text (by ``text_sha256``) under a different id: it changed
  heading, place or document, but not wording;
* ``changed``: the same id whose title or ACL groups differ (a re-titled or
  re-permissioned document).

Documents (by their id, stable by path) are ``added``, ``removed`` or ``changed``
(different passages, title or groups).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from keel.errors import IndexVersionError
from keel.retrieval.snapshot import PassageRecord, read_passages
from keel.retrieval.versions import IndexStore

__all__ = ["DocumentChange", "IndexDiff", "PassageChange", "diff_passages", "diff_versions"]


@dataclass(frozen=True, kw_only=True)
class PassageChange:
    """One passage that differs, with where it lives."""

    chunk_id: str
    path: str
    heading: str
    fields: tuple[str, ...] = ()
    """For ``changed``: which of ``title`` and ``groups`` differ."""
    other_id: str = ""
    """For ``moved``: the passage's id in the older version."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {"chunk_id": self.chunk_id, "path": self.path, "heading": self.heading}
        if self.fields:
            out["fields"] = list(self.fields)
        if self.other_id:
            out["from_chunk_id"] = self.other_id
        return out


@dataclass(frozen=True, kw_only=True)
class DocumentChange:
    """One document that was added, removed or changed."""

    doc_id: str
    path: str
    status: str
    """``added``, ``removed`` or ``changed``."""
    passages_added: int = 0
    passages_removed: int = 0
    groups_before: tuple[str, ...] = ()
    groups_after: tuple[str, ...] = ()
    title_before: str = ""
    title_after: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "doc_id": self.doc_id,
            "path": self.path,
            "status": self.status,
            "passages_added": self.passages_added,
            "passages_removed": self.passages_removed,
            "groups_before": list(self.groups_before),
            "groups_after": list(self.groups_after),
            "title_before": self.title_before,
            "title_after": self.title_after,
        }


@dataclass(frozen=True, kw_only=True)
class IndexDiff:
    """How version ``b`` differs from version ``a``."""

    a: int
    b: int
    documents: list[DocumentChange] = field(default_factory=list)
    added: list[PassageChange] = field(default_factory=list)
    removed: list[PassageChange] = field(default_factory=list)
    moved: list[PassageChange] = field(default_factory=list)
    changed: list[PassageChange] = field(default_factory=list)
    unchanged: int = 0

    def documents_with(self, status: str) -> list[DocumentChange]:
        """The documents ``added``, ``removed`` or ``changed``."""
        return [d for d in self.documents if d.status == status]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form shown by ``keel index diff --json``."""
        return {
            "a": self.a,
            "b": self.b,
            "summary": {
                "documents": {s: len(self.documents_with(s)) for s in ("added", "removed", "changed")},
                "passages": {
                    "added": len(self.added),
                    "removed": len(self.removed),
                    "moved": len(self.moved),
                    "changed": len(self.changed),
                    "unchanged": self.unchanged,
                },
            },
            "documents": [d.to_dict() for d in self.documents],
            "passages": {
                "added": [p.to_dict() for p in self.added],
                "removed": [p.to_dict() for p in self.removed],
                "moved": [p.to_dict() for p in self.moved],
                "changed": [p.to_dict() for p in self.changed],
            },
        }


def diff_versions(store: IndexStore, a: int, b: int) -> IndexDiff:
    """The differences between versions ``a`` and ``b`` of ``store`` (both must exist)."""
    for version in (a, b):
        if not store.folder(version).is_dir():
            available = ", ".join(f"v{v}" for v in store.versions()) or "none"
            raise IndexVersionError(f"index version {version} does not exist; available: {available}")
    return diff_passages(read_passages(store.folder(a)), read_passages(store.folder(b)), a=a, b=b)


def diff_passages(before: list[PassageRecord], after: list[PassageRecord], *, a: int = 0, b: int = 0) -> IndexDiff:
    """The differences between two versions' passages."""
    old = {p.chunk_id: p for p in before}
    new = {p.chunk_id: p for p in after}
    old_by_text: dict[str, list[PassageRecord]] = defaultdict(list)
    for p in before:
        if p.chunk_id not in new:
            old_by_text[p.text_sha256].append(p)
    added, moved, changed = [], [], []
    unchanged = 0
    for p in after:
        previous = old.get(p.chunk_id)
        if previous is not None:
            fields = tuple(
                name
                for name, x, y in (("title", previous.title, p.title), ("groups", previous.groups, p.groups))
                if x != y
            )
            if fields:
                changed.append(PassageChange(chunk_id=p.chunk_id, path=p.path, heading=p.heading, fields=fields))
            else:
                unchanged += 1
            continue
        sources = old_by_text.get(p.text_sha256)
        if sources:
            origin = sources.pop(0)
            moved.append(PassageChange(chunk_id=p.chunk_id, path=p.path, heading=p.heading, other_id=origin.chunk_id))
        else:
            added.append(PassageChange(chunk_id=p.chunk_id, path=p.path, heading=p.heading))
    left = {p.chunk_id for group in old_by_text.values() for p in group}  # not matched by a moved passage
    removed = [PassageChange(chunk_id=p.chunk_id, path=p.path, heading=p.heading) for p in before if p.chunk_id in left]
    return IndexDiff(
        a=a,
        b=b,
        documents=_documents(before, after),
        added=added,
        removed=removed,
        moved=moved,
        changed=changed,
        unchanged=unchanged,
    )


def _documents(before: list[PassageRecord], after: list[PassageRecord]) -> list[DocumentChange]:
    old = _by_document(before)
    new = _by_document(after)
    out: list[DocumentChange] = []
    for doc_id in sorted(old.keys() | new.keys(), key=lambda d: (new.get(d) or old[d])[0].path):
        was, now = old.get(doc_id), new.get(doc_id)
        if was is None and now is not None:
            first = now[0]
            out.append(
                DocumentChange(
                    doc_id=doc_id,
                    path=first.path,
                    status="added",
                    passages_added=len(now),
                    groups_after=first.groups,
                    title_after=first.title,
                )
            )
        elif now is None and was is not None:
            first = was[0]
            out.append(
                DocumentChange(
                    doc_id=doc_id,
                    path=first.path,
                    status="removed",
                    passages_removed=len(was),
                    groups_before=first.groups,
                    title_before=first.title,
                )
            )
        elif was is not None and now is not None:
            ids_before = {p.chunk_id for p in was}
            ids_after = {p.chunk_id for p in now}
            x, y = was[0], now[0]
            if ids_before != ids_after or x.groups != y.groups or x.title != y.title:
                out.append(
                    DocumentChange(
                        doc_id=doc_id,
                        path=y.path,
                        status="changed",
                        passages_added=len(ids_after - ids_before),
                        passages_removed=len(ids_before - ids_after),
                        groups_before=x.groups,
                        groups_after=y.groups,
                        title_before=x.title,
                        title_after=y.title,
                    )
                )
    return out


def _by_document(passages: list[PassageRecord]) -> dict[str, list[PassageRecord]]:
    out: dict[str, list[PassageRecord]] = defaultdict(list)
    for p in passages:
        out[p.doc_id].append(p)
    return out
