"""The activation history of an index: one JSON line for every move of ``ACTIVE``.

``index/ACTIVATIONS.jsonl`` is append-only: each line says which version became
active, which one it replaced, how (``publish`` by an ingest, ``activate`` by an
operator, ``rollback``), by whom and when. A line is written with one ``write`` on a
file opened for appending, after ``ACTIVE`` has moved, so a crash between the two
leaves ``ACTIVE`` ahead of the history, which :func:`rollback_target` accounts for.

Rollback undoes activations like a stack: after ``1 -> 2 -> 3``, a rollback returns
to 2 and a second one to 1, while an explicit ``activate`` is itself an activation
that a rollback undoes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["ACTIVATIONS", "Activation", "ActivationKind", "ActivationLog", "rollback_target"]

ACTIVATIONS = "ACTIVATIONS.jsonl"

ActivationKind = Literal["publish", "activate", "rollback"]
"""How a version became active: published by an ingest, chosen by an operator, or rolled back to."""


@dataclass(frozen=True, kw_only=True)
class Activation:
    """One move of the ``ACTIVE`` pointer."""

    version: int
    previous: int | None
    kind: ActivationKind
    actor: str
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The JSON line form."""
        return {
            "version": self.version,
            "previous": self.previous,
            "kind": self.kind,
            "actor": self.actor,
            "at": self.at,
        }


class ActivationLog:
    """The append-only activation history in an index folder."""

    def __init__(self, index_dir: Path) -> None:
        self.path = index_dir / ACTIVATIONS

    def append(self, activation: Activation) -> None:
        """Add ``activation`` as one line, durably (after a line torn by a crash, on a line of its own)."""
        line = (json.dumps(activation.to_dict(), separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def entries(self) -> list[Activation]:
        """Every recorded activation, oldest first (a torn or foreign line is skipped)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out: list[Activation] = []
        for line in text.splitlines():
            try:
                data = json.loads(line)
                kind = data["kind"]
                if kind not in ("publish", "activate", "rollback"):
                    continue
                previous = data.get("previous")
                out.append(
                    Activation(
                        version=int(data["version"]),
                        previous=int(previous) if previous is not None else None,
                        kind=kind,
                        actor=str(data.get("actor", "")),
                        at=float(data.get("at", 0.0)),
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue
        return out


def rollback_target(history: list[Activation], active: int | None, exists: Callable[[int], bool]) -> int | None:
    """The version a rollback from ``active`` returns to, or ``None`` if there is none.

    Replays ``history`` as a stack (an activation pushes its version, a rollback pops back
    to the version it returned to), then takes the nearest entry below the top that is
    not the active version and still exists on disk. An activation whose ``previous`` is
    not the version on top (the history started late, or a line was lost) pushes that
    previous version first, so the move can still be undone.
    """
    stack: list[int] = []
    for entry in history:
        if entry.kind == "rollback" and entry.version in stack:
            while stack and stack[-1] != entry.version:
                stack.pop()
            continue
        if entry.previous is not None and (not stack or stack[-1] != entry.previous):
            stack.append(entry.previous)  # a move the history missed (written before it existed, or lost)
        stack.append(entry.version)
    if active is None:
        return None
    if not stack or stack[-1] != active:
        stack.append(active)
    for version in reversed(stack[:-1]):
        if version != active and exists(version):
            return version
    return None
