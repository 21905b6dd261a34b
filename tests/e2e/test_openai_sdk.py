"""The official `openai` SDK against keygate: OpenAI-dialect upstream (pass-through), Anthropic
upstream (translated) and Azure OpenAI upstream; sync and async; chat, streams, tools,
embeddings, models. The mock's records prove which key reached the upstream and how."""

from __future__ import annotations

import json
import re

import pytest

from conftest import UPSTREAM_KEY, marker

# model -> (upstream path, header carrying the upstream key, api_version)
UPSTREAMS = {
    "gpt-4o-mini": ("/v1/chat/completions", "authorization", None),
    "openai-gpt": ("/v1/chat/completions", "authorization", None),
    "claude-haiku": ("/v1/messages", "x-api-key", None),
    "azure-gpt": ("/openai/deployments/my-deployment/chat/completions", "api-key", "2024-10-21"),
}
UPSTREAM_MODEL = {
    "gpt-4o-mini": "gpt-4o-mini",
    "openai-gpt": "openai-gpt",
    "claude-haiku": "claude-3-5-haiku-latest",
    "azure-gpt": "my-deployment",
}
CHAT_MODELS = ["gpt-4o-mini", "claude-haiku", "azure-gpt"]
EMBEDDING_MODELS = ["gpt-4o-mini", "azure-gpt"]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def check_upstream(mock, mark: str, model: str, *, stream: bool) -> dict:
    """Exactly one upstream call was made for `mark`, with the configured key, the provider's
    header and path."""
    record = mock.one(mark)
    path, header, api_version = UPSTREAMS[model]
    assert record["credential"] == UPSTREAM_KEY, record
    assert record["credential_header"].lower() == header, record
    assert record["method"] == "POST", record
    assert record["path"] == path, record
    assert bool(record["stream"]) == stream, record
    if api_version:
        assert record["api_version"] == api_version, record
    if header == "x-api-key":  # Anthropic requires a version header; keygate supplies one
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", record["api_version"] or ""), record
    # keygate replaced the client-facing name with the upstream model id
    assert record["model"] == UPSTREAM_MODEL[model], record
    return record


def check_usage(usage) -> None:
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


# ----------------------------------------------------------------------------- chat, sync


@pytest.mark.parametrize("model", CHAT_MODELS + ["openai-gpt"])
def test_chat_non_stream(gateway, mock, model):
    mark = marker("chat")
    client = gateway.openai()
    resp = client.chat.completions.create(
        model=model, messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": mark}]
    )
    assert resp.object == "chat.completion"
    assert resp.id
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content
    assert not choice.message.tool_calls
    check_usage(resp.usage)
    check_upstream(mock, mark, model, stream=False)


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat_stream_with_usage(gateway, mock, model):
    mark = marker("stream")
    client = gateway.openai()
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": mark}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage, chunks = [], [], [], 0
    ids = set()
    for chunk in stream:
        chunks += 1
        assert chunk.object == "chat.completion.chunk"
        ids.add(chunk.id)
        if chunk.usage is not None:
            usage.append(chunk.usage)
            assert chunk.choices == [], "the usage chunk carries no choices"
        for choice in chunk.choices:
            if choice.delta.content:
                text.append(choice.delta.content)
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    assert chunks >= 3
    assert "".join(text)
    assert finish == ["stop"]
    assert len(usage) == 1, "exactly one usage chunk when include_usage is set"
    check_usage(usage[0])
    assert len(ids) == 1, f"all chunks share one id: {ids}"
    check_upstream(mock, mark, model, stream=True)


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat_stream_without_usage(gateway, mock, model):
    client = gateway.openai()
    text, usage = [], []
    with client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": marker()}], stream=True
    ) as stream:
        for chunk in stream:
            if chunk.usage is not None:
                usage.append(chunk.usage)
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
    assert "".join(text)
    # OpenAI sends no usage chunk unless asked (stream_options.include_usage).
    assert usage == []


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_tool_call_non_stream(gateway, mock, model):
    mark = marker("tool")
    client = gateway.openai()
    resp = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": mark}],
        tools=[WEATHER_TOOL],
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and len(calls) >= 1
    call = calls[0]
    assert call.type == "function"
    assert call.id
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert isinstance(args, dict)
    check_usage(resp.usage)
    check_upstream(mock, mark, model, stream=False)


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_tool_call_stream(gateway, mock, model):
    mark = marker("toolstream")
    client = gateway.openai()
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": mark}],
        tools=[WEATHER_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    calls: dict[int, dict] = {}
    finish = []
    for chunk in stream:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": "", "args": ""})
                if tc.id:
                    assert slot["id"] in (None, tc.id)
                    slot["id"] = tc.id
                if tc.function and tc.function.name:
                    slot["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    slot["args"] += tc.function.arguments
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    assert finish == ["tool_calls"]
    assert calls, "no tool-call deltas"
    first = calls[min(calls)]
    assert first["id"]
    assert first["name"] == "get_weather"
    assert isinstance(json.loads(first["args"]), dict), first["args"]
    check_upstream(mock, mark, model, stream=True)


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_tool_result_round_trip(gateway, mock, model):
    """A conversation carrying an assistant tool call and its tool result is accepted."""
    client = gateway.openai()
    mark = marker("toolresult")
    resp = client.chat.completions.create(
        model=model,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "user", "content": mark},
        ],
    )
    assert resp.choices[0].finish_reason in ("stop", "tool_calls")
    check_upstream(mock, mark, model, stream=False)


