"""Property-based fuzzing of the HTTP API from its own OpenAPI schema, against a real server:
no 5xx, and every documented response matches its schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.integration.conftest import RunningServer, auth, small_project, start_server, stop_server

EXAMPLES = 25
"""Examples per operation and mode: enough to find crashes, bounded for CI."""

CONTRACT = """
models:
  - {name: extractive, provider: extractive, tier: extractive}
  - {name: smollm2-135m, max_output_tokens: 12}
apps:
  - {name: default, pins: {model: extractive}}
sources:
  - {name: all-staff, path: all-staff, groups: [everyone]}
"""


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[tuple[RunningServer, str]]:
    from keel.identity import KeyStore
    from tests.support.database import database_at

    root = tmp_path_factory.mktemp("fuzz") / "proj"
    small_project(root, embedder, folders=["all-staff"], contract=CONTRACT)
    db = database_at(root / ".keel" / "keel.db")
    key = KeyStore(db).create(principal_id="fuzz", tenant="acme", groups=[], roles=["admin"]).secret
    db.close()
    server = start_server(root, root / "server.log")
    yield server, key
    stop_server(server)


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_request_gets_a_server_error_or_an_undocumented_body(
    fuzz_server: tuple[RunningServer, str], mode: str
) -> None:
    server, key = fuzz_server
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, "the schema lost its operations"
    exercised = []
    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=generation))
        def exercise(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=server.url,
                headers=auth(key),
                checks=[not_a_server_error, response_schema_conformance],
                timeout=60,
            )

        try:
            exercise()
        except Unsatisfiable:
            # No invalid request exists for an operation without parameters or body (GET /healthz).
            assert mode == "negative", operation.path
            continue
        exercised.append(f"{operation.method.upper()} {operation.path}")
    assert "POST /v1/ask" in exercised and "POST /v1/chat/completions" in exercised
