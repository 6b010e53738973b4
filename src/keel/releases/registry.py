"""Which release each app serves, its candidate, and the releases before it.

The contract declares the releases (``releases:``) and the one each app starts on
(``apps[].release``; an app without one serves its own ``pins``, the *implicit*
release ``""``). From then on the state lives in the project database, so that a
promotion or a rollback made by one process is seen by every ``keel serve`` reading
the same database within :data:`STATE_TTL_S`:

* ``current``: the release that serves the app's traffic;
* ``candidate`` with its ``stage``: ``shadow`` (a sampled copy of live requests runs
  on it, never answering) or ``canary`` (a sticky share of the app's users is served
  by it);
* ``history``: the releases that were current before, most recent last, so that
  rollback restores the exact previous one in one step.

When the contract pins an app to a different release than the state was seeded
from, the contract wins: editing ``keel.yaml`` and restarting is also a deploy.
Every change is one transaction and one audit record (``release.*``).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from keel.audit import AuditEvent, AuditLog
from keel.contract import App, Contract, Release
from keel.errors import Conflict, InvalidRequest, NotFound
from keel.store import Database

__all__ = ["IMPLICIT", "STATE_TTL_S", "ReleaseRegistry", "ReleaseState", "Stage", "canary_bucket"]

IMPLICIT = ""
"""The name of an app's implicit release: its own ``pins``."""

STATE_TTL_S = 1.0
"""How long a process uses the state it read before reading it again."""

Stage = Literal["shadow", "canary"]


@dataclass(frozen=True, kw_only=True)
class ReleaseState:
    """One app's releases."""

    app: str
    current: str
    candidate: str | None = None
    stage: Stage | None = None
    share: float = 0.0
    """Canary: the share of users served by the candidate; shadow: the share of requests copied to it."""
    started_at: float | None = None
    history: tuple[str, ...] = ()
    pinned: str = IMPLICIT
    """The contract's pin this state was seeded from."""
    updated_at: float = field(default=0.0, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "app": self.app,
            "current": self.current,
            "candidate": self.candidate,
            "stage": self.stage,
            "share": self.share,
            "started_at": self.started_at,
            "history": list(self.history),
            "previous": self.history[-1] if self.history else None,
            "updated_at": self.updated_at,
        }


