"""The official `anthropic` SDK against keygate's /v1/messages: an Anthropic upstream (native,
passed through) and OpenAI-dialect upstreams (translated), sync and async, plain text, streams
and tool use; and the Anthropic-shaped model list."""

from __future__ import annotations

import pytest

from conftest import UPSTREAM_KEY, marker

try:  # the version header the installed SDK sends
    from anthropic._constants import ANTHROPIC_API_VERSION as SDK_ANTHROPIC_VERSION
except ImportError:  # pragma: no cover
    SDK_ANTHROPIC_VERSION = "2023-06-01"

# model -> (upstream path, header carrying the upstream key)
UPSTREAMS = {
    "claude-haiku": ("/v1/messages", "x-api-key"),
    "gpt-4o-mini": ("/v1/chat/completions", "authorization"),
    "azure-gpt": ("/openai/deployments/my-deployment/chat/completions", "api-key"),
}
UPSTREAM_MODEL = {
    "claude-haiku": "claude-3-5-haiku-latest",
    "gpt-4o-mini": "gpt-4o-mini",
    "azure-gpt": "my-deployment",
}
MODELS = ["claude-haiku", "gpt-4o-mini", "azure-gpt"]

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def check_upstream(mock, mark: str, model: str, *, stream: bool) -> dict:
    record = mock.one(mark)
    path, header = UPSTREAMS[model]
    assert record["credential"] == UPSTREAM_KEY, record
    assert record["credential_header"].lower() == header, record
    assert record["path"] == path, record
    assert bool(record["stream"]) == stream, record
    if model == "azure-gpt":
        assert record["api_version"] == "2024-10-21", record
    if model == "claude-haiku":  # the SDK's anthropic-version header is forwarded
        assert record["api_version"] == SDK_ANTHROPIC_VERSION, record
    assert record["model"] == UPSTREAM_MODEL[model], record
    return record


def check_message(msg, *, stop_reason: str) -> None:
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert msg.id
    assert msg.stop_reason == stop_reason
    assert msg.usage.input_tokens > 0
    assert msg.usage.output_tokens > 0
    assert msg.content, "no content blocks"


@pytest.mark.parametrize("model", MODELS)
def test_create_non_stream(gateway, mock, model):
    mark = marker("msg")
    client = gateway.anthropic()
    msg = client.messages.create(
        model=model,
        max_tokens=64,
        system="be brief",
        messages=[{"role": "user", "content": mark}],
    )
    check_message(msg, stop_reason="end_turn")
    assert msg.model  # echoed or the client-facing name
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text
    check_upstream(mock, mark, model, stream=False)


@pytest.mark.parametrize("model", MODELS)
def test_stream_helper(gateway, mock, model):
    mark = marker("msgstream")
    client = gateway.anthropic()
    pieces = []
    with client.messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": mark}]
    ) as stream:
        for text in stream.text_stream:
            pieces.append(text)
        final = stream.get_final_message()
    assert len(pieces) >= 2, "a stream should arrive in several deltas"
    check_message(final, stop_reason="end_turn")
    assert final.content[0].type == "text"
    assert final.content[0].text == "".join(pieces)
    check_upstream(mock, mark, model, stream=True)


@pytest.mark.parametrize("model", MODELS)
def test_raw_stream_events(gateway, model):
    """The event sequence follows Anthropic's grammar."""
    client = gateway.anthropic()
    events = [
        e.type
        for e in client.messages.create(
            model=model, max_tokens=64, messages=[{"role": "user", "content": marker()}], stream=True
        )
    ]
    assert events[0] == "message_start"
    assert events[-1] == "message_stop"
    assert events[-2] == "message_delta"
    assert "content_block_start" in events and "content_block_stop" in events
    assert events.index("content_block_start") < events.index("content_block_delta")
    assert events.count("content_block_start") == events.count("content_block_stop")
    assert "error" not in events


