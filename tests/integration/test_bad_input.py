"""Every client mistake gets a 4xx with a stable code and the request id; never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import SampleProject, auth


def _error(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "request_id"}
    assert error["message"] and "Traceback" not in error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error


@pytest.fixture(scope="module")
def key(sample_project: SampleProject) -> str:
    return sample_project.keys["sam.staff"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "malformed_json"),
        (b'{"question": 42}', "application/json", 400, "invalid_request"),
        (b'{"question": ["a"]}', "application/json", 400, "invalid_request"),
        (b"{}", "application/json", 400, "invalid_request"),
        (b'{"question": "hi", "top_k": 0}', "application/json", 400, "invalid_request"),
        (b'{"question": "hi", "top_k": "many"}', "application/json", 400, "invalid_request"),
        (b'{"question": "hi", "surprise": 1}', "application/json", 400, "invalid_request"),
        (b'"just a string"', "application/json", 400, "invalid_request"),
        (b'{"question": "   "}', "application/json", 400, "question_empty"),
        (b'{"question": "\\u0000\\u200b"}', "application/json", 400, "question_empty"),
        (b'{"question": "hi", "app": "nope"}', "application/json", 400, "unknown_app"),
        (b"question=hi", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
def test_bad_ask_bodies(client: httpx.Client, key: str, body: bytes, content_type: str, status: int, code: str) -> None:
    response = client.post("/v1/ask", content=body, headers={**auth(key), "Content-Type": content_type})
    assert response.status_code == status, response.text
    assert _error(response)["code"] == code


def test_oversized_question_is_rejected_with_its_limit(client: httpx.Client, key: str) -> None:
    response = client.post("/v1/ask", json={"question": "why " * 600}, headers=auth(key))
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "question_too_long"
    assert "2000" in error["message"]


def test_body_over_the_size_limit_is_413(client: httpx.Client, key: str) -> None:
    response = client.post(
        "/v1/ask",
        content=b'{"question": "' + b"a" * 1_100_000 + b'"}',
        headers={**auth(key), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert _error(response)["code"] == "payload_too_large"


def test_body_over_the_limit_without_content_length_is_413(client: httpx.Client, key: str) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"question": "'
        for _ in range(40):
            yield b"a" * 50_000
        yield b'"}'

    response = client.post("/v1/ask", content=chunks(), headers={**auth(key), "Content-Type": "application/json"})
    assert response.status_code == 413
    assert _error(response)["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("headers", "message_part"),
    [
        ({}, "Missing credential"),
        ({"Authorization": "Bearer keel_000000000000_wrong"}, "not valid"),
        ({"Authorization": "Bearer nonsense"}, "not valid"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Bearer"),
    ],
)
def test_missing_or_bad_key_is_401(client: httpx.Client, headers: dict[str, str], message_part: str) -> None:
    response = client.post("/v1/ask", json={"question": "How many days of leave?"}, headers=headers)
    assert response.status_code == 401
    error = _error(response)
    assert error["code"] == "unauthenticated"
    assert message_part in error["message"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_request_id_is_honoured_and_echoed(client: httpx.Client, key: str) -> None:
    response = client.post("/v1/ask", json={"question": ""}, headers={**auth(key), "X-Request-ID": "client-abc.123"})
    assert response.headers["x-request-id"] == "client-abc.123"
    assert _error(response)["request_id"] == "client-abc.123"


def test_invalid_request_id_is_rejected(client: httpx.Client, key: str) -> None:
    response = client.post(
        "/v1/ask", json={"question": "hi"}, headers={**auth(key), "X-Request-ID": "bad id with spaces"}
    )
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_request_id"


def test_unknown_route_and_wrong_method_use_the_envelope(client: httpx.Client) -> None:
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404 and _error(missing)["code"] == "not_found"
    wrong = client.get("/v1/ask")
    assert wrong.status_code == 405 and _error(wrong)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"model": "default", "messages": []}, "invalid_request"),
        ({"model": "default"}, "invalid_request"),
        ({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}, "unknown_model"),
        ({"model": "default", "messages": [{"role": "assistant", "content": "hi"}]}, "invalid_parameter"),
        (
            {
                "model": "default",
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            },
            "invalid_parameter",
        ),
        ({"model": "default", "messages": [{"role": "wizard", "content": "hi"}]}, "invalid_request"),
        ({"model": "default", "n": 3, "messages": [{"role": "user", "content": "hi"}]}, "invalid_request"),
        ({"model": "default", "app": "nope", "messages": [{"role": "user", "content": "hi"}]}, "unknown_app"),
        ({"model": "default", "messages": [{"role": "user", "content": ""}]}, "question_empty"),
    ],
)
def test_bad_chat_bodies(client: httpx.Client, key: str, body: dict[str, object], code: str) -> None:
    response = client.post("/v1/chat/completions", json=body, headers=auth(key))
    assert 400 <= response.status_code < 500, response.text
    assert _error(response)["code"] == code


def test_bad_input_when_streaming_is_an_http_error_not_a_stream(client: httpx.Client) -> None:
    body = {"model": "default", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    response = client.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer keel_x_y"})
    assert response.status_code == 401
    assert _error(response)["code"] == "unauthenticated"
