"""Errors as the SDKs see them (exception classes, status codes) and as the wire carries them
(the exact envelope of each dialect), for keygate's own refusals and for upstream failures."""

from __future__ import annotations

import time

import anthropic
import httpx
import openai
import pytest

from conftest import (
    http,
    ADMIN_KEY,
    UPSTREAM_KEY,
    assert_anthropic_error,
    assert_openai_error,
    chat_body,
    marker,
    messages_body,
)

# ----------------------------------------------------------------------------- authentication


def test_bad_key_openai_sdk(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-wrong", max_retries=0, timeout=10)
    with pytest.raises(openai.AuthenticationError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 401
    assert exc.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    with pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model="gpt-4o-mini", input="x")


def test_bad_key_anthropic_sdk(gateway):
    client = anthropic.Anthropic(base_url=gateway.url, api_key="sk-wrong", max_retries=0, timeout=10)
    with pytest.raises(anthropic.AuthenticationError) as exc:
        client.messages.create(model="claude-haiku", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 401
    with pytest.raises(anthropic.AuthenticationError):
        client.models.list()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk-wrong"},
        {"Authorization": f"Basic {ADMIN_KEY}"},
        {"Authorization": ADMIN_KEY},
        {"Authorization": "Bearer"},
        {"x-api-key": ""},
        {"x-api-key": ADMIN_KEY + "x"},
        {"x-api-key": ADMIN_KEY[:-1]},
    ],
    ids=["none", "wrong", "basic", "no-scheme", "empty-bearer", "empty-x-api-key", "longer", "shorter"],
)
def test_unauthenticated_envelopes(gateway, headers):
    r = http.post(f"{gateway.url}/v1/chat/completions", json=chat_body("gpt-4o-mini"), headers=headers, timeout=10)
    assert_openai_error(r, 401, "invalid_api_key")
    r = http.post(f"{gateway.url}/v1/embeddings", json={"model": "gpt-4o-mini", "input": "x"}, headers=headers, timeout=10)
    assert_openai_error(r, 401)
    r = http.post(f"{gateway.url}/v1/messages", json=messages_body("claude-haiku"), headers=headers, timeout=10)
    assert_anthropic_error(r, 401)
    r = http.get(f"{gateway.url}/v1/models", headers=headers, timeout=10)
    assert_openai_error(r, 401)
    r = http.get(f"{gateway.url}/v1/models", headers={**headers, "anthropic-version": "2023-06-01"}, timeout=10)
    assert_anthropic_error(r, 401)


def test_x_api_key_is_accepted_on_both_dialects(gateway):
    h = {"x-api-key": ADMIN_KEY}
    r = http.post(f"{gateway.url}/v1/chat/completions", json=chat_body("gpt-4o-mini"), headers=h, timeout=10)
    assert r.status_code == 200, r.text
    r = http.post(f"{gateway.url}/v1/messages", json=messages_body("claude-haiku"), headers=h, timeout=10)
    assert r.status_code == 200, r.text


def test_wrong_upstream_key_is_an_upstream_401_not_a_leak(gateway_bad_upstream_key):
    """The upstream refuses keygate's key: the caller sees 401 (the upstream's status), and the
    body does not carry the key keygate sent."""
    kg = gateway_bad_upstream_key
    r = http.post(f"{kg.url}/v1/chat/completions", json=chat_body("gpt-badkey"), headers=kg.headers(), timeout=10)
    err = assert_openai_error(r, 401)
    assert "sk-not-the-right-key" not in r.text
    r = http.post(f"{kg.url}/v1/messages", json=messages_body("claude-badkey"), headers=kg.headers(), timeout=10)
    assert_anthropic_error(r, 401)
    assert "sk-not-the-right-key" not in r.text
    assert err["message"]


