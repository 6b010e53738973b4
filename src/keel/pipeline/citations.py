"""Citations shown to the caller, built only from passages retrieved for that caller."""

from __future__ import annotations

from keel.pipeline.context import Citation
from keel.retrieval.search import Hit

__all__ = ["SNIPPET_CHARS", "citation_for", "snippet"]

SNIPPET_CHARS = 240


def snippet(text: str) -> str:
    """The passage text on one line, cut at a word boundary."""
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1].rsplit(" ", 1)[0] + "…"


def citation_for(hit: Hit, number: int) -> Citation:
    """The citation numbered ``number`` for a retrieved passage."""
    return Citation(
        number=number,
        chunk_id=hit.passage.chunk_id,
        doc_id=hit.passage.doc_id,
        title=hit.passage.title,
        source=hit.passage.path,
        snippet=snippet(hit.passage.text),
        score=round(hit.fused_score, 5),
    )