def canary_bucket(principal_id: str, app: str, candidate: str) -> float:
    """A user's stable place in [0, 1) for one canary: the same user always lands on the same side."""
    digest = hashlib.sha256(f"{app}\x00{candidate}\x00{principal_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class ReleaseRegistry:
    """Release state of every app, read cheaply on the request path and changed with an audit record."""

    def __init__(
        self, contract: Contract, *, db: Database, audit: AuditLog, clock: Callable[[], float] = time.time
    ) -> None:
        self._contract = contract
        self._db = db
        self._audit = audit
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, ReleaseState]] = {}

    # -- reading ---------------------------------------------------------------------------------

    def release(self, app: App, name: str) -> Release:
        """The release ``name`` of ``app`` (``""``: the app's own pins)."""
        if name == IMPLICIT:
            return Release(name="pins", model=app.pins.model, prompt=app.pins.prompt or "answer", index=app.pins.index)
        try:
            return self._contract.release(name)
        except KeyError:
            known = ", ".join(r.name for r in self._contract.releases) or "none"
            raise NotFound(f"No release {name!r} in the contract; declared: {known}.") from None

    def state(self, app: str) -> ReleaseState:
        """The app's state, at most :data:`STATE_TTL_S` old."""
        now = time.monotonic()
        cached = self._cache.get(app)
        if cached is not None and now - cached[0] < STATE_TTL_S:
            return cached[1]
        state = self._read(self._app(app))
        self._cache[app] = (now, state)
        return state

    def states(self) -> list[ReleaseState]:
        """Every app's state, fresh from the database."""
        return [self._read(app) for app in self._contract.apps]

    # -- changing --------------------------------------------------------------------------------

    def start(self, app: str, candidate: str, *, stage: Stage, share: float, actor: str) -> ReleaseState:
        """Make ``candidate`` the app's shadow or canary (replacing any candidate)."""
        target = self._app(app)
        self.release(target, candidate)
        if not 0 < share <= 1:
            raise InvalidRequest(
                "The share must be above 0 and at most 1 (e.g. 0.1 for 10%).", code="invalid_parameter"
            )
        with self._lock:
            state = self._read(target)
            if candidate == state.current:
                raise Conflict(f"{candidate!r} already serves the app {app!r}.")
            new = replace(state, candidate=candidate, stage=stage, share=share, started_at=self._clock())
            return self._write(
                new, action=f"release.{stage}", actor=actor, data={"candidate": candidate, "share": share}
            )

    def stop(
        self,
        app: str,
        *,
        actor: str,
        reason: str,
        action: str = "release.abort",
        details: dict[str, Any] | None = None,
    ) -> ReleaseState:
        """End the candidate without promoting it."""
        with self._lock:
            state = self._read(self._app(app))
            if state.candidate is None:
                raise Conflict(f"The app {app!r} has no candidate release.")
            new = replace(state, candidate=None, stage=None, share=0.0, started_at=None)
            return self._write(
                new,
                action=action,
                actor=actor,
                data={"candidate": state.candidate, "stage": state.stage, "reason": reason, **(details or {})},
            )

    def promote(self, app: str, candidate: str, *, actor: str, data: dict[str, Any] | None = None) -> ReleaseState:
        """Make ``candidate`` current; the release it replaces becomes the one rollback restores."""
        target = self._app(app)
        self.release(target, candidate)
        with self._lock:
            state = self._read(target)
            if candidate == state.current:
                raise Conflict(f"{candidate!r} already serves the app {app!r}.")
            new = replace(
                state,
                current=candidate,
                candidate=None,
                stage=None,
                share=0.0,
                started_at=None,
                history=(*state.history, state.current),
            )
            return self._write(
                new,
                action="release.promote",
                actor=actor,
                data={"from": state.current, "to": candidate, **(data or {})},
            )

    def rollback(self, app: str, *, actor: str, reason: str = "") -> ReleaseState:
        """Restore the release that was current before this one, in one step (and drop any candidate)."""
        with self._lock:
            state = self._read(self._app(app))
            if not state.history:
                raise Conflict(f"The app {app!r} has no earlier release to roll back to.")
            previous = state.history[-1]
            new = replace(
                state,
                current=previous,
                candidate=None,
                stage=None,
                share=0.0,
                started_at=None,
                history=state.history[:-1],
            )
            return self._write(
                new,
                action="release.rollback",
                actor=actor,
                data={"from": state.current, "to": previous, "reason": reason},
            )

    # -- storage ---------------------------------------------------------------------------------

    def _app(self, name: str) -> App:
        try:
            return self._contract.app(name)
        except KeyError:
            known = ", ".join(a.name for a in self._contract.apps)
            raise NotFound(f"No app {name!r} in the contract; declared: {known}.") from None

    def _read(self, app: App) -> ReleaseState:
        row = self._db.connection().execute("SELECT * FROM release_state WHERE app = ?", (app.name,)).fetchone()
        pinned = app.release or IMPLICIT
        if row is None or row["pinned"] != pinned:
            return self._seed(app, pinned, previous=row)
        return ReleaseState(
            app=row["app"],
            current=row["current"],
            candidate=row["candidate"],
            stage=row["stage"],
            share=row["share"],
            started_at=row["started_at"],
            history=tuple(json.loads(row["history_json"])),
            pinned=row["pinned"],
            updated_at=row["updated_at"],
        )

    def _seed(self, app: App, pinned: str, *, previous: Any) -> ReleaseState:
        """First use, or the contract pins the app to another release: the contract's pin serves."""
        history: tuple[str, ...] = ()
        if previous is not None:
            history = tuple(json.loads(previous["history_json"]))
            if previous["current"] != pinned:
                history = (*history, previous["current"])
        state = ReleaseState(app=app.name, current=pinned, history=history, pinned=pinned)
        if previous is None:
            self._store(state)
            return replace(state, updated_at=self._clock())
        return self._write(state, action="release.pinned", actor="contract", data={"to": pinned})

    def _write(self, state: ReleaseState, *, action: str, actor: str, data: dict[str, Any]) -> ReleaseState:
        stored = self._store(state)
        self._audit.record_now(AuditEvent(action=action, actor=actor, tenant="*", subject=state.app, data=data))
        return stored

    def _store(self, state: ReleaseState) -> ReleaseState:
        stored = replace(state, updated_at=self._clock())
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO release_state (app, current, candidate, stage, share, started_at, history_json, pinned,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(app) DO UPDATE SET"
                " current = excluded.current, candidate = excluded.candidate, stage = excluded.stage,"
                " share = excluded.share, started_at = excluded.started_at, history_json = excluded.history_json,"
                " pinned = excluded.pinned, updated_at = excluded.updated_at",
                (
                    stored.app,
                    stored.current,
                    stored.candidate,
                    stored.stage,
                    stored.share,
                    stored.started_at,
                    json.dumps(list(stored.history)),
                    stored.pinned,
                    stored.updated_at,
                ),
            )
        self._cache.pop(stored.app, None)
        return stored
