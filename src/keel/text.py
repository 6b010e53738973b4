"""Text analysis shared by ingestion, lexical search and answer grounding.

One analyser for every place that compares words, so that what the index stores,
what a query matches and what grounding checks are the same terms.
"""

from __future__ import annotations

import re
from functools import lru_cache

import snowballstemmer

__all__ = ["QUESTION_WORDS", "STOP_WORDS", "content_terms", "numbers", "sentences", "terms", "words"]

STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "also",
        "may",
        "might",
        "must",
        "shall",
        "us",
        "per",
        "via",
        "within",
        "without",
        "etc",
        "e",
        "g",
        "ie",
        "eg",
        "tell",
        "please",
        "know",
        "give",
        "get",
        "got",
        "let",
        "lets",
        "does",
        "did",
        "done",
    ]
)

QUESTION_WORDS = frozenset(
    {"mani", "much", "often", "long", "quick", "quickli", "fast", "soon", "ever", "big", "larg", "make", "get", "exact"}
)
"""Stemmed words that shape a question ("how many", "how often") without naming what it is about."""

_WORD = re.compile(r"[a-z0-9]+(?:[.,'][a-z0-9]+)*", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_LEADING_CITATION = re.compile(r"^(?:\[\d{1,3}\]\s*)+")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "approx.", "no.", "incl.", "dept.", "mr.", "ms.", "dr.")
_stemmer = snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return str(_stemmer.stemWord(word))


def words(text: str) -> list[str]:
    """Lower-cased word tokens; numbers keep their separators (``78,000``, ``2.5``)."""
    return [w.lower().strip(".,'") for w in _WORD.findall(text)]


def terms(text: str) -> list[str]:
    """Index terms: stemmed words, stop words dropped; numbers normalised without separators."""
    out: list[str] = []
    for word in words(text):
        if word in STOP_WORDS or not word:
            continue
        if word[0].isdigit():
            out.append(word.replace(",", ""))
        else:
            out.append(_stem(word.replace("'", "")))
    return out


def content_terms(text: str) -> set[str]:
    """The distinct index terms of ``text``."""
    return set(terms(text))


def numbers(text: str) -> set[str]:
    """Numbers mentioned in ``text``, normalised (``78,000`` -> ``78000``), ignoring list markers like ``[2]``."""
    cleaned = re.sub(r"\[\d+\]", " ", text)
    return {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(cleaned)}


def sentences(text: str) -> list[str]:
    """Split prose into sentences; list items and table rows stay whole."""
    protected = text
    for abbr in _ABBREVIATIONS:
        protected = re.sub(re.escape(abbr), lambda m: m.group(0).replace(".", "\u2024"), protected, flags=re.IGNORECASE)
    parts = [p.replace("\u2024", ".").strip() for p in _SENTENCE_END.split(protected) if p.strip()]
    merged: list[str] = []
    for part in parts:
        marker = _LEADING_CITATION.match(part)
        rest = part
        if marker and merged:
            # "... year. [1] Next sentence": the citation belongs to the sentence before it.
            merged[-1] = f"{merged[-1]} {marker.group(0).strip()}"
            rest = part[marker.end() :].strip()
        if rest:
            merged.append(rest)
    return merged
