"""Index versions: ACTIVE moves atomically, every move is in the history, rollback walks it back."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest

from keel.errors import ConfigError, IndexVersionError, NotReady
from keel.retrieval.versions import IndexStore
from tests.unit.retrieval.builders import passage, publish


@pytest.fixture
def store(tmp_path: Path) -> IndexStore:
    return IndexStore(tmp_path / "index")


def _three(store: IndexStore) -> list[int]:
    return [publish(store, [passage("a.md", f"Version {i} of the text.")]) for i in (1, 2, 3)]


def test_each_publish_is_recorded_as_an_activation(store: IndexStore) -> None:
    assert _three(store) == [1, 2, 3]
    assert [(a.kind, a.version, a.previous, a.actor) for a in store.history()] == [
        ("publish", 1, None, "ingest"),
        ("publish", 2, 1, "ingest"),
        ("publish", 3, 2, "ingest"),
    ]


def test_rollback_walks_back_one_activation_at_a_time(store: IndexStore) -> None:
    _three(store)
    assert store.rollback(actor="ops").version == 2 and store.active_version() == 2
    assert store.rollback(actor="ops").version == 1 and store.active_version() == 1
    with pytest.raises(IndexVersionError, match="no earlier activation"):
        store.rollback(actor="ops")


def test_rollback_after_an_explicit_activation_returns_to_the_version_before_it(store: IndexStore) -> None:
    _three(store)
    moved = store.activate(1, actor="ops")
    assert (moved.version, moved.previous, moved.kind) == (1, 3, "activate")
    assert store.rollback_target() == 3
    assert store.rollback(actor="ops").version == 3
    assert store.rollback_target() == 2


def test_rollback_skips_versions_pruned_from_disk(store: IndexStore) -> None:
    _three(store)
    store.prune(keep=1)  # keeps v3 (active) and v2 (the rollback target)
    assert store.versions() == [2, 3]
    store.rollback(actor="ops")
    assert store.rollback_target() is None  # v1 is gone


def test_prune_never_deletes_the_active_version_or_the_rollback_target(store: IndexStore) -> None:
    _three(store)
    store.activate(2, actor="ops")
    publish(store, [passage("a.md", "Version 4.")])  # active v4; a rollback returns to v2
    assert store.prune(keep=1) == [1, 3]
    assert store.versions() == [2, 4]
    assert store.rollback(actor="ops").version == 2


def test_activating_an_unknown_version_is_a_config_error_listing_the_versions(store: IndexStore) -> None:
    _three(store)
    with pytest.raises(IndexVersionError, match="index version 9 does not exist; available: v1, v2, v3") as caught:
        store.activate(9, actor="ops")
    assert isinstance(caught.value, ConfigError)
    assert store.active_version() == 3 and len(store.history()) == 3


def test_current_follows_active_even_when_moves_are_quicker_than_the_clock(store: IndexStore) -> None:
    _three(store)
    for version in (1, 2, 1, 3, 2):
        store.activate(version, actor="ops")
        assert store.current().version == version


def test_a_project_without_history_cannot_roll_back_but_still_activates(store: IndexStore) -> None:
    _three(store)
    (store.index_dir / "ACTIVATIONS.jsonl").unlink()
    assert store.rollback_target() is None
    store.activate(1, actor="ops")
    assert store.rollback_target() == 3


def test_concurrent_activations_leave_a_consistent_pointer_and_history(store: IndexStore) -> None:
    _three(store)

    def flip(version: int) -> None:
        for _ in range(20):
            store.activate(version, actor=f"t{version}")

    threads = [threading.Thread(target=flip, args=(v,)) for v in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    history = store.history()
    assert len(history) == 3 + 60
    assert history[-1].version == store.active_version()
    # Each move names the version that was active just before it: the lock serialises them.
    assert all(later.previous == earlier.version for earlier, later in itertools.pairwise(history))


def test_prune_keeps_versions_a_release_pins_and_a_pinned_version_stays_readable(store: IndexStore) -> None:
    _three(store)
    publish(store, [passage("a.md", "Version 4.")])
    assert store.prune(keep=1, pinned={1}) == [2]
    assert store.versions() == [1, 3, 4]
    assert store.snapshot(1).version == 1 and store.snapshot(None).version == 4
    with pytest.raises(NotReady):
        store.snapshot(2)
