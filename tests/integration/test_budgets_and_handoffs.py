"""A budget exhausted mid-day moves the app to its degradation mode (response, trace, keel costs);
(the model's worst case is 120 tokens x $10/M = $0.0012, and the day's budget $0.00121 fits one call);
the hand-off queue takes questions Keel cannot answer, and reviewers answer them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import RunningServer, auth, small_project, start_server, stop_server

CONTRACT = """
cost:
  max_usd_per_request: 1.0
  budgets:
    - {scope: app, name: default, period: day, usd: 0.00121}
  on_budget_exceeded: cheaper_model
models:
  - {name: extractive, provider: extractive, tier: extractive}
  - name: smollm2-135m
    max_output_tokens: 120
    price: {input_per_mtok: 0.0, output_per_mtok: 10.0}
routing:
  cache: {exact: false, semantic: false}
  on_no_evidence: handoff
sources:
  - {name: all-staff, path: all-staff, groups: [everyone]}
"""

EXPLAIN = "Explain how expense claims are approved and paid."


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, embedder: Any
) -> Iterator[tuple[Path, RunningServer, dict[str, str]]]:
    from keel.identity import KeyStore
    from tests.support.database import database_at

    root = tmp_path_factory.mktemp("budget") / "proj"
    small_project(root, embedder, folders=["all-staff"], contract=CONTRACT)
    store = KeyStore(database_at(root / ".keel" / "keel.db"))
    keys = {
        "sam": store.create(principal_id="sam", tenant="larkspur", groups=[], roles=["user"]).secret,
        "rita": store.create(principal_id="rita", tenant="larkspur", groups=[], roles=["reviewer"]).secret,
        "otto": store.create(principal_id="otto", tenant="other", groups=[], roles=["reviewer"]).secret,
    }
    server = start_server(root, root / "server.log")
    yield root, server, keys
    stop_server(server)


def keel_json(root: Path, *args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "keel", "--project", str(root), *args, "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


def test_budget_exhausted_mid_day_degrades_to_the_cheaper_tier(
    served: tuple[Path, RunningServer, dict[str, str]],
) -> None:
    root, server, keys = served
    url, key = server.url, keys["sam"]
    first = httpx.post(url + "/v1/ask", json={"question": EXPLAIN}, headers=auth(key), timeout=120).json()
    assert first["model"] == "smollm2-135m" and first["cost_usd"] > 0 and first["degraded"] == []

    second = httpx.post(url + "/v1/ask", json={"question": EXPLAIN}, headers=auth(key), timeout=120).json()
    assert second["mode"] == "answer" and second["model"] == "extractive" and second["cost_usd"] == 0
    assert [d["component"] for d in second["degraded"]] == ["budget:smollm2-135m"]
    assert "app:default:day" in second["degraded"][0]["reason"]
    assert "limited mode" in second["answer"]

    trace = httpx.get(f"{url}/v1/traces/{second['request_id']}", headers=auth(key), timeout=30).json()
    skipped = trace["response"]["route"]["skipped"]
    assert skipped == [{"model": "smollm2-135m", "reason": "budget app:default:day would be exceeded"}]

    costs = keel_json(root, "costs")
    assert [b["budget"] for b in costs["budgets"]] == ["app:default:day"]
    budget = costs["budgets"][0]
    assert budget["spent_usd"] == pytest.approx(first["cost_usd"])
    assert budget["remaining_usd"] == pytest.approx(0.00121 - first["cost_usd"])
    assert budget["remaining_usd"] < 120 * 10.0 / 1_000_000, "less than one more call's worst case is left"
    assert [(r["app"], r["model"], r["requests"]) for r in costs["rows"]] == [("default", "smollm2-135m", 1)]


def test_unanswerable_questions_are_handed_off_and_answered_by_a_reviewer(
    served: tuple[Path, RunningServer, dict[str, str]],
) -> None:
    _, server, keys = served
    url = server.url
    body = httpx.post(
        url + "/v1/ask", json={"question": "What is the canteen menu on Friday?"}, headers=auth(keys["sam"]), timeout=60
    ).json()
    assert body["mode"] == "handoff" and body["handoff_id"].startswith("ho_")
    assert body["handoff_id"] in body["answer"]
    hid = body["handoff_id"]

    mine = httpx.get(url + "/v1/handoffs", headers=auth(keys["sam"])).json()["data"]
    assert [h["id"] for h in mine] == [hid] and mine[0]["request_id"] == body["request_id"]
    denied = httpx.post(f"{url}/v1/handoffs/{hid}/answer", json={"answer": "x"}, headers=auth(keys["sam"]))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    foreign = httpx.post(f"{url}/v1/handoffs/{hid}/answer", json={"answer": "x"}, headers=auth(keys["otto"]))
    assert foreign.status_code == 404
    assert httpx.get(url + "/v1/handoffs", headers=auth(keys["otto"])).json()["data"] == []

    queue = httpx.get(url + "/v1/handoffs?status=open", headers=auth(keys["rita"])).json()["data"]
    assert hid in [h["id"] for h in queue]
    answered = httpx.post(
        f"{url}/v1/handoffs/{hid}/answer", json={"answer": "Fish on Fridays."}, headers=auth(keys["rita"])
    )
    assert answered.status_code == 200 and answered.json()["status"] == "answered"
    seen = httpx.get(f"{url}/v1/handoffs/{hid}", headers=auth(keys["sam"])).json()
    assert seen["answer"] == "Fish on Fridays." and seen["handled_by"] == "rita"
    empty = httpx.post(f"{url}/v1/handoffs/{hid}/close", headers=auth(keys["rita"]))
    assert empty.json()["status"] == "closed"
    again = httpx.post(f"{url}/v1/handoffs/{hid}/close", headers=auth(keys["rita"]))
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_parameter"
