"""Cut a parsed document into passages that follow its structure.

Passages never cross a section boundary. Blocks (paragraphs, list items, table rows)
are packed in order up to ``max_words``; a block longer than that is split between
sentences; a short tail is folded into the passage before it when the result stays
within bounds. Each passage keeps its heading path so it reads on its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from keel.contract import ChunkingSettings
from keel.ingest.document import ParsedDocument
from keel.text import sentences

__all__ = ["ChunkDraft", "chunk_document", "chunk_id_for"]


@dataclass(frozen=True, kw_only=True)
class ChunkDraft:
    """A passage before embedding: its position, heading path and text."""

    ordinal: int
    heading: str
    text: str
    chunk_id: str


def chunk_id_for(doc_path: str, heading: str, text: str, occurrence: int) -> str:
    """A stable id from location and content: the same passage in the same place keeps its id."""
    digest = hashlib.sha256(f"{doc_path}\x00{heading}\x00{occurrence}\x00{text}".encode()).hexdigest()
    return f"c_{digest[:20]}"


def chunk_document(parsed: ParsedDocument, *, doc_path: str, settings: ChunkingSettings) -> list[ChunkDraft]:
    """Passages of ``parsed`` in reading order, with stable ids."""
    drafts: list[ChunkDraft] = []
    seen: dict[tuple[str, str], int] = {}
    for section in parsed.sections:
        heading = " > ".join((parsed.title, *[h for h in section.headings if h != parsed.title]))
        for text in _pack(section.blocks, settings):
            key = (heading, text)
            occurrence = seen.get(key, 0)
            seen[key] = occurrence + 1
            drafts.append(
                ChunkDraft(
                    ordinal=len(drafts),
                    heading=heading,
                    text=text,
                    chunk_id=chunk_id_for(doc_path, heading, text, occurrence),
                )
            )
    return drafts


def _pack(blocks: list[str], settings: ChunkingSettings) -> list[str]:
    pieces: list[str] = []
    for block in blocks:
        if _count(block) <= settings.max_words:
            pieces.append(block)
        else:
            pieces.extend(_split_long(block, settings.max_words))
    passages: list[list[str]] = []
    size = 0
    for piece in pieces:
        n = _count(piece)
        if passages and size + n <= settings.max_words:
            passages[-1].append(piece)
            size += n
        else:
            passages.append([piece])
            size = n
    if len(passages) > 1 and sum(_count(p) for p in passages[-1]) < settings.min_words:
        tail = passages.pop()
        if sum(_count(p) for p in passages[-1]) + sum(_count(p) for p in tail) <= settings.max_words * 5 // 4:
            passages[-1].extend(tail)
        else:
            passages.append(tail)
    return ["\n".join(p) for p in passages]


def _split_long(block: str, max_words: int) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    size = 0
    for sentence in sentences(block):
        words = sentence.split()
        while len(words) > max_words:
            if current:
                out.append(" ".join(current))
                current, size = [], 0
            out.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if current and size + len(words) > max_words:
            out.append(" ".join(current))
            current, size = [], 0
        current.append(" ".join(words))
        size += len(words)
    if current:
        out.append(" ".join(current))
    return out


def _count(text: str) -> int:
    return len(text.split())
