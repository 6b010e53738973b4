"""release: which release serves this request: the app's current one, or its canary for this user.

The chosen release's model, prompt and index version become the request's pins, so
routing, generation, caching and retrieval all follow it, and the trace names it.
A canary is sticky: a user is served by the candidate on every request while the
canary runs (:func:`keel.releases.registry.canary_bucket`). A context built with
``release_override`` (an evaluation of a candidate, a shadow run) uses that release.
"""

from __future__ import annotations

from typing import ClassVar

from keel.contract import AppPins
from keel.pipeline.context import RequestContext
from keel.pipeline.prompts import PromptLibrary
from keel.releases.registry import IMPLICIT, ReleaseRegistry, canary_bucket

__all__ = ["ReleaseStage"]


class ReleaseStage:
    """Sets the request's pins from the release that serves it."""

    name: ClassVar[str] = "release"
    always_runs: ClassVar[bool] = False

    def __init__(self, registry: ReleaseRegistry, *, prompts: PromptLibrary) -> None:
        self._registry = registry
        self._prompts = prompts

    async def run(self, ctx: RequestContext) -> None:
        """Choose the release; set ``ctx.app`` pins, ``ctx.release`` and ``ctx.release_role``."""
        assert ctx.principal is not None
        if ctx.release_override is not None:
            release, role = ctx.release_override, ctx.release_role or "override"
        else:
            state = self._registry.state(ctx.app.name)
            name, role = state.current, "current"
            if (
                state.stage == "canary"
                and state.candidate is not None
                and canary_bucket(ctx.principal.id, ctx.app.name, state.candidate) < state.share
            ):
                name, role = state.candidate, "canary"
            release = self._registry.release(ctx.app, name)
        prompt = self._prompts.get(release.prompt).ref
        ctx.app = ctx.app.model_copy(update={"pins": AppPins(model=release.model, prompt=prompt, index=release.index)})
        ctx.release = release.name if release.name != "pins" else IMPLICIT
        ctx.release_role = role
        ctx.current_span.decide(role, release=release.name, model=release.model, prompt=prompt, index=release.index)
