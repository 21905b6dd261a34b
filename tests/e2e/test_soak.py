"""Soak: steady load and keygate's memory stays flat.

Four clients without pause, each over its own keep-alive connection, send chat requests with one
budgeted virtual key, rotating through the OpenAI and Anthropic routes, streaming and not, to an
OpenAI-dialect and an Anthropic-dialect upstream (so relaying, translation, usage taps, metering
and the spend writer all run). keygate's resident memory (VmRSS of /proc/PID/status) is sampled
every SAMPLE_EVERY seconds, through a warm-up of KEYGATE_SOAK_WARMUP_SECONDS (default 60) and
then KEYGATE_SOAK_SECONDS (default 120) of measured load. Over the measured part, the largest
sample of the last third must stay within max(10%, 4 MiB) of the median of the middle third.
Every request must succeed. `pytest -s` prints the samples.

Why a minute of warm-up: caches fill under load before memory settles, the largest being the
prepared statements of the spend-log INSERT (one per batch size, up to 100 per pooled database
connection, ~20 MiB on SQLite in a debug build).
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from typing import Any

import httpx

from conftest import ADMIN_KEY, base_config, chat_body, messages_body, start_keygate
from faults import assert_no_secrets, memory_breakdown, rss_kib

SOAK_SECONDS = float(os.environ.get("KEYGATE_SOAK_SECONDS", "120"))
WARMUP_SECONDS = float(os.environ.get("KEYGATE_SOAK_WARMUP_SECONDS", "60"))
CLIENTS = 4
SAMPLE_EVERY = 2.0
PRICE = {"input_per_mtok": 1, "output_per_mtok": 1}

# (route, model, stream)
MIX = [
    ("/v1/chat/completions", "gpt", False),
    ("/v1/chat/completions", "gpt", True),
    ("/v1/messages", "claude", False),
    ("/v1/messages", "claude", True),
    ("/v1/chat/completions", "claude", True),
    ("/v1/messages", "gpt", True),
]


def models(mock_url: str) -> list[dict[str, Any]]:
    key = "env:MOCK_UPSTREAM_KEY"
    return [
        {"name": "gpt", "provider": "openai_compatible", "api_base": f"{mock_url}/v1", "api_key": key,
         "model": "gpt-4o-mini:chunks=8", "timeout": "10s", "price": PRICE},
        {"name": "claude", "provider": "anthropic", "api_base": mock_url, "api_key": key,
         "model": "claude-3-5-haiku-latest:chunks=8", "timeout": "10s", "price": PRICE},
    ]


def client_loop(url: str, key: str, n: int, stop: threading.Event, counts: dict[str, int],
                failures: list[str], lock: threading.Lock) -> None:
    headers = {"Authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}
    done = errors = 0
    with httpx.Client(timeout=30, trust_env=False) as client:
        i = n
        while not stop.is_set():
            route, model, stream = MIX[i % len(MIX)]
            i += 1
            make = chat_body if route == "/v1/chat/completions" else messages_body
            body = make(model, f"soak {n} {i}", stream=stream, max_tokens=32)
            try:
                if stream:
                    with client.stream("POST", f"{url}{route}", json=body, headers=headers) as r:
                        text = "".join(r.iter_text())
                    ok = r.status_code == 200 and ("[DONE]" in text or "message_stop" in text)
                else:
                    r = client.post(f"{url}{route}", json=body, headers=headers)
                    text = r.text
                    ok = r.status_code == 200
            except httpx.HTTPError as err:
                ok, text = False, repr(err)
            if ok:
                done += 1
            else:
                errors += 1
                with lock:
                    failures.append(f"{route} {model} stream={stream}: {text[:300]}")
    with lock:
        counts["ok"] += done
        counts["failed"] += errors


def test_soak_memory_is_flat(tmp_path, mock):
    # The embedded default store; KEYGATE_SOAK_DATABASE_URL points it elsewhere (e.g. to tell
    # keygate's own heap from SQLite's page cache, which lives in keygate's memory).
    env = {"KEYGATE_DATABASE_URL": os.environ["KEYGATE_SOAK_DATABASE_URL"]} \
        if os.environ.get("KEYGATE_SOAK_DATABASE_URL") else None
    kg = start_keygate(tmp_path / "kg", base_config(models(mock.url)), name="soak", env=env)
    try:
        r = httpx.post(f"{kg.url}/key/generate", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                       json={"max_budget": 1_000_000, "key_alias": "soak"}, timeout=10, trust_env=False)
        assert r.status_code == 200, r.text
        key = r.json()["key"]
        stop = threading.Event()
        counts = {"ok": 0, "failed": 0}
        failures: list[str] = []
        lock = threading.Lock()
        threads = [threading.Thread(target=client_loop, args=(kg.url, key, n, stop, counts, failures, lock),
                                    daemon=True) for n in range(CLIENTS)]
        breakdown_before = memory_breakdown(kg.proc.pid)
        samples: list[tuple[float, int]] = [(0.0, rss_kib(kg.proc.pid))]
        started = time.monotonic()
        for t in threads:
            t.start()
        try:
            total = WARMUP_SECONDS + SOAK_SECONDS
            while (elapsed := time.monotonic() - started) < total:
                time.sleep(min(SAMPLE_EVERY, max(0.0, total - elapsed)))
                assert kg.proc.popen.poll() is None, kg.stderr[-3000:]
                samples.append((round(time.monotonic() - started, 1), rss_kib(kg.proc.pid)))
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        took = time.monotonic() - started
        time.sleep(0.5)
        idle_after = rss_kib(kg.proc.pid)
        breakdown = memory_breakdown(kg.proc.pid)
        spend = httpx.get(f"{kg.url}/key/info", params={"key": key}, timeout=10, trust_env=False,
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()["info"]["spend"]
    finally:
        kg.proc.stop()

    body = [kib for at, kib in samples if at >= WARMUP_SECONDS]  # after warm-up
    third = len(body) // 3
    middle, last = body[third:2 * third], body[2 * third:]
    median = statistics.median(middle)
    allowance = max(0.10 * median, 4 * 1024)
    report = {
        "seconds": round(took, 1), "warmup_seconds": WARMUP_SECONDS,
        "measured_growth_kib": body[-1] - body[0], "clients": CLIENTS, "requests_ok": counts["ok"],
        "requests_failed": counts["failed"], "req_per_s": round(counts["ok"] / took, 1),
        "rss_kib_samples": samples, "rss_kib_idle_after": idle_after, "memory_kib_at_start": breakdown_before, "memory_kib_at_end": breakdown,
        "middle_third_median_kib": median, "last_third_max_kib": max(last),
        "allowance_kib": round(allowance), "spend_usd": spend,
    }
    print(f"\nSOAK REPORT {json.dumps(report)}")
    assert counts["failed"] == 0, failures[:5]
    assert counts["ok"] > 0
    assert max(last) <= median + allowance, (
        f"RSS grew: last third up to {max(last)} KiB vs middle-third median {median} KiB "
        f"(allowance {allowance:.0f} KiB); samples {samples}")
    log = kg.stdout + kg.stderr
    assert "panicked" not in log, log[-3000:]
    assert_no_secrets(log, key)