@pytest.mark.parametrize("model", MODELS)
def test_tool_use_non_stream(gateway, mock, model):
    mark = marker("tooluse")
    client = gateway.anthropic()
    msg = client.messages.create(
        model=model,
        max_tokens=128,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": mark}],
    )
    check_message(msg, stop_reason="tool_use")
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert uses, msg.content
    assert uses[0].name == "get_weather"
    assert uses[0].id
    assert isinstance(uses[0].input, dict)
    assert all(b.type in ("text", "tool_use") for b in msg.content)
    check_upstream(mock, mark, model, stream=False)


@pytest.mark.parametrize("model", MODELS)
def test_tool_use_stream(gateway, mock, model):
    mark = marker("toolusestream")
    client = gateway.anthropic()
    with client.messages.stream(
        model=model,
        max_tokens=128,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": mark}],
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_message()
    check_message(final, stop_reason="tool_use")
    uses = [b for b in final.content if b.type == "tool_use"]
    assert uses, final.content
    assert uses[0].name == "get_weather"
    assert uses[0].id
    assert isinstance(uses[0].input, dict)
    check_upstream(mock, mark, model, stream=True)


@pytest.mark.parametrize("model", MODELS)
def test_tool_result_round_trip(gateway, mock, model):
    mark = marker("toolresult")
    client = gateway.anthropic()
    msg = client.messages.create(
        model=model,
        max_tokens=64,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "text", "text": mark},
            ]},
        ],
    )
    assert msg.stop_reason in ("end_turn", "tool_use")
    check_upstream(mock, mark, model, stream=False)


@pytest.mark.asyncio
@pytest.mark.parametrize("model", MODELS)
async def test_async_create_and_stream(gateway, mock, model):
    client = gateway.async_anthropic()
    try:
        mark = marker("amsg")
        msg = await client.messages.create(
            model=model, max_tokens=64, messages=[{"role": "user", "content": mark}]
        )
        check_message(msg, stop_reason="end_turn")
        check_upstream(mock, mark, model, stream=False)

        mark = marker("amsgstream")
        pieces = []
        async with client.messages.stream(
            model=model, max_tokens=64, messages=[{"role": "user", "content": mark}]
        ) as stream:
            async for text in stream.text_stream:
                pieces.append(text)
            final = await stream.get_final_message()
        check_message(final, stop_reason="end_turn")
        assert final.content[0].text == "".join(pieces)
        check_upstream(mock, mark, model, stream=True)
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_async_tool_use_stream(gateway, mock):
    client = gateway.async_anthropic()
    try:
        for model in MODELS:
            async with client.messages.stream(
                model=model,
                max_tokens=128,
                tools=[WEATHER_TOOL],
                messages=[{"role": "user", "content": marker()}],
            ) as stream:
                final = await stream.get_final_message()
            assert final.stop_reason == "tool_use", model
            assert any(b.type == "tool_use" and isinstance(b.input, dict) for b in final.content), model
    finally:
        await client.close()


def test_metadata_user_id_reaches_the_upstream(gateway, mock):
    """Anthropic's metadata.user_id is the mock's marker (and becomes OpenAI's `user`)."""
    client = gateway.anthropic()
    for model in ["claude-haiku", "gpt-4o-mini"]:
        mark = marker("uid")
        client.messages.create(
            model=model, max_tokens=16, metadata={"user_id": mark},
            messages=[{"role": "user", "content": "hello"}],
        )
        check_upstream(mock, mark, model, stream=False)


def test_models_list(gateway):
    client = gateway.anthropic()
    page = client.models.list()
    ids = [m.id for m in page.data]
    for name in ["claude-haiku", "gpt-4o-mini", "azure-gpt"]:
        assert name in ids
    for m in page.data:
        assert m.type == "model"
        assert m.display_name
        assert m.created_at is not None
    assert page.has_more is False
    assert page.first_id == ids[0] and page.last_id == ids[-1]


@pytest.mark.asyncio
async def test_async_models_list(gateway):
    client = gateway.async_anthropic()
    try:
        ids = [m.id async for m in client.models.list()]
        assert "claude-haiku" in ids
    finally:
        await client.close()
