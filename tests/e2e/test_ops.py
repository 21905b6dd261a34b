"""Operations endpoints: liveness, readiness, and Prometheus metrics fed by real traffic."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from conftest import ADMIN_KEY, UPSTREAM_KEY, chat_body, messages_body, http

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        samples.append((name, dict(LABEL_RE.findall(labels)), float(value)))
    return samples


def value_of(samples, name: str, **labels: str) -> float:
    return sum(v for n, ls, v in samples if n == name and all(ls.get(k) == x for k, x in labels.items()))


def scrape(gateway) -> tuple[str, list]:
    r = http.get(f"{gateway.url}/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return r.text, parse_metrics(r.text)


def test_health_live(gateway):
    r = http.get(f"{gateway.url}/health/live", timeout=5)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"


def test_health_ready(gateway):
    r = http.get(f"{gateway.url}/health/ready", timeout=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert body["store"]["kind"] == "sqlite"
    assert body["store"]["status"] == "ok"
    assert body["models"] >= 4


def test_health_needs_no_key_and_reveals_none(gateway):
    for path in ["/health/live", "/health/ready", "/metrics"]:
        r = http.get(f"{gateway.url}{path}", timeout=5)
        assert r.status_code == 200, path
        assert ADMIN_KEY not in r.text and UPSTREAM_KEY not in r.text, path
        assert "sqlite://" not in r.text, "the database URL stays private"


def test_metrics_count_requests_and_upstream_statuses(gateway):
    _, before = scrape(gateway)
    ok_before = value_of(before, "keygate_requests_total", route="chat_completions", model="gpt-4o-mini", status="200")
    up429_before = value_of(before, "keygate_upstream_responses_total", model="gpt-429", status="429")

    client = gateway.openai()
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-429", messages=[{"role": "user", "content": "hi"}])
    http.post(f"{gateway.url}/v1/messages", headers=gateway.headers(), json=messages_body("claude-haiku"), timeout=10)
    http.post(f"{gateway.url}/v1/messages", headers=gateway.headers(), json=messages_body("claude-429"), timeout=10)
    http.post(f"{gateway.url}/v1/embeddings", headers=gateway.headers(),
               json={"model": "gpt-4o-mini", "input": "x"}, timeout=10)
    http.post(f"{gateway.url}/v1/chat/completions", headers={"Authorization": "Bearer nope"},
               json=chat_body("gpt-4o-mini"), timeout=10)

    text, after = scrape(gateway)
    assert "# TYPE keygate_requests_total counter" in text
    assert value_of(after, "keygate_requests_total", route="chat_completions", model="gpt-4o-mini",
                    status="200") >= ok_before + 3
    sample = next(ls for n, ls, _ in after
                  if n == "keygate_requests_total" and ls.get("model") == "gpt-4o-mini")
    assert set(sample) >= {"route", "model", "provider", "status"}, sample
    assert value_of(after, "keygate_requests_total", route="messages", model="claude-haiku", status="200") >= 1
    assert value_of(after, "keygate_requests_total", route="embeddings", model="gpt-4o-mini") >= 1
    assert value_of(after, "keygate_requests_total", route="chat_completions", model="gpt-429",
                    provider="openai_compatible", status="429") >= 1
    assert value_of(after, "keygate_requests_total", status="401") >= 1
    assert value_of(after, "keygate_upstream_responses_total", model="gpt-429", status="429") >= up429_before + 1
    assert value_of(after, "keygate_upstream_responses_total", model="claude-429", provider="anthropic",
                    status="429") >= 1
    assert value_of(after, "keygate_upstream_responses_total", model="gpt-4o-mini", status="200") >= 3

    # The latency histogram is a real Prometheus histogram.
    buckets = [(ls, v) for n, ls, v in after if n == "keygate_request_duration_seconds_bucket"
               and ls.get("model") == "gpt-4o-mini" and ls.get("route") == "chat_completions"]
    assert buckets, "no duration buckets"
    inf = [v for ls, v in buckets if ls.get("le") == "+Inf"]
    assert inf and inf[0] >= 3
    assert value_of(after, "keygate_request_duration_seconds_count", model="gpt-4o-mini",
                    route="chat_completions") == inf[0]
    assert any(n == "keygate_request_duration_seconds_sum" for n, _, _ in after)

    # Labels never carry keys.
    assert ADMIN_KEY not in text and UPSTREAM_KEY not in text and "nope" not in text


def test_metrics_labels_unknown_models_without_cardinality_explosion(gateway):
    """Requests for made-up model names must not mint one series per name."""
    for i in range(5):
        http.post(f"{gateway.url}/v1/chat/completions", headers=gateway.headers(),
                   json=chat_body(f"made-up-model-{i}"), timeout=10)
    text, _ = scrape(gateway)
    assert "made-up-model-" not in text
