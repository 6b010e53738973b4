"""Scoring one case: retrieval and generation measured separately, and the stage that failed.

Retrieval is judged on the ranked documents the request retrieved (from its trace);
generation on the answer, given what was retrieved. Groundedness uses the same
deterministic, local check Keel applies while answering (:mod:`keel.pipeline.grounding`):
a sentence is grounded when one statement of a passage it cites contains most of its
words and every number it states. A failing case names the first stage at fault:

``acl`` (a passage the asker may not read was retrieved or cited), ``leak`` (forbidden
content in the response or trace), ``error`` (the request failed), ``retrieval`` (no
relevant document retrieved), ``evidence`` (retrieved, but judged not evidence enough),
``guard`` (an output guard removed the answer's citations), ``generation`` (wrong answer,
citations or mode despite the relevant passage), ``ops`` (over the latency or cost limit).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keel.evals.metrics import ndcg_at, normalise_answer, precision_at, recall_at, reciprocal_rank, token_f1
from keel.evals.suite import Asker, Case
from keel.pipeline.grounding import PassageFacts, ground_sentence
from keel.text import sentences

__all__ = ["CaseScore", "Observation", "RetrievedPassage", "score_case"]

Similarity = Callable[[str, str], float]


@dataclass(frozen=True, kw_only=True)
class RetrievedPassage:
    """A passage the request retrieved (or cited)."""

    chunk_id: str
    path: str
    groups: tuple[str, ...]
    heading: str = ""
    text: str = ""


@dataclass(kw_only=True)
class Observation:
    """What one request returned, with its trace."""

    request_id: str
    mode: str | None
    answer: str
    retrieved: list[RetrievedPassage]
    cited: list[RetrievedPassage]
    latency_ms: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cache: str = "off"
    model: str | None = None
    strategy: str = ""
    degraded: list[str] = field(default_factory=list)
    guard_output: str | None = None
    error: str | None = None
    strings: str = ""
    """Every string of the response and the trace, for the forbidden-content check."""


@dataclass(kw_only=True)
class CaseScore:
    """A case's metrics (``None`` where not applicable), verdict and failing stage."""

    metrics: dict[str, float | None]
    passed: bool
    failures: list[str]
    stage: str | None


def score_case(case: Case, asker: Asker, obs: Observation, *, k: int, similarity: Similarity | None) -> CaseScore:
    """Score ``obs`` against ``case``'s expectations."""
    expect = case.expect
    metrics: dict[str, float | None] = dict.fromkeys(
        (
            "retrieval.recall@k",
            "retrieval.precision@k",
            "retrieval.mrr",
            "retrieval.ndcg@10",
            "generation.correctness",
            "generation.token_f1",
            "generation.groundedness",
            "generation.citation_precision",
            "generation.citation_recall",
            "generation.mode_accuracy",
            "generation.policy_compliance",
        )
    )
    failures: list[str] = []
    readable = asker.groups | {"everyone"}
    violations = [
        p
        for p in [*obs.retrieved, *obs.cited]
        if p.path in expect.forbidden_docs or not (set(p.groups) & readable or "?" in p.groups)
    ]
    metrics["retrieval.acl_violations"] = float(len(violations))
    if violations:
        failures.append(f"ACL violation: {sorted({p.path for p in violations})} retrieved or cited")

    ranked_chunks = [p.chunk_id for p in obs.retrieved]
    relevant_docs = {r.doc for r in expect.relevant if r.doc}
    relevant_chunks = {r.chunk for r in expect.relevant if r.chunk}
    relevant_found = False
    if expect.relevant:
        grades = {r.doc or r.chunk or "": r.grade for r in expect.relevant}
        # Rank documents, except that a passage named as relevant counts on its own.
        ranked_paths = [p.path for p in obs.retrieved]
        ranking = _dedupe([c if c in relevant_chunks else d for c, d in zip(ranked_chunks, ranked_paths, strict=True)])
        relevant = relevant_docs | relevant_chunks
        metrics["retrieval.recall@k"] = recall_at(ranking, relevant, k)
        metrics["retrieval.precision@k"] = precision_at(ranking, relevant, k)
        metrics["retrieval.mrr"] = reciprocal_rank(ranking, relevant)
        metrics["retrieval.ndcg@10"] = ndcg_at(ranking, grades, 10)
        relevant_found = bool(relevant & set(ranking))

    # The asker's own question is echoed in the trace; words it contains are not leaked.
    haystack = obs.strings.replace(case.question, " ")
    leaked = [s for s in expect.forbidden if _mentions(haystack, s) and not _mentions(case.question, s)]
    if leaked:
        failures.append(f"forbidden content in the response or trace: {leaked}")
    if obs.error is not None:
        failures.append(f"request failed: {obs.error}")

    if expect.answer is not None:
        ok, why = _answer_matches(obs.answer, expect.answer, similarity)
        metrics["generation.correctness"] = 1.0 if ok else 0.0
        if not ok:
            failures.append(why)
        if expect.answer.reference:
            metrics["generation.token_f1"] = token_f1(_strip_note(obs.answer), expect.answer.reference)
    if obs.mode == "answer" and obs.answer.strip():
        metrics["generation.groundedness"] = _groundedness(obs.answer, obs.cited)
    cited_docs = _dedupe([p.path for p in obs.cited])
    if relevant_docs and cited_docs:
        metrics["generation.citation_precision"] = sum(1 for d in cited_docs if d in relevant_docs) / len(cited_docs)
    if expect.citations:
        found = [d for d in expect.citations if d in cited_docs]
        metrics["generation.citation_recall"] = len(found) / len(expect.citations)
        if len(found) < len(expect.citations):
            failures.append(f"missing citations: {sorted(set(expect.citations) - set(found))}")
    if expect.modes:
        mode_ok = obs.mode in expect.modes
        metrics["generation.mode_accuracy"] = 1.0 if mode_ok else 0.0
        if not mode_ok:
            failures.append(f"mode {obs.mode} (expected {' or '.join(expect.modes)})")
    if expect.policy_language or expect.forbidden:
        missing = [s for s in expect.policy_language if not _contains(obs.answer, s)]
        if missing:
            failures.append(f"required language missing: {missing}")
        metrics["generation.policy_compliance"] = 0.0 if (missing or leaked) else 1.0
    over_ops = []
    if expect.max_latency_ms is not None and obs.latency_ms > expect.max_latency_ms:
        over_ops.append(f"latency {obs.latency_ms:.0f} ms > {expect.max_latency_ms:g}")
    if expect.max_cost_usd is not None and obs.cost_usd > expect.max_cost_usd:
        over_ops.append(f"cost ${obs.cost_usd:.6f} > ${expect.max_cost_usd:g}")
    failures.extend(over_ops)
    stage = _stage(obs, violations, leaked, relevant_found, bool(expect.relevant), failures, over_ops)
    return CaseScore(metrics=metrics, passed=not failures, failures=failures, stage=stage)


