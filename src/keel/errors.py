"""Keel's one error hierarchy.

Two roots:

* :class:`ConfigError` -- an operator's mistake found at start-up or by a command
  (bad contract, missing model file, empty project). Never reaches an HTTP client.
* :class:`ServiceError` -- a per-request failure. Each subclass carries a stable
  machine ``code`` and an ``http_status``; its message is safe to show to the caller
  (it never names a resource the caller may not read).

The HTTP layer renders every :class:`ServiceError` as
``{"error": {"code", "message", "request_id"}}``; anything else becomes
``500 internal_error`` with the request id and no internals.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

__all__ = [
    "AuthError",
    "CircuitOpen",
    "ConfigError",
    "ConfigFileError",
    "Conflict",
    "ContractError",
    "ForbiddenError",
    "GateFailed",
    "IndexVersionError",
    "IngestEngineError",
    "InternalError",
    "InvalidRequest",
    "KeelError",
    "MethodNotAllowed",
    "ModelBusy",
    "ModelUnavailable",
    "NotFound",
    "NotReady",
    "Overloaded",
    "PayloadTooLarge",
    "PolicyViolation",
    "PromptError",
    "PromptRenderError",
    "RateLimited",
    "ServiceError",
    "ShuttingDown",
    "SuiteError",
    "UnknownApp",
    "UnknownModel",
    "UnknownPrompt",
    "UnsupportedMediaType",
    "UpstreamBadResponse",
    "UpstreamError",
    "UpstreamRateLimited",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "all_error_codes",
    "retry_after_header",
]


class KeelError(Exception):
    """Base of every error Keel raises on purpose."""


class ConfigError(KeelError):
    """An operator mistake: bad configuration, missing files, unusable project."""


class ConfigFileError(ConfigError):
    """A YAML file Keel reads is invalid.

    ``problems`` lists each problem as ``(location, message)`` where location is
    ``"file:line field.path"`` so that the operator can jump straight to it.
    """

    kind: ClassVar[str] = "file"

    def __init__(self, path: str, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems
        lines = [f"invalid {self.kind} {path}:"] + [f"  {loc}: {msg}" for loc, msg in problems]
        super().__init__("\n".join(lines))


class ContractError(ConfigFileError):
    """The contract (``keel.yaml``) is invalid."""

    kind = "contract"


class SuiteError(ConfigFileError):
    """An evaluation suite is invalid."""

    kind = "eval suite"


class PromptError(ConfigFileError):
    """A prompt template file (``<id>.v<version>.yaml``) is invalid."""

    kind = "prompt template"


class UnknownPrompt(ConfigError, KeyError):
    """A prompt reference names no template; the message lists those available.

    Also a ``KeyError``, as a failed look-up by reference always was.
    """

    def __init__(self, ref: str, available: list[str]) -> None:
        self.ref = ref
        self.available = available
        super().__init__(f"unknown prompt {ref!r}; available: {', '.join(available) or '(none)'}")

    def __str__(self) -> str:
        return str(self.args[0])


class PromptRenderError(ConfigError):
    """A template was rendered with missing or undeclared variables; names the template's ref."""

    def __init__(self, ref: str, *, missing: list[str], undeclared: list[str]) -> None:
        self.ref = ref
        self.missing = missing
        self.undeclared = undeclared
        super().__init__(f"prompt {ref}: missing variables {missing}, undeclared variables {undeclared}")


class IndexVersionError(ConfigError):
    """An index version that does not exist, or no earlier activation to roll back to."""


