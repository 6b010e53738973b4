"""The official openai SDK works unchanged against /v1/chat/completions."""

from __future__ import annotations

import openai
import pytest

from tests.integration.conftest import RunningServer, SampleProject

QUESTION = "How many days of annual leave do employees get each year?"


@pytest.fixture(scope="module")
def sdk(server: RunningServer, sample_project: SampleProject) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.url + "/v1", api_key=sample_project.keys["sam.staff"], max_retries=0, timeout=180
    )


def test_models_list_names_models_and_apps(sdk: openai.OpenAI) -> None:
    ids = {m.id for m in sdk.models.list()}
    assert {"smollm2-135m", "default"} <= ids


def test_completion_carries_answer_usage_and_keel_extras(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(model="default", messages=[{"role": "user", "content": QUESTION}])
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    answer = completion.choices[0].message.content
    assert answer
    extras = completion.model_extra["keel"]  # type: ignore[index]
    assert extras["mode"] == "answer"
    assert extras["request_id"].startswith("req_")
    assert extras["citations"], "an answer always carries citations"
    for citation in extras["citations"]:
        assert f"[{citation['number']}]" in answer
    assert completion.usage is not None


def test_streaming_yields_text_then_a_final_chunk_with_keel_extras(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = chunks[-1]
    assert text.strip()
    assert final.choices[0].finish_reason == "stop"
    extras = final.model_extra["keel"]  # type: ignore[index]
    assert extras["mode"] == "answer"
    assert all(f"[{c['number']}]" in text for c in extras["citations"])
    assert final.usage is not None and final.usage.total_tokens >= 0
    assert len({c.id for c in chunks}) == 1


def test_no_answer_streams_the_no_answer_message(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "What is the name of the chief executive's pet iguana?"}],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].model_extra["keel"]["mode"] == "no_answer"  # type: ignore[index]
    assert "could not find" in text


def test_sdk_raises_authentication_error_for_a_bad_key(server: RunningServer) -> None:
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="keel_nope_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}])


def test_sdk_raises_bad_request_for_an_unknown_model(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["code"] == "unknown_model"  # type: ignore[index]