# ----------------------------------------------------------------------------- chat, async


@pytest.mark.asyncio
@pytest.mark.parametrize("model", CHAT_MODELS)
async def test_async_chat_and_stream(gateway, mock, model):
    client = gateway.async_openai()
    try:
        mark = marker("async")
        resp = await client.chat.completions.create(model=model, messages=[{"role": "user", "content": mark}])
        assert resp.choices[0].message.content
        assert resp.choices[0].finish_reason == "stop"
        check_usage(resp.usage)
        check_upstream(mock, mark, model, stream=False)

        mark = marker("asyncstream")
        stream = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": mark}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text, finish, usage = [], [], None
        async for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                if choice.finish_reason:
                    finish.append(choice.finish_reason)
        assert "".join(text)
        assert finish == ["stop"]
        check_usage(usage)
        check_upstream(mock, mark, model, stream=True)
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_async_concurrent_requests_keep_their_own_answers(gateway, mock):
    """Concurrent requests over all three upstream kinds each reach the upstream once."""
    import asyncio

    client = gateway.async_openai()
    try:
        marks = [(marker(f"conc{i}"), CHAT_MODELS[i % 3]) for i in range(12)]
        results = await asyncio.gather(
            *[client.chat.completions.create(model=m, messages=[{"role": "user", "content": k}]) for k, m in marks]
        )
        for resp in results:
            assert resp.choices[0].message.content
        for mark, model in marks:
            check_upstream(mock, mark, model, stream=False)
    finally:
        await client.close()


# ----------------------------------------------------------------------------- embeddings


@pytest.mark.parametrize("model", EMBEDDING_MODELS)
def test_embeddings_default_base64(gateway, mock, model):
    client = gateway.openai()
    resp = client.embeddings.create(model=model, input=["hello", "world"])
    assert resp.object == "list"
    assert [d.index for d in resp.data] == [0, 1]
    for item in resp.data:
        assert item.object == "embedding"
        assert isinstance(item.embedding, list) and len(item.embedding) > 0
        assert all(isinstance(x, float) for x in item.embedding)
    assert resp.usage.prompt_tokens > 0


@pytest.mark.parametrize("model", EMBEDDING_MODELS)
def test_embeddings_float(gateway, mock, model):
    client = gateway.openai()
    mark = marker("emb")
    resp = client.embeddings.create(model=model, input="hello", encoding_format="float", user=mark)
    assert len(resp.data) == 1
    vec = resp.data[0].embedding
    assert len(vec) > 0 and all(isinstance(x, float) for x in vec)
    record = mock.one(mark)
    assert record["credential"] == UPSTREAM_KEY
    path = "/v1/embeddings" if model == "gpt-4o-mini" else "/openai/deployments/my-deployment/embeddings"
    assert record["path"] == path, record
    if model == "azure-gpt":
        assert record["credential_header"].lower() == "api-key"
        assert record["api_version"] == "2024-10-21"


def test_embeddings_base64_and_float_agree(gateway):
    client = gateway.openai()
    a = client.embeddings.create(model="gpt-4o-mini", input="same text").data[0].embedding
    b = client.embeddings.create(model="gpt-4o-mini", input="same text", encoding_format="float").data[0].embedding
    assert len(a) == len(b)
    assert all(abs(x - y) < 1e-5 for x, y in zip(a, b))


# ----------------------------------------------------------------------------- models


def test_models_list(gateway):
    client = gateway.openai()
    models = list(client.models.list())
    ids = [m.id for m in models]
    for name in ["gpt-4o-mini", "claude-haiku", "azure-gpt", "openai-gpt"]:
        assert name in ids
    assert len(ids) == len(set(ids))
    for m in models:
        assert m.object == "model"
        assert isinstance(m.created, int)
        assert m.owned_by
    # The upstream key or api_base never shows up in the listing.
    raw = client.models.with_raw_response.list()
    assert UPSTREAM_KEY not in raw.http_response.text
    assert "127.0.0.1" not in raw.http_response.text


@pytest.mark.asyncio
async def test_async_models_list(gateway):
    client = gateway.async_openai()
    try:
        ids = [m.id async for m in client.models.list()]
        assert "claude-haiku" in ids and "gpt-4o-mini" in ids
    finally:
        await client.close()


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_user_field_reaches_the_upstream(gateway, mock, model):
    """OpenAI's `user` is the mock's marker (for Anthropic it becomes metadata.user_id)."""
    mark = marker("user")
    gateway.openai().chat.completions.create(
        model=model, user=mark, messages=[{"role": "user", "content": "hello"}]
    )
    check_upstream(mock, mark, model, stream=False)
