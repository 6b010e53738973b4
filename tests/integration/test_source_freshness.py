"""Source freshness for real: keel ingest --due reads only the due source, and keel serve refreshes
changed documents in the background while a source whose folder turns unreadable is reported as
failing (keel sources, /readyz, /metrics) and its documents keep being served."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import RunningServer, auth, small_project, start_server, stop_server
from tests.integration.corpus import documents
from tests.support.database import database_at
from tests.support.unreadable import make_unreadable, restore

LEAVE = "all-staff/annual-leave-policy.md"
BANDS = "hr/salary-bands-2026.md"
LEAVE_QUESTION = "How many days of paid annual leave are permanent employees entitled to?"
BANDS_QUESTION = "What is the salary band for a Senior Software Engineer (L5)?"

T = TypeVar("T")


def keel(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keel", "--project", str(root), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def eventually(probe: Callable[[], T | None], *, timeout_s: float = 90.0, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def by_source(root: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for doc in documents(root):
        folder = doc.path.split("/")[0]
        counts[folder] = counts.get(folder, 0) + 1
    return counts


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def backdate(root: Path, source: str, *, hours: float) -> None:
    """Make ``source``'s last ingest ``hours`` old, as if time had passed (no sleeping on a loaded machine)."""
    db = database_at(root / ".keel" / "keel.db")
    try:
        with db.transaction() as conn:
            conn.execute(
                "UPDATE source_freshness SET last_attempt_at = last_attempt_at - ?,"
                " last_success_at = last_success_at - ? WHERE source = ?",
                (hours * 3600, hours * 3600, source),
            )
    finally:
        db.close()


DUE_CONTRACT = """
sources:
  - {name: all-staff, path: all-staff, owner: comms@example.com, groups: [everyone], refresh: 7d}
  - {name: hr, path: hr, owner: people@example.com, groups: [hr], refresh: 1h}
"""


def test_ingest_due_ingests_only_the_due_source_and_keeps_the_others(tmp_path: Path, embedder: Any) -> None:
    root = tmp_path / "proj"
    first = small_project(root, embedder, folders=["all-staff", "hr"], contract=DUE_CONTRACT)
    counts = by_source(root)
    assert set(counts) == {"all-staff", "hr"}
    backdate(root, "hr", hours=2)  # hr (refresh: 1h) is now due, all-staff (7d) is not
    edit(root / "docs" / BANDS, "Senior Software Engineer", "Senior Software Engineer (revised)")
    edit(root / "docs" / LEAVE, "27 days", "29 days")

    result = keel(root, "ingest", "--due", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["due"] == ["hr"]
    assert [s["source"] for s in report["sources"]] == ["hr"] and report["sources"][0]["ok"]
    assert report["updated"] == [BANDS] and report["deleted"] == []
    assert report["version"] == first.version + 1 and report["documents"] == first.documents
    assert by_source(root) == counts
    leave = next(d for d in documents(root) if d.path == LEAVE)
    assert "27 days" in leave.text and "29 days" not in leave.text  # all-staff was not due, so not read

    listed = keel(root, "sources", "--json")
    assert listed.returncode == 0, listed.stdout
    states = {s["source"]: (s["state"], s["owner"], s["documents"]) for s in json.loads(listed.stdout)["sources"]}
    assert states == {
        "all-staff": ("fresh", "comms@example.com", counts["all-staff"]),
        "hr": ("fresh", "people@example.com", counts["hr"]),
    }

    backdate(root, "hr", hours=2)
    make_unreadable(root / "docs" / "hr")
    try:
        failed = keel(root, "ingest", "--due", "--json")
        table = keel(root, "sources")
    finally:
        restore(root / "docs" / "hr")
    assert failed.returncode == 1
    outcome = json.loads(failed.stdout)["sources"][0]
    assert outcome["source"] == "hr" and not outcome["ok"] and "docs/hr" in outcome["error"]
    assert by_source(root) == counts
    assert table.returncode == 1
    assert "failing" in table.stdout and "people@example.com" in table.stdout

    nothing = keel(root, "ingest", "--due")
    assert nothing.returncode == 0 and "Due: hr (failing" in nothing.stdout


SERVED_CONTRACT = """
ingest:
  refresh_check_s: 0.5
routing:
  cache: {exact: false, semantic: false}
sources:
  - {name: all-staff, path: all-staff, owner: comms@example.com, groups: [everyone], refresh: 1s}
  - {name: hr, path: hr, owner: people@example.com, groups: [hr], refresh: 1s}
"""


@dataclass(frozen=True)
class Served:
    root: Path
    server: RunningServer
    keys: dict[str, str]

    def ask(self, key: str, question: str) -> dict[str, Any]:
        response = httpx.post(
            self.server.url + "/v1/ask", json={"question": question}, headers=auth(self.keys[key]), timeout=120
        )
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Served]:
    from keel.identity import KeyStore
    from tests.support.database import database_at

    root = tmp_path_factory.mktemp("freshness") / "proj"
    small_project(root, embedder, folders=["all-staff", "hr"], contract=SERVED_CONTRACT)
    db = database_at(root / ".keel" / "keel.db")
    store = KeyStore(db)
    keys = {
        "sam": store.create(principal_id="sam", tenant="larkspur", groups=[], roles=["user"]).secret,
        "hana": store.create(principal_id="hana", tenant="larkspur", groups=["hr"], roles=["user"]).secret,
    }
    db.close()
    server = start_server(root, root / "server.log")
    yield Served(root, server, keys)
    stop_server(server)


