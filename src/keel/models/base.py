"""The provider interface every model sits behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = ["ChatMessage", "Completion", "GenerationRequest", "Provider", "ProviderWrapper", "StreamDelta", "collect"]


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


async def collect(stream: AsyncIterator[StreamDelta]) -> Completion:
    """The completion a stream ends with."""
    final: Completion | None = None
    async for delta in stream:
        final = delta.completion or final
    if final is None:
        raise RuntimeError("the provider's stream ended without a completion")
    return final


class ProviderWrapper:
    """A provider around another one: delegates everything; subclasses override :meth:`stream`."""

    def __init__(self, inner: Provider) -> None:
        self._inner = inner

    @property
    def name(self) -> str:
        """The inner provider's name."""
        return self._inner.name

    @property
    def ready(self) -> bool:
        """Ready when the inner provider is."""
        return self._inner.ready

    async def warm_up(self) -> None:
        """Warm the inner provider."""
        await self._inner.warm_up()

    async def complete(self, request: GenerationRequest) -> Completion:
        """The completion of this wrapper's stream."""
        return await collect(self.stream(request))

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        """Delegate (subclasses add their behaviour here)."""
        return self._inner.stream(request)

    async def count_tokens(self, text: str) -> int:
        """Delegate."""
        return await self._inner.count_tokens(text)

    async def close(self) -> None:
        """Delegate."""
        await self._inner.close()
