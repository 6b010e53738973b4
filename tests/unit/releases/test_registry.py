"""Release state: seeded from the contract, promote and rollback restore exact releases, canaries stay sticky."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.audit import AuditLog
from keel.contract import parse_contract
from keel.errors import Conflict, InvalidRequest, NotFound
from keel.policy.pii import redact
from keel.releases.registry import ReleaseRegistry, canary_bucket
from keel.store import Database
from tests.support.database import database_at

CONTRACT = """
models:
  - {name: extractive, provider: extractive, tier: extractive}
  - {name: small, provider: local, tier: small}
releases:
  - {name: r1, prompt: answer@1}
  - {name: r2, prompt: answer@2, model: small, index: 3}
apps:
  - {name: default, release: r1}
  - {name: plain}
"""


def _registry(tmp_path: Path, contract: str = CONTRACT) -> tuple[ReleaseRegistry, AuditLog, Database]:
    db = database_at(tmp_path / "keel.db")
    audit = AuditLog(db, redact=redact)
    return ReleaseRegistry(parse_contract(contract), db=db, audit=audit), audit, db


def _actions(audit: AuditLog) -> list[str]:
    audit.flush()
    return [r.action for r in audit.records(limit=100)]


def test_an_app_starts_on_the_contracts_release_or_its_own_pins(tmp_path: Path) -> None:
    registry, _, _ = _registry(tmp_path)
    assert registry.state("default").current == "r1"
    assert registry.state("plain").current == ""
    assert registry.release(registry._contract.app("plain"), "").name == "pins"


def test_promote_then_rollback_restores_the_exact_previous_release(tmp_path: Path) -> None:
    registry, audit, _ = _registry(tmp_path)
    registry.promote("default", "r2", actor="ops")
    assert registry.state("default").current == "r2"
    state = registry.rollback("default", actor="ops", reason="answers got worse")
    assert state.current == "r1" and state.history == ()
    app = registry._contract.app("default")
    assert registry.release(app, state.current).model_dump() == registry._contract.release("r1").model_dump()
    assert _actions(audit)[-2:] in (["release.promote", "release.rollback"], ["release.rollback", "release.promote"])
    with pytest.raises(Conflict):
        registry.rollback("default", actor="ops")


def test_state_changes_are_seen_by_another_process_reading_the_same_database(tmp_path: Path) -> None:
    first, _, _ = _registry(tmp_path)
    second, _, _ = _registry(tmp_path)
    assert second.state("default").current == "r1"
    first.promote("default", "r2", actor="ops")
    assert second.states()[0].current == "r2"


def test_a_canary_is_sticky_per_user_and_splits_by_share(tmp_path: Path) -> None:
    registry, _, _ = _registry(tmp_path)
    registry.start("default", "r2", stage="canary", share=0.3, actor="ops")
    state = registry.state("default")
    assert (state.stage, state.candidate, state.share) == ("canary", "r2", 0.3)
    users = [f"user{i}" for i in range(2000)]
    inside = [u for u in users if canary_bucket(u, "default", "r2") < 0.3]
    assert 0.25 < len(inside) / len(users) < 0.35
    assert all(canary_bucket(u, "default", "r2") < 0.3 for u in inside), "the same user lands on the same side"


def test_bad_changes_are_refused_and_change_nothing(tmp_path: Path) -> None:
    registry, _, _ = _registry(tmp_path)
    with pytest.raises(NotFound):
        registry.start("default", "r9", stage="canary", share=0.1, actor="ops")
    with pytest.raises(NotFound):
        registry.start("nope", "r2", stage="canary", share=0.1, actor="ops")
    with pytest.raises(InvalidRequest):
        registry.start("default", "r2", stage="shadow", share=1.5, actor="ops")
    with pytest.raises(Conflict):
        registry.promote("default", "r1", actor="ops")
    with pytest.raises(Conflict):
        registry.stop("default", actor="ops", reason="none running")
    assert registry.state("default").current == "r1" and registry.state("default").candidate is None


def test_a_new_pin_in_the_contract_wins_over_the_stored_state(tmp_path: Path) -> None:
    registry, _, _ = _registry(tmp_path)
    registry.promote("default", "r2", actor="ops")
    repinned, audit, _ = _registry(
        tmp_path, CONTRACT.replace("{name: default, release: r1}", "{name: default, release: r2}")
    )
    state = repinned.state("default")
    assert state.current == "r2" and state.history == ("r1",), "rollback still leads back to r1"
    assert "release.pinned" in _actions(audit)


def test_contract_references_of_releases_are_checked() -> None:
    from keel.errors import ContractError

    with pytest.raises(ContractError, match="r9"):
        parse_contract(CONTRACT.replace("release: r1", "release: r9"))
    with pytest.raises(ContractError, match="nope"):
        parse_contract(CONTRACT.replace("model: small, index: 3", "model: nope"))
