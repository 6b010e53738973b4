"""Bearer JWTs: real signatures, a real JWKS file and a real JWKS endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from keel.contract import JwtSettings
from keel.errors import AuthError
from keel.identity.jwt_bearer import MAX_TOKEN_CHARS, REFETCH_INTERVAL_S, JwtVerifier, looks_like_jwt
from keel.identity.principal import Principal
from tests.support.jwks import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    SigningKey,
    claims,
    ec_key,
    hmac_token,
    jwks,
    rsa_key,
    unsigned_token,
    write_jwks,
)

NOW = 1_800_000_000.0

MakeVerifier = Callable[..., JwtVerifier]


class FakeClock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def rsa() -> SigningKey:
    return rsa_key("rsa-1")


@pytest.fixture(scope="module")
def ec() -> SigningKey:
    return ec_key("ec-1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def settings(jwks_source: str, **overrides: Any) -> JwtSettings:
    return JwtSettings(jwks=jwks_source, issuer=ISSUER, audience=AUDIENCE, **overrides)


@pytest.fixture
def make_file_verifier(tmp_path: Path, rsa: SigningKey, ec: SigningKey, clock: FakeClock) -> Iterator[MakeVerifier]:
    """Verifiers over a JWKS file given relative to the project root."""
    write_jwks(tmp_path / "jwks.json", rsa, ec)
    made: list[JwtVerifier] = []

    def make(**overrides: Any) -> JwtVerifier:
        verifier = JwtVerifier(settings("jwks.json", **overrides), project_root=tmp_path, clock=clock)
        made.append(verifier)
        return verifier

    yield make
    for verifier in made:
        verifier.close()


@pytest.fixture
def verifier(make_file_verifier: MakeVerifier) -> JwtVerifier:
    return make_file_verifier()


@pytest.fixture
def server(rsa: SigningKey, ec: SigningKey) -> Iterator[JwksServer]:
    with JwksServer(jwks(rsa, ec)) as running:
        yield running


@pytest.fixture
def url_verifier(server: JwksServer, tmp_path: Path, clock: FakeClock) -> Iterator[JwtVerifier]:
    with JwtVerifier(settings(server.url), project_root=tmp_path, http_timeout_s=2.0, clock=clock) as made:
        yield made


def rejects(verifier: JwtVerifier, token: str, code_detail: str) -> AuthError:
    """Assert that ``token`` is refused with ``code_detail`` and a message that does not echo it."""
    with pytest.raises(AuthError) as caught:
        verifier.verify(token)
    error = caught.value
    assert error.details.get("code_detail") == code_detail, error.message
    assert error.http_status == 401
    assert error.code == "unauthenticated"
    if token:
        assert token not in error.message
    for segment in token.split("."):
        if len(segment) >= 8:
            assert segment not in error.message
    return error


# -- valid tokens ------------------------------------------------------------------------


def test_rs256_token_maps_to_principal_with_everyone(verifier: JwtVerifier, rsa: SigningKey) -> None:
    token = rsa.sign(claims(NOW, groups=["hr", "finance"], roles=["user", "reviewer"]))
    assert verifier.verify(token) == Principal(
        id="hana",
        tenant="acme",
        groups=frozenset({"hr", "finance", "everyone"}),
        roles=frozenset({"user", "reviewer"}),
        credential="jwt:https://idp.test",
    )


def test_es256_token_from_a_jwks_url(url_verifier: JwtVerifier, server: JwksServer, ec: SigningKey) -> None:
    principal = url_verifier.verify(ec.sign(claims(NOW, sub="app.payroll", roles=["app"])))
    assert (principal.id, principal.tenant, principal.roles) == ("app.payroll", "acme", {"app"})
    assert principal.groups == {"hr", "everyone"}
    url_verifier.verify(ec.sign(claims(NOW)))
    assert server.fetches == 1  # cached


def test_absolute_jwks_path_and_keys_without_alg(tmp_path: Path, rsa: SigningKey, clock: FakeClock) -> None:
    path = tmp_path / "elsewhere.json"
    path.write_text(json.dumps(jwks(rsa, with_alg=False)), encoding="utf-8")
    with JwtVerifier(settings(str(path)), project_root=tmp_path / "project", clock=clock) as made:
        assert made.verify(rsa.sign(claims(NOW))).id == "hana"


def test_audience_may_be_a_list_in_the_token(verifier: JwtVerifier, rsa: SigningKey) -> None:
    assert verifier.verify(rsa.sign(claims(NOW, aud=["other-api", AUDIENCE]))).id == "hana"


def test_token_without_kid_uses_the_only_key(tmp_path: Path, rsa: SigningKey, clock: FakeClock) -> None:
    write_jwks(tmp_path / "one.json", rsa)
    with JwtVerifier(settings("one.json"), project_root=tmp_path, clock=clock) as made:
        assert made.verify(rsa.sign(claims(NOW), with_kid=False)).id == "hana"


def test_token_without_kid_is_refused_when_there_are_several_keys(verifier: JwtVerifier, rsa: SigningKey) -> None:
    rejects(verifier, rsa.sign(claims(NOW), with_kid=False), "unknown_key_id")


# -- times -------------------------------------------------------------------------------


def test_expired_token(verifier: JwtVerifier, rsa: SigningKey) -> None:
    error = rejects(verifier, rsa.sign(claims(NOW - 1000, ttl_s=900)), "token_expired")
    assert "expired" in error.message


def test_expired_within_leeway_is_accepted(verifier: JwtVerifier, rsa: SigningKey) -> None:
    assert verifier.verify(rsa.sign(claims(NOW - 930, ttl_s=900))).id == "hana"  # 30 s past, leeway 60 s


def test_leeway_comes_from_the_settings(make_file_verifier: MakeVerifier, rsa: SigningKey) -> None:
    rejects(make_file_verifier(leeway_s=0), rsa.sign(claims(NOW - 930, ttl_s=900)), "token_expired")


def test_not_yet_valid_token(verifier: JwtVerifier, rsa: SigningKey) -> None:
    rejects(verifier, rsa.sign(claims(NOW, nbf=int(NOW) + 600)), "token_not_yet_valid")
    rejects(verifier, rsa.sign(claims(NOW + 600)), "token_not_yet_valid")  # iat in the future
    assert verifier.verify(rsa.sign(claims(NOW, nbf=int(NOW) + 30))).id == "hana"  # within leeway


def test_exp_is_required_and_must_be_a_number(verifier: JwtVerifier, rsa: SigningKey) -> None:
    error = rejects(verifier, rsa.sign(claims(NOW, exp=None)), "missing_claim")
    assert "'exp'" in error.message
    rejects(verifier, rsa.sign(claims(NOW, exp="tomorrow")), "invalid_claim")


# -- issuer, audience, signature ---------------------------------------------------------


def test_wrong_audience(verifier: JwtVerifier, rsa: SigningKey) -> None:
    error = rejects(verifier, rsa.sign(claims(NOW, aud="other-api")), "wrong_audience")
    assert AUDIENCE in error.message


def test_wrong_issuer(verifier: JwtVerifier, rsa: SigningKey) -> None:
    rejects(verifier, rsa.sign(claims(NOW, iss="https://evil.test")), "wrong_issuer")
    rejects(verifier, rsa.sign(claims(NOW, iss=None)), "missing_claim")


def test_bad_signature_from_another_key_with_the_same_kid(verifier: JwtVerifier, rsa: SigningKey) -> None:
    impostor = rsa_key(rsa.kid)
    rejects(verifier, impostor.sign(claims(NOW)), "bad_signature")


def test_tampered_payload_fails_the_signature(verifier: JwtVerifier, ec: SigningKey) -> None:
    header, _, signature = ec.sign(claims(NOW)).split(".")
    forged = rsa_key().sign(claims(NOW, sub="root", roles=["admin"])).split(".")[1]
    rejects(verifier, f"{header}.{forged}.{signature}", "bad_signature")


# -- algorithms --------------------------------------------------------------------------


def test_alg_none_is_refused_before_any_key_lookup(
    url_verifier: JwtVerifier, server: JwksServer, rsa: SigningKey
) -> None:
    token = unsigned_token(claims(NOW, roles=["admin"]), kid=rsa.kid)
    assert looks_like_jwt(token)
    rejects(url_verifier, token, "unsupported_algorithm")
    assert server.fetches == 0


def test_hs256_with_the_public_key_as_secret_is_refused(
    url_verifier: JwtVerifier, server: JwksServer, rsa: SigningKey
) -> None:
    for alg in ("HS256", "HS512"):
        token = hmac_token(claims(NOW, roles=["admin"]), rsa.public_pem(), alg=alg, kid=rsa.kid)
        rejects(url_verifier, token, "unsupported_algorithm")
    assert server.fetches == 0


def test_algorithm_outside_the_allow_list(verifier: JwtVerifier, rsa: SigningKey) -> None:
    rejects(verifier, rsa.sign(claims(NOW), alg="RS384"), "unsupported_algorithm")


def test_key_of_another_type_than_the_algorithm(verifier: JwtVerifier, rsa: SigningKey, ec: SigningKey) -> None:
    # An RS256 token naming the EC key: the EC key never verifies RS256.
    rejects(verifier, rsa.sign(claims(NOW), kid=ec.kid), "unsupported_algorithm")


# -- keys and the JWKS -------------------------------------------------------------------


def test_unknown_kid(verifier: JwtVerifier) -> None:
    rejects(verifier, rsa_key("stranger").sign(claims(NOW)), "unknown_key_id")


def test_key_rotation_is_picked_up_with_one_refetch(
    url_verifier: JwtVerifier, server: JwksServer, rsa: SigningKey, ec: SigningKey
) -> None:
    url_verifier.verify(rsa.sign(claims(NOW)))
    assert server.fetches == 1
    rotated = rsa_key("rsa-2")
    server.document = jwks(rotated, ec)
    assert url_verifier.verify(rotated.sign(claims(NOW))).id == "hana"
    assert server.fetches == 2
    url_verifier.verify(rotated.sign(claims(NOW)))
    assert server.fetches == 2


def test_unknown_kids_refetch_at_most_once_per_window(
    url_verifier: JwtVerifier, server: JwksServer, rsa: SigningKey, clock: FakeClock
) -> None:
    url_verifier.verify(rsa.sign(claims(NOW)))
    for index in range(25):
        rejects(url_verifier, rsa.sign(claims(NOW), kid=f"random-{index}"), "unknown_key_id")
    assert server.fetches == 2  # the first load and one refetch
    clock.now += REFETCH_INTERVAL_S + 1
    for index in range(5):
        rejects(url_verifier, rsa.sign(claims(clock.now), kid=f"again-{index}"), "unknown_key_id")
    assert server.fetches == 3


def test_jwks_is_refetched_after_the_cache_time(
    server: JwksServer, rsa: SigningKey, tmp_path: Path, clock: FakeClock
) -> None:
    with JwtVerifier(settings(server.url, jwks_cache_s=120), project_root=tmp_path, clock=clock) as made:
        made.verify(rsa.sign(claims(NOW)))
        clock.now += 100
        made.verify(rsa.sign(claims(clock.now)))
        assert server.fetches == 1
        clock.now += 30
        made.verify(rsa.sign(claims(clock.now)))
        assert server.fetches == 2


def test_loaded_keys_survive_a_failed_refresh(
    server: JwksServer, rsa: SigningKey, tmp_path: Path, clock: FakeClock
) -> None:
    with JwtVerifier(settings(server.url, jwks_cache_s=60), project_root=tmp_path, clock=clock) as made:
        made.verify(rsa.sign(claims(NOW)))
        server.status = 503
        clock.now += 61
        assert made.verify(rsa.sign(claims(clock.now))).id == "hana"
        assert server.fetches == 2


def test_jwks_url_down_is_a_401_not_a_crash(
    server: JwksServer, rsa: SigningKey, tmp_path: Path, clock: FakeClock
) -> None:
    url = server.url
    server.stop()
    with JwtVerifier(settings(url), project_root=tmp_path, http_timeout_s=1.0, clock=clock) as made:
        error = rejects(made, rsa.sign(claims(NOW)), "jwks_unavailable")
    assert url not in error.message


def test_jwks_endpoint_error_and_failed_loads_are_throttled(
    url_verifier: JwtVerifier, server: JwksServer, rsa: SigningKey, clock: FakeClock
) -> None:
    server.status = 500
    for _ in range(5):
        rejects(url_verifier, rsa.sign(claims(NOW)), "jwks_unavailable")
    assert server.fetches == 1
    server.status = 200
    clock.now += REFETCH_INTERVAL_S
    assert url_verifier.verify(rsa.sign(claims(clock.now))).id == "hana"
    assert server.fetches == 2


@pytest.mark.parametrize(
    "content", ["", "not json", '{"keys": "nope"}', '{"keys": []}', '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}']
)
def test_unusable_jwks_file(tmp_path: Path, rsa: SigningKey, clock: FakeClock, content: str) -> None:
    (tmp_path / "jwks.json").write_text(content, encoding="utf-8")
    with JwtVerifier(settings("jwks.json"), project_root=tmp_path, clock=clock) as made:
        rejects(made, rsa.sign(claims(NOW)), "jwks_unavailable")


def test_missing_jwks_file(tmp_path: Path, rsa: SigningKey, clock: FakeClock) -> None:
    with JwtVerifier(settings("missing.json"), project_root=tmp_path, clock=clock) as made:
        rejects(made, rsa.sign(claims(NOW)), "jwks_unavailable")


def test_concurrent_cold_start_fetches_once(url_verifier: JwtVerifier, server: JwksServer, ec: SigningKey) -> None:
    tokens = [ec.sign(claims(NOW, sub=f"user{index}")) for index in range(8)]
    barrier = threading.Barrier(len(tokens))

    def verify(token: str) -> str:
        barrier.wait(timeout=10)  # all threads start on a cold cache together
        return url_verifier.verify(token).id

    with ThreadPoolExecutor(max_workers=len(tokens)) as pool:
        ids = list(pool.map(verify, tokens))
    assert ids == [f"user{index}" for index in range(8)]
    assert server.fetches == 1


# -- shape -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c.d",
        "eyJhbGciOiJSUzI1NiJ9.e30",
        "!!!.???.###",
        "bm90IGpzb24.eyJzdWIiOiJoYW5hIn0.c2ln",  # header is not JSON
        "WyJhbGciXQ.eyJzdWIiOiJoYW5hIn0.c2ln",  # header is a list
        "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJoYW5hIn0.c2ln",  # no alg
    ],
)
def test_garbage_is_malformed(verifier: JwtVerifier, token: str) -> None:
    rejects(verifier, token, "malformed_token")


def test_overlong_token_is_malformed(verifier: JwtVerifier, rsa: SigningKey) -> None:
    token = rsa.sign(claims(NOW, padding="x" * MAX_TOKEN_CHARS))
    error = rejects(verifier, token, "malformed_token")
    assert str(MAX_TOKEN_CHARS) in error.message


def test_looks_like_jwt(rsa: SigningKey) -> None:
    assert looks_like_jwt(rsa.sign(claims(NOW)))
    assert not looks_like_jwt("keel_0123456789ab_s3cr3t-Value_here")
    assert not looks_like_jwt("a.b")
    assert not looks_like_jwt("a b.c.d")


# -- claims ------------------------------------------------------------------------------


def test_missing_tenant_without_a_default(verifier: JwtVerifier, rsa: SigningKey) -> None:
    error = rejects(verifier, rsa.sign(claims(NOW, tenant=None)), "missing_claim")
    assert "'tenant'" in error.message


def test_missing_tenant_with_a_default(make_file_verifier: MakeVerifier, rsa: SigningKey) -> None:
    made = make_file_verifier(default_tenant="acme")
    assert made.verify(rsa.sign(claims(NOW, tenant=None))).tenant == "acme"
    assert made.verify(rsa.sign(claims(NOW, tenant="globex"))).tenant == "globex"


def test_claim_names_come_from_the_settings(make_file_verifier: MakeVerifier, rsa: SigningKey) -> None:
    made = make_file_verifier(
        subject_claim="email", tenant_claim="org", groups_claim="grp", roles_claim="https://keel.test/roles"
    )
    payload = claims(NOW, email="hana@acme.test", org="acme", grp=["hr"], **{"https://keel.test/roles": ["admin"]})
    principal = made.verify(rsa.sign(payload))
    assert (principal.id, principal.tenant, principal.groups, principal.roles) == (
        "hana@acme.test",
        "acme",
        {"hr", "everyone"},
        {"admin"},
    )


def test_groups_as_a_string(verifier: JwtVerifier, rsa: SigningKey) -> None:
    principal = verifier.verify(rsa.sign(claims(NOW, groups="hr, finance legal")))
    assert principal.groups == {"hr", "finance", "legal", "everyone"}


def test_absent_groups_leave_everyone(verifier: JwtVerifier, rsa: SigningKey) -> None:
    assert verifier.verify(rsa.sign(claims(NOW, groups=None))).groups == {"everyone"}


def test_unknown_roles_are_dropped(verifier: JwtVerifier, rsa: SigningKey) -> None:
    principal = verifier.verify(rsa.sign(claims(NOW, roles=["admin", "superuser", "offline_access"])))
    assert principal.roles == {"admin"}


def test_default_roles_when_the_claim_is_absent(make_file_verifier: MakeVerifier, rsa: SigningKey) -> None:
    made = make_file_verifier(default_roles=["reviewer"])
    assert made.verify(rsa.sign(claims(NOW, roles=None))).roles == {"reviewer"}


@pytest.mark.parametrize(
    ("overrides", "code_detail"),
    [
        ({"sub": None}, "missing_claim"),
        ({"sub": "not valid!"}, "invalid_claim"),
        ({"sub": 42}, "invalid_claim"),
        ({"tenant": "../etc"}, "invalid_claim"),
        ({"groups": ["hr", "bad group"]}, "invalid_claim"),
        ({"groups": {"hr": True}}, "invalid_claim"),
        ({"roles": [1, 2]}, "invalid_claim"),
        ({"nbf": "soon"}, "invalid_claim"),
    ],
)
def test_invalid_claims(verifier: JwtVerifier, rsa: SigningKey, overrides: dict[str, Any], code_detail: str) -> None:
    error = rejects(verifier, rsa.sign(claims(NOW, **overrides)), code_detail)
    for value in overrides.values():
        if isinstance(value, str):
            assert value not in error.message


def test_closed_verifier_keeps_loaded_keys_but_fetches_no_more(
    server: JwksServer, rsa: SigningKey, tmp_path: Path, clock: FakeClock
) -> None:
    made = JwtVerifier(settings(server.url), project_root=tmp_path, clock=clock)
    made.verify(rsa.sign(claims(NOW)))
    made.close()
    made.close()
    assert made.verify(rsa.sign(claims(NOW))).id == "hana"
    clock.now += REFETCH_INTERVAL_S + 1
    rejects(made, rsa_key("new").sign(claims(clock.now)), "jwks_unavailable")
    assert server.fetches == 1
