"""Bring your own key (`X-{Model}-Authorization`) and key failover, through the real binaries.

keygate-mock records the credential of every upstream call with the request's marker, so these
tests prove which key each call carried: under thousands of concurrent requests (streaming and
not, both dialects, half with their own key, half without) no request's key reaches another
request's call; the byok policies answer as the official SDKs expect; and a refused configured
key is cooled down after one try.
"""

from __future__ import annotations

import asyncio
import secrets as _secrets
import time
from collections import Counter
from typing import Any, Iterable

import anthropic
import httpx
import openai
import pytest

from conftest import (
    ADMIN_KEY,
    UPSTREAM_KEY,
    Keygate,
    Mock,
    base_config,
    chat_body,
    http,
    marker,
    messages_body,
    sse_data,
    start_mock,
)


def key(label: str) -> str:
    return f"sk-e2e-{label}-{_secrets.token_hex(10)}"


CONFIGURED_KEY = key("configured")


@pytest.fixture(scope="module")
def open_mock(tmp_path_factory) -> Iterable[Mock]:
    """An upstream that takes any key and records it."""
    m = start_mock(tmp_path_factory.mktemp("byok") / "open-mock", "--chunks", "3", name="byok-mock")
    yield m
    m.proc.stop()


def models(mock: Mock) -> list[dict[str, Any]]:
    v1 = f"{mock.url}/v1"
    k = "env:CONFIGURED_KEY"
    return [
        {"name": "byok-gpt", "provider": "openai_compatible", "api_base": v1, "api_key": k,
         "model": "gpt-4o-mini", "byok": "allow", "timeout": "20s"},
        {"name": "byok-claude", "provider": "anthropic", "api_base": mock.url, "api_key": k,
         "model": "claude-3-5-haiku-latest", "byok": "allow", "timeout": "20s"},
        {"name": "deny-gpt", "provider": "openai_compatible", "api_base": v1, "api_key": k},  # default deny
        {"name": "deny-claude", "provider": "anthropic", "api_base": mock.url, "api_key": k,
         "byok": "deny"},
        {"name": "require-gpt", "provider": "openai_compatible", "api_base": v1, "api_key": k,
         "byok": "require"},
        {"name": "require-claude", "provider": "anthropic", "api_base": mock.url, "byok": "require"},
        # a name with characters header names do not allow: x-team-gpt.4o-authorization
        {"name": "Team/GPT.4o", "provider": "openai_compatible", "api_base": v1, "api_key": k,
         "model": "gpt-4o", "byok": "allow"},
    ]


@pytest.fixture(scope="module")
def byok_gateway(tmp_path_factory, open_mock) -> Iterable[Keygate]:
    from conftest import start_keygate

    kg = start_keygate(tmp_path_factory.mktemp("byok-gw"), base_config(models(open_mock)),
                       name="byok-gateway", log="debug", env={"CONFIGURED_KEY": CONFIGURED_KEY})
    yield kg
    kg.proc.stop()


# keys sent by callers in this module; none may appear in keygate's output (checked last)
SENT_KEYS: set[str] = {CONFIGURED_KEY}


def header(model: str) -> str:
    """The header keygate reads a caller's key for `model` from (the documented rule)."""
    import re

    return "x-" + re.sub(r"[^!#$%&'*+.^_`|~0-9a-z-]", "-", model.lower()) + "-authorization"


def test_header_name_rule():
    assert header("byok-gpt") == "x-byok-gpt-authorization"
    assert header("Team/GPT.4o") == "x-team-gpt.4o-authorization"


# ---------------------------------------------------------------------------------------------
# 6. isolation under concurrency

N_REQUESTS = 2000
CONCURRENCY = 48