def test_a_changed_document_is_served_after_a_background_refresh_without_a_restart(served: Served) -> None:
    before = served.ask("sam", LEAVE_QUESTION)
    assert "27" in before["answer"] and LEAVE in [c["source"] for c in before["citations"]]
    edit(served.root / "docs" / LEAVE, "27 days of paid annual leave", "31 days of paid annual leave")

    def refreshed() -> dict[str, Any] | None:
        body = served.ask("sam", LEAVE_QUESTION)
        return body if body["index_version"] > before["index_version"] else None

    after = eventually(refreshed, what="the background refresh to publish a new index version")
    assert "31" in after["answer"] and "27 days" not in after["answer"]
    assert LEAVE in [c["source"] for c in after["citations"]]
    assert any("31 days" in c["snippet"] for c in after["citations"] if c["source"] == LEAVE)

    from keel.audit import AuditLog
    from keel.policy.pii import redact
    from tests.support.database import database_at

    db = database_at(served.root / ".keel" / "keel.db")
    refreshes = [r for r in AuditLog(db, redact=redact).records(action="source.refreshed") if r.subject == "all-staff"]
    db.close()
    assert any(r.data["updated"] == 1 and r.data["index_version"] == after["index_version"] for r in refreshes)


def test_an_unreadable_source_is_failing_everywhere_while_its_documents_are_still_served(served: Served) -> None:
    assert BANDS in [c["source"] for c in served.ask("hana", BANDS_QUESTION)["citations"]]
    hr = served.root / "docs" / "hr"
    make_unreadable(hr)
    try:

        def failing() -> dict[str, Any] | None:
            listed = keel(served.root, "sources", "--json")
            data = json.loads(listed.stdout)
            return data if listed.returncode == 1 and data["failing"] == ["hr"] else None

        listed = eventually(failing, what="keel sources to show hr failing")
        hr_state = next(s for s in listed["sources"] if s["source"] == "hr")
        assert hr_state["state"] == "failing" and "docs/hr" in hr_state["last_error"]
        assert hr_state["owner"] == "people@example.com" and hr_state["documents"] > 0

        ready = httpx.get(served.server.url + "/readyz", timeout=30)
        assert ready.status_code == 200
        sources = ready.json()["components"]["sources"]
        assert sources["ready"] is True and "failing: hr" in sources["detail"]
        assert not any(ch.isdigit() for ch in sources["detail"])  # no counts on an unauthenticated endpoint

        samples: dict[tuple[str, str], float] = {}
        for family in text_string_to_metric_families(httpx.get(served.server.url + "/metrics", timeout=30).text):
            for sample in family.samples:
                if sample.name in ("keel_source_failing", "keel_source_stale"):
                    samples[(sample.name, sample.labels["source"])] = sample.value
        assert samples[("keel_source_failing", "hr")] == 1.0
        assert samples[("keel_source_failing", "all-staff")] == 0.0
        assert {source for _, source in samples} == {"hr", "all-staff"}

        body = served.ask("hana", BANDS_QUESTION)
        assert body["mode"] == "answer" and BANDS in [c["source"] for c in body["citations"]]
    finally:
        restore(hr)

    def recovered() -> bool | None:
        data = json.loads(keel(served.root, "sources", "--json").stdout)
        return True if data["failing"] == [] else None

    eventually(recovered, what="hr to recover once its folder is readable again")
