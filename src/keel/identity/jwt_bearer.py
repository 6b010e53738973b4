"""Bearer JWTs from an identity provider, verified against its JWKS and mapped to a principal.

:class:`JwtVerifier` checks a token in this order, failing with :class:`AuthError`
(401) and a stable ``code_detail``:

1. shape and size (``malformed_token``);
2. the header's ``alg`` against the contract's allow-list, refusing ``none`` and every
   ``HS*`` outright before any key is looked up, so a public key can never be used as
   an HMAC secret (``unsupported_algorithm``);
3. the key, chosen by ``kid`` from the JWKS (``unknown_key_id``, ``jwks_unavailable``);
4. the signature (``bad_signature``), then ``iss`` and ``aud`` (``wrong_issuer``,
   ``wrong_audience``), then ``exp`` (required), ``nbf`` and ``iat`` with leeway
   (``token_expired``, ``token_not_yet_valid``);
5. the claims Keel needs: subject, tenant, groups and roles (``missing_claim``,
   ``invalid_claim``).

The JWKS comes from a file or an http(s) URL and is cached for ``jwks_cache_s``.
A token whose ``kid`` is unknown triggers a refetch at once (key rotation), but such
refetches happen at most once per :data:`REFETCH_INTERVAL_S` so a flood of made-up
``kid`` values cannot hammer the identity provider. A failed load is not retried for
the same interval, and if a scheduled refresh fails the keys already loaded keep
being used. One lock makes concurrent callers share a single fetch. Time checks use
the injected clock, which also drives the cache, so they can be tested without sleeping.

Error messages say what is wrong and what to do; they never contain the token, a
claim value from it, or key material.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from keel.contract import JwtSettings
from keel.errors import AuthError
from keel.identity.principal import ROLES, Principal, check_identifier

__all__ = ["MAX_TOKEN_CHARS", "REFETCH_INTERVAL_S", "JwtVerifier", "looks_like_jwt"]

log = logging.getLogger(__name__)

MAX_TOKEN_CHARS = 16 * 1024
"""Longer bearer tokens are refused as ``malformed_token`` before any parsing."""

REFETCH_INTERVAL_S = 30.0
"""Unknown ``kid`` values cause at most one JWKS refetch per this many seconds; failed loads wait as long."""

_MAX_JWKS_BYTES = 1024 * 1024
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_LIST_SEPARATORS = re.compile(r"[\s,]+")
_KNOWN_ALGORITHMS = frozenset(
    {"none", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    | {"ES256", "ES384", "ES512", "ES256K", "EdDSA", "Ed25519"}
)


def looks_like_jwt(credential: str) -> bool:
    """Whether ``credential`` has the shape of a compact JWT: three base64url segments joined by dots.

    The signature segment may be empty (an unsigned ``alg: none`` token) so that such
    a token reaches :meth:`JwtVerifier.verify` and is refused there with a clear code.
    A Keel API key (``keel_<id>_<secret>``) never matches.
    """
    return _JWT_SHAPE.fullmatch(credential) is not None


def _fail(code_detail: str, message: str) -> AuthError:
    return AuthError(message, code_detail=code_detail)


class _JwksUnavailable(Exception):
    """The JWKS could not be read or parsed; the message is for the operator's log."""


@dataclass(frozen=True, kw_only=True)
class _KeySet:
    """Verification keys from one JWKS: for each key, one prepared key per accepted algorithm."""

    by_kid: Mapping[str, Mapping[str, jwt.PyJWK]]
    only: Mapping[str, jwt.PyJWK] | None
    """The keys of the JWKS's single usable key, used for tokens without ``kid``; else ``None``."""
    loaded_at: float

    def find(self, kid: str | None) -> Mapping[str, jwt.PyJWK] | None:
        return self.only if kid is None else self.by_kid.get(kid)


