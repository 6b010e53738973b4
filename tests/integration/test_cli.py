"""The keel command: init, ingest, keys, ask, traces, costs, on a fresh project."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest


def keel(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "keel", *args], capture_output=True, text=True, cwd=cwd, timeout=600, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"keel {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "proj"
    keel("init", str(root))
    (root / "docs" / "leave.md").write_text(
        "---\ntitle: Leave policy\ngroups: [everyone]\n---\n# Leave policy\n\n"
        "Every employee is entitled to 31 days of paid annual leave per calendar year.\n",
        encoding="utf-8",
    )
    (root / "docs" / "secret.md").write_text("# Secret\n\nThe vault code is 4417.\n", encoding="utf-8")
    return root


def test_init_creates_a_valid_contract_and_refuses_to_overwrite(project: Path) -> None:
    assert (project / "keel.yaml").is_file() and (project / "docs").is_dir()
    again = keel("init", str(project), check=False)
    assert again.returncode != 0 and "already exists" in again.stderr


def test_ingest_reports_documents_and_acl_problems(project: Path) -> None:
    result = keel("--project", str(project), "ingest", "--json")
    report = json.loads(result.stdout)
    assert report["version"] == 1 and report["documents"] == 2
    assert report["no_acl"] == ["secret.md"]
    again = json.loads(keel("--project", str(project), "ingest", "--json").stdout)
    assert again["version"] == 1 and again["unchanged"] == 2


def test_key_is_printed_alone_on_the_last_line_and_works_with_ask(project: Path) -> None:
    created = keel("--project", str(project), "keys", "create", "--principal", "pat", "--groups", "staff")
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("keel_") and " " not in key
    asked = keel(
        "--project", str(project), "ask", "How many days of annual leave do I get?", "--key", key, "--json", cwd=project
    )
    body = json.loads(asked.stdout)
    assert body["mode"] == "answer"
    assert "31" in body["answer"]
    assert body["citations"][0]["source"] == "leave.md"
    secret = json.loads(
        keel("--project", str(project), "ask", "What is the vault code?", "--key", key, "--json").stdout
    )
    assert secret["mode"] == "no_answer" and "4417" not in json.dumps(secret)

    listed = keel("--project", str(project), "traces", "list", "--json")
    assert body["request_id"] in [json.loads(line)["request_id"] for line in listed.stdout.splitlines()]
    shown = keel("--project", str(project), "traces", "show", body["request_id"], "--json")
    assert json.loads(shown.stdout)["spans"][0]["name"] == "identity"

    keys = keel("--project", str(project), "keys", "list")
    assert "pat" in keys.stdout and key not in keys.stdout
    key_id = key.split("_")[1]
    keel("--project", str(project), "keys", "revoke", key_id)
    denied = keel("--project", str(project), "ask", "leave?", "--key", key, check=False)
    assert denied.returncode == 1 and "revoked" in denied.stderr


def test_costs_forecasts_each_budget_and_flags_one_projected_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keel.ops.costs import CostLedger
    from tests.support.database import database_at

    root = tmp_path / "proj"
    keel("init", str(root))
    contract = root / "keel.yaml"
    budgets = (
        "budgets:\n"
        "    - {scope: app, name: default, period: day, usd: 1}\n"
        "    - {scope: tenant, name: acme, period: month, usd: 1000}\n"
    )
    contract.write_text(contract.read_text(encoding="utf-8").replace("budgets: []", budgets, 1), encoding="utf-8")
    db = database_at(root / ".keel" / "keel.db")
    now = time.time()
    for i, (when, usd) in enumerate(((now - 86400, 2.0), (now, 1.5))):
        CostLedger(db).record(
            request_id=f"r{i}",
            when=when,
            tenant="acme",
            app="default",
            model="smollm2-135m",
            prompt_tokens=100,
            completion_tokens=20,
            cost_usd=usd,
        )
    db.close()
    today = time.strftime("%Y-%m-%d", time.gmtime(now))

    report = json.loads(keel("--project", str(root), "costs", "--json").stdout)
    assert [b["budget"] for b in report["budgets"]] == ["app:default:day", "tenant:acme:month"]
    items = {(i["scope"], i["name"], i["period"]): i for i in report["forecast"]["items"]}
    assert set(items) == {("app", "default", p) for p in ("day", "month")} | {
        ("tenant", "acme", p) for p in ("day", "month")
    }
    day = items[("app", "default", "day")]
    assert day["spent_usd"] == pytest.approx(1.5) and day["budget_usd"] == 1
    assert day["over_budget"] and day["runs_out_on"] == today
    month = items[("tenant", "acme", "month")]
    assert month["projected_usd"] >= month["spent_usd"] > 0 and not month["over_budget"]
    assert month["runs_out_on"] is None and items[("app", "default", "month")]["budget_usd"] is None

    monkeypatch.setenv("COLUMNS", "200")
    table = keel("--project", str(root), "costs").stdout
    assert "Forecast" in table and "over budget" in table
    [row] = [line for line in table.splitlines() if "over budget" in line]
    assert "default" in row and "day" in row and today in row


def test_invalid_contract_is_reported_with_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "keel.yaml").write_text("retrieval:\n  top_k: many\n", encoding="utf-8")
    result = keel("--project", str(tmp_path), "ingest", check=False)
    assert result.returncode == 2
    assert "keel.yaml:2 retrieval.top_k" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["ingest", "--help"],
        ["serve", "--help"],
        ["ask", "--help"],
        ["keys", "create", "--help"],
        ["traces", "show", "--help"],
    ):
        assert "Usage:" in keel(*args).stdout
