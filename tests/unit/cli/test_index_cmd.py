"""keel index: list, activate, rollback (audited), history, diff and report; unknown versions exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from keel.audit import AuditLog
from keel.cli.main import main
from keel.policy.pii import redact
from keel.retrieval.versions import IndexStore
from tests.support.database import database_at
from tests.unit.retrieval.builders import passage, publish


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "keel.yaml").write_text("name: index-test\nchunking: {min_words: 3, max_words: 40}\n")
    store = IndexStore(tmp_path / ".keel" / "index")
    publish(store, [passage("leave.md", "Staff get 27 days of annual leave."), passage("pay.md", "Paid monthly.")])
    publish(store, [passage("leave.md", "Staff get 30 days of annual leave.")])
    return tmp_path


def _keel(project: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--project", str(project), "index", *args])


def test_list_marks_the_active_version_and_the_rollback_target(project: Path) -> None:
    rows = json.loads(_keel(project, "list", "--json").stdout)
    assert [(r["version"], r["documents"], r["passages"], r["active"], r["rollback_target"]) for r in rows] == [
        (1, 2, 2, False, True),
        (2, 1, 1, True, False),
    ]
    table = _keel(project, "list").stdout
    assert "v1" in table and "● active" in table


def test_activate_and_rollback_move_active_and_are_audited(project: Path) -> None:
    activated = _keel(project, "activate", "v1")
    assert activated.exit_code == 0, activated.output
    assert activated.stdout.strip() == "Activated v1 (was v2)."
    rolled = _keel(project, "rollback")
    assert rolled.exit_code == 0 and rolled.stdout.strip() == "Rolled back to v2 (was v1)."
    assert IndexStore(project / ".keel" / "index").active_version() == 2
    history = json.loads(_keel(project, "history", "--json").stdout)
    assert [(h["kind"], h["version"]) for h in history] == [
        ("publish", 1),
        ("publish", 2),
        ("activate", 1),
        ("rollback", 2),
    ]
    db = database_at(project / ".keel" / "keel.db")
    audit = AuditLog(db, redact=redact)
    assert [(r.action, r.subject) for r in audit.records()] == [("index.activate", "v1"), ("index.rollback", "v2")]
    assert all(r.actor.startswith("cli:") for r in audit.records())
    audit.close()
    db.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("activate", "9"), "index version 9 does not exist; available: v1, v2"),
        (("activate", "latest"), "is not an index version"),
        (("diff", "1", "5"), "index version 5 does not exist"),
        (("report", "--version", "3"), "index version 3 does not exist"),
    ],
)
def test_unknown_versions_exit_2_and_name_the_available_ones(
    project: Path, args: tuple[str, ...], message: str
) -> None:
    result = _keel(project, *args)
    assert result.exit_code == 2 and message in result.stderr


def test_rollback_with_nothing_before_exits_2(project: Path) -> None:
    assert _keel(project, "rollback").exit_code == 0
    again = _keel(project, "rollback")
    assert again.exit_code == 2 and "no earlier activation" in again.stderr


def test_diff_summarises_documents_and_passages(project: Path) -> None:
    result = _keel(project, "diff", "1", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("v1 -> v2: documents +0 -1 ~1; passages +1 -2 moved 0 changed 0 unchanged 0")
    assert "pay.md" in result.stdout and "removed" in result.stdout


def test_report_prints_sizes_with_bars_or_json(project: Path) -> None:
    body = json.loads(_keel(project, "report", "--version", "1", "--days", "7", "--json").stdout)
    assert body["version"] == 1 and body["sizes"]["tiny"]["count"] == 1  # "Paid monthly." is under 3 words
    assert body["unretrieved"]["days"] == 7 and body["unretrieved"]["count"] == 2
    text = _keel(project, "report")
    assert text.exit_code == 0, text.output
    assert "Passage size in words: min 7" in text.stdout and "█" in text.stdout
