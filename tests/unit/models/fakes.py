"""Failure injection for the resilience wrappers: a provider that fails as scripted.

A fake only for what the wrappers react to (exceptions and timing); the real
providers are exercised in the integration tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from keel.errors import UpstreamError
from keel.models.base import Completion, GenerationRequest, StreamDelta


class ScriptedProvider:
    """Each call pops the next step: an exception to raise (before or after some text), or ``ok``."""

    def __init__(self, steps: list[object], *, name: str = "scripted", delay: float = 0.0) -> None:
        self.steps = list(steps)
        self.calls = 0
        self._name = name
        self._delay = delay

    @property
    def name(self) -> str:
        return self._name

    @property
    def ready(self) -> bool:
        return True

    async def warm_up(self) -> None:
        return None

    async def complete(self, request: GenerationRequest) -> Completion:
        final = None
        async for delta in self.stream(request):
            final = delta.completion or final
        assert final is not None
        return final

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        self.calls += 1
        step = self.steps.pop(0) if self.steps else "ok"
        if self._delay:
            await asyncio.sleep(self._delay)
        if isinstance(step, tuple):  # (text first, then this error)
            text, error = step
            yield StreamDelta(text=text)
            raise error
        if isinstance(step, UpstreamError):
            raise step
        yield StreamDelta(text="fine")
        yield StreamDelta(
            text="",
            completion=Completion(
                text="fine", prompt_tokens=3, completion_tokens=1, finish_reason="stop", model=self._name
            ),
        )

    async def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def close(self) -> None:
        return None


def request() -> GenerationRequest:
    return GenerationRequest(messages=[], max_tokens=8)