@pytest.fixture
def gateway_bad_upstream_key(keygate_factory, mock):
    models = [
        {"name": "gpt-badkey", "provider": "openai_compatible", "api_base": f"{mock.url}/v1",
         "api_key": "env:WRONG_UPSTREAM_KEY"},
        {"name": "claude-badkey", "provider": "anthropic", "api_base": mock.url,
         "api_key": "env:WRONG_UPSTREAM_KEY"},
    ]
    from conftest import base_config

    return keygate_factory(base_config(models), env={"WRONG_UPSTREAM_KEY": "sk-not-the-right-key"})


def test_unresolvable_upstream_key_is_503(keygate_factory, mock):
    from conftest import base_config

    models = [{"name": "nokey", "provider": "openai_compatible", "api_base": f"{mock.url}/v1",
               "api_key": "env:KEYGATE_E2E_DOES_NOT_EXIST"}]
    kg = keygate_factory(base_config(models))
    r = http.post(f"{kg.url}/v1/chat/completions", json=chat_body("nokey"), headers=kg.headers(), timeout=10)
    err = assert_openai_error(r, 503)
    assert "nokey" in err["message"]


# ----------------------------------------------------------------------------- unknown model


def test_unknown_model_openai_sdk(gateway):
    client = gateway.openai()
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 404
    assert exc.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}], stream=True
        )


def test_unknown_model_anthropic_sdk(gateway):
    client = gateway.anthropic()
    with pytest.raises(anthropic.NotFoundError) as exc:
        client.messages.create(model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 404
    with pytest.raises(anthropic.NotFoundError):
        with client.messages.stream(
            model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        ) as s:
            s.get_final_message()


def test_unknown_model_envelopes(gateway):
    h = gateway.headers()
    r = http.post(f"{gateway.url}/v1/chat/completions", json=chat_body("no-such-model"), headers=h, timeout=10)
    err = assert_openai_error(r, 404, "model_not_found")
    assert err["param"] == "model"
    assert "no-such-model" in err["message"]
    r = http.post(f"{gateway.url}/v1/messages", json=messages_body("no-such-model"), headers=h, timeout=10)
    err = assert_anthropic_error(r, 404)
    assert "no-such-model" in err["message"]


def test_unknown_route_is_404_envelope(gateway):
    r = http.post(f"{gateway.url}/v1/nope", json={}, headers=gateway.headers(), timeout=10)
    assert_openai_error(r, 404)
    r = http.post(f"{gateway.url}/v1/messages/nope", json={}, headers=gateway.headers(), timeout=10)
    assert_anthropic_error(r, 404)


# ----------------------------------------------------------------------------- upstream 429 / 500


@pytest.mark.parametrize("model", ["gpt-429", "claude-429"])
def test_rate_limit_openai_sdk(gateway, model):
    client = gateway.openai()
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 429
    assert exc.value.response.headers.get("retry-after"), exc.value.response.headers
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=True)
    assert exc.value.response.headers.get("retry-after")


