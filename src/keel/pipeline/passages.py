"""Retrieved passages as data: delimited in the prompt, with embedded instructions removed.

Passages reach a model between ``<passage>`` tags that the passage text itself can
never open or close (any tag-like text inside is neutralised), and the system message
tells the model that what is inside is quoted data. Passages whose text carries
instructions to an AI (indirect prompt injection) have those sentences removed before
use, by :func:`neutralise_hits`. Ingestion already removes them and records, per passage,
the detector its stored text scanned clean under (``vetted_by``); a passage vetted by the
serving detector is used as it is, any other is scanned at request time.
"""

from __future__ import annotations

import dataclasses
import re

from keel.policy.injection import InjectionDetector
from keel.retrieval.search import Hit

__all__ = ["delimit_passage", "neutralise_hits"]

_TAG = re.compile(r"</?\s*passage\b[^>]*>?", re.IGNORECASE)


def delimit_passage(number: int, heading: str, text: str) -> str:
    """One numbered passage between tags its own text cannot forge."""
    safe_heading = _TAG.sub("(passage tag removed)", heading).replace('"', "'")
    safe_text = _TAG.sub("(passage tag removed)", text)
    return f'<passage n="{number}" section="{safe_heading}">\n{safe_text}\n</passage>'


def neutralise_hits(hits: list[Hit], detector: InjectionDetector) -> tuple[list[Hit], list[dict[str, object]], int]:
    """``hits`` with instruction sentences removed from their text, what was removed where, and how many were scanned.

    A passage that ``detector`` itself vetted at ingestion (same fingerprint) would scan
    clean again, so it is not scanned twice.
    """
    cleaned: list[Hit] = []
    found: list[dict[str, object]] = []
    fingerprint = detector.fingerprint
    scanned = 0
    for hit in hits:
        if hit.passage.vetted_by == fingerprint:
            cleaned.append(hit)
            continue
        scanned += 1
        verdict = detector.scan_passage(hit.passage.text)
        if not verdict.is_attack:
            cleaned.append(hit)
            continue
        text = verdict.stripped(hit.passage.text).strip()
        found.append(
            {
                "chunk_id": hit.passage.chunk_id,
                "score": round(verdict.score, 3),
                "reasons": list(verdict.reasons),
                "removed_chars": len(hit.passage.text) - len(text),
            }
        )
        passage = dataclasses.replace(hit.passage, text=text or "(passage withheld: it contained instructions)")
        cleaned.append(dataclasses.replace(hit, passage=passage))
    return cleaned, found, scanned
