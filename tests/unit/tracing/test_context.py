"""W3C trace context: parsing the caller's traceparent and the current span for outgoing calls."""

from __future__ import annotations

import asyncio

import pytest

from keel.tracing import Trace
from keel.tracing.context import current_traceparent, parse_traceparent

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_joined() -> None:
    caller = parse_traceparent(VALID)
    assert caller is not None
    assert caller.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert caller.span_id == "00f067aa0ba902b7"
    assert caller.sampled
    assert caller.traceparent() == VALID


def test_unsampled_flag_is_kept() -> None:
    caller = parse_traceparent(VALID[:-2] + "00")
    assert caller is not None and not caller.sampled
    assert caller.traceparent().endswith("-00")


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # version 00 has exactly 4 fields
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  # not hex
    ],
)
def test_an_invalid_traceparent_starts_a_new_trace(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_a_future_version_is_read_by_its_first_fields() -> None:
    caller = parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future")
    assert caller is not None and caller.span_id == "00f067aa0ba902b7"


def test_a_joined_trace_keeps_the_callers_trace_id_and_parent() -> None:
    trace = Trace.joining("req_1", parse_traceparent(VALID))
    assert trace.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace.parent_span_id == "00f067aa0ba902b7"
    assert trace.span_id not in ("00f067aa0ba902b7", "0" * 16)
    fresh = Trace.joining("req_2", None)
    assert fresh.parent_span_id is None and len(fresh.trace_id) == 32 and fresh.trace_id != trace.trace_id


def test_the_running_span_is_the_parent_of_outgoing_calls_and_is_restored_after() -> None:
    trace = Trace.joining("req_1", parse_traceparent(VALID))
    assert current_traceparent() is None
    with trace.span("generate") as stage:
        assert current_traceparent() == f"00-{trace.trace_id}-{stage.span_id}-01"
        with trace.span("chat m", parent=stage) as call:
            assert current_traceparent() == f"00-{trace.trace_id}-{call.span_id}-01"
        assert current_traceparent() == f"00-{trace.trace_id}-{stage.span_id}-01"
    assert current_traceparent() is None
    assert [s.name for s in trace.spans] == ["generate"], "a child span is not a stage"
    assert [c.name for c in trace.spans[0].children] == ["chat m"]


def test_the_current_span_follows_its_request_across_awaits() -> None:
    async def request(n: int) -> tuple[str | None, str]:
        trace = Trace(request_id=f"req_{n}")
        with trace.span("generate") as stage:
            await asyncio.sleep(0.01 * (3 - n))
            return current_traceparent(), f"00-{trace.trace_id}-{stage.span_id}-01"

    async def main() -> list[tuple[str | None, str]]:
        return list(await asyncio.gather(*(request(n) for n in range(3))))

    for seen, expected in asyncio.run(main()):
        assert seen == expected