def _parse_jwks(raw: bytes, algorithms: list[str], loaded_at: float) -> _KeySet:
    """Build the usable signing keys of a JWKS document; raises :class:`_JwksUnavailable`."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _JwksUnavailable(f"not JSON: {exc}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise _JwksUnavailable('not a JWK set: expected an object with a "keys" list')
    by_kid: dict[str, dict[str, jwt.PyJWK]] = {}
    usable: list[dict[str, jwt.PyJWK]] = []
    for entry in entries:
        prepared = _prepare_key(entry, algorithms)
        if not prepared:
            continue
        usable.append(prepared)
        kid = entry.get("kid")
        if isinstance(kid, str):
            for alg, key in prepared.items():
                by_kid.setdefault(kid, {}).setdefault(alg, key)
    if not usable:
        raise _JwksUnavailable(f"no usable public signing key for {', '.join(algorithms)}")
    return _KeySet(by_kid=by_kid, only=usable[0] if len(usable) == 1 else None, loaded_at=loaded_at)


def _prepare_key(entry: Any, algorithms: list[str]) -> dict[str, jwt.PyJWK]:
    """One JWK as a prepared key per accepted algorithm it can verify; empty if unusable."""
    if not isinstance(entry, dict) or entry.get("kty") == "oct" or "d" in entry:
        return {}  # symmetric and private keys are never used to verify
    if entry.get("use", "sig") != "sig":
        return {}
    declared = entry.get("alg")
    prepared: dict[str, jwt.PyJWK] = {}
    for alg in algorithms:
        if declared is not None and declared != alg:
            continue
        try:
            key = jwt.PyJWK(entry, algorithm=alg)
            key.Algorithm.prepare_key(key.key)  # e.g. a P-384 key cannot verify ES256
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue  # this key cannot verify this algorithm
        if key.Algorithm.check_key_length(key.key) is not None:
            log.warning("JWKS key %r is too short for %s and is ignored", entry.get("kid"), alg)
            continue
        prepared[alg] = key
    return prepared


class JwtVerifier:
    """Verifies bearer JWTs against a JWKS and maps their claims to a :class:`Principal`.

    Safe to call from several threads. ``project_root`` anchors a relative JWKS path;
    ``clock`` gives seconds since the epoch for token times and the JWKS cache.
    Call :meth:`close` (or use it as a context manager) to release the HTTP client.
    """

    def __init__(
        self,
        settings: JwtSettings,
        *,
        project_root: Path,
        http_timeout_s: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._algorithms: list[str] = list(dict.fromkeys(settings.algorithms))
        jwks = settings.jwks
        self._source: str | Path = jwks if jwks.startswith(("http://", "https://")) else project_root / jwks
        """An http(s) URL, or a file path."""
        self._timeout_s = http_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: _KeySet | None = None
        self._last_attempt: float | None = None
        """When the JWKS was last read, successfully or not."""
        self._last_refetch: float | None = None
        """When an unknown ``kid`` last caused a read."""
        self._client: httpx.Client | None = None
        self._closed = False

    def __enter__(self) -> JwtVerifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the HTTP client; keys already loaded stay usable, no further fetch happens."""
        with self._lock:
            self._closed = True
            if self._client is not None:
                self._client.close()
                self._client = None

    def warm_up(self) -> bool:
        """Load the JWKS now, so that a wrong file or URL shows at start-up; whether keys are loaded."""
        try:
            self._current_keys()
        except AuthError:
            return False
        return True

    @property
    def ready(self) -> bool:
        """Whether a JWKS has been loaded."""
        return self._keys is not None

    def verify(self, token: str) -> Principal:
        """Verify ``token`` and return its principal; raises :class:`AuthError` (401) otherwise."""
        if len(token) > MAX_TOKEN_CHARS:
            raise _fail("malformed_token", f"The bearer token is longer than {MAX_TOKEN_CHARS} characters.")
        if not looks_like_jwt(token):
            raise _fail("malformed_token", "The bearer token is not a JWT (three base64url segments).")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _fail("malformed_token", "The bearer token's header cannot be decoded.") from None
        alg = self._check_algorithm(header.get("alg"))
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _fail("malformed_token", "The bearer token's 'kid' header must be a string.")
        key = self._key_for(kid, alg)
        claims = self._decode(token, key, alg)
        self._check_times(claims)
        return self._principal(claims)

    # -- algorithm and key -------------------------------------------------------------

    def _check_algorithm(self, alg: Any) -> str:
        accepted = ", ".join(self._algorithms)
        if not isinstance(alg, str) or not alg:
            raise _fail("malformed_token", "The bearer token's header has no 'alg'.")
        if alg.lower() == "none" or alg.upper().startswith("HS") or alg not in self._algorithms:
            shown = f" '{alg}'" if alg in _KNOWN_ALGORITHMS else ""
            raise _fail(
                "unsupported_algorithm",
                f"The bearer token's algorithm{shown} is not accepted; it must be signed with one of: {accepted}.",
            )
        return alg

    def _key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        keys = self._current_keys()
        found = keys.find(kid)
        if found is None and kid is not None:
            keys = self._refetch_after(keys)
            found = keys.find(kid)
        if found is None:
            if kid is None:
                raise _fail(
                    "unknown_key_id",
                    "The bearer token has no 'kid' header and the identity provider publishes several keys.",
                )
            raise _fail(
                "unknown_key_id",
                "The bearer token is signed with a key the identity provider does not publish; get a new token.",
            )
        key = found.get(alg)
        if key is None:
            raise _fail("unsupported_algorithm", f"The bearer token's key cannot be used with algorithm '{alg}'.")
        return key

    def _current_keys(self) -> _KeySet:
        keys = self._keys
        now = self._clock()
        if keys is not None and now - keys.loaded_at < self._settings.jwks_cache_s:
            return keys
        with self._lock:
            keys = self._keys
            now = self._clock()
            if keys is not None and now - keys.loaded_at < self._settings.jwks_cache_s:
                return keys  # another thread refreshed while this one waited
            interval = min(REFETCH_INTERVAL_S, self._settings.jwks_cache_s)
            if self._last_attempt is None or now - self._last_attempt >= interval:
                try:
                    return self._load_locked(now)
                except _JwksUnavailable:
                    if keys is None:
                        raise _unavailable() from None
                    return keys  # keep verifying with the keys loaded before
            if keys is None:
                raise _unavailable()
            return keys

    def _refetch_after(self, seen: _KeySet) -> _KeySet:
        """Fetch the JWKS again for an unknown ``kid``, at most once per :data:`REFETCH_INTERVAL_S`."""
        with self._lock:
            keys = self._keys
            if keys is not None and keys is not seen:
                return keys  # another thread already refetched
            now = self._clock()
            if self._last_refetch is not None and now - self._last_refetch < REFETCH_INTERVAL_S:
                return seen
            self._last_refetch = now
            try:
                return self._load_locked(now)
            except _JwksUnavailable:
                raise _unavailable() from None

    def _load_locked(self, now: float) -> _KeySet:
        """Read and parse the JWKS; the caller holds the lock."""
        self._last_attempt = now
        source = self._source
        try:
            raw = _read_file(source) if isinstance(source, Path) else self._fetch_locked(source)
            keys = _parse_jwks(raw, self._algorithms, now)
        except _JwksUnavailable as exc:
            log.warning("cannot load the JWKS from %s: %s", source, exc)
            raise
        self._keys = keys
        log.info("loaded the JWKS from %s", source)
        return keys

    def _fetch_locked(self, url: str) -> bytes:
        if self._closed:
            raise _JwksUnavailable("the verifier is closed")
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout_s, follow_redirects=False)
        body = bytearray()
        try:
            with self._client.stream("GET", url, headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise _JwksUnavailable(f"HTTP {response.status_code}")
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > _MAX_JWKS_BYTES:
                        raise _JwksUnavailable(f"larger than {_MAX_JWKS_BYTES} bytes")
        except httpx.HTTPError as exc:
            raise _JwksUnavailable(f"{type(exc).__name__}: {exc}") from None
        return bytes(body)

    # -- token -------------------------------------------------------------------------

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        settings = self._settings
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=settings.audience,
                issuer=settings.issuer,
                # Times are checked by _check_times against the injected clock.
                options={
                    "require": ["exp", "iss", "aud"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise _fail("bad_signature", "The bearer token's signature does not verify.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _fail("missing_claim", f"The bearer token has no '{exc.claim}' claim.") from None
        except jwt.InvalidIssuerError:
            raise _fail(
                "wrong_issuer", f"The bearer token was not issued by the expected issuer '{settings.issuer}'."
            ) from None
        except jwt.InvalidAudienceError:
            raise _fail(
                "wrong_audience", f"The bearer token's audience ('aud') must include '{settings.audience}'."
            ) from None
        except jwt.InvalidAlgorithmError:
            raise _fail("unsupported_algorithm", "The bearer token's algorithm does not match its key.") from None
        except jwt.DecodeError:
            raise _fail("malformed_token", "The bearer token cannot be decoded.") from None
        except jwt.InvalidTokenError:
            raise _fail("invalid_claim", "The bearer token has an invalid registered claim.") from None
        except jwt.PyJWTError:
            raise _fail("bad_signature", "The bearer token cannot be verified with the published key.") from None

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        leeway = self._settings.leeway_s
        exp = _time_claim(claims, "exp")
        nbf = _time_claim(claims, "nbf")
        iat = _time_claim(claims, "iat")
        if exp is not None and exp <= now - leeway:
            raise _fail("token_expired", "The bearer token has expired; get a new one from the identity provider.")
        if nbf is not None and nbf > now + leeway:
            raise _fail("token_not_yet_valid", "The bearer token is not valid yet ('nbf'); check the clocks.")
        if iat is not None and iat > now + leeway:
            raise _fail("token_not_yet_valid", "The bearer token is issued in the future ('iat'); check the clocks.")

    # -- claims ------------------------------------------------------------------------

    def _principal(self, claims: dict[str, Any]) -> Principal:
        settings = self._settings
        subject = _identifier(claims, settings.subject_claim, "principal id")
        if settings.tenant_claim in claims:
            tenant = _identifier(claims, settings.tenant_claim, "tenant")
        elif settings.default_tenant is not None:
            tenant = settings.default_tenant
        else:
            raise _fail("missing_claim", f"The bearer token has no '{settings.tenant_claim}' claim (the tenant).")
        groups = _string_list(claims, settings.groups_claim)
        for group in groups:
            _check(settings.groups_claim, "group", group)
        if settings.roles_claim in claims:
            roles = [role for role in _string_list(claims, settings.roles_claim) if role in ROLES]
        else:
            roles = list(settings.default_roles)
        return Principal.of(id=subject, tenant=tenant, groups=groups, roles=roles, credential=f"jwt:{settings.issuer}")


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _JwksUnavailable(f"cannot read the file: {exc.strerror or exc}") from None


def _unavailable() -> AuthError:
    return _fail(
        "jwks_unavailable",
        "The identity provider's signing keys (JWKS) cannot be loaded, so bearer tokens cannot be "
        "verified right now; try again later or use an API key.",
    )


def _time_claim(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail("invalid_claim", f"The bearer token's '{name}' claim must be a number of seconds.")
    return float(value)


def _check(claim: str, kind: str, value: str) -> str:
    try:
        return check_identifier(kind, value)
    except ValueError:
        raise _fail(
            "invalid_claim",
            f"The bearer token's '{claim}' claim is not a valid {kind}: it must be 1-128 characters of "
            "letters, digits, '.', '_', '@' or '-', starting with a letter or digit.",
        ) from None


def _identifier(claims: dict[str, Any], claim: str, kind: str) -> str:
    value = claims.get(claim)
    if value is None:
        raise _fail("missing_claim", f"The bearer token has no '{claim}' claim (the {kind}).")
    if not isinstance(value, str):
        raise _fail("invalid_claim", f"The bearer token's '{claim}' claim (the {kind}) must be a string.")
    return _check(claim, kind, value)


def _string_list(claims: dict[str, Any], claim: str) -> list[str]:
    """A list claim: absent, a list of strings, or one string separated by spaces or commas."""
    value = claims.get(claim)
    if value is None:
        return []
    if isinstance(value, str):
        return [item for item in _LIST_SEPARATORS.split(value) if item]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise _fail("invalid_claim", f"The bearer token's '{claim}' claim must be a list of strings or one string.")
