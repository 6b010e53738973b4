"""What the tests know about the sample corpus, derived from the ingested data itself."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.database import database_at

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9,.'-]*[A-Za-z0-9]")


@dataclass(frozen=True, kw_only=True)
class Document:
    """An ingested document with everything that would identify it."""

    path: str
    doc_id: str
    title: str
    groups: frozenset[str]
    chunk_ids: tuple[str, ...]
    text: str

    def readable_by(self, groups: frozenset[str]) -> bool:
        return bool(self.groups & groups)


def documents(root: Path) -> list[Document]:
    db = database_at(root / ".keel" / "keel.db")
    conn = db.connection()
    try:
        docs = conn.execute("SELECT doc_id, path, title, groups_json FROM documents ORDER BY path").fetchall()
        out = []
        for d in docs:
            chunks = conn.execute(
                "SELECT chunk_id, heading, text FROM chunks WHERE doc_id = ? ORDER BY ordinal", (d["doc_id"],)
            ).fetchall()
            out.append(
                Document(
                    path=d["path"],
                    doc_id=d["doc_id"],
                    title=d["title"],
                    groups=frozenset(json.loads(d["groups_json"])),
                    chunk_ids=tuple(c["chunk_id"] for c in chunks),
                    text="\n".join(f"{c['heading']}\n{c['text']}" for c in chunks),
                )
            )
        return out
    finally:
        db.close()


def distinctive_markers(
    doc: Document, readable: list[Document], facts: list[str] | None = None, question: str = ""
) -> set[str]:
    """Strings that identify ``doc`` to someone who can read only ``readable``.

    Its id, path, passage ids, and title (unless a readable document has the same
    one), every number of three or more digits and every capitalised name that
    appears in ``doc`` and in none of the readable documents, and those of ``facts``
    (a question's expected answer strings) that no readable document contains. Words
    of the ``question`` itself are the asker's own and never markers. Markers are
    matched case-sensitively (see :func:`leaks`).
    """
    visible = "\n".join(d.text + "\n" + d.title + "\n" + d.path for d in readable).lower() + "\n" + question.lower()
    markers = {doc.doc_id, doc.path, *doc.chunk_ids}
    if doc.title.lower() not in visible:
        markers.add(doc.title)
    for token in _TOKEN.findall(doc.text):
        digits = sum(ch.isdigit() for ch in token)
        is_number = digits >= 3 and digits / len(token.replace(",", "").replace(".", "")) > 0.6
        is_name = token[0].isupper() and len(token) >= 5 and not token.isupper() and digits == 0
        if (is_number or is_name) and token.lower() not in visible:
            markers.add(token)
    markers |= {fact for fact in facts or [] if len(fact) >= 3 and fact.lower() not in visible}
    return markers


def strings_of(value: Any) -> str:
    """Every string inside a JSON value, one per line (numbers are counts, scores and timings, never content)."""
    if isinstance(value, str):
        return value + "\n"
    if isinstance(value, dict):
        return "".join(strings_of(k) + strings_of(v) for k, v in value.items())
    if isinstance(value, list):
        return "".join(strings_of(v) for v in value)
    return ""


def sse_strings(raw: str) -> str:
    """The strings of every event in a server-sent-events body."""
    out = []
    for line in raw.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(strings_of(json.loads(line.removeprefix("data: "))))
    return "".join(out)


def leaks(text: str, markers: set[str]) -> list[str]:
    """The markers found in ``text`` as whole tokens, case-sensitively.

    A number marker ``612`` is not found in ``0.0612`` or ``1795413851.612`` (scores and
    timestamps), only where it stands as a number of its own.
    """
    found = []
    for marker in markers:
        pattern = r"(?<![\w.,])" + re.escape(marker) + r"(?![\w]|[.,]\d)"
        if re.search(pattern, text):
            found.append(marker)
    return sorted(found)


def question_cases(root: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load((root / "evals" / "questions.yaml").read_text(encoding="utf-8"))
    return list(data["cases"])
