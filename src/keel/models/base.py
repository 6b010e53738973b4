"""The provider interface every model sits behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = ["ChatMessage", "Completion", "GenerationRequest", "Provider", "StreamDelta"]


@dataclass(frozen=True, kw_only=True)
class ChatMessage:
    """One chat message."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, kw_only=True)
class GenerationRequest:
    """What to generate.

    ``messages`` is what a language model reads. ``question`` and ``passages``
    (heading, text) carry the same request in structured form, for providers that
    compose an answer without a language model.
    """

    messages: list[ChatMessage]
    max_tokens: int
    temperature: float = 0.0
    stop: list[str] = field(default_factory=list)
    question: str = ""
    passages: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Completion:
    """A finished generation with its token usage."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    model: str


@dataclass(frozen=True, kw_only=True)
class StreamDelta:
    """A piece of streamed text; the last one carries ``completion`` with the usage."""

    text: str
    completion: Completion | None = None


class Provider(Protocol):
    """A model that completes chats; implementations must not block the event loop."""

    @property
    def name(self) -> str:
        """The model's name in the contract."""
        ...

    @property
    def ready(self) -> bool:
        """Whether the model is loaded and callable."""
        ...

    async def warm_up(self) -> None:
        """Load the model (off the event loop)."""
        ...

    async def complete(self, request: GenerationRequest) -> Completion:
        """Generate a whole answer."""
        ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        """Generate an answer piece by piece; the last delta carries the completion."""
        ...

    async def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's vocabulary."""
        ...

    async def close(self) -> None:
        """Release the model."""
        ...
