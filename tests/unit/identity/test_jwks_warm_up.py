"""The JWKS loads at start-up, so a wrong file or URL shows at once instead of as 401s later."""

from __future__ import annotations

from pathlib import Path

from keel.contract import JwtSettings
from keel.identity import Authenticator, KeyStore
from tests.support.database import database_at
from tests.support.jwks import AUDIENCE, ISSUER, rsa_key, write_jwks


def test_a_good_jwks_loads_at_warm_up_and_a_missing_one_is_reported(tmp_path: Path) -> None:
    write_jwks(tmp_path / "jwks.json", rsa_key("k1"))
    db = database_at(tmp_path / "k.db")
    try:
        good = Authenticator(
            KeyStore(db), jwt=JwtSettings(jwks="jwks.json", issuer=ISSUER, audience=AUDIENCE), project_root=tmp_path
        )
        assert good.jwks_ready is False
        assert good.warm_up() is True and good.jwks_ready is True
        good.close()
        missing = Authenticator(
            KeyStore(db), jwt=JwtSettings(jwks="nope.json", issuer=ISSUER, audience=AUDIENCE), project_root=tmp_path
        )
        assert missing.warm_up() is False and missing.jwks_ready is False
        missing.close()
        plain = Authenticator(KeyStore(db), jwt=None, project_root=tmp_path)
        assert plain.warm_up() is None and plain.jwks_ready is None
    finally:
        db.close()
