"""Keys, JWK sets and bearer tokens for tests, with real cryptography.

* :func:`rsa_key` and :func:`ec_key` make signing keys; :meth:`SigningKey.sign` signs claims;
* :func:`jwks` builds a JWK set and :func:`write_jwks` writes one to a file;
* :class:`JwksServer` serves a JWK set over HTTP on 127.0.0.1 from a background thread,
  counting fetches, and can be switched to fail or stopped;
* :func:`claims` gives a valid claim set; :func:`unsigned_token` and
  :func:`hmac_token` hand-build the tokens of algorithm-confusion attacks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://idp.test"
AUDIENCE = "keel-api"


@dataclass(frozen=True)
class SigningKey:
    """A private key with its ``kid`` and algorithm; publishes only its public half."""

    kid: str
    alg: str
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    def public_jwk(self, *, with_alg: bool = True) -> dict[str, Any]:
        """The public JWK, with ``kid``, ``use`` and (optionally) ``alg``."""
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk: dict[str, Any] = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig"})
        if with_alg:
            jwk["alg"] = self.alg
        return jwk

    def public_pem(self) -> bytes:
        """The public key as PEM, as an attacker could download it."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(
        self, payload: dict[str, Any], *, kid: str | None = None, with_kid: bool = True, alg: str | None = None
    ) -> str:
        """Sign ``payload``; ``kid`` overrides the header's key id, ``with_kid=False`` leaves it out."""
        headers = {"kid": kid or self.kid} if with_kid else None
        return jwt.encode(payload, self.private_key, algorithm=alg or self.alg, headers=headers)


def rsa_key(kid: str = "rsa-1", *, alg: str = "RS256") -> SigningKey:
    """A fresh 2048-bit RSA key."""
    return SigningKey(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str = "ec-1", *, alg: str = "ES256") -> SigningKey:
    """A fresh P-256 key (P-384 for ``ES384``)."""
    curve: ec.EllipticCurve = ec.SECP384R1() if alg == "ES384" else ec.SECP256R1()
    return SigningKey(kid, alg, ec.generate_private_key(curve))


def jwks(*keys: SigningKey, with_alg: bool = True) -> dict[str, Any]:
    """A JWK set of the public halves of ``keys``."""
    return {"keys": [key.public_jwk(with_alg=with_alg) for key in keys]}


def write_jwks(path: Path, *keys: SigningKey) -> Path:
    """Write the JWK set of ``keys`` to ``path`` and return it."""
    path.write_text(json.dumps(jwks(*keys)), encoding="utf-8")
    return path


def claims(now: float | None = None, *, ttl_s: float = 300, **overrides: Any) -> dict[str, Any]:
    """A valid claim set issued at ``now``; an override set to ``None`` removes that claim."""
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "hana",
        "tenant": "acme",
        "groups": ["hr"],
        "roles": ["user"],
        "iat": issued,
        "exp": issued + int(ttl_s),
    }
    payload.update(overrides)
    return {name: value for name, value in payload.items() if value is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segments(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"


def unsigned_token(payload: dict[str, Any], *, kid: str | None = None) -> str:
    """An ``alg: none`` token with an empty signature."""
    header: dict[str, Any] = {"alg": "none", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    return _segments(header, payload) + "."


def hmac_token(payload: dict[str, Any], secret: bytes, *, alg: str = "HS256", kid: str | None = None) -> str:
    """A token MACed with ``secret`` (e.g. a public key's PEM: the algorithm-confusion attack)."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signing_input = _segments(header, payload)
    signature = hmac.new(secret, signing_input.encode("ascii"), digest).digest()
    return f"{signing_input}.{_b64(signature)}"


@dataclass
class _ServerState:
    document: dict[str, Any]
    status: int = 200
    fetches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 in a background thread.

    Set :attr:`document` to rotate keys and :attr:`status` to make it fail;
    :attr:`fetches` counts the GET requests served. Use as a context manager or
    call :meth:`stop`.
    """

    path = "/.well-known/jwks.json"

    def __init__(self, document: dict[str, Any]) -> None:
        self._state = _ServerState(document=document)
        state = self._state

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with state.lock:
                    state.fetches += 1
                    status, body = state.status, json.dumps(state.document).encode()
                if self.path != JwksServer.path:
                    status, body = 404, b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="jwks-server", daemon=True)
        self._thread.start()
        self._stopped = False

    @property
    def url(self) -> str:
        """The JWKS URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    @property
    def document(self) -> dict[str, Any]:
        """The JWK set served."""
        with self._state.lock:
            return self._state.document

    @document.setter
    def document(self, value: dict[str, Any]) -> None:
        with self._state.lock:
            self._state.document = value

    @property
    def status(self) -> int:
        """The HTTP status answered (200 unless set)."""
        return self._state.status

    @status.setter
    def status(self, value: int) -> None:
        with self._state.lock:
            self._state.status = value

    @property
    def fetches(self) -> int:
        """How many GET requests were served."""
        with self._state.lock:
            return self._state.fetches

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> JwksServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def serve_jwks(*keys: SigningKey) -> Iterator[JwksServer]:
    """Serve the JWK set of ``keys`` for the duration of the block."""
    with JwksServer(jwks(*keys)) as server:
        yield server
