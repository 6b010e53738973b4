"""Retries: only retryable failures, only before the first piece, honouring Retry-After."""

from __future__ import annotations

import asyncio
import random

import pytest

from keel.contract import RetryPolicy
from keel.errors import UpstreamBadResponse, UpstreamRateLimited, UpstreamTimeout, UpstreamUnavailable
from keel.models.retry import RetryingProvider, backoff_delay
from tests.unit.models.fakes import ScriptedProvider, request

POLICY = RetryPolicy(max_attempts=3, backoff_s=0.01, max_backoff_s=0.05)


def test_retryable_failures_are_retried_until_success() -> None:
    inner = ScriptedProvider([UpstreamUnavailable("503"), UpstreamTimeout("slow")])
    completion = asyncio.run(RetryingProvider(inner, POLICY).complete(request()))
    assert completion.text == "fine" and inner.calls == 3


def test_attempts_are_bounded() -> None:
    inner = ScriptedProvider([UpstreamUnavailable("503")] * 5)
    with pytest.raises(UpstreamUnavailable):
        asyncio.run(RetryingProvider(inner, POLICY).complete(request()))
    assert inner.calls == 3


def test_malformed_responses_are_not_retried() -> None:
    inner = ScriptedProvider([UpstreamBadResponse("garbage")])
    with pytest.raises(UpstreamBadResponse):
        asyncio.run(RetryingProvider(inner, POLICY).complete(request()))
    assert inner.calls == 1


def test_no_retry_once_text_has_been_streamed() -> None:
    inner = ScriptedProvider([("partial", UpstreamTimeout("stalled"))])
    with pytest.raises(UpstreamTimeout):
        asyncio.run(RetryingProvider(inner, POLICY).complete(request()))
    assert inner.calls == 1


def test_backoff_honours_retry_after_up_to_the_cap_and_jitters_otherwise() -> None:
    rng = random.Random(1)
    assert backoff_delay(POLICY, 1, UpstreamRateLimited("429", retry_after=0.02), rng) == 0.02
    assert backoff_delay(POLICY, 1, UpstreamRateLimited("429", retry_after=60), rng) == 0.05
    delays = {backoff_delay(POLICY, 3, UpstreamUnavailable("x"), rng) for _ in range(20)}
    assert len(delays) > 1 and all(0 <= d <= 0.04 for d in delays)
