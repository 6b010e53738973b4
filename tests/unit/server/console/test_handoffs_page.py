"""The hand-off queue page: the tenant's queue, answered and closed from CSRF-checked, audited forms."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.ops.handoffs import Handoff
from tests.unit.server.console.pages_app import Console, console, csrf_of, sent_to_sign_in


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Console]:
    with console(tmp_path) as c:
        yield c


def _queue(app: Console, tenant: str = "acme", question: str = "May I carry over leave? Call me on <PHONE>") -> Handoff:
    return app.runtime.handoffs.create(
        request_id=f"req-{tenant}-1",
        tenant=tenant,
        principal_id="pat",
        app="default",
        question=question,
        reason="low retrieval confidence",
    )


def _audit(app: Console, action: str) -> list[tuple[str, str, str, str]]:
    return [(r.action, r.actor, r.tenant, r.subject) for r in app.runtime.audit.records(action=action)]


def test_reviewers_see_their_tenants_queue_with_links_to_requests(app: Console) -> None:
    mine = _queue(app)
    theirs = _queue(app, tenant="other", question="Where is the vault?")
    page = app.client("reviewer").get("/console/handoffs")
    assert page.status_code == 200
    assert mine.handoff_id in page.text and "Call me on &lt;PHONE&gt;" in page.text
    assert "low retrieval confidence" in page.text
    assert f'href="/console/requests/{mine.request_id}"' in page.text
    assert theirs.handoff_id not in page.text and "vault" not in page.text
    assert f'<label for="answer-{mine.handoff_id}">' in page.text
    assert app.client("admin").get("/console/handoffs").text.count(mine.handoff_id) >= 1


def test_a_user_key_is_sent_to_sign_in_and_cannot_post(app: Console) -> None:
    handoff = _queue(app)
    client = app.client("user")
    assert sent_to_sign_in(client.get("/console/handoffs", follow_redirects=False))
    posted = client.post(f"/console/handoffs/{handoff.handoff_id}/close", data={"csrf": "x"}, follow_redirects=False)
    assert sent_to_sign_in(posted)
    assert app.runtime.handoffs.get(handoff.handoff_id, tenant="acme").status == "open"


def test_answering_through_the_form_records_it_audited_and_redirects_with_a_message(app: Console) -> None:
    handoff = _queue(app)
    client = app.client("reviewer")
    csrf = csrf_of(client.get("/console/handoffs").text)
    done = client.post(
        f"/console/handoffs/{handoff.handoff_id}/answer",
        data={"csrf": csrf, "answer": "Yes, up to five days.", "status": "open"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith("/console/handoffs?status=open&flash=Answered")
    stored = app.runtime.handoffs.get(handoff.handoff_id, tenant="acme")
    assert (stored.status, stored.answer, stored.handled_by) == ("answered", "Yes, up to five days.", "reviewer")
    assert _audit(app, "handoff.answer") == [("handoff.answer", "reviewer", "acme", handoff.handoff_id)]
    answered = client.get("/console/handoffs?status=answered")
    assert "Yes, up to five days." in answered.text and "Send answer" not in answered.text
    again = client.post(
        f"/console/handoffs/{handoff.handoff_id}/answer", data={"csrf": csrf, "answer": "No."}, follow_redirects=False
    )
    assert "error=1" in again.headers["location"]  # already answered: a message, nothing changed
    assert len(_audit(app, "handoff.answer")) == 1


def test_closing_through_the_form_is_audited(app: Console) -> None:
    handoff = _queue(app)
    client = app.client("admin")
    csrf = csrf_of(client.get("/console/handoffs").text)
    done = client.post(f"/console/handoffs/{handoff.handoff_id}/close", data={"csrf": csrf}, follow_redirects=False)
    assert done.status_code == 303 and "flash=Closed" in done.headers["location"]
    assert app.runtime.handoffs.get(handoff.handoff_id, tenant="acme").status == "closed"
    assert _audit(app, "handoff.close") == [("handoff.close", "admin", "acme", handoff.handoff_id)]
    page = client.get(done.headers["location"])
    assert f"Closed {handoff.handoff_id}." in page.text


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(app: Console) -> None:
    handoff = _queue(app)
    client = app.client("reviewer")
    for data in ({"answer": "Yes."}, {"answer": "Yes.", "csrf": "forged"}):
        refused = client.post(f"/console/handoffs/{handoff.handoff_id}/answer", data=data, follow_redirects=False)
        assert refused.status_code == 401
    refused = client.post(f"/console/handoffs/{handoff.handoff_id}/close", data={}, follow_redirects=False)
    assert refused.status_code == 401
    assert app.runtime.handoffs.get(handoff.handoff_id, tenant="acme").status == "open"
    assert _audit(app, "handoff") == []


def test_a_hand_off_of_another_tenant_is_not_found(app: Console) -> None:
    theirs = _queue(app, tenant="other")
    client = app.client("reviewer")
    csrf = csrf_of(client.get("/console/handoffs").text)
    for action, data in (("answer", {"csrf": csrf, "answer": "Mine now."}), ("close", {"csrf": csrf})):
        missing = client.post(f"/console/handoffs/{theirs.handoff_id}/{action}", data=data, follow_redirects=False)
        assert missing.status_code == 404
    assert app.runtime.handoffs.get(theirs.handoff_id, tenant="other").status == "open"
    assert _audit(app, "handoff") == []
    assert theirs.handoff_id in app.client("other").get("/console/handoffs").text


def test_an_empty_answer_is_refused_with_a_message(app: Console) -> None:
    handoff = _queue(app)
    client = app.client("reviewer")
    csrf = csrf_of(client.get("/console/handoffs").text)
    done = client.post(
        f"/console/handoffs/{handoff.handoff_id}/answer", data={"csrf": csrf, "answer": "  "}, follow_redirects=False
    )
    assert done.status_code == 303 and "error=1" in done.headers["location"]
    assert app.runtime.handoffs.get(handoff.handoff_id, tenant="acme").status == "open"
