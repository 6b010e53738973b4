"""Layered prompt-injection and jailbreak detection for questions and retrieved passages.

Text is normalised (``normalize``), then scored by pattern rules (``rules``) and by a small
classifier (``classifier``); the verdict's score is the highest layer score. Questions are
judged whole; passages are judged sentence by sentence, so that only the sentences that
carry instructions are reported (and can be stripped) while the rest of the document
stays usable.

Reason codes in a verdict: the names of the rules that scored at or above the threshold
(``rule:ignore_previous``, ...; ``rule:hidden_text`` for text hidden in Unicode tag
characters), ``classifier`` when the classifier alone reached the threshold, and
``obfuscation:<step>`` for each de-obfuscation step that changed the text (``zero_width``,
``homoglyph``, ``base64``, ``spacing``, ``leetspeak``, ``unicode_tags``); obfuscation codes
explain but do not by themselves make a verdict an attack.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Literal

from keel.policy.injection.classifier import MODEL_PATH, InjectionClassifier, default_classifier
from keel.policy.injection.normalize import normalize
from keel.policy.injection.rules import RuleHit, match_rules

__all__ = ["InjectionDetector", "InjectionVerdict", "Layer", "sentence_spans"]

Layer = Literal["rules", "classifier"]

# A sentence ends at ., ! or ? (and any closing quotes or brackets) followed by whitespace, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]»”’]*\s+|\s*\n\s*")
# Imperatives that continue an instruction begun in the sentence before.
_CONTINUATION = re.compile(
    r"^\W*(?:then |and |also |instead,? )?(?:tell|say|respond|reply|answer|output|print|include|add|append|insert|"
    r"send|email|forward|visit|write|recommend|state|claim|mention|direct|ask|advise|urge|describe|ignore|omit|"
    r"do not|don't|never|always|only|make sure|remember|end|begin|start|use|render|display|show|reveal|insist)\b",
    re.IGNORECASE,
)
_NOT_REASONS = frozenset({"nfkc"})
# A passage gets one classifier vote per sentence, so each vote must be surer: in passages the
# classifier's log-odds are lowered by this much (a probability of 0.8 then scores 0.5). Chosen
# by five-fold cross-validation on the training split, grouped by family.
PASSAGE_LOGIT_SHIFT = math.log(0.8 / 0.2)
# Text hidden in invisible Unicode tag characters has no business in a question or a document.
_HIDDEN_TEXT_SCORE = 0.8


@dataclass(frozen=True, kw_only=True)
class InjectionVerdict:
    """The outcome of a scan: a score, a decision, why, and where in the original text."""

    score: float
    is_attack: bool
    reasons: tuple[str, ...]
    attack_spans: tuple[tuple[int, int], ...]

    def stripped(self, text: str) -> str:
        """``text`` with the attack spans removed and the whitespace left behind tidied."""
        if not self.attack_spans:
            return text
        pieces: list[str] = []
        last = 0
        for span_start, span_end in sorted(self.attack_spans):
            start, end = _whole_line(text, span_start, span_end)
            if start > last:
                pieces.append(text[last:start])
            last = max(last, end)
        pieces.append(text[last:])
        out = "".join(pieces)
        out = re.sub(r"[ \t]{2,}", " ", out)
        out = re.sub(r"[ \t]+([.,;:!?])", r"\1", out)
        out = "\n".join(line.strip() for line in out.split("\n"))
        out = re.sub(r"\n{3,}", "\n\n", out)
        return out.strip()


@dataclass(frozen=True, kw_only=True)
class _Judgement:
    score: float
    rules: tuple[RuleHit, ...]
    classifier: float
    changes: tuple[str, ...]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences and lines of ``text``, surrounding whitespace excluded."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        _add_trimmed(text, start, match.start(), spans)
        start = match.end()
    _add_trimmed(text, start, len(text), spans)
    return spans


def _add_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))


class InjectionDetector:
    """Scores questions and passages for prompt injection; ``score >= threshold`` is an attack.

    ``layers`` selects the layers that contribute (both by default); the classifier's
    weights are loaded on first use, or up front by ``warm_up()``.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        *,
        layers: Sequence[Layer] = ("rules", "classifier"),
        classifier: InjectionClassifier | None = None,
    ) -> None:
        self.threshold = threshold
        self.layers = frozenset(layers)
        self._classifier = classifier
        self._given = classifier  # None: the shipped weights, loaded on first use

    @cached_property
    def fingerprint(self) -> str:
        """What decides this detector's verdicts: its code, its classifier's weights, its threshold and layers.

        Two detectors with the same fingerprint judge every text alike, so a passage that
        scanned clean under one (at ingestion) needs no second scan under the other (at
        request time); any change to the rules, the normaliser or the weights changes it.
        """
        given = self._given
        weights = _shipped_digest() if given is None else _classifier_digest(given)
        layers = ",".join(sorted(self.layers))
        return hashlib.sha256(f"{_code_digest()}|{weights}|{self.threshold!r}|{layers}".encode()).hexdigest()[:32]

    def warm_up(self) -> None:
        """Load the classifier weights and compute the fingerprint now rather than on the first scan."""
        _ = self.fingerprint
        self._model()

    def _model(self) -> InjectionClassifier:
        if self._classifier is None:
            self._classifier = default_classifier()
        return self._classifier

    def scan(self, text: str) -> InjectionVerdict:
        """Judge a user question as a whole; spans name the offending sentences."""
        whole = self._judge(text)
        is_attack = whole.score >= self.threshold
        spans: list[tuple[int, int]] = []
        if is_attack:
            sentences = sentence_spans(text)
            if len(sentences) > 1:
                spans = [s for s in sentences if self._judge(text[s[0] : s[1]]).score >= self.threshold]
            if not spans:
                spans = sentence_spans(text)[:1] if len(sentences) == 1 else [_trimmed_whole(text)]
        return InjectionVerdict(
            score=whole.score,
            is_attack=is_attack,
            reasons=self._reasons([whole]),
            attack_spans=tuple(spans),
        )

    def scan_passage(self, text: str) -> InjectionVerdict:
        """Judge a retrieved passage sentence by sentence; spans cover the instruction sentences only.

        Ordinary documents are full of sentences that sound like instructions to a reader
        ("This page lists when you are paid", "Please confirm within five days"), so a
        sentence in a passage counts only on corroborated evidence: a rule that fires
        together with a second rule or with the classifier (see :func:`_corroborated`).
        """
        sentences = sentence_spans(text)
        judged = [self._judge(text[s:e]) for s, e in sentences]
        flagged = [self._corroborated(j) for j in judged]
        for i in range(1, len(sentences)):
            if flagged[i - 1] and not flagged[i] and _CONTINUATION.search(text[sentences[i][0] : sentences[i][1]]):
                flagged[i] = True
        below = math.nextafter(self.threshold, 0.0)
        score = max(
            (j.score if hit else min(j.score, below) for j, hit in zip(judged, flagged, strict=True)), default=0.0
        )
        if "rules" in self.layers:
            score = max(score, self._whole_passage_rules(text, sentences, flagged))
        spans = [span for span, hit in zip(sentences, flagged, strict=True) if hit]
        is_attack = score >= self.threshold
        if is_attack and not spans:
            spans = [_trimmed_whole(text)]
        return InjectionVerdict(
            score=score,
            is_attack=is_attack,
            reasons=self._reasons([j for j, hit in zip(judged, flagged, strict=True) if hit] or judged),
            attack_spans=tuple(spans) if is_attack else (),
        )

    def _corroborated(self, judged: _Judgement) -> bool:
        """Whether a passage sentence is an instruction on two independent signals.

        With both layers: a rule at the threshold plus a second rule or a classifier
        probability at the threshold. With one layer, that layer alone, the classifier
        needing the stricter :data:`PASSAGE_LOGIT_SHIFT`.
        """
        rules = {h.name for h in judged.rules if h.score >= self.threshold}
        if self.layers == {"classifier"}:
            return _shifted(judged.classifier, PASSAGE_LOGIT_SHIFT) >= self.threshold
        if self.layers == {"rules"}:
            return bool(rules)
        return bool(rules) and (len(rules) >= 2 or judged.classifier >= self.threshold)

    def _whole_passage_rules(self, text: str, sentences: list[tuple[int, int]], flagged: list[bool]) -> float:
        """Rules whose pattern spans sentences (fake dialogue turns); marks the sentences they cover."""
        normalised = normalize(text)
        best = 0.0
        for hit in match_rules(normalised.text):
            if hit.score < self.threshold:
                continue
            best = max(best, hit.score)
            if normalised.text != text:
                continue  # offsets do not map back; the whole passage is reported
            for i, (start, end) in enumerate(sentences):
                if start < hit.end and end > hit.start:
                    flagged[i] = True
        return best

    def _judge(self, text: str, *, logit_shift: float = 0.0) -> _Judgement:
        normalised = normalize(text)
        hits: tuple[RuleHit, ...] = ()
        if "rules" in self.layers:
            hits = tuple(match_rules(normalised.text))
            if "unicode_tags" in normalised.changes:
                hits += (RuleHit(name="rule:hidden_text", score=_HIDDEN_TEXT_SCORE, start=0, end=len(normalised.text)),)
        probability = 0.0
        if "classifier" in self.layers:
            probability = _shifted(self._model().predict(normalised.text), logit_shift)
        score = max([probability, *(h.score for h in hits)])
        return _Judgement(score=score, rules=hits, classifier=probability, changes=normalised.changes)

    def _reasons(self, judged: list[_Judgement]) -> tuple[str, ...]:
        rules: dict[str, None] = {}
        changes: dict[str, None] = {}
        classifier = False
        for j in judged:
            rules.update(dict.fromkeys(h.name for h in j.rules if h.score >= self.threshold))
            changes.update(dict.fromkeys(f"obfuscation:{c}" for c in j.changes if c not in _NOT_REASONS))
            classifier = classifier or j.classifier >= self.threshold
        return (*rules, *(["classifier"] if classifier else []), *changes)


