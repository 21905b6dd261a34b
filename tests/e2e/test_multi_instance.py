"""Two keygate processes on one PostgreSQL database (and, in the Redis variants, one Redis) behind
an imaginary load balancer: a concurrent load split between them is never admitted past a key's
budget or rpm limit, and the budget reserved by an instance killed with SIGKILL mid-stream is
charged to the key by the survivor (spend errs high, never low).

PostgreSQL and Redis come from KEYGATE_TEST_POSTGRES_URL / KEYGATE_TEST_REDIS_URL (.ci/run sets
them); without them these tests fail, unless KEYGATE_TEST_SKIP_SERVICES=1.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from conftest import ADMIN_KEY, base_config, http

PER_TOKEN = 0.001  # USD per token of the `priced` model (1000 per million)


def service_url(name: str) -> str:
    url = os.environ.get(name, "")
    if url:
        return url
    if os.environ.get("KEYGATE_TEST_SKIP_SERVICES") == "1":
        pytest.skip(f"KEYGATE_TEST_SKIP_SERVICES=1 and no {name}")
    pytest.fail(f"{name} is not set; set KEYGATE_TEST_SKIP_SERVICES=1 to skip")


@pytest.fixture(params=["postgres", "redis"])
def backend(request) -> dict[str, str]:
    env = {"KEYGATE_DATABASE_URL": service_url("KEYGATE_TEST_POSTGRES_URL")}
    if request.param == "redis":
        env["KEYGATE_REDIS_URL"] = service_url("KEYGATE_TEST_REDIS_URL")
    return env


def pair(keygate_factory, mock, env: dict[str, str], **extra: Any):
    models = [
        {"name": "priced", "provider": "openai_compatible", "api_base": f"{mock.url}/v1",
         "api_key": "env:MOCK_UPSTREAM_KEY", "model": "gpt-4o-mini",
         "price": {"input_per_mtok": 1000, "output_per_mtok": 1000}},
        {"name": "priced-slow", "provider": "openai_compatible", "api_base": f"{mock.url}/v1",
         "api_key": "env:MOCK_UPSTREAM_KEY", "model": "gpt-4o-mini:chunks=100,delay_ms=100",
         "price": {"input_per_mtok": 1000, "output_per_mtok": 1000}},
    ]
    config = base_config(models, **extra)
    a = keygate_factory(config, env=env, database=False)
    b = keygate_factory(config, env=env, database=False)
    return a, b


def generate(kg, **limits: Any) -> str:
    r = http.post(f"{kg.url}/key/generate", json=limits,
                  headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200, r.text
    return r.json()["key"]


def spend(kg, key: str) -> float:
    r = http.get(f"{kg.url}/key/info", params={"key": key},
                 headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200, r.text
    return r.json()["info"]["spend"]


def chat(kg, key: str) -> tuple[int, float]:
    r = http.post(f"{kg.url}/v1/chat/completions",
                  headers={"Authorization": f"Bearer {key}"},
                  json={"model": "priced", "max_tokens": 8,
                        "messages": [{"role": "user", "content": "hi"}]})
    cost = 0.0
    if r.status_code == 200:
        cost = r.json()["usage"]["total_tokens"] * PER_TOKEN
    return r.status_code, cost


def load(a, b, key: str, n: int) -> list[tuple[int, float]]:
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda i: chat(a if i % 2 == 0 else b, key), range(n)))


def test_a_budget_holds_across_two_processes(keygate_factory, mock, backend):
    a, b = pair(keygate_factory, mock, backend)
    key = generate(a, max_budget=0.5)
    results = load(a, b, key, 200)
    statuses = [s for s, _ in results]
    served = sum(c for _, c in results)
    assert set(statuses) <= {200, 400}, statuses
    assert statuses.count(400) > 0, "the load must go past the budget"
    assert served <= 0.5 + 1e-9, f"two processes served ${served} on a $0.5 budget"
    # Everything served reaches the store (spend is written in batches).
    deadline = time.monotonic() + 5
    while spend(b, key) + 1e-9 < served and time.monotonic() < deadline:
        time.sleep(0.1)
    assert spend(b, key) + 1e-9 >= served


def test_an_rpm_limit_holds_across_two_processes(keygate_factory, mock, backend):
    a, b = pair(keygate_factory, mock, backend)
    for _ in range(3):
        key = generate(b, rpm_limit=10)
        minute = int(time.time() // 60)
        statuses = [s for s, _ in load(a, b, key, 60)]
        if int(time.time() // 60) != minute:
            continue  # a new minute legitimately admits again
        assert statuses.count(200) == 10, statuses
        assert statuses.count(429) == 50, statuses
        return
    pytest.fail("three loads in a row crossed a minute boundary")


def test_the_budget_held_by_a_killed_instance_is_charged_by_the_survivor(
        keygate_factory, mock, backend):
    a, b = pair(keygate_factory, mock, backend, limits={"max_body_bytes": 65536,
                                                        "instance_timeout": "3s"})
    key = generate(a, max_budget=10)
    started = threading.Barrier(5)
    outcomes: list[str] = []

    def stream() -> None:
        body = {"model": "priced-slow", "max_tokens": 200, "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}
        try:
            with httpx.stream("POST", f"{a.url}/v1/chat/completions", json=body, timeout=30,
                              headers={"Authorization": f"Bearer {key}"}) as r:
                assert r.status_code == 200
                lines = r.iter_lines()
                next(lines)
                started.wait(10)
                for _ in lines:
                    pass
            outcomes.append("completed")
        except (httpx.HTTPError, threading.BrokenBarrierError) as err:
            outcomes.append(type(err).__name__)

    threads = [threading.Thread(target=stream) for _ in range(4)]
    for t in threads:
        t.start()
    started.wait(10)
    a.proc.signal(signal.SIGKILL)
    a.proc.wait()
    for t in threads:
        t.join(15)
    assert "completed" not in outcomes, outcomes
    # Each stream reserved (body bytes + 200 output tokens) x $0.001 >= $0.2; none settled.
    deadline = time.monotonic() + 15
    charged = spend(b, key)
    while charged < 0.8 and time.monotonic() < deadline:
        time.sleep(0.25)
        charged = spend(b, key)
    assert charged >= 0.8, f"only ${charged} charged for four interrupted streams"
    assert charged <= 4 * 0.5, charged
    # The key keeps working on the survivor, within what is left of its budget.
    assert chat(b, key)[0] == 200
    assert "panicked" not in b.stderr


def reaped(kg) -> float:
    r = http.get(f"{kg.url}/metrics", timeout=10)
    assert r.status_code == 200
    total = 0.0
    for line in r.text.splitlines():
        if line.startswith("keygate_leases_reaped_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_expired_leases_are_reaped_once_by_one_of_two_processes(keygate_factory, mock):
    env = {"KEYGATE_DATABASE_URL": service_url("KEYGATE_TEST_POSTGRES_URL")}
    a, b = pair(keygate_factory, mock, env)
    vault = {"X-Vault-Token": ADMIN_KEY}
    role = f"reap-{os.getpid()}-{int(time.time() * 1000)}"
    r = http.post(f"{a.url}/v1/keygate/roles/{role}", headers=vault,
                  json={"models": ["priced"], "ttl": "1s", "max_ttl": "1s"})
    assert r.status_code in (200, 204), r.text
    # Leases other runs left expired in the shared database are reaped at the first ticks.
    time.sleep(2.5)
    before = (reaped(a), reaped(b))
    keys = []
    for i in range(6):
        r = http.get(f"{(a, b)[i % 2].url}/v1/keygate/creds/{role}", headers=vault)
        assert r.status_code == 200, r.text
        keys.append(r.json()["data"]["key"])
    # Expired after 1 s; reaped by the leader within about a second more.
    deadline = time.monotonic() + 10
    def counts() -> tuple[float, float]:
        return reaped(a) - before[0], reaped(b) - before[1]

    while sum(counts()) < 6 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)  # time for a second reaper, if there were one, to reap them again
    got = counts()
    assert sum(got) == 6, got
    assert min(got) == 0, f"both processes reaped: {got}"
    for i, key in enumerate(keys):
        assert chat((a, b)[i % 2], key)[0] == 401