class IngestEngineError(ConfigError):
    """The ingest engine cannot run (e.g. ``keel ingest --engine ray`` with no Ray or no cluster).

    ``code`` is stable, one of :attr:`CODES`, and the message says what to do about it.
    """

    CODES: ClassVar[frozenset[str]] = frozenset(
        {"ray_not_installed", "ray_unreachable", "ray_task_failed", "ray_timeout", "ray_embedder_mismatch"}
    )

    def __init__(self, message: str, *, code: str) -> None:
        if code not in self.CODES:
            raise ValueError(f"undeclared IngestEngineError code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message


class ServiceError(KeelError):
    """A per-request failure with a stable machine code and an HTTP status."""

    code: ClassVar[str] = "service_error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.details = details


class InvalidRequest(ServiceError):
    """The request is malformed or violates a field constraint.

    The code can be narrowed per instance (``malformed_json``, ``question_empty``...)
    so clients can branch on it without parsing messages.
    """

    code = "invalid_request"
    http_status = 400

    CODES: ClassVar[frozenset[str]] = frozenset(
        {
            "invalid_request",
            "malformed_json",
            "question_empty",
            "question_too_long",
            "invalid_request_id",
            "invalid_parameter",
        }
    )

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        if code is not None:
            if code not in self.CODES:
                raise ValueError(f"undeclared InvalidRequest code {code!r}")
            self.code = code  # type: ignore[misc]


class PayloadTooLarge(ServiceError):
    """The request body is over the configured size limit."""

    code = "payload_too_large"
    http_status = 413


class UnsupportedMediaType(ServiceError):
    """The request body is not JSON."""

    code = "unsupported_media_type"
    http_status = 415


class AuthError(ServiceError):
    """No credential, or a credential that is unknown, revoked or expired."""

    code = "unauthenticated"
    http_status = 401

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"}, **details)


class ForbiddenError(ServiceError):
    """The caller is known but lacks the role for this operation."""

    code = "forbidden"
    http_status = 403


class RateLimited(ServiceError):
    """The caller's key, app or tenant is over a rate limit; ``Retry-After`` says when to retry."""

    code = "rate_limited"
    http_status = 429


class NotFound(ServiceError):
    """The resource does not exist, or the caller may not know that it does."""

    code = "not_found"
    http_status = 404


class Conflict(ServiceError):
    """The request is valid but does not fit the current state (e.g. promoting the release already serving)."""

    code = "conflict"
    http_status = 409


class GateFailed(ServiceError):
    """A release failed its evaluation gate against the current release; forcing it needs a reason."""

    code = "gate_failed"
    http_status = 409


class MethodNotAllowed(ServiceError):
    """The route exists but not with this HTTP method."""

    code = "method_not_allowed"
    http_status = 405


class UnknownApp(ServiceError):
    """The request names an app the contract does not declare."""

    code = "unknown_app"
    http_status = 400


class UnknownModel(ServiceError):
    """The request names a model (or app) the contract does not declare."""

    code = "unknown_model"
    http_status = 400


class PolicyViolation(ServiceError):
    """The request is refused by policy."""

    code = "policy_violation"
    http_status = 400


class NotReady(ServiceError):
    """A component the request needs is not ready (still loading, or no index yet)."""

    code = "not_ready"
    http_status = 503


class UpstreamError(ServiceError):
    """A model provider failed in a way no fallback could absorb.

    ``retryable`` says whether trying the same provider again may succeed.
    """

    code = "upstream_error"
    http_status = 502
    retryable: ClassVar[bool] = False


class ModelUnavailable(UpstreamError):
    """The model could not be loaded or called."""

    code = "model_unavailable"
    http_status = 503


class UpstreamTimeout(UpstreamError):
    """The provider did not connect, start answering or finish within its timeout."""

    code = "upstream_timeout"
    http_status = 504
    retryable = True


class UpstreamRateLimited(UpstreamError):
    """The provider answered 429; ``retry_after`` seconds is its hint, when given."""

    code = "upstream_rate_limited"
    http_status = 503
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamUnavailable(UpstreamError):
    """The provider refused the connection or answered 5xx."""

    code = "upstream_unavailable"
    http_status = 503
    retryable = True


class UpstreamBadResponse(UpstreamError):
    """The provider answered something that is not a valid completion (or stopped mid-stream)."""

    code = "upstream_bad_response"
    http_status = 502


class CircuitOpen(UpstreamError):
    """The provider's circuit breaker is open: it failed repeatedly and is not being called."""

    code = "circuit_open"
    http_status = 503


def retry_after_header(seconds: float) -> dict[str, str]:
    """A ``Retry-After`` header of whole seconds, at least 1."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class ModelBusy(UpstreamError):
    """The model's queue is full, or a request waited longer than the queue-time limit.

    ``retry_after`` seconds is the limiter's estimate of when a slot frees; it is sent as ``Retry-After``.
    """

    code = "model_busy"
    http_status = 503

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message, headers=retry_after_header(retry_after))
        self.retry_after = retry_after


class Overloaded(ServiceError):
    """The replica is at its in-flight limit and the wait would break the latency target: shed at once.

    ``retry_after`` seconds is the estimated queue time from the recent service time; it is sent as ``Retry-After``.
    """

    code = "overloaded"
    http_status = 503

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, headers=retry_after_header(retry_after))
        self.retry_after = retry_after


class ShuttingDown(ServiceError):
    """The replica is draining before it stops; retry, and the load balancer sends the request elsewhere."""

    code = "shutting_down"
    http_status = 503

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message, headers=retry_after_header(retry_after))
        self.retry_after = retry_after


class InternalError(ServiceError):
    """An unexpected failure; the message never carries internals."""

    code = "internal_error"
    http_status = 500


def all_error_codes() -> dict[str, int]:
    """Every stable error code Keel can return, with its HTTP status."""
    codes: dict[str, int] = {}
    stack: list[type[ServiceError]] = [ServiceError]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls is ServiceError:
            continue
        codes[cls.code] = cls.http_status
        if cls is InvalidRequest:
            for c in InvalidRequest.CODES:
                codes[c] = cls.http_status
    return codes
