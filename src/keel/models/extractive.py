"""The extractive tier: an answer composed from the passages' own sentences, with no model.

The cheapest tier, good for look-ups, and the safety net when a generated answer is
not supported by the passages or no model is available. Sentences (and list items
and table rows) are scored by how much of the question they contain, weighting
numbers and rare words, with a small preference for better-ranked passages.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from keel.models.base import Completion, GenerationRequest, StreamDelta
from keel.text import content_terms, sentences

__all__ = ["ExtractedSentence", "ExtractiveProvider", "SentenceScorer", "extract_answer"]

_LABELLED_ROW = re.compile(r"^[^:;]{1,40}: [^;]+(?:; [^:;]{1,40}: [^;]+)+$")


@dataclass(frozen=True, kw_only=True)
class ExtractedSentence:
    """A sentence taken from passage ``passage`` (0-based) with its score."""

    text: str
    passage: int
    score: float


class SentenceScorer:
    """Scores sentences by how much of the question they contain.

    Question terms are weighted by rarity among the passages' sentences and numbers
    count more; a question term found only in the passage's heading counts half.
    """

    def __init__(self, question: str, passages: list[tuple[str, str]]) -> None:
        self.passages = passages
        self._q_terms = content_terms(question)
        self.candidates: list[tuple[str, int]] = []
        doc_freq: dict[str, int] = {}
        for index, (_, text) in enumerate(passages):
            for line in text.split("\n"):
                for sentence in sentences(line):
                    s_terms = content_terms(sentence)
                    if len(s_terms) < 2:
                        continue
                    self.candidates.append((sentence, index))
                    for term in s_terms & self._q_terms:
                        doc_freq[term] = doc_freq.get(term, 0) + 1
        total = max(len(self.candidates), 1)
        self._weights = {
            t: (1.0 + (1.0 - doc_freq.get(t, 0) / total)) * (1.5 if any(ch.isdigit() for ch in t) else 1.0)
            for t in self._q_terms
        }
        self._q_weight = sum(self._weights.values()) or 1.0
        self._headings = [content_terms(heading) for heading, _ in passages]

    def score(self, sentence: str, passage: int) -> float:
        """How much of the question ``sentence`` (from passage ``passage``) contains; 0 when nothing."""
        s_terms = content_terms(sentence)
        matched = sum(w for t, w in self._weights.items() if t in s_terms)
        if matched == 0:
            return 0.0
        from_heading = sum(w for t, w in self._weights.items() if t in self._headings[passage] and t not in s_terms)
        return (matched + 0.5 * from_heading) / self._q_weight - 0.03 * passage


def extract_answer(
    question: str, passages: list[tuple[str, str]], *, max_sentences: int = 2
) -> list[ExtractedSentence]:
    """The best sentences answering ``question`` from ``(heading, text)`` passages."""
    if not content_terms(question) or not passages:
        return []
    scorer = SentenceScorer(question, passages)
    scored = [
        ExtractedSentence(text=_in_context(sentence, passages[index][0]), passage=index, score=score)
        for sentence, index in scorer.candidates
        if (score := scorer.score(sentence, index)) > 0
    ]
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


class ExtractiveProvider:
    """A provider that answers from ``request.passages`` alone: no tokens, no cost, no network."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        """The contract name of the model."""
        return self._name

    @property
    def ready(self) -> bool:
        """Always ready."""
        return True

    async def warm_up(self) -> None:
        """Nothing to load."""

    async def complete(self, request: GenerationRequest) -> Completion:
        """The best sentences, each followed by the ``[n]`` of its passage."""
        chosen = extract_answer(request.question, request.passages)
        text = " ".join(f"{item.text} [{item.passage + 1}]" for item in chosen)
        return Completion(text=text, prompt_tokens=0, completion_tokens=0, finish_reason="stop", model=self._name)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        """The whole answer as one piece."""
        completion = await self.complete(request)
        yield StreamDelta(text=completion.text)
        yield StreamDelta(text="", completion=completion)

    async def count_tokens(self, text: str) -> int:
        """Extractive answers use no tokens."""
        return 0

    async def close(self) -> None:
        """Nothing to release."""
