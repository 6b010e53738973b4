"""The answer caches never cross permissions: no hit, no leak, for another group or user."""

from __future__ import annotations

import httpx

from tests.integration.conftest import SampleProject, auth
from tests.integration.corpus import distinctive_markers, documents, leaks, strings_of

SALARY = "What is the salary band for a Senior Software Engineer (L5)?"
SALARY_PARAPHRASES = [
    "What's the salary band for Senior Software Engineers at L5?",
    "what is the salary band for a senior software engineer (l5)",
    "Salary band for a Senior Software Engineer at level L5?",
]


def _ask(client: httpx.Client, key: str, question: str) -> dict[str, object]:
    response = client.post("/v1/ask", json={"question": question}, headers=auth(key))
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_hr_answers_are_cached_for_hr_only(client: httpx.Client, sample_project: SampleProject) -> None:
    hr, eng = sample_project.keys["hana.hr"], sample_project.keys["eli.eng"]
    first = _ask(client, hr, SALARY)
    assert first["mode"] == "answer"
    again = _ask(client, hr, SALARY)
    assert again["cache"] == "exact" and again["answer"] == first["answer"]
    assert again["usage"] == {"prompt_tokens": 0, "completion_tokens": 0} and again["cost_usd"] == 0

    corpus = documents(sample_project.root)
    bands = next(d for d in corpus if d.path == "hr/salary-bands-2026.md")
    readable = [d for d in corpus if d.readable_by(frozenset({"engineering", "everyone"}))]
    for question in [SALARY, *SALARY_PARAPHRASES]:
        body = _ask(client, eng, question)
        if question == SALARY:
            assert body["cache"] in ("off", "miss"), "an engineer's first question hit HR's cached answer"
        # Later, the engineer may hit an entry of their own (an answer from the career ladder), never HR's.
        assert body["answer"] != first["answer"], f"{question!r} served HR's cached answer to an engineer"
        assert all(not c["source"].startswith("hr/") for c in body["citations"]), question
        trace = client.get(f"/v1/traces/{body['request_id']}", headers=auth(eng)).json()
        markers = distinctive_markers(bands, readable, ["78,000", "96,000"], question)
        assert leaks(strings_of(body) + strings_of(trace), markers) == []

    paraphrase = _ask(client, hr, SALARY_PARAPHRASES[0])
    assert paraphrase["cache"] == "semantic"
    assert [c["id"] for c in paraphrase["citations"]] == [c["id"] for c in first["citations"]]


def test_even_public_answers_are_not_shared_across_permission_sets(
    client: httpx.Client, sample_project: SampleProject
) -> None:
    question = "What is the daily meal allowance when travelling?"
    hr, staff = sample_project.keys["hana.hr"], sample_project.keys["sam.staff"]
    _ask(client, hr, question)
    assert _ask(client, hr, question)["cache"] == "exact"
    assert _ask(client, staff, question)["cache"] == "miss"
    assert _ask(client, staff, question)["cache"] == "exact"
