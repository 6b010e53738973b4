"""One error envelope leaves the server for every failure, including unexpected ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from keel.contract import parse_contract
from keel.errors import NotReady
from keel.project import Project
from keel.runtime import Runtime
from keel.server import create_app
from keel.settings import Settings
from tests.support.database import project_database


class ExplodingPipeline:
    """Failure injection: a pipeline whose stage raises an unexpected error."""

    async def run(self, ctx: Any) -> Any:
        raise RuntimeError("secret internal detail /etc/passwd")


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    project = Project(
        root=tmp_path, data_dir=tmp_path / ".keel", contract=parse_contract(""), **project_database(tmp_path / ".keel")
    )
    runtime = Runtime(project)
    runtime.pipeline = ExplodingPipeline()  # type: ignore[assignment]
    app = create_app(Settings(project=tmp_path, max_body_bytes=100))
    app.state.runtime = runtime  # lifespan not run: nothing is warmed up
    return TestClient(app, raise_server_exceptions=False)


def test_unexpected_error_is_500_with_request_id_and_no_internals(client: TestClient) -> None:
    response = client.post("/v1/ask", json={"question": "hi"}, headers={"X-Request-ID": "r-500"})
    assert response.status_code == 500
    body = response.json()
    assert body == {
        "error": {
            "code": "internal_error",
            "message": "Internal error; quote request id r-500 when reporting it.",
            "request_id": "r-500",
        }
    }
    assert "passwd" not in response.text and "Traceback" not in response.text


def test_small_body_limit_applies(client: TestClient) -> None:
    response = client.post("/v1/ask", json={"question": "x" * 200})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


def test_service_not_started_is_503_not_ready(tmp_path: Path) -> None:
    app = create_app(Settings(project=tmp_path))
    response = TestClient(app, raise_server_exceptions=False).post("/v1/ask", json={"question": "hi"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == NotReady.code


def test_openapi_schema_documents_the_api(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/v1/ask", "/v1/chat/completions", "/v1/models", "/v1/traces/{request_id}", "/readyz"} <= set(
        schema["paths"]
    )
    assert "AskResponse" in schema["components"]["schemas"]
    assert "ErrorEnvelope" in schema["components"]["schemas"]