def test_each_upstream_call_carries_exactly_its_own_key(byok_gateway, open_mock):
    kg = byok_gateway
    open_mock.clear()
    plan = []
    for i in range(N_REQUESTS):
        own = key(f"iso{i}") if i % 2 == 0 else None
        plan.append({
            "i": i,
            "route": "openai" if (i // 2) % 2 == 0 else "anthropic",
            "model": "byok-gpt" if (i // 4) % 2 == 0 else "byok-claude",
            "stream": (i // 8) % 2 == 0,
            "key": own,
            "mark": marker(f"iso{i}"),
        })
        if own:
            SENT_KEYS.add(own)

    async def one(client: httpx.AsyncClient, p: dict[str, Any]) -> tuple[dict[str, Any], int, str]:
        hdrs = {}
        if p["route"] == "openai":
            hdrs["Authorization"] = f"Bearer {ADMIN_KEY}"
            path, body = "/v1/chat/completions", chat_body(p["model"], p["mark"], stream=p["stream"])
        else:
            hdrs["x-api-key"] = ADMIN_KEY
            hdrs["anthropic-version"] = "2023-06-01"
            path, body = "/v1/messages", messages_body(p["model"], p["mark"], stream=p["stream"])
        if p["key"]:
            # alternate the two accepted spellings: `Bearer KEY` and the bare key
            hdrs[header(p["model"]).upper() if p["i"] % 4 == 0 else header(p["model"])] = (
                f"Bearer {p['key']}" if p["i"] % 4 == 0 else p["key"])
        for attempt in range(3):
            try:
                r = await client.post(path, json=body, headers=hdrs)
                return p, r.status_code, r.text
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2)
        raise AssertionError("unreachable")

    async def run_all() -> list[tuple[dict[str, Any], int, str]]:
        sem = asyncio.Semaphore(CONCURRENCY)
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=kg.url, timeout=60, limits=limits, trust_env=False) as client:
            async def guarded(p):
                async with sem:
                    return await one(client, p)

            return await asyncio.gather(*(guarded(p) for p in plan))

    t0 = time.monotonic()
    results = asyncio.run(run_all())
    elapsed = time.monotonic() - t0

    failures = [(p["i"], p["route"], p["model"], p["stream"], s, t[:300]) for p, s, t in results if s != 200]
    assert not failures, f"{len(failures)} of {N_REQUESTS} failed, e.g. {failures[:3]}"
    for p, _, text in results:
        if p["stream"]:
            data = sse_data(text)
            if p["route"] == "openai":
                assert data and data[-1] == "[DONE]", f"request {p['i']}: stream not finished: {text[-300:]}"
            else:
                assert '"message_stop"' in text, f"request {p['i']}: stream not finished: {text[-300:]}"
        for k in SENT_KEYS:
            assert k not in text, f"request {p['i']}: a key in the response"

    records = open_mock.records()
    by_mark: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_mark.setdefault(rec.get("marker") or "", []).append(rec)
    wrong = []
    for p in plan:
        recs = by_mark.get(p["mark"], [])
        assert len(recs) == 1, f"request {p['i']}: {len(recs)} upstream calls"
        want = p["key"] or CONFIGURED_KEY
        if recs[0]["credential"] != want:
            wrong.append(p["i"])
        assert recs[0]["stream"] == p["stream"], f"request {p['i']}: stream flag lost"
    assert not wrong, f"{len(wrong)} upstream calls carried another request's key: {wrong[:20]}"
    assert len(records) == N_REQUESTS, f"{len(records)} upstream calls for {N_REQUESTS} requests"
    print(f"{N_REQUESTS} requests at concurrency {CONCURRENCY} in {elapsed:.1f}s")


# ---------------------------------------------------------------------------------------------
# 7. byok policies through the official SDKs


def _cred(mock: Mock, mark: str) -> str | None:
    return mock.one(mark)["credential"]


def test_byok_policies_openai_sdk(byok_gateway, open_mock):
    kg = byok_gateway
    client = kg.openai()
    own = key("sdk-openai")
    SENT_KEYS.add(own)

    def create(model: str, headers: dict[str, str] | None = None, c=client, stream: bool = False) -> str:
        mark = marker("sdk")
        out = c.chat.completions.create(model=model, messages=[{"role": "user", "content": mark}],
                                        extra_headers=headers or {}, stream=stream)
        if stream:
            chunks = list(out)
            assert chunks
        else:
            assert out.choices[0].message.content is not None
        return mark

    # deny (the default): the header is refused with 400, naming the header, never the key
    with pytest.raises(openai.BadRequestError) as exc:
        create("deny-gpt", {header("deny-gpt"): f"Bearer {own}"})
    assert exc.value.status_code == 400
    assert header("deny-gpt") in str(exc.value).lower() and own not in str(exc.value)
    with pytest.raises(openai.BadRequestError):
        create("deny-claude", {header("deny-claude"): own})
    # deny + empty header: ignored, the configured key is used
    assert _cred(open_mock, create("deny-gpt", {header("deny-gpt"): ""})) == CONFIGURED_KEY
    # require without a key: 401 naming the header
    with pytest.raises(openai.AuthenticationError) as exc:
        create("require-gpt")
    assert exc.value.status_code == 401 and header("require-gpt") in str(exc.value).lower()
    with pytest.raises(openai.AuthenticationError):
        create("require-claude", {header("require-claude"): ""})  # empty counts as absent
    with pytest.raises(openai.AuthenticationError):
        create("require-gpt", {header("require-gpt"): "Bearer"})
    # require with a key: it is used, not the configured one
    assert _cred(open_mock, create("require-gpt", {header("require-gpt"): f"Bearer {own}"})) == own
    assert _cred(open_mock, create("require-claude", {header("require-claude"): own})) == own
    # allow: the caller's key when sent, the configured key otherwise; streams too
    assert _cred(open_mock, create("byok-gpt", {header("byok-gpt"): f"Bearer {own}"})) == own
    assert _cred(open_mock, create("byok-gpt", {header("byok-gpt"): own}, stream=True)) == own
    assert _cred(open_mock, create("byok-gpt")) == CONFIGURED_KEY
    assert _cred(open_mock, create("byok-claude", {header("byok-claude"): own}, stream=True)) == own
    assert _cred(open_mock, create("Team/GPT.4o", {"X-Team-GPT.4o-Authorization": own})) == own
    # another model's header is not this model's key
    assert _cred(open_mock, create("byok-gpt", {header("byok-claude"): own})) == CONFIGURED_KEY
    # a client with default_headers
    c2 = kg.openai(default_headers={header("require-gpt"): f"Bearer {own}"})
    assert _cred(open_mock, create("require-gpt", c=c2)) == own


def test_byok_policies_anthropic_sdk(byok_gateway, open_mock):
    kg = byok_gateway
    client = kg.anthropic()
    own = key("sdk-anthropic")
    SENT_KEYS.add(own)

    def create(model: str, headers: dict[str, str] | None = None, c=client, stream: bool = False) -> str:
        mark = marker("sdk")
        kwargs = dict(model=model, max_tokens=32, messages=[{"role": "user", "content": mark}],
                      extra_headers=headers or {})
        if stream:
            with c.messages.stream(**kwargs) as s:
                assert s.get_final_message().content
        else:
            assert c.messages.create(**kwargs).content
        return mark

    with pytest.raises(anthropic.BadRequestError) as exc:
        create("deny-claude", {header("deny-claude"): f"Bearer {own}"})
    assert exc.value.status_code == 400 and own not in str(exc.value)
    with pytest.raises(anthropic.BadRequestError):
        create("deny-gpt", {header("deny-gpt"): own})
    assert _cred(open_mock, create("deny-claude", {header("deny-claude"): ""})) == CONFIGURED_KEY
    with pytest.raises(anthropic.AuthenticationError) as exc:
        create("require-claude")
    assert exc.value.status_code == 401 and header("require-claude") in str(exc.value).lower()
    with pytest.raises(anthropic.AuthenticationError):
        create("require-gpt", {header("require-gpt"): "Bearer"})
    assert _cred(open_mock, create("require-claude", {header("require-claude"): own}, stream=True)) == own
    assert _cred(open_mock, create("require-gpt", {header("require-gpt"): f"Bearer {own}"})) == own
    assert _cred(open_mock, create("byok-claude", {header("byok-claude"): own})) == own
    assert _cred(open_mock, create("byok-claude")) == CONFIGURED_KEY
    assert _cred(open_mock, create("byok-gpt", {header("byok-gpt"): own}, stream=True)) == own
    c2 = kg.anthropic(default_headers={header("byok-claude"): own})
    assert _cred(open_mock, create("byok-claude", c=c2, stream=True)) == own


# ---------------------------------------------------------------------------------------------
# 8. key failover


def test_key_failover_bad_then_good(keygate_factory, mock_factory):
    good, bad, caller = key("good"), key("bad"), key("caller-refused")
    SENT_KEYS.update({good, bad, caller})
    m = mock_factory("--require-key", good)
    v1 = f"{m.url}/v1"
    ms = [
        {"name": "fo-gpt", "provider": "openai_compatible", "api_base": v1, "model": "gpt-4o-mini",
         "api_key": ["env:BAD_KEY", "env:GOOD_KEY"], "byok": "allow"},
        {"name": "fo-claude", "provider": "anthropic", "api_base": m.url, "model": "claude-3-5-haiku-latest",
         "api_key": ["env:BAD_KEY", "env:GOOD_KEY"]},
    ]
    kg = keygate_factory(base_config(ms), log="debug", env={"BAD_KEY": bad, "GOOD_KEY": good})
    statuses = []
    for i in range(24):
        model = "fo-gpt" if i % 2 == 0 else "fo-claude"
        stream = i % 3 == 0
        if i % 4 < 2:
            r = http.post(f"{kg.url}/v1/chat/completions", headers=kg.headers(), timeout=20,
                          json=chat_body(model, marker("fo"), stream=stream))
        else:
            r = http.post(f"{kg.url}/v1/messages", headers={"x-api-key": ADMIN_KEY}, timeout=20,
                          json=messages_body(model, marker("fo"), stream=stream))
        statuses.append(r.status_code)
        assert bad not in r.text and good not in r.text
    assert statuses == [200] * 24, statuses
    recs = m.records()
    per_model = Counter((r["model"], r["credential"]) for r in recs)
    for upstream in ("gpt-4o-mini", "claude-3-5-haiku-latest"):
        assert per_model[(upstream, bad)] <= 1, f"{upstream}: the refused key was tried {per_model[(upstream, bad)]} times"
        assert per_model[(upstream, good)] == 12, per_model
    assert {r["credential"] for r in recs} <= {good, bad}
    # A caller's own key that the upstream refuses is not replaced by a configured key.
    mark = marker("fo-byok")
    r = http.post(f"{kg.url}/v1/chat/completions", timeout=20,
                  headers=kg.headers(**{header("fo-gpt"): f"Bearer {caller}"}), json=chat_body("fo-gpt", mark))
    assert r.status_code == 401, r.text
    assert caller not in r.text and good not in r.text
    assert [x["credential"] for x in m.find(mark)] == [caller]
    kg.proc.stop()
    for k in (good, bad, caller):
        assert k not in kg.stderr and k not in kg.stdout


# ---------------------------------------------------------------------------------------------
# 9. no key of this module in the shared gateway's logs (runs last in this file)


def test_zz_byok_keys_never_logged(byok_gateway):
    kg = byok_gateway
    kg.proc.stop()
    assert "panicked" not in kg.stderr
    out = kg.stdout + "\n" + kg.stderr
    assert "request" in out, "debug logging should have produced request lines"
    for k in SENT_KEYS | {ADMIN_KEY, UPSTREAM_KEY}:
        assert k not in out and k[-12:] not in out, f"{k[:16]}... found in keygate's output"
