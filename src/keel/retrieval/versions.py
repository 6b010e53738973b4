"""Index versions on disk and the atomic ``ACTIVE`` pointer.

Publishing writes a complete version folder under a temporary name, renames it into
place, then replaces ``ACTIVE`` (write to a temporary file, then ``os.replace``).
Readers load whatever ``ACTIVE`` names; a reader holding an older snapshot keeps
using it until it asks again, so in-flight requests never mix versions.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from keel.errors import NotReady
from keel.retrieval.snapshot import IndexSnapshot

__all__ = ["IndexStore"]

_VERSION_DIR = re.compile(r"^v(\d{6})$")
ACTIVE = "ACTIVE"


class IndexStore:
    """The index versions of one project."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self._lock = threading.Lock()
        self._loaded: IndexSnapshot | None = None
        self._loaded_stamp: tuple[int, int] | None = None

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

    def publish(self, write: Callable[[int, Path], None]) -> int:
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
        self.activate(version)
        return version

    def activate(self, version: int) -> None:
        """Point ``ACTIVE`` at an existing version, atomically."""
        if not self.folder(version).is_dir():
            raise ValueError(f"index version {version} does not exist")
        tmp = self.index_dir / f".{ACTIVE}.{os.getpid()}.tmp"
        tmp.write_text(f"v{version:06d}\n", encoding="utf-8")
        os.replace(tmp, self.index_dir / ACTIVE)

    def prune(self, keep: int) -> list[int]:
        """Delete all but the newest ``keep`` versions (never the active one); returns those deleted."""
        active = self.active_version()
        doomed = [v for v in self.versions()[:-keep] if v != active] if keep > 0 else []
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

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = (self.index_dir / ACTIVE).stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_ino)
