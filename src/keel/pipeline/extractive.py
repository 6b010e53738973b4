"""An answer composed from the passages' own sentences, with no model.

Used when the generated answer is not supported by the passages, when the model is
unavailable, and as the cheapest way to answer a look-up. Sentences (and list items
and table rows) are scored by how much of the question they contain, weighting
numbers and rare words, with a small preference for better-ranked passages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keel.text import content_terms, sentences

__all__ = ["ExtractedSentence", "extract_answer"]

_LABELLED_ROW = re.compile(r"^[^:;]{1,40}: [^;]+(?:; [^:;]{1,40}: [^;]+)+$")


@dataclass(frozen=True, kw_only=True)
class ExtractedSentence:
    """A sentence taken from passage ``passage`` (0-based) with its score."""

    text: str
    passage: int
    score: float


def extract_answer(
    question: str, passages: list[tuple[str, str]], *, max_sentences: int = 2
) -> list[ExtractedSentence]:
    """The best sentences answering ``question`` from ``(heading, text)`` passages."""
    q_terms = content_terms(question)
    if not q_terms or not passages:
        return []
    doc_freq: dict[str, int] = {}
    candidates: list[tuple[str, int, set[str], set[str]]] = []
    for index, (heading, text) in enumerate(passages):
        heading_terms = content_terms(heading)
        for line in text.split("\n"):
            for sentence in sentences(line):
                s_terms = content_terms(sentence)
                if len(s_terms) < 2:
                    continue
                candidates.append((sentence, index, s_terms, heading_terms))
                for term in s_terms & q_terms:
                    doc_freq[term] = doc_freq.get(term, 0) + 1
    total = max(len(candidates), 1)

    def weight(term: str) -> float:
        rarity = 1.0 + (1.0 - doc_freq.get(term, 0) / total)
        return rarity * (1.5 if any(ch.isdigit() for ch in term) else 1.0)

    q_weight = sum(weight(t) for t in q_terms)
    scored: list[ExtractedSentence] = []
    for sentence, index, s_terms, heading_terms in candidates:
        matched = sum(weight(t) for t in q_terms & s_terms)
        from_heading = sum(weight(t) for t in (q_terms & heading_terms) - s_terms)
        score = (matched + 0.5 * from_heading) / q_weight - 0.03 * index
        if matched > 0:
            scored.append(ExtractedSentence(text=_in_context(sentence, passages[index][0]), passage=index, score=score))
    scored.sort(key=lambda s: (-s.score, s.passage))
    chosen: list[ExtractedSentence] = []
    for item in scored:
        if len(chosen) == max_sentences:
            break
        if chosen and item.score < chosen[0].score * 0.75:
            break
        if any(item.text == c.text for c in chosen):
            continue
        chosen.append(item)
    return chosen


def _in_context(sentence: str, heading: str) -> str:
    """A table row read out of its table needs its section: prefix the last heading."""
    section = heading.rsplit(" > ", 1)[-1].strip()
    if _LABELLED_ROW.match(sentence) and section and " > " in heading:
        return f"{section} — {sentence}"
    return sentence
