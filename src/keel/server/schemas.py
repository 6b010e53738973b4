"""Request and response bodies of the HTTP API (they document the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "AskRequest",
    "AskResponse",
    "ChatCompletionRequest",
    "ChatMessageIn",
    "CitationOut",
    "DegradationOut",
    "ErrorBody",
    "ErrorEnvelope",
    "HandoffAnswer",
    "UsageOut",
]


Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,63}$")]
"""A request tag: 1-64 lower-case letters, digits, '_', '.', ':' or '-'."""

TAGS_FIELD_DESCRIPTION = (
    "Labels for reporting (feedback and outcomes per tag, trace filters): up to 8 tags of 1-64 lower-case letters,"
    " digits, '_', '.', ':' or '-'. Not used for permissions."
)


class AskRequest(BaseModel):
    """A question for the assistant."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        description="The question, in natural language.", examples=["How many days of annual leave do I get?"]
    )
    app: str | None = Field(None, description="The client app (from the contract); default app if omitted.")
    top_k: int | None = Field(None, ge=1, le=20, description="Passages to ground the answer in.")
    tags: list[Tag] = Field(default_factory=list, max_length=8, description=TAGS_FIELD_DESCRIPTION)


class CitationOut(BaseModel):
    """A passage the answer cites; always one the caller may read."""

    id: str = Field(description="Stable passage id.")
    number: int = Field(description="The [n] marker used in the answer.")
    doc_id: str
    title: str
    source: str = Field(description="Path of the document under docs/.")
    snippet: str
    score: float = Field(description="Fused retrieval score.")


class UsageOut(BaseModel):
    """Tokens used."""

    prompt_tokens: int
    completion_tokens: int


class DegradationOut(BaseModel):
    """A component that did not serve normally."""

    component: str
    reason: str


class AskResponse(BaseModel):
    """The answer and how it was served."""

    request_id: str
    mode: Literal["answer", "no_answer", "sources_only", "clarify", "handoff", "refused"]
    answer: str
    citations: list[CitationOut]
    model: str | None
    usage: UsageOut
    cost_usd: float
    latency_ms: float
    degraded: list[DegradationOut]
    index_version: int | None
    prompt: str | None
    cache: Literal["off", "miss", "exact", "semantic"] = Field(description="Whether the answer came from a cache.")
    handoff_id: str | None = Field(None, description="The hand-off created when mode is handoff.")


class HandoffAnswer(BaseModel):
    """A reviewer's answer to a hand-off."""

    model_config = ConfigDict(extra="forbid")

    answer: str = Field(min_length=1, max_length=20_000)


class ChatMessageIn(BaseModel):
    """An OpenAI chat message (text content, or a list of text parts)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    """OpenAI stream options."""

    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """An OpenAI-compatible chat completion request; unknown OpenAI fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="A model or an app declared in the contract (see GET /v1/models).")
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(None, ge=1, le=1_000_000)
    temperature: float | None = Field(None, ge=0, le=2)
    n: int | None = Field(None, ge=1, le=1, description="Only 1 is supported.")
    app: str | None = Field(None, description="Keel extension: the client app (also X-Keel-App header).")
    top_k: int | None = Field(None, ge=1, le=20, description="Keel extension: passages to ground the answer in.")
    tags: list[Tag] = Field(default_factory=list, max_length=8, description="Keel extension. " + TAGS_FIELD_DESCRIPTION)


class ErrorBody(BaseModel):
    """What went wrong."""

    code: str = Field(description="Stable machine code.")
    message: str = Field(description="What happened and what to do, safe to show.")
    request_id: str


class ErrorEnvelope(BaseModel):
    """Every error response."""

    error: ErrorBody
