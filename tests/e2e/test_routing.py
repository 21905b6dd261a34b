"""Routing resilience through the real binary, seen by the official OpenAI SDK (its own retries
off): a model with a failing deployment and a failing fallback chain answers as if nothing had
happened, streaming included; the SDK sees one ordinary response."""

from __future__ import annotations

import httpx

from conftest import ADMIN_KEY, UPSTREAM_KEY, base_config, marker, secret_free

http = httpx.Client(trust_env=False)

KEY = "env:MOCK_UPSTREAM_KEY"


def routing_models(mock_url: str) -> list[dict]:
    v1 = f"{mock_url}/v1"

    def openai(name: str, model: str, **extra) -> dict:
        return {"name": name, "provider": "openai_compatible", "api_base": v1, "api_key": KEY,
                "model": model, **extra}

    return [
        # A group whose favoured deployment is down, and a healthy one.
        openai("resilient", "gpt-down:error=503", weight=1000000),
        openai("resilient", "gpt-up"),
        # A model whose only deployment is down, falling back to an Anthropic one.
        openai("primary", "gpt-broken:error=502", fallbacks=["backup"]),
        {"name": "backup", "provider": "anthropic", "api_base": mock_url, "api_key": KEY,
         "model": "claude-3-5-haiku-latest"},
    ]


def test_retry_and_fallback_are_transparent_to_the_openai_sdk(keygate_factory, mock_factory):
    mock = mock_factory()
    kg = keygate_factory(base_config(routing_models(mock.url), router={"retry_backoff": "10ms"}))
    client = kg.openai()

    mark = marker("retry")
    raw = client.chat.completions.with_raw_response.create(
        model="resilient", messages=[{"role": "user", "content": mark}])
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert raw.headers["x-keygate-deployment"] == "resilient#1"
    assert raw.headers["x-keygate-attempted-retries"] == "1"
    assert [r["model"] for r in mock.find(mark)] == ["gpt-down:error=503", "gpt-up"]

    mark = marker("fallback")
    raw = client.chat.completions.with_raw_response.create(
        model="primary", messages=[{"role": "user", "content": mark}])
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content
    assert raw.headers["x-keygate-attempted-fallbacks"] == "1"
    served = mock.find(mark)
    assert [(r["path"], r["model"]) for r in served] == [
        ("/v1/chat/completions", "gpt-broken:error=502"),
        ("/v1/messages", "claude-3-5-haiku-latest"),
    ]

    # Streaming: the retry happens before the first byte, the SDK reads one clean stream.
    mark = marker("stream")
    stream = client.chat.completions.create(
        model="resilient", stream=True, messages=[{"role": "user", "content": mark}])
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text
    assert [r["model"] for r in mock.find(mark)] == ["gpt-down:error=503", "gpt-up"]

    metrics = http.get(f"{kg.url}/metrics", timeout=10).text
    assert 'keygate_upstream_retries_total{model="resilient",reason="503"}' in metrics
    assert 'keygate_fallbacks_total{model="primary",fallback="backup"}' in metrics
    # Each retry and fallback is logged as a warning naming the deployment, never a key.
    log = kg.stdout + kg.stderr
    assert "retrying" in log and "falling back" in log, log
    assert "resilient#0" in log
    assert secret_free(log, UPSTREAM_KEY, ADMIN_KEY)
