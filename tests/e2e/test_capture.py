"""Traffic capture through the real binary: streaming, non-streaming, error and disconnected
exchanges are written as JSON lines, per-model on/off and sampling hold, files rotate, and no
key used anywhere (upstream, caller's own, admin, virtual) appears in any capture file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from conftest import ADMIN_KEY, UPSTREAM_KEY, base_config, chat_body

http = httpx.Client(trust_env=False)

BYOK_KEY = "sk-byok-capture-0123456789abcdef"


def capture_models(mock_url: str) -> list[dict]:
    v1 = f"{mock_url}/v1"
    key = "env:MOCK_UPSTREAM_KEY"
    return [
        {"name": "cap-gpt", "provider": "openai_compatible", "api_base": v1, "api_key": key,
         "model": "gpt-4o-mini", "byok": "allow"},
        {"name": "cap-claude", "provider": "anthropic", "api_base": mock_url, "api_key": key,
         "model": "claude-3-5-haiku-latest"},
        {"name": "cap-500", "provider": "openai_compatible", "api_base": v1, "api_key": key,
         "model": "gpt-4o-mini:error=500"},
        {"name": "cap-slow", "provider": "openai_compatible", "api_base": v1, "api_key": key,
         "model": "gpt-4o-mini:chunks=40,delay_ms=50"},
        {"name": "cap-off", "provider": "openai_compatible", "api_base": v1, "api_key": key,
         "capture": {"enabled": False}},
        {"name": "cap-half", "provider": "openai_compatible", "api_base": v1, "api_key": key,
         "capture": {"sample": 0.5}},
    ]


def read_records(directory: Path) -> tuple[list[dict], str]:
    text = "".join(p.read_text() for p in sorted(directory.glob("keygate-capture.jsonl*")))
    return [json.loads(line) for line in text.splitlines() if line.strip()], text


def test_capture_of_every_kind_of_exchange_with_redaction(keygate_factory, mock_factory, tmp_path):
    mock = mock_factory()  # accepts any key, so the caller's own key gets through
    directory = tmp_path / "captures"
    kg = keygate_factory(base_config(capture_models(mock.url),
                                     capture={"path": str(directory), "sample": 1.0}))
    h = kg.headers()
    r = http.post(f"{kg.url}/key/generate", headers=h, json={"max_budget": 5})
    virtual_key = r.json()["key"]
    vh = {"Authorization": f"Bearer {virtual_key}"}

    # non-streaming, with the upstream key pasted into the prompt by a careless app
    r = http.post(f"{kg.url}/v1/chat/completions", headers=vh,
                  json=chat_body("cap-gpt", f"my key is {UPSTREAM_KEY} and admin {ADMIN_KEY}"))
    assert r.status_code == 200, r.text
    # streaming, Anthropic upstream reached from an OpenAI caller
    r = http.post(f"{kg.url}/v1/chat/completions", headers=h,
                  json=chat_body("cap-claude", "stream please", stream=True))
    assert r.status_code == 200 and "[DONE]" in r.text, r.text
    # an upstream error
    r = http.post(f"{kg.url}/v1/chat/completions", headers=h, json=chat_body("cap-500"))
    assert r.status_code == 500, r.text
    # the caller's own key
    r = http.post(f"{kg.url}/v1/chat/completions",
                  headers={**h, "X-Cap-Gpt-Authorization": f"Bearer {BYOK_KEY}"},
                  json=chat_body("cap-gpt", f"byok {BYOK_KEY}"))
    assert r.status_code == 200, r.text
    # a caller that leaves mid-stream
    with http.stream("POST", f"{kg.url}/v1/chat/completions", headers=h,
                     json=chat_body("cap-slow", stream=True), timeout=10) as resp:
        next(resp.iter_raw())
    # a model that opts out, and one sampled at half
    for _ in range(3):
        assert http.post(f"{kg.url}/v1/chat/completions", headers=h, json=chat_body("cap-off")).status_code == 200
    for _ in range(60):
        assert http.post(f"{kg.url}/v1/chat/completions", headers=h, json=chat_body("cap-half")).status_code == 200

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        records, _ = read_records(directory)
        if any(r["model"] == "cap-slow" for r in records):
            break
        time.sleep(0.1)
    assert kg.proc.stop() == 0
    records, text = read_records(directory)
    by_model: dict[str, list[dict]] = {}
    for record in records:
        by_model.setdefault(record["model"], []).append(record)

    plain, byok = by_model["cap-gpt"]
    assert plain["backend"] == "openai_compatible" and plain["key_name"] == "env:MOCK_UPSTREAM_KEY"
    assert plain["complete"] is True and plain["response"]["status"] == 200
    assert plain["request"]["method"] == "POST" and plain["request"]["url"].endswith("/v1/chat/completions")
    assert plain["request"]["headers"]["authorization"] == "[REDACTED]"
    assert "my key is [REDACTED] and admin [REDACTED]" in plain["request"]["body"]
    assert json.loads(plain["response"]["body"])["object"] == "chat.completion"
    assert byok["key_name"] == "byok" and "byok [REDACTED]" in byok["request"]["body"]

    (stream,) = by_model["cap-claude"]
    assert stream["backend"] == "anthropic" and stream["complete"] is True
    assert stream["request"]["headers"]["x-api-key"] == "[REDACTED]"
    assert "event: message_stop" in stream["response"]["body"]

    (error,) = by_model["cap-500"]
    assert error["response"]["status"] == 500 and error["complete"] is True

    (left,) = by_model["cap-slow"]
    assert left["complete"] is False and "dropped before its end" in left["error"], left
    assert 0 < left["response"]["body"].count("data:") < 40, left["response"]["body"]

    assert "cap-off" not in by_model
    assert 10 <= len(by_model.get("cap-half", [])) <= 50, len(by_model.get("cap-half", []))

    for secret in (UPSTREAM_KEY, BYOK_KEY, ADMIN_KEY, virtual_key):
        assert secret not in text, "a key leaked into the capture files"
    for secret in (UPSTREAM_KEY, BYOK_KEY, ADMIN_KEY, virtual_key):
        assert secret not in kg.stderr


def test_capture_files_rotate(keygate_factory, mock, tmp_path):
    directory = tmp_path / "captures"
    kg = keygate_factory(base_config(capture_models(mock.url)[:1], capture={
        "path": str(directory), "max_file_bytes": 4000, "max_files": 2}))
    for _ in range(30):
        r = http.post(f"{kg.url}/v1/chat/completions", headers=kg.headers(), json=chat_body("cap-gpt"))
        assert r.status_code == 200
    assert kg.proc.stop() == 0
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["keygate-capture.jsonl", "keygate-capture.jsonl.1", "keygate-capture.jsonl.2"], names
    for path in directory.iterdir():
        assert path.stat().st_size <= 4000 + 2000
        for line in path.read_text().splitlines():
            assert json.loads(line)["model"] == "cap-gpt"