@cache
def _code_digest() -> str:
    """The digest of the detection code: every module of this package."""
    digest = hashlib.sha256()
    for module in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(module.name.encode() + b"\0" + module.read_bytes())
    return digest.hexdigest()


@cache
def _shipped_digest() -> str:
    """The digest of the shipped classifier's weights file."""
    return hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()


def _classifier_digest(classifier: InjectionClassifier) -> str:
    """The digest of a classifier's weights, for one given in place of the shipped file's."""
    digest = hashlib.sha256(repr(classifier.bias).encode())
    for bucket, weight in sorted(classifier.weights.items()):
        digest.update(f"{bucket}:{weight!r};".encode())
    return digest.hexdigest()


def _whole_line(text: str, start: int, end: int) -> tuple[int, int]:
    """A span that fills its line is widened to take the line break with it."""
    line_start = text.rfind("\n", 0, start) + 1
    if text[line_start:start].strip():
        return start, end
    after = end
    while after < len(text) and text[after] in " \t":
        after += 1
    if after < len(text) and text[after] == "\n":
        return line_start, after + 1
    return start, end


def _shifted(probability: float, shift: float) -> float:
    if shift == 0.0 or probability in (0.0, 1.0):
        return probability
    return 1.0 / (1.0 + math.exp(shift - math.log(probability / (1.0 - probability))))


def _trimmed_whole(text: str) -> tuple[int, int]:
    start = len(text) - len(text.lstrip())
    end = len(text.rstrip())
    return (start, max(start, end))
