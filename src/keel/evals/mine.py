"""Cases from production: turn recent traces into candidate cases for a person to review.

Each distinct question (normalised) becomes one candidate, asked by the principal who
asked it, with what Keel did as the starting expectation: the documents it cited as
relevant and required citations, and its mode. Questions and answers are redacted of
PII again before they are written. Candidates are marked ``review: needed`` in a comment:
a person checks the expectations before adding them to a suite.
"""

from __future__ import annotations

from typing import Any

from keel.policy.pii import redact
from keel.routing.cache import normalise_question
from keel.tracing import TraceRecord

__all__ = ["mine_cases"]


def mine_cases(records: list[TraceRecord], *, limit: int = 100) -> list[dict[str, Any]]:
    """Candidate suite cases from ``records`` (newest first), one per distinct question."""
    seen: set[str] = set()
    cases: list[dict[str, Any]] = []
    for record in records:
        request = record.data.get("request", {})
        response = record.data.get("response", {})
        question = redact(str(request.get("question", "")).strip())
        if record.status != 200 or not question or record.principal_id == "-":
            continue
        key = normalise_question(question)
        if key in seen:
            continue
        seen.add(key)
        cited = list(dict.fromkeys(c["source"] for c in response.get("citations", [])))
        expect: dict[str, Any] = {"mode": response.get("mode")}
        if cited and response.get("mode") == "answer":
            expect["relevant"] = [{"doc": doc} for doc in cited]
            expect["citations"] = cited
        cases.append(
            {
                "id": f"mined-{record.request_id.removeprefix('req_')[:12]}",
                "question": question,
                "asker": record.principal_id,
                "app": record.app,
                "tags": ["mined"],
                "expect": expect,
                "observed_answer": redact(str(response.get("answer", "")))[:300],
            }
        )
        if len(cases) >= limit:
            break
    return cases
