"""The activation history: append-only lines, replayed as a stack to find what a rollback returns to."""

from __future__ import annotations

from pathlib import Path

from keel.retrieval.activations import Activation, ActivationLog, rollback_target


def _a(kind: str, version: int, previous: int | None) -> Activation:
    return Activation(version=version, previous=previous, kind=kind, actor="t", at=0.0)  # type: ignore[arg-type]


def _all(_: int) -> bool:
    return True


def test_rollback_returns_along_the_activations_not_the_version_numbers() -> None:
    history = [_a("publish", 1, None), _a("publish", 2, 1), _a("activate", 5, 2), _a("publish", 6, 5)]
    assert rollback_target(history, 6, _all) == 5
    history.append(_a("rollback", 5, 6))
    assert rollback_target(history, 5, _all) == 2
    history.append(_a("rollback", 2, 5))
    assert rollback_target(history, 2, _all) == 1


def test_activating_the_active_version_again_is_not_a_rollback_target() -> None:
    history = [_a("publish", 1, None), _a("publish", 2, 1), _a("activate", 2, 2)]
    assert rollback_target(history, 2, _all) == 1


def test_a_pointer_ahead_of_the_history_is_undone_first() -> None:
    """ACTIVE moved but the process died before writing the line: rollback still returns to the last recorded."""
    history = [_a("publish", 1, None), _a("publish", 2, 1)]
    assert rollback_target(history, 3, _all) == 2


def test_missing_versions_are_skipped_and_nothing_is_returned_without_a_pointer() -> None:
    history = [_a("publish", 1, None), _a("publish", 2, 1), _a("publish", 3, 2)]
    assert rollback_target(history, 3, lambda v: v != 2) == 1
    assert rollback_target(history, None, _all) is None
    assert rollback_target([], 1, _all) is None


def test_the_log_appends_lines_and_skips_a_torn_one(tmp_path: Path) -> None:
    log = ActivationLog(tmp_path)
    log.append(_a("publish", 1, None))
    with log.path.open("a", encoding="utf-8") as handle:
        handle.write('{"version": 2, "kind": "publ')  # a write cut short
    log.append(_a("activate", 3, 1))
    assert [(e.kind, e.version) for e in log.entries()] == [("publish", 1), ("activate", 3)]
