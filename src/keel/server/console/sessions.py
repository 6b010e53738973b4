"""Console sessions: an API key signs in once; the browser then holds only a session id.

The session cookie carries a random id (stored hashed, like API keys), is ``HttpOnly``,
``SameSite=Strict`` and limited to ``/console``. Every page looks the session up and
re-reads its key, so revoking or expiring the key ends its console sessions at once.
Each session has its own CSRF token that every form that changes something must echo.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from keel.errors import AuthError
from keel.identity import KeyStore, Principal
from keel.store import Database

__all__ = ["COOKIE", "SESSION_TTL_S", "ConsoleSession", "ConsoleSessions"]

COOKIE = "keel_console"
SESSION_TTL_S = 8 * 3600.0


@dataclass(frozen=True, kw_only=True)
class ConsoleSession:
    """A signed-in browser: who it is and the token its forms must carry."""

    principal: Principal
    key_id: str
    csrf: str
    expires_at: float


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleSessions:
    """Console sessions in the project database."""

    def __init__(self, db: Database, keys: KeyStore) -> None:
        self.db = db
        self._keys = keys

    def sign_in(self, api_key: str) -> tuple[str, ConsoleSession]:
        """A new session for a valid API key: the cookie value and the session. Raises :class:`AuthError`."""
        principal = self._keys.authenticate(api_key.strip())
        key_id = principal.credential.removeprefix("key:")
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM console_sessions WHERE expires_at < ?", (now,))
            conn.execute(
                "INSERT INTO console_sessions (session_hash, key_id, csrf, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (_hash(token), key_id, csrf, now, now + SESSION_TTL_S),
            )
        return token, ConsoleSession(principal=principal, key_id=key_id, csrf=csrf, expires_at=now + SESSION_TTL_S)

    def get(self, token: str | None) -> ConsoleSession:
        """The session of a cookie value; :class:`AuthError` when there is none, it expired or its key did."""
        if not token:
            raise AuthError("Sign in with an API key.")
        row = (
            self.db.connection()
            .execute("SELECT key_id, csrf, expires_at FROM console_sessions WHERE session_hash = ?", (_hash(token),))
            .fetchone()
        )
        if row is None or row["expires_at"] < time.time():
            raise AuthError("Your console session has ended: sign in again.")
        record = self._keys.get(row["key_id"])
        if record is None or record.state() != "active":
            raise AuthError("The API key of this session is no longer valid.")
        return ConsoleSession(
            principal=record.principal, key_id=row["key_id"], csrf=row["csrf"], expires_at=row["expires_at"]
        )

    def check_csrf(self, session: ConsoleSession, presented: str | None) -> None:
        """Refuse a form whose CSRF token is not the session's."""
        if not presented or not hmac.compare_digest(presented, session.csrf):
            raise AuthError("The form expired: reload the page and try again.")

    def sign_out(self, token: str | None) -> None:
        """End the session of a cookie value (nothing if there is none)."""
        if token:
            with self.db.transaction() as conn:
                conn.execute("DELETE FROM console_sessions WHERE session_hash = ?", (_hash(token),))
