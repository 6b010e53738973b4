"""One entry point for credentials: Keel API keys, and JWT bearer tokens when configured."""

from __future__ import annotations

from pathlib import Path

from keel.contract import JwtSettings
from keel.errors import AuthError
from keel.identity.jwt_bearer import JwtVerifier, looks_like_jwt
from keel.identity.keys import KeyStore
from keel.identity.principal import Principal

__all__ = ["Authenticator"]

_KEY_PREFIX = "keel_"


class Authenticator:
    """Resolves a bearer credential to a :class:`Principal`, or raises :class:`AuthError`."""

    def __init__(self, keys: KeyStore, *, jwt: JwtSettings | None, project_root: Path) -> None:
        self._keys = keys
        self._jwt = JwtVerifier(jwt, project_root=project_root) if jwt is not None else None

    @property
    def accepts_jwt(self) -> bool:
        """Whether JWT bearer tokens are configured."""
        return self._jwt is not None

    def warm_up(self) -> bool | None:
        """Load the JWKS when JWTs are configured; whether it loaded (``None``: no JWTs)."""
        return self._jwt.warm_up() if self._jwt is not None else None

    @property
    def jwks_ready(self) -> bool | None:
        """Whether the JWKS is loaded (``None``: no JWTs configured)."""
        return self._jwt.ready if self._jwt is not None else None

    def authenticate(self, credential: str) -> Principal:
        """The principal behind ``credential`` (an API key or a JWT)."""
        if credential.startswith(_KEY_PREFIX):
            return self._keys.authenticate(credential)
        if self._jwt is not None and looks_like_jwt(credential):
            return self._jwt.verify(credential)
        raise AuthError("The API key is not valid.", code_detail="invalid_api_key")

    def cached(self, credential: str) -> Principal | None:
        """The principal of an API key checked moments ago, without I/O; ``None``: call :meth:`authenticate`."""
        return self._keys.cached(credential) if credential.startswith(_KEY_PREFIX) else None

    def close(self) -> None:
        """Release the JWKS client."""
        if self._jwt is not None:
            self._jwt.close()
