"""One error envelope for every error that leaves the server.

``{"error": {"code": ..., "message": ..., "request_id": ...}}`` with a stable code;
unknown exceptions become ``500 internal_error`` carrying only the request id.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from keel.errors import InternalError, InvalidRequest, ServiceError, UnsupportedMediaType

__all__ = [
    "error_response",
    "install_error_handlers",
    "request_id_of",
    "service_error_response",
    "unexpected_error_response",
]

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "not_ready",
}


def request_id_of(request: Request) -> str:
    """The request id set by the request-id middleware."""
    return str(getattr(request.state, "request_id", "") or request.headers.get("x-request-id", ""))


def error_response(
    status: int, code: str, message: str, request_id: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The error envelope."""
    body = {"error": {"code": code, "message": message, "request_id": request_id}}
    out_headers = {"X-Request-ID": request_id, **(headers or {})} if request_id else dict(headers or {})
    return JSONResponse(body, status_code=status, headers=out_headers)


def service_error_response(request: Request, exc: ServiceError) -> JSONResponse:
    """The envelope of a :class:`~keel.errors.ServiceError` (logged when it is the service's fault)."""
    if exc.http_status >= 500:
        log.warning("request %s failed: %s %s", request_id_of(request), exc.code, exc.message)
    return error_response(exc.http_status, exc.code, exc.message, request_id_of(request), exc.headers)


def unexpected_error_response(request: Request, exc: BaseException) -> JSONResponse:
    """``500 internal_error`` with only the request id; the exception is logged with its traceback."""
    rid = request_id_of(request)
    log.error("unexpected error in request %s", rid, exc_info=exc)
    return error_response(500, InternalError.code, f"Internal error; quote request id {rid} when reporting it.", rid)


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to the envelope."""

    async def service_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        return service_error_response(request, exc)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        rid = request_id_of(request)
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "malformed_json", "The request body is not valid JSON.", rid)
        content_type = request.headers.get("content-type", "")
        if content_type and "json" not in content_type.lower():
            err = UnsupportedMediaType(
                f"Send the body as JSON with 'Content-Type: application/json', not {content_type.split(';')[0]!r}."
            )
            return error_response(err.http_status, err.code, err.message, rid)
        message = "; ".join(_describe(e) for e in errors[:5])
        return error_response(400, InvalidRequest.code, message or "The request is not valid.", rid)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc.__cause__, ServiceError):
            return await service_error(request, exc.__cause__)
        code = _HTTP_CODES.get(exc.status_code, "invalid_request" if exc.status_code < 500 else "internal_error")
        message = {
            404: "No such route. See /docs for the API.",
            405: "This route does not accept that HTTP method.",
        }.get(exc.status_code, str(exc.detail))
        return error_response(exc.status_code, code, message, request_id_of(request), dict(exc.headers or {}))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_error_response(request, exc)

    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _describe(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error.get("loc", ()) if p != "body"]
    where = ".".join(loc) if loc else "body"
    if error.get("type") == "missing":
        return f"{where}: field required"
    return f"{where}: {error.get('msg', 'invalid value')}"
