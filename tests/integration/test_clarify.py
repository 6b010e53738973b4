"""An ambiguous question gets a clarifying question listing the readable candidate documents."""

from __future__ import annotations

import httpx

from tests.integration.conftest import SampleProject, auth


def test_which_office(client: httpx.Client, sample_project: SampleProject) -> None:
    body = client.post(
        "/v1/ask", json={"question": "When does the office open?"}, headers=auth(sample_project.keys["sam.staff"])
    ).json()
    assert body["mode"] == "clarify"
    titles = [c["title"] for c in body["citations"]]
    assert len(titles) >= 2 and all(t.startswith("Office guide") for t in titles)
    assert all(t in body["answer"] for t in titles) and body["answer"].endswith("Which one do you mean?")
    assert body["model"] is None and body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0}


def test_a_specific_question_is_answered_not_clarified(client: httpx.Client, sample_project: SampleProject) -> None:
    body = client.post(
        "/v1/ask",
        json={"question": "What time does the Leeds office open?"},
        headers=auth(sample_project.keys["sam.staff"]),
    ).json()
    assert body["mode"] == "answer" and "08:00" in body["answer"]