@pytest.mark.parametrize("model", ["gpt-429", "claude-429"])
def test_rate_limit_anthropic_sdk(gateway, model):
    client = gateway.anthropic()
    with pytest.raises(anthropic.RateLimitError) as exc:
        client.messages.create(model=model, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 429
    assert exc.value.response.headers.get("retry-after"), exc.value.response.headers
    with pytest.raises(anthropic.RateLimitError):
        with client.messages.stream(model=model, max_tokens=8, messages=[{"role": "user", "content": "hi"}]) as s:
            s.get_final_message()


@pytest.mark.parametrize("model", ["gpt-429", "claude-429"])
def test_rate_limit_envelopes(gateway, model):
    h = gateway.headers()
    r = http.post(f"{gateway.url}/v1/chat/completions", json=chat_body(model), headers=h, timeout=10)
    assert_openai_error(r, 429)
    assert r.headers.get("retry-after")
    r = http.post(f"{gateway.url}/v1/messages", json=messages_body(model), headers=h, timeout=10)
    assert_anthropic_error(r, 429)
    assert r.headers.get("retry-after")


@pytest.mark.parametrize("model", ["gpt-500", "claude-500"])
def test_upstream_500(gateway, model):
    with pytest.raises(openai.InternalServerError) as exc:
        gateway.openai().chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 500
    with pytest.raises(anthropic.InternalServerError) as exc2:
        gateway.anthropic().messages.create(model=model, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert exc2.value.status_code == 500
    h = gateway.headers()
    r = http.post(f"{gateway.url}/v1/chat/completions", json=chat_body(model), headers=h, timeout=10)
    assert_openai_error(r, 500)
    r = http.post(f"{gateway.url}/v1/messages", json=messages_body(model), headers=h, timeout=10)
    assert_anthropic_error(r, 500)


# ----------------------------------------------------------------------------- timeouts, unreachable


@pytest.mark.parametrize("model", ["gpt-timeout", "claude-timeout"])
def test_upstream_timeout_is_504(gateway, model):
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as exc:
        gateway.openai().chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 504
    assert time.monotonic() - started < 8, "the per-model timeout is 1s"
    h = gateway.headers()
    r = http.post(f"{gateway.url}/v1/chat/completions", json=chat_body(model, stream=True), headers=h, timeout=10)
    assert_openai_error(r, 504, "upstream_timeout")
    r = http.post(f"{gateway.url}/v1/messages", json=messages_body(model), headers=h, timeout=10)
    err = assert_anthropic_error(r, 504)
    assert err["type"] == "timeout_error"


@pytest.mark.parametrize("model", ["gpt-unreachable", "claude-unreachable"])
def test_upstream_unreachable_is_502(gateway, model):
    with pytest.raises(openai.APIStatusError) as exc:
        gateway.openai().chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 502
    with pytest.raises(anthropic.APIStatusError) as exc2:
        gateway.anthropic().messages.create(model=model, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert exc2.value.status_code == 502
    h = gateway.headers()
    r = http.post(f"{gateway.url}/v1/chat/completions", json=chat_body(model, stream=True), headers=h, timeout=10)
    err = assert_openai_error(r, 502)
    assert "http://" not in err["message"], "upstream URLs stay out of client messages"
    r = http.post(f"{gateway.url}/v1/messages", json=messages_body(model, stream=True), headers=h, timeout=10)
    assert_anthropic_error(r, 502)


def test_embeddings_on_anthropic_model_is_400(gateway):
    with pytest.raises(openai.BadRequestError) as exc:
        gateway.openai().embeddings.create(model="claude-haiku", input="x")
    assert exc.value.status_code == 400
    r = http.post(
        f"{gateway.url}/v1/embeddings", json={"model": "claude-haiku", "input": "x"}, headers=gateway.headers(), timeout=10
    )
    err = assert_openai_error(r, 400)
    assert "claude-haiku" in err["message"]


def test_untranslatable_request_is_400(gateway):
    """n=2 cannot be expressed for an Anthropic upstream."""
    with pytest.raises(openai.BadRequestError):
        gateway.openai().chat.completions.create(
            model="claude-haiku", n=2, messages=[{"role": "user", "content": "hi"}]
        )


def test_errors_never_carry_the_upstream_key(gateway):
    h = gateway.headers()
    bodies = []
    for model in ["gpt-429", "claude-429", "gpt-500", "claude-500", "gpt-unreachable", "no-such-model"]:
        bodies.append(http.post(f"{gateway.url}/v1/chat/completions", json=chat_body(model), headers=h, timeout=10).text)
        bodies.append(http.post(f"{gateway.url}/v1/messages", json=messages_body(model), headers=h, timeout=10).text)
    for body in bodies:
        assert UPSTREAM_KEY not in body and ADMIN_KEY not in body, body


def test_mock_error_directive_is_really_upstream(gateway, mock):
    """Sanity: the 429 came from the upstream (the mock saw the call), not from keygate."""
    mark = marker("r429")
    client = gateway.openai()
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-429", messages=[{"role": "user", "content": mark}])
    rec = mock.one(mark)
    assert rec["credential"] == UPSTREAM_KEY


# ----------------------------------------------------------------------------- broken upstream streams


@pytest.mark.parametrize("model", ["gpt-cut", "claude-cut"])
def test_stream_cut_by_upstream_openai(gateway, model):
    """The upstream drops the connection mid-stream: the client sees an error, never a clean end."""
    client = gateway.openai()
    got = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            got.append(chunk)
    r = http.post(f"{gateway.url}/v1/chat/completions", json=chat_body(model, stream=True),
                   headers=gateway.headers(), timeout=10)
    assert r.status_code == 200
    data = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:")]
    assert "[DONE]" not in data, r.text
    import json as _json

    last = _json.loads(data[-1])
    assert set(last) == {"error"} and last["error"]["message"], last
    assert UPSTREAM_KEY not in r.text


@pytest.mark.parametrize("model", ["claude-cut", "gpt-cut"])
def test_stream_cut_by_upstream_anthropic(gateway, model):
    client = gateway.anthropic()
    with pytest.raises(anthropic.APIError):
        with client.messages.stream(model=model, max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as s:
            for _ in s:
                pass
    r = http.post(f"{gateway.url}/v1/messages", json=messages_body(model, stream=True),
                   headers=gateway.headers(), timeout=10)
    assert r.status_code == 200
    events = [line[6:].strip() for line in r.text.splitlines() if line.startswith("event:")]
    assert "message_stop" not in events, r.text
    assert events[-1] == "error", r.text


@pytest.mark.parametrize("model", ["claude-garbage", "gpt-garbage"])
def test_translated_garbage_body_is_502(gateway, model):
    """An upstream answering 200 with invalid JSON, when keygate must translate it: 502."""
    caller = "/v1/chat/completions" if model.startswith("claude") else "/v1/messages"
    body = chat_body(model) if caller == "/v1/chat/completions" else messages_body(model)
    r = http.post(f"{gateway.url}{caller}", json=body, headers=gateway.headers(), timeout=10)
    if caller == "/v1/messages":
        assert_anthropic_error(r, 502)
    else:
        assert_openai_error(r, 502)


def test_translated_garbage_stream_openai(gateway):
    """An Anthropic upstream streams an unparsable event and ends without message_stop; the
    OpenAI client must get an error frame, not a clean `finish_reason: stop` + [DONE]."""
    r = http.post(f"{gateway.url}/v1/chat/completions", json=chat_body("claude-garbage", stream=True),
                   headers=gateway.headers(), timeout=10)
    assert r.status_code in (200, 502), r.text
    if r.status_code == 200:
        data = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:")]
        assert data and data[-1] != "[DONE]" and '"error"' in data[-1], (
            "a broken upstream stream was reported as a successful completion:\n" + r.text)
    with pytest.raises(openai.APIError):
        for _ in gateway.openai().chat.completions.create(
            model="claude-garbage", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            pass


def test_translated_garbage_stream_anthropic(gateway):
    """An OpenAI upstream streams an unparsable chunk and ends without [DONE]; the Anthropic
    client must get an `error` event, not `end_turn` + message_stop."""
    r = http.post(f"{gateway.url}/v1/messages", json=messages_body("gpt-garbage", stream=True),
                   headers=gateway.headers(), timeout=10)
    assert r.status_code in (200, 502), r.text
    if r.status_code == 200:
        events = [line[6:].strip() for line in r.text.splitlines() if line.startswith("event:")]
        assert events and events[-1] == "error", (
            "a broken upstream stream was reported as a successful message:\n" + r.text)
    with pytest.raises(anthropic.APIError):
        with gateway.anthropic().messages.stream(
            model="gpt-garbage", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        ) as s:
            s.get_final_message()
