"""Upstream faults as a client sees them, on both inference routes and both upstream dialects:
the upstream down (connection refused), slow (beyond the model's `timeout`), answering garbage,
cutting a stream (`cut_after=N`) and stalling one (`stall_after=N`).

For every case: the answer is the caller's dialect's error (an error status with its envelope,
or, once a stream has started, a final error frame and no clean end), it comes within a bound,
keygate does not panic and serves the next normal request, a budgeted virtual key is charged at
most its reservation, and no secret reaches keygate's logs. `pytest -s` prints what the client
saw in each case.

(test_errors.py checks the SDKs' exception classes for several of these; this file is the whole
matrix, with the raw wire.)
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterable

import httpx
import pytest

from conftest import (
    ADMIN_KEY,
    Keygate,
    assert_anthropic_error,
    assert_openai_error,
    base_config,
    chat_body,
    http,
    messages_body,
    start_keygate,
)
from faults import assert_no_secrets

PRICE = {"input_per_mtok": 1000, "output_per_mtok": 1000}
CLIENT_TIMEOUT = 20.0
STALL_TIMEOUT = "2s"

FAULTS = {
    # name: (model directive, model timeout, wall-clock bound for the answer)
    "down": (None, "5s", 8.0),
    "slow": ("timeout", "1s", 6.0),
    "garbage": ("garbage", "10s", 6.0),
    "cut": ("cut_after=3,delay_ms=30", "10s", 6.0),
    "stall": ("stall_after=3,delay_ms=30", STALL_TIMEOUT, 8.0),
}


def fault_models(mock_url: str, closed_port: int) -> list[dict[str, Any]]:
    models = []
    for fault, (directive, timeout, _) in FAULTS.items():
        for wire, base, upstream in (("gpt", f"{mock_url}/v1", "gpt-4o-mini"),
                                     ("claude", mock_url, "claude-3-5-haiku-latest")):
            if fault == "down":
                base = f"http://127.0.0.1:{closed_port}" + ("/v1" if wire == "gpt" else "")
            models.append({
                "name": f"{wire}-{fault}",
                "provider": "openai_compatible" if wire == "gpt" else "anthropic",
                "api_base": base, "api_key": "env:MOCK_UPSTREAM_KEY",
                "model": f"{upstream}:{directive}" if directive else upstream,
                "timeout": timeout, "price": PRICE,
            })
    models += [
        {"name": "gpt-ok", "provider": "openai_compatible", "api_base": f"{mock_url}/v1",
         "api_key": "env:MOCK_UPSTREAM_KEY", "model": "gpt-4o-mini", "timeout": "10s", "price": PRICE},
        {"name": "claude-ok", "provider": "anthropic", "api_base": mock_url,
         "api_key": "env:MOCK_UPSTREAM_KEY", "model": "claude-3-5-haiku-latest", "timeout": "10s",
         "price": PRICE},
    ]
    return models


@pytest.fixture(scope="module")
def kg(tmp_path_factory, mock, closed_port) -> Iterable[Keygate]:
    server = start_keygate(tmp_path_factory.mktemp("faults-upstream"),
                           base_config(fault_models(mock.url, closed_port)),
                           name="faults-upstream", log="debug")
    yield server
    server.proc.stop()


@pytest.fixture(scope="module")
def vkey(kg) -> str:
    r = http.post(f"{kg.url}/key/generate", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                  json={"max_budget": 100, "key_alias": "faults-upstream"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["key"]


def call(kg: Keygate, route: str, model: str, stream: bool, key: str) -> tuple[httpx.Response, str, float]:
    """One request; returns (response, body text, seconds). Streams are read to their end."""
    if route == "openai":
        path, body = "/v1/chat/completions", chat_body(model, stream=stream, max_tokens=16)
        headers = {"Authorization": f"Bearer {key}"}
    else:
        path, body = "/v1/messages", messages_body(model, stream=stream, max_tokens=16)
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    started = time.monotonic()
    with httpx.Client(timeout=CLIENT_TIMEOUT, trust_env=False) as client:
        with client.stream("POST", f"{kg.url}{path}", json=body, headers=headers) as r:
            text = ""
            try:
                for piece in r.iter_text():
                    text += piece
            except httpx.HTTPError as err:  # the transport broke: record it as the client saw it
                text += f"\n<transport error: {type(err).__name__}>"
    return r, text, time.monotonic() - started


def summary(r: httpx.Response, text: str) -> str:
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        frames = [line for line in text.splitlines() if line.startswith(("data:", "event:", "<"))]
        return f"{r.status_code} stream, {len(frames)} lines, last: {frames[-1][:260] if frames else ''}"
    return f"{r.status_code} {text[:220]}"


def check_error(route: str, r: httpx.Response, text: str) -> None:
    """An error in the caller's dialect: an error status with the envelope, or a started
    stream whose last frame is an error and that never ends cleanly."""
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        assert r.status_code == 200
        assert "<transport error" not in text, f"the client's connection broke: {text[-300:]}"
        if route == "openai":
            data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
            assert "[DONE]" not in data, text
            last = json.loads(data[-1])
            assert set(last) == {"error"} and last["error"]["message"], last
            assert all(f not in last["error"] for f in ("choices",)), last
        else:
            events = [line[6:].strip() for line in text.splitlines() if line.startswith("event:")]
            assert "message_stop" not in events and events[-1] == "error", text
            last = json.loads([line[5:] for line in text.splitlines() if line.startswith("data:")][-1])
            assert last["type"] == "error" and last["error"]["message"], last
        return
    resp = httpx.Response(r.status_code, headers=r.headers, content=text.encode())
    assert r.status_code in (502, 504), f"{r.status_code} {text[:500]}"
    if route == "openai":
        assert_openai_error(resp, r.status_code)
    else:
        assert_anthropic_error(resp, r.status_code)


def check_passthrough_garbage(route: str, r: httpx.Response, text: str) -> None:
    """A stream in the caller's own dialect is relayed byte for byte (keygate does not parse
    it on the way unless it meters usage): the upstream's unparsable line reaches the client as
    it was sent, and the stream ends without a clean end (no `[DONE]`, no `message_stop`), so
    SDKs raise a decoding error."""
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert "not json" in text, text
    assert "[DONE]" not in text and "message_stop" not in text, text


SEEN: list[str] = []


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("route", ["openai", "anthropic"])
@pytest.mark.parametrize("wire", ["gpt", "claude"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_upstream_fault(kg, vkey, mock, fault, wire, route, stream):
    model = f"{wire}-{fault}"
    bound = FAULTS[fault][2]
    for who, key in (("admin", ADMIN_KEY), ("virtual", vkey)):
        r, text, took = call(kg, route, model, stream, key)
        line = f"{fault:8} {wire:6} -> {route:9} {'stream' if stream else 'json':6} {who:7} {took:5.2f}s  {summary(r, text)}"
        SEEN.append(line)
        print("\nFAULT", line)
        assert took < bound, f"{line}: took {took:.1f}s (bound {bound}s)"
        if fault in ("cut", "stall") and not stream:
            # The mock's cut_after/stall_after shape streams only: a JSON answer is whole.
            assert r.status_code == 200, text[:500]
        elif fault == "garbage" and stream and (wire == "gpt") == (route == "openai"):
            check_passthrough_garbage(route, r, text)
        else:
            check_error(route, r, text)
        assert ADMIN_KEY not in text and vkey not in text
    # The next normal request on the same route is served.
    ok = "gpt-ok" if wire == "gpt" else "claude-ok"
    r, text, _ = call(kg, route, ok, stream, vkey)
    assert r.status_code == 200, text[:500]
    assert kg.proc.popen.poll() is None


def test_no_panic_no_secret_and_budget_charged_at_most_reservations(kg, vkey):
    """Runs last in this file: after the whole matrix, keygate is alive, printed no panic and
    no secret, and the virtual key's spend is bounded by what its requests could reserve."""
    time.sleep(0.6)  # spend is written in batches
    r = http.get(f"{kg.url}/key/info", params={"key": vkey},
                 headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
    assert r.status_code == 200, r.text
    spend = r.json()["info"]["spend"]
    print(f"\nFAULT virtual key spend after the matrix: ${spend:.6f}")
    # Each failed request reserves at most (body bytes + max_tokens 16) tokens at $0.001.
    assert spend < len(FAULTS) * 2 * 2 * 2 * 0.6, spend
    assert kg.proc.popen.poll() is None
    log = kg.stdout + kg.stderr
    assert "panicked" not in log, log[-3000:]
    assert_no_secrets(log, vkey)
