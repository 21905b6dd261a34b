"""Virtual keys end to end: keys made through LiteLLM's key API (plain HTTP, as LiteLLM's docs show
it) are used by the official openai and anthropic SDKs; scope, expiry, deletion, limits and budgets
hold; a key acknowledged to a client survives kill -9; spend shows in /key/info."""

from __future__ import annotations

import concurrent.futures
import signal
import time

import anthropic
import httpx
import openai
import pytest

from conftest import ADMIN_KEY, base_config, http, model_entries

PRICED = {"input_per_mtok": 1000, "output_per_mtok": 1000}  # $0.001 a token


def config(mock_url: str) -> dict:
    models = model_entries(mock_url)
    for m in models:
        if m["name"] in ("gpt-4o-mini", "claude-haiku"):
            m["price"] = PRICED
    return base_config(models)


@pytest.fixture
def kg(keygate_factory, mock):
    return keygate_factory(config(mock.url))


def admin(kg, method: str, path: str, **kw) -> httpx.Response:
    return http.request(method, f"{kg.url}{path}", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                        timeout=15, **kw)


def generate(kg, **fields) -> dict:
    r = admin(kg, "POST", "/key/generate", json=fields)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["key"].startswith("sk-")
    return body


def oai(kg, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{kg.url}/v1", api_key=key, max_retries=0, timeout=20,
                         http_client=openai.DefaultHttpxClient(trust_env=False))


def ant(kg, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=kg.url, api_key=key, max_retries=0, timeout=20,
                               http_client=anthropic.DefaultHttpxClient(trust_env=False))


def hi(client: openai.OpenAI, model: str = "gpt-4o-mini", **kw):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                          max_tokens=16, **kw)


def test_generated_keys_work_with_both_sdks_and_are_scoped(kg):
    key = generate(kg, models=["gpt-4o-mini", "claude-haiku"], key_alias="e2e-scoped")["key"]
    assert hi(oai(kg, key)).choices[0].message.content
    chunks = list(hi(oai(kg, key), stream=True))
    assert chunks and all(c.choices for c in chunks), "an unrequested usage chunk reached the client"
    msg = ant(kg, key).messages.create(model="claude-haiku", max_tokens=16,
                                       messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text
    with pytest.raises(openai.PermissionDeniedError):
        hi(oai(kg, key), model="azure-gpt")
    listed = [m.id for m in oai(kg, key).models.list()]
    assert sorted(listed) == ["claude-haiku", "gpt-4o-mini"]


def test_deleted_and_expired_keys_fail_at_once(kg):
    body = generate(kg, key_alias="e2e-doomed")
    client = oai(kg, body["key"])
    assert hi(client).choices
    r = admin(kg, "POST", "/key/delete", json={"keys": [body["key"]]})
    assert r.status_code == 200, r.text
    with pytest.raises(openai.AuthenticationError):
        hi(client)
    short = generate(kg, duration="2s")
    client = oai(kg, short["key"])
    assert hi(client).choices
    time.sleep(2.5)
    with pytest.raises(openai.AuthenticationError):
        hi(client)


def test_rpm_limit_is_a_429_with_retry_after(kg):
    key = generate(kg, rpm_limit=2)["key"]
    client = oai(kg, key)
    hi(client)
    hi(client)
    with pytest.raises(openai.RateLimitError) as err:
        hi(client)
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 60


def test_budget_holds_under_concurrency_and_spend_is_visible(kg):
    body = generate(kg, max_budget=0.5)
    key = body["key"]

    def one(_):
        try:
            hi(oai(kg, key))
            return 200
        except openai.BadRequestError as e:
            assert "Budget" in str(e)
            return 400

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(120)))
    assert 200 in results and 400 in results
    time.sleep(1.0)  # spend is written in batches
    info = admin(kg, "GET", "/key/info", params={"key": key}).json()["info"]
    # One reservation: the body's bytes and max_tokens, at $0.001 a token.
    assert 0 < info["spend"] <= 0.5 + 0.3, info


def test_a_key_acknowledged_survives_kill_9(keygate_factory, mock, tmp_path):
    kg = keygate_factory(config(mock.url))
    keys = [generate(kg, key_alias=f"e2e-durable-{i}")["key"] for i in range(20)]
    kg.proc.signal(signal.SIGKILL)
    kg.proc.wait()
    # Same database file: a new process on the same workdir.
    again = keygate_factory(config(mock.url), env={"KEYGATE_DATABASE_URL": f"sqlite://{kg.workdir}/keygate.db"})
    for key in keys:
        assert hi(oai(again, key)).choices


def test_keys_never_reach_the_logs(keygate_factory, mock):
    kg = keygate_factory(config(mock.url), log="debug")
    body = generate(kg, key_alias="e2e-logged")
    old = body["key"]
    assert hi(oai(kg, old)).choices
    r = admin(kg, "POST", f"/key/{old}/regenerate", json={})
    assert r.status_code == 200, r.text
    new = r.json()["key"]
    assert hi(oai(kg, new)).choices
    with pytest.raises(openai.AuthenticationError):
        hi(oai(kg, old))
    # Unknown routes echo their path: keys in it are redacted there too.
    admin(kg, "POST", f"/key/{new}/nonsense", json={})
    admin(kg, "GET", "/key/info", params={"key": new})
    logs = kg.stdout + kg.stderr
    for key in (old, new):
        assert key not in logs and key[-12:] not in logs, "a virtual key reached the logs"
