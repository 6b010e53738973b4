"""retrieve: hybrid search over the passages the caller may read, and the evidence they give."""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

from keel.contract import RetrievalSettings
from keel.pipeline.context import Degradation, RequestContext
from keel.pipeline.passages import neutralise_hits
from keel.policy.injection import InjectionDetector
from keel.retrieval.embedder import Embedder
from keel.retrieval.evidence import PassageEvidence, QuestionTerms, assess_evidence
from keel.retrieval.pgvector import PgVectorIndex
from keel.retrieval.search import Hit, hybrid_search, readable_document_frequency
from keel.retrieval.versions import IndexStore
from keel.text import content_terms

__all__ = ["RetrieveStage"]

log = logging.getLogger(__name__)


class RetrieveStage:
    """Searches the active index with the caller's groups as a filter inside the search."""

    name: ClassVar[str] = "retrieve"
    always_runs: ClassVar[bool] = False

    def __init__(
        self,
        settings: RetrievalSettings,
        *,
        index: IndexStore,
        embedder: Embedder,
        detector: InjectionDetector | None = None,
        dense_index: PgVectorIndex | None = None,
    ) -> None:
        self._settings = settings
        self._index = index
        self._embedder = embedder
        self._detector = detector
        self._dense_index = dense_index

    async def run(self, ctx: RequestContext) -> None:
        """Fill ``ctx.hits`` and ``ctx.evidence``."""
        span = ctx.current_span
        if not ctx.app.retrieval:
            span.decide("off", reason=f"app {ctx.app.name} does not use retrieval")
            return
        assert ctx.principal is not None
        # The app's release may pin an index version; otherwise the active one, read once for the whole request.
        snapshot = await asyncio.to_thread(self._index.snapshot, ctx.app.pins.index)
        ctx.index_version = snapshot.version
        try:
            # A shadow copy carries its live request's query vector: the same question needs no second embedding.
            vector = ctx.query_vector
            if vector is None:
                vector = await asyncio.to_thread(self._embedder.embed_one, ctx.question)
        except Exception as exc:  # degrade to lexical-only search rather than fail
            log.warning("query embedding failed: %s", type(exc).__name__)
            vector = None
            ctx.degraded.append(Degradation(component="embedder", reason="embedding failed; lexical search only"))
        groups = ctx.principal.acl_groups
        settings = self._settings

        pg = self._dense_index
        version = snapshot.version
        detector = self._detector

        def search() -> tuple[list[Hit], QuestionTerms, list[dict[str, object]], int | None]:
            dense = None if pg is None else (lambda qv, limit: pg.search(version, qv, groups, limit=limit))
            hits = hybrid_search(
                snapshot,
                query=ctx.question,
                query_vector=vector,
                groups=groups,
                k=ctx.top_k * 2,
                candidates=settings.candidates,
                rrf_k=settings.rrf_k,
                dense=dense,
            )
            view = snapshot.view(groups)
            doc_freq = readable_document_frequency(snapshot, content_terms(ctx.question), view)
            question = QuestionTerms.of(ctx.question, doc_freq, view.count)
            if detector is None:
                return hits, question, [], None
            cleaned, removed, scanned = neutralise_hits(hits, detector)
            return cleaned, question, removed, scanned

        hits, question, neutralised, scanned = await asyncio.to_thread(search)
        if neutralised:
            ctx.guard_verdicts["passages"] = "instructions_removed"
        ctx.hits = hits
        ctx.query_vector = vector
        ctx.question_terms = question
        evidence, assessed = assess_evidence(question, hits, settings, top_k=ctx.top_k)
        ctx.evidence = evidence
        ctx.assessed = assessed
        chosen = {h.passage.chunk_id for h in evidence.passages}
        span.decide(
            "evidence" if evidence.sufficient else "no_evidence",
            index_version=snapshot.version,
            search="hybrid" if vector is not None else "lexical",
            dense_backend="pgvector" if pg is not None else "local",
            reason=evidence.reason,
            best_dense=_round(evidence.best_dense),
            best_coverage=round(evidence.best_coverage, 3),
            unknown_terms=sorted(question.unknown),
            hits=[_hit_record(a, selected=a.hit.passage.chunk_id in chosen) for a in assessed],
            instructions_removed=neutralised,
            passages_scanned=scanned,
        )


def _hit_record(assessed: PassageEvidence, *, selected: bool) -> dict[str, object]:
    h = assessed.hit
    return {
        "chunk_id": h.passage.chunk_id,
        "doc_id": h.passage.doc_id,
        "title": h.passage.title,
        "source": h.passage.path,
        "groups": list(h.passage.groups),
        "fused_rank": h.fused_rank,
        "fused_score": round(h.fused_score, 5),
        "lexical_rank": h.lexical_rank,
        "lexical_score": _round(h.lexical_score),
        "dense_rank": h.dense_rank,
        "dense_score": _round(h.dense_score),
        "term_coverage": round(assessed.coverage, 3),
        "relevant": assessed.relevant,
        "selected": selected,
    }


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None
