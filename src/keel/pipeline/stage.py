"""The stage interface."""

from __future__ import annotations

from typing import ClassVar, Protocol

from keel.pipeline.context import RequestContext

__all__ = ["Stage"]


class Stage(Protocol):
    """One step of the pipeline: reads and writes the context, records its decision on ``ctx.span``."""

    name: ClassVar[str]
    always_runs: ClassVar[bool]
    """Whether the stage runs even after an earlier stage set the request's mode."""

    async def run(self, ctx: RequestContext) -> None:
        """Do the stage's work on ``ctx``."""
        ...
