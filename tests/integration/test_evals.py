"""The evaluation gate on the sample suite, and deliberately broken changes it must catch by stage."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, SAMPLE_PROJECT
from tests.integration.conftest import RunningServer, SampleProject, copy_project, ingest

SUITE = SAMPLE_PROJECT / "evals" / "core.yaml"
ARTIFACTS = REPO / "test-artifacts"


def keel(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keel", "--project", str(project), *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def run_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.stdout.strip().startswith("{"), result.stderr[-2000:]
    return dict(json.loads(result.stdout))


@pytest.fixture(scope="module")
def good_run(sample_project: SampleProject, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("eval-good")
    result = keel(sample_project.root, "eval", str(SUITE), "--json", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, run_json(result)


def test_the_sample_suite_passes_its_gate(good_run: tuple[Path, dict[str, Any]]) -> None:
    out, run = good_run
    assert run["gate_passed"] is True
    assert run["aggregate"]["retrieval.acl_violations"] == 0
    assert run["aggregate"]["cases.count"] >= 200
    tags = set(run["by_tag"])
    assert {
        "simple",
        "paraphrase",
        "indirect",
        "multi-hop",
        "no-answer",
        "cross-permission",
        "ambiguous",
        "outsider",
    } <= tags
    assert (out / f"{run['run_id']}.json").is_file() and (out / f"{run['run_id']}.html").is_file()
    failing = [c for c in run["cases"] if not c["passed"]]
    assert all(c["stage"] in {"retrieval", "evidence", "generation", "guard"} for c in failing)


def test_the_html_report_renders_with_its_charts_in_chromium(good_run: tuple[Path, dict[str, Any]]) -> None:
    out, run = good_run
    page = (out / f"{run['run_id']}.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 2 and 'aria-label="Metrics by tag"' in page and "gate passed" in page
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "scripts/test installs Debian's chromium for this test"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "eval-report.png"
    shot.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--window-size=1200,1600",
                f"--screenshot={shot}",
                (out / f"{run['run_id']}.html").as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 1600)
    assert len(data) > 30_000, "a blank page compresses to a few kilobytes; charts and tables do not"


def test_an_index_without_the_hr_acl_fails_at_the_acl_stage(
    tmp_path: Path, embedder: Any, good_run: tuple[Path, dict[str, Any]]
) -> None:
    root = copy_project(SAMPLE_PROJECT, tmp_path / "broken")
    contract = yaml.safe_load((root / "keel.yaml").read_text(encoding="utf-8"))
    for source in contract["sources"]:
        if source["name"] == "hr":
            source["groups"] = ["everyone"]
    (root / "keel.yaml").write_text(yaml.safe_dump(contract), encoding="utf-8")
    for doc in (root / "docs" / "hr").glob("*.md"):
        doc.write_text(doc.read_text(encoding="utf-8").replace("groups: [hr]", "groups: [everyone]"), encoding="utf-8")
    ingest(root, embedder)
    result = keel(root, "eval", str(SUITE), "--tag", "outsider", "--json", "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    run = run_json(result)
    assert run["gate_passed"] is False
    breached = {t["metric"] for t in run["thresholds"] if not t["ok"]}
    assert "retrieval.acl_violations" in breached
    acl_cases = [c for c in run["cases"] if c["stage"] == "acl"]
    assert acl_cases and all(c["id"].startswith("hr-") for c in acl_cases)
    assert all(any("hr/" in f for f in c["failures"]) for c in acl_cases)

    good_out, good = good_run
    compared = keel(
        root,
        "eval",
        "compare",
        str(good_out / f"{good['run_id']}.json"),
        str(tmp_path / "out" / f"{run['run_id']}.json"),
        "--json",
    )
    assert compared.returncode == 0, compared.stderr
    comparison = json.loads(compared.stdout)
    assert set(comparison["pass_to_fail"]) >= {c["id"] for c in acl_cases}
    acl = next(d for d in comparison["deltas"] if d["metric"] == "retrieval.acl_violations")
    assert acl["delta"] > 0 and acl["low"] > 0


def test_an_evidence_gate_set_too_strict_fails_at_the_evidence_stage(tmp_path: Path, embedder: Any) -> None:
    root = copy_project(SAMPLE_PROJECT, tmp_path / "strict")
    contract = (root / "keel.yaml").read_text(encoding="utf-8")
    contract = re.sub(r"min_dense_score: [0-9.]+", "min_dense_score: 0.99", contract)
    contract = re.sub(r"min_support_dense_score: [0-9.]+", "min_support_dense_score: 0.99", contract)
    (root / "keel.yaml").write_text(contract, encoding="utf-8")
    ingest(root, embedder)
    result = keel(root, "eval", str(SUITE), "--tag", "simple", "--json", "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    run = run_json(result)
    assert run["stages"].get("evidence", 0) > 20
    assert {t["metric"] for t in run["thresholds"] if not t["ok"]} >= {"generation.mode_accuracy"}


def test_the_suite_runs_against_a_live_server(
    server: RunningServer, sample_project: SampleProject, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump(sample_project.keys), encoding="utf-8")
    result = keel(
        sample_project.root,
        "eval",
        "run",
        str(SUITE),
        "--url",
        server.url,
        "--keys",
        str(keys),
        "--tag",
        "no-answer",
        "--tag",
        "multi-hop",
        "--json",
        "--out",
        str(tmp_path / "out"),
    )
    run = run_json(result)
    assert run["target"] == server.url
    assert {c["id"] for c in run["cases"]} >= {"none-canteen", "hotel-porto-multihop"}
    assert all(c["request_id"].startswith("req_") for c in run["cases"])
    assert run["aggregate"]["retrieval.acl_violations"] == 0
    by_id = {c["id"]: c for c in run["cases"]}
    assert by_id["none-canteen"]["passed"] and by_id["none-canteen"]["mode"] == "no_answer"


def test_mining_turns_traces_into_redacted_candidate_cases(
    sample_project: SampleProject, server: RunningServer
) -> None:
    import httpx

    key = sample_project.keys["sam.staff"]
    question = "How many days of annual leave do I get? Reply to jo.bloggs@example.com"
    httpx.post(
        server.url + "/v1/ask", json={"question": question}, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )
    out = keel(sample_project.root, "eval", "mine", "--limit", "500")
    assert out.returncode == 0, out.stderr
    cases = yaml.safe_load(out.stdout)["cases"]
    mine = [c for c in cases if "annual leave do I get" in c["question"]]
    assert mine and "jo.bloggs@example.com" not in out.stdout
    assert mine[0]["asker"] == "sam.staff" and mine[0]["tags"] == ["mined"]
