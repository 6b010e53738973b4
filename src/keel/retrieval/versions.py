"""Index versions on disk and the atomic ``ACTIVE`` pointer.

Publishing writes a complete version folder under a temporary name, renames it into
place, then replaces ``ACTIVE`` (write to a temporary file, then ``os.replace``).
Readers load whatever ``ACTIVE`` names; a reader holding an older snapshot keeps
using it until it asks again, so in-flight requests never mix versions.

Every move of ``ACTIVE`` (a publish, an operator's activation, a rollback) is made
under an exclusive lock on ``index/.lock`` and appended to the activation history
(:mod:`keel.retrieval.activations`), which is what a rollback returns along.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from keel.errors import IndexVersionError, NotReady
from keel.retrieval.activations import Activation, ActivationKind, ActivationLog, rollback_target
from keel.retrieval.snapshot import IndexSnapshot

__all__ = ["IndexStore"]

_VERSION_DIR = re.compile(r"^v(\d{6})$")
ACTIVE = "ACTIVE"
_PINNED_LOADED = 3
"""Non-active versions kept loaded at once (pinned by a release, or still read by a request)."""


class IndexStore:
    """The index versions of one project."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self._lock = threading.Lock()
        self._loaded: IndexSnapshot | None = None
        self._loaded_stamp: str | None = None
        self._pinned: OrderedDict[int, IndexSnapshot] = OrderedDict()

    def versions(self) -> list[int]:
        """Every complete version on disk, oldest first."""
        if not self.index_dir.is_dir():
            return []
        found = []
        for entry in self.index_dir.iterdir():
            match = _VERSION_DIR.match(entry.name)
            if match and entry.is_dir():
                found.append(int(match.group(1)))
        return sorted(found)

    def active_version(self) -> int | None:
        """The version ``ACTIVE`` names, or ``None`` before the first ingest."""
        try:
            text = (self.index_dir / ACTIVE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        match = _VERSION_DIR.match(text)
        return int(match.group(1)) if match else None

    def folder(self, version: int) -> Path:
        """The folder of ``version``."""
        return self.index_dir / f"v{version:06d}"

    def publish(self, write: Callable[[int, Path], None], *, actor: str = "ingest") -> int:
        """Write a new version with ``write(version, folder)`` and activate it; returns the version."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        version = max(self.versions(), default=0) + 1
        staging = self.index_dir / f".staging-v{version:06d}-{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        try:
            write(version, staging)
            os.replace(staging, self.folder(version))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.activate(version, actor=actor, kind="publish")
        return version

    def activate(self, version: int, *, actor: str = "system", kind: ActivationKind = "activate") -> Activation:
        """Point ``ACTIVE`` at an existing version, atomically, and record it in the history.

        Raises :class:`IndexVersionError` (listing the versions) if ``version`` does not exist.
        """
        with self._exclusive():
            return self._move(version, actor=actor, kind=kind)

    def rollback(self, *, actor: str = "system") -> Activation:
        """Activate the version that was active before the current one (see :func:`rollback_target`).

        Raises :class:`IndexVersionError` when no earlier activation is recorded.
        """
        with self._exclusive():
            target = self.rollback_target()
            if target is None:
                raise IndexVersionError(
                    "no earlier activation to roll back to (see `keel index list`, then `keel index activate VERSION`)"
                )
            return self._move(target, actor=actor, kind="rollback")

    def history(self) -> list[Activation]:
        """Every recorded activation, oldest first."""
        return ActivationLog(self.index_dir).entries()

    def rollback_target(self) -> int | None:
        """The version :meth:`rollback` would activate now, or ``None``."""
        return rollback_target(self.history(), self.active_version(), lambda v: self.folder(v).is_dir())

    def _move(self, version: int, *, actor: str, kind: ActivationKind) -> Activation:
        if not self.folder(version).is_dir():
            available = ", ".join(f"v{v}" for v in self.versions()) or "none (run `keel ingest`)"
            raise IndexVersionError(f"index version {version} does not exist; available: {available}")
        previous = self.active_version()
        tmp = self.index_dir / f".{ACTIVE}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(f"v{version:06d}\n", encoding="utf-8")
        os.replace(tmp, self.index_dir / ACTIVE)
        activation = Activation(version=version, previous=previous, kind=kind, actor=actor)
        ActivationLog(self.index_dir).append(activation)
        return activation

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Serialise moves of ``ACTIVE`` across threads and processes."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.index_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def prune(self, keep: int, *, pinned: Iterable[int] = ()) -> list[int]:
        """Delete all but the newest ``keep`` versions; returns those deleted.

        Never the active version, nor the one a rollback would return to, nor one that
        a release or an app pins (``pinned``).
        """
        active = self.active_version()
        spared = {active, self.rollback_target(), *pinned}
        doomed = [v for v in self.versions()[:-keep] if v not in spared] if keep > 0 else []
        for version in doomed:
            shutil.rmtree(self.folder(version), ignore_errors=True)
        return doomed

    def current(self) -> IndexSnapshot:
        """The active snapshot, reloaded when ``ACTIVE`` has moved. Raises :class:`NotReady` if none."""
        stamp = self._stamp()
        loaded = self._loaded
        if loaded is not None and stamp == self._loaded_stamp:
            return loaded
        with self._lock:
            stamp = self._stamp()
            if self._loaded is not None and stamp == self._loaded_stamp:
                return self._loaded
            version = self.active_version()
            if version is None:
                raise NotReady("No index has been built yet: run `keel ingest` first.")
            snapshot = IndexSnapshot(self.folder(version))
            self._loaded, self._loaded_stamp = snapshot, stamp
            return snapshot

    def snapshot(self, version: int | None) -> IndexSnapshot:
        """The snapshot of ``version`` (``None``: the active one), whether or not it is active.

        A request reads every stage's passages from the version it started with, and a
        release may pin a version that is not the active one; the few most recently
        used non-active versions stay loaded. Raises :class:`NotReady` if it does not exist.
        """
        if version is None:
            return self.current()
        loaded = self._loaded
        if loaded is not None and loaded.version == version:
            return loaded
        with self._lock:
            cached = self._pinned.get(version)
            if cached is not None:
                self._pinned.move_to_end(version)
                return cached
            if not self.folder(version).is_dir():
                raise NotReady(f"Index version {version} does not exist: run `keel index list` to see the versions.")
            snapshot = IndexSnapshot(self.folder(version))
            self._pinned[version] = snapshot
            while len(self._pinned) > _PINNED_LOADED:
                self._pinned.popitem(last=False)
            return snapshot

    def _stamp(self) -> str | None:
        """What ``ACTIVE`` says now: its content, not its mtime, which may not change between quick moves."""
        try:
            return (self.index_dir / ACTIVE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
