"""The hand-off queue: per tenant, answered once, closed for good."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import InvalidRequest, NotFound
from keel.ops.handoffs import HandoffStore
from tests.support.database import database_at


@pytest.fixture
def store(tmp_path: Path) -> HandoffStore:
    return HandoffStore(database_at(tmp_path / "k.db"))


def test_lifecycle_open_answered_closed(store: HandoffStore) -> None:
    h = store.create(request_id="r1", tenant="t", principal_id="p", app="default", question="q?", reason="no model")
    assert store.list(tenant="t", status="open")[0].handoff_id == h.handoff_id
    answered = store.answer(h.handoff_id, tenant="t", reviewer="rev", answer="Here you go.")
    assert answered.status == "answered" and answered.answer == "Here you go." and answered.handled_by == "rev"
    with pytest.raises(InvalidRequest):
        store.answer(h.handoff_id, tenant="t", reviewer="rev", answer="again")
    closed = store.close(h.handoff_id, tenant="t", reviewer="rev")
    assert closed.status == "closed" and closed.answer == "Here you go."
    with pytest.raises(InvalidRequest):
        store.close(h.handoff_id, tenant="t", reviewer="rev")


def test_other_tenants_cannot_see_or_touch_it(store: HandoffStore) -> None:
    h = store.create(request_id="r1", tenant="t", principal_id="p", app="default", question="q?", reason="x")
    assert store.list(tenant="other") == []
    with pytest.raises(NotFound):
        store.get(h.handoff_id, tenant="other")
    with pytest.raises(NotFound):
        store.answer(h.handoff_id, tenant="other", reviewer="rev", answer="a")


def test_empty_answer_is_refused(store: HandoffStore) -> None:
    h = store.create(request_id="r1", tenant="t", principal_id="p", app="default", question="q?", reason="x")
    with pytest.raises(InvalidRequest):
        store.answer(h.handoff_id, tenant="t", reviewer="rev", answer="  ")