def _stage(
    obs: Observation,
    violations: list[RetrievedPassage],
    leaked: list[str],
    relevant_found: bool,
    has_relevant: bool,
    failures: list[str],
    over_ops: list[str],
) -> str | None:
    if not failures:
        return None
    if violations:
        return "acl"
    if leaked:
        return "leak"
    if obs.error is not None:
        return "error"
    if len(failures) == len(over_ops):
        return "ops"
    if has_relevant and not relevant_found:
        return "retrieval"
    if has_relevant and obs.mode == "no_answer":
        return "evidence"
    if obs.guard_output in ("uncited_answer", "citations_removed", "empty_answer"):
        return "guard"
    return "generation"


def _answer_matches(answer: str, expect: Any, similarity: Similarity | None) -> tuple[bool, str]:
    body = _strip_note(answer)
    missing = [s for s in expect.contains if not _contains(body, s)]
    if missing:
        return False, f"answer lacks {missing}"
    if expect.exact is not None and normalise_answer(body) != normalise_answer(expect.exact):
        return False, "answer is not the exact reference"
    if expect.regex is not None and not re.search(expect.regex, body, flags=re.IGNORECASE):
        return False, f"answer does not match /{expect.regex}/"
    if expect.similar is not None:
        if similarity is None:
            return False, "no embedder to judge semantic similarity"
        score = similarity(body, expect.similar)
        if score < expect.threshold:
            return False, f"answer similarity {score:.2f} < {expect.threshold:g}"
    return True, ""


def _groundedness(answer: str, cited: list[RetrievedPassage]) -> float:
    units = [s for line in _strip_note(answer).split("\n") for s in sentences(line) if s.strip()]
    if not units:
        return 0.0
    if not cited:
        return 0.0
    facts = [PassageFacts.of(p.text, p.heading) for p in cited]
    supported = sum(1 for unit in units if ground_sentence(unit, facts) is not None)
    return supported / len(units)


def _strip_note(answer: str) -> str:
    """The answer without Keel's limited-mode note."""
    return answer.split("\n\nNote: the service is running in a limited mode", 1)[0]


def _folded(text: str) -> str:
    """``text`` compared without case and with runs of whitespace as one space."""
    return " ".join(text.casefold().split())


def _contains(haystack: str, needle: str) -> bool:
    return _folded(needle) in _folded(haystack)


def _mentions(haystack: str, needle: str) -> bool:
    """Whether ``needle`` occurs in ``haystack`` as words, not inside a longer word or id.

    Case and runs of whitespace are ignored. A forbidden figure such as ``668`` is
    leaked by "668 roles" or "(668)", but not by a request id or span id whose random
    hex digits happen to contain it.
    """
    hay, text = _folded(haystack), _folded(needle)
    if not text:
        return False
    start = hay.find(text)
    while start >= 0:
        end = start + len(text)
        joined_before = start > 0 and text[0].isalnum() and hay[start - 1].isalnum()
        joined_after = end < len(hay) and text[-1].isalnum() and hay[end].isalnum()
        if not joined_before and not joined_after:
            return True
        start = hay.find(text, start + 1)
    return False


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
