"""The sources page: versions and activations, freshness of the tenant's sources, counts for admins only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.ingest.freshness import FreshnessStore, SourceOutcome
from tests.unit.retrieval.builders import passage, publish
from tests.unit.server.console.pages_app import Console, console, sent_to_sign_in

LEAVE = "Every employee is entitled to twenty seven days of paid annual leave per calendar year and more."


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Console]:
    with console(tmp_path) as c:
        store = c.runtime.index
        publish(store, [passage("handbook/leave.md", LEAVE)])
        publish(
            store,
            [passage("handbook/leave.md", LEAVE), passage("finance/payroll-2026.md", "Payroll runs monthly " * 9)],
        )
        now = time.time()
        FreshnessStore(c.runtime.db).record(
            [SourceOutcome(source="handbook", ok=True, documents=1, passages=1)], at=now - 2 * 86400
        )
        FreshnessStore(c.runtime.db).record(
            [SourceOutcome(source="finance", ok=False, error="finance/payroll-2026.md: unreadable")], at=now - 60
        )
        yield c


def test_reviewers_see_states_and_owners_but_no_counts(app: Console) -> None:
    page = app.client("reviewer").get("/console/sources")
    assert page.status_code == 200
    assert "people@acme.example" in page.text and "cfo@acme.example" in page.text
    assert ">stale<" in page.text and ">failing<" in page.text and "2d ago" in page.text
    assert "vault" not in page.text  # a source of another tenant
    assert "v2" in page.text and ">active<" in page.text and "publish" in page.text
    assert "Documents" not in page.text and "Passages" not in page.text
    assert "payroll-2026" not in page.text  # no last error, no quality report naming documents
    assert "report=1" not in page.text
    again = app.client("reviewer").get("/console/sources?report=1")
    assert "payroll-2026" not in again.text and "Quality" not in again.text


def test_admins_see_counts_and_the_quality_report_on_demand(app: Console) -> None:
    client = app.client("admin")
    page = client.get("/console/sources")
    assert page.status_code == 200
    assert '<th scope="col">Documents</th>' in page.text and "unreadable" in page.text
    assert 'href="/console/sources?report=1#quality"' in page.text
    assert "Passages by size" not in page.text  # not computed on every view
    report = client.get("/console/sources?report=1")
    assert report.status_code == 200
    assert "Passages by size" in report.text and "v2</h3>" in report.text
    assert 'aria-label="Passages by size in words' in report.text


def test_a_user_key_is_sent_to_sign_in(app: Console) -> None:
    assert sent_to_sign_in(app.client("user").get("/console/sources", follow_redirects=False))
    assert sent_to_sign_in(app.client().get("/console/sources?report=1", follow_redirects=False))
