"""Bad input on every inference route, answered with the right status and the route's error
envelope; then a deterministic garbage barrage that must never crash, reset a connection, or
answer 5xx for a client's mistake."""

from __future__ import annotations

import json
import random
import string
from typing import Any

import httpx
import pytest

from conftest import ADMIN_KEY, assert_anthropic_error, assert_openai_error, marker, http

ROUTES = {
    "/v1/chat/completions": "openai",
    "/v1/embeddings": "openai",
    "/v1/messages": "anthropic",
}


def valid_body(route: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
    if route == "/v1/embeddings":
        return {"model": model, "input": "hello"}
    if route == "/v1/messages":
        return {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": marker()}]}
    return {"model": model, "messages": [{"role": "user", "content": marker()}]}


def check_envelope(route: str, resp: httpx.Response, status: int) -> dict:
    if ROUTES[route] == "anthropic":
        return assert_anthropic_error(resp, status)
    return assert_openai_error(resp, status)


def post(gateway, route: str, content: bytes, content_type: str | None = "application/json", **headers):
    h = {"Authorization": f"Bearer {ADMIN_KEY}"}
    if content_type is not None:
        h["Content-Type"] = content_type
    h.update(headers)
    return http.post(f"{gateway.url}{route}", content=content, headers=h, timeout=10)


BAD_BODIES = {
    "malformed": b'{"model": "gpt-4o-mini", "messages": [',
    "trailing-garbage": b'{"model": "gpt-4o-mini"} xyz',
    "not-json": b"model=gpt-4o-mini",
    "array": b'[{"model": "gpt-4o-mini"}]',
    "string": b'"gpt-4o-mini"',
    "number": b"42",
    "null": b"null",
    "empty": b"",
    "whitespace": b"  \n ",
    "missing-model": b'{"messages": [{"role": "user", "content": "hi"}], "input": "x"}',
    "empty-model": b'{"model": "", "messages": [], "input": "x"}',
    "null-model": b'{"model": null, "messages": [], "input": "x"}',
    "int-model": b'{"model": 5, "messages": [], "input": "x"}',
    "list-model": b'{"model": ["gpt-4o-mini"], "messages": [], "input": "x"}',
    "object-model": b'{"model": {"name": "gpt-4o-mini"}, "messages": [], "input": "x"}',
    "string-stream": b'{"model": "gpt-4o-mini", "stream": "yes", "messages": [], "input": "x"}',
    "invalid-utf8": b'{"model": "gpt-4o-mini\xff\xfe", "messages": []}',
    "deep-model": b'{"model": ' + b"[" * 5000 + b"]" * 5000 + b"}",
}


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_body_is_400(gateway, route, case):
    resp = post(gateway, route, BAD_BODIES[case])
    err = check_envelope(route, resp, 400)
    if ROUTES[route] == "openai":
        assert err["type"] == "invalid_request_error", err


@pytest.mark.parametrize("route", list(ROUTES))
def test_missing_model_message(gateway, route):
    resp = post(gateway, route, b"{}")
    err = check_envelope(route, resp, 400)
    assert "model" in err["message"]


@pytest.mark.parametrize("route", list(ROUTES))
def test_body_over_limit_is_413(gateway, route):
    body = valid_body(route)
    body["padding"] = "x" * 70_000  # the limit is 65536
    raw = json.dumps(body).encode()
    resp = post(gateway, route, raw)
    err = check_envelope(route, resp, 413)
    if ROUTES[route] == "openai":
        assert err["code"] == "request_too_large", err


@pytest.mark.parametrize("route", list(ROUTES))
def test_chunked_body_over_limit_is_413(gateway, route):
    """No Content-Length: the limit is enforced while reading."""
    body = valid_body(route)
    body["padding"] = "x" * 200_000
    raw = json.dumps(body).encode()

    def chunks():
        for i in range(0, len(raw), 8192):
            yield raw[i : i + 8192]

    resp = http.post(
        f"{gateway.url}{route}",
        content=chunks(),
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
        timeout=10,
    )
    check_envelope(route, resp, 413)


@pytest.mark.parametrize("route", list(ROUTES))
def test_body_just_under_limit_is_not_413(gateway, route):
    body = valid_body(route)
    raw = json.dumps(body).encode()
    body["padding"] = "x" * (65536 - len(raw) - 20)
    raw = json.dumps(body).encode()
    assert len(raw) <= 65536
    resp = post(gateway, route, raw)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"]
)
def test_non_json_content_type_is_415(gateway, route, content_type):
    resp = post(gateway, route, json.dumps(valid_body(route)).encode(), content_type=content_type)
    check_envelope(route, resp, 415)


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "APPLICATION/JSON", None])
def test_json_content_type_variants_are_accepted(gateway, route, content_type):
    resp = post(gateway, route, json.dumps(valid_body(route)).encode(), content_type=content_type)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("route", list(ROUTES))
def test_wrong_method_on_inference_route(gateway, route):
    """GET on a POST-only route: 405 (or 404, as for unknown paths), and in either case an error
    envelope of the route's dialect, not an empty body the SDKs cannot read."""
    resp = http.get(f"{gateway.url}{route}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
    assert resp.status_code in (404, 405), resp.status_code
    check_envelope(route, resp, resp.status_code)


def test_messages_translation_refuses_bad_shapes(gateway):
    """Anthropic requests that cannot be translated for an OpenAI upstream get a 400 envelope."""
    cases = [
        {"model": "gpt-4o-mini", "max_tokens": 8, "messages": "hello"},
        {"model": "gpt-4o-mini", "max_tokens": 8, "messages": []},
        {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "wizard", "content": "hi"}]},
        {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": 7}]},
    ]
    for body in cases:
        resp = post(gateway, "/v1/messages", json.dumps(body).encode())
        assert_anthropic_error(resp, 400)
    cases = [
        {"model": "claude-haiku", "messages": "hello"},
        {"model": "claude-haiku", "messages": []},
        {"model": "claude-haiku", "messages": [{"role": "wizard", "content": "hi"}]},
        {"model": "claude-haiku", "messages": [{"role": "user", "content": "hi"}], "max_tokens": -1},
    ]
    for body in cases:
        resp = post(gateway, "/v1/chat/completions", json.dumps(body).encode())
        assert_openai_error(resp, 400)


# ----------------------------------------------------------------------------- garbage barrage

MODELS = ["gpt-4o-mini", "claude-haiku", "azure-gpt", "no-such-model"]
UPSTREAM_MODELS = {"gpt-4o-mini", "claude-haiku", "azure-gpt"}
PATHS = [
    "/v1/chat/completions", "/v1/embeddings", "/v1/messages", "/v1/models", "/chat/completions",
    "/embeddings", "/models", "/health/live", "/health/ready", "/metrics", "/", "/v1", "/v1/",
    "/v1/chat/completions/", "/v1//chat/completions", "/v1/chat/completions/../models",
    "/v1/%2e%2e/metrics", "/v1/messages%00", "/v1/models/gpt-4o-mini", "/v1/messages/count_tokens",
    "/v1/completions", "/key/generate", "/v1/keygate/creds/x", "/v1/sys/leases/renew",
    "/%ff%fe", "/v1/chat/completions?x=" + "y" * 3000, "/" + "a" * 6000,
]
METHODS = ["POST"] * 30 + ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
CONTENT_TYPES = ["application/json"] * 20 + [None, "text/plain", "application/json; charset=latin1",
                                            "application/vnd.api+json", "*/*", "application/json, text/plain", ""]


def random_scalar(rng: random.Random) -> Any:
    choice = rng.randrange(10)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 2**63, -(2**63) - 1, 10**30, 1])
    if choice == 3:
        return rng.choice([1e308, -1e-308, 0.5, 3.14])
    if choice == 4:
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(0, 40)))
    if choice == 5:
        return rng.choice(["\u0000", "\ud7ff\ue000", "😀" * 50, "\u202e", "a\nb\r\nc", "\\u0000", "</s>"])
    if choice == 6:
        return [random_scalar(rng) for _ in range(rng.randrange(0, 4))]
    if choice == 7:
        return {rng.choice(["role", "content", "type", "text", "tool_calls", "x"]): random_scalar(rng)}
    if choice == 8:
        return rng.choice(MODELS)
    return "x" * rng.randrange(0, 2000)


def mutate(rng: random.Random, node: Any, depth: int = 0) -> Any:
    """Replaces, deletes or retypes a random part of a JSON tree."""
    if depth > 6 or (depth > 0 and rng.random() < 0.25):
        return random_scalar(rng)
    if isinstance(node, dict) and node:
        node = dict(node)
        key = rng.choice(list(node))
        action = rng.randrange(4)
        if action == 0:
            del node[key]
        elif action == 1:
            node[key] = mutate(rng, node[key], depth + 1)
        elif action == 2:
            node[rng.choice(["stream", "tools", "tool_choice", "n", "max_tokens", "stream_options",
                             "system", "temperature", "stop", "encoding_format", "input", "metadata",
                             "response_format", "logprobs", "user"])] = random_scalar(rng)
        else:
            node[key] = mutate(rng, node[key], depth + 1)
            node["stream"] = rng.choice([True, False])
        return node
    if isinstance(node, list) and node:
        node = list(node)
        i = rng.randrange(len(node))
        node[i] = mutate(rng, node[i], depth + 1)
        if rng.random() < 0.2:
            node.append(mutate(rng, node[0], depth + 1))
        return node
    return random_scalar(rng)


SEEDS = [
    {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]},
    {"model": "claude-haiku", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
     "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
    {"model": "claude-haiku", "max_tokens": 10, "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]}]},
    {"model": "gpt-4o-mini", "max_tokens": 10, "system": [{"type": "text", "text": "s"}],
     "messages": [{"role": "user", "content": "hi"}], "tools": [{"name": "f", "input_schema": {"type": "object"}}]},
    {"model": "azure-gpt", "input": ["a", "b"], "encoding_format": "float"},
    {"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"}], "stream": True,
     "stream_options": {"include_usage": True}},
]


def garbage_request(rng: random.Random) -> dict[str, Any]:
    method = rng.choice(METHODS)
    path = rng.choice(PATHS[:3]) if rng.random() < 0.85 else rng.choice(PATHS)
    kind = rng.randrange(10)
    if kind < 6:
        body_obj: Any = rng.choice(SEEDS)
        for _ in range(rng.randrange(0, 3)):
            body_obj = mutate(rng, body_obj)
        if isinstance(body_obj, dict) and rng.random() < 0.5:
            body_obj["model"] = rng.choice(MODELS)
        content = json.dumps(body_obj).encode()
    elif kind == 6:
        content = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 3000)))
    elif kind == 7:
        text = json.dumps(rng.choice(SEEDS))
        cut = rng.randrange(len(text))
        content = text[:cut].encode()
    elif kind == 8:
        content = (json.dumps(rng.choice(SEEDS)) * rng.randrange(1, 4)).encode()
    else:
        content = b""
    headers = {}
    auth = rng.randrange(20)
    if auth < 17:
        headers["Authorization"] = f"Bearer {ADMIN_KEY}"
    elif auth == 17:
        headers["x-api-key"] = ADMIN_KEY
    elif auth == 18:
        headers["Authorization"] = "Bearer " + "k" * rng.randrange(1, 5000)
    ct = rng.choice(CONTENT_TYPES)
    if ct is not None:
        headers["Content-Type"] = ct
    if rng.random() < 0.1:
        headers["X-Huge"] = "h" * rng.choice([1000, 8000, 30000])
    if rng.random() < 0.05:
        for i in range(50):
            headers[f"X-Many-{i}"] = str(i)
    if rng.random() < 0.1:
        headers["anthropic-version"] = rng.choice(["2023-06-01", "", "garbage", "9999-99-99"])
    if rng.random() < 0.05:
        headers["X-Gpt-4o-Mini-Authorization"] = rng.choice(["", "Bearer x", "sk-abc"])
    return {"method": method, "path": path, "content": content, "headers": headers}


def upstream_related(req: dict[str, Any]) -> bool:
    """Whether the request may legitimately have reached an upstream (so 502/504 can be fair)."""
    try:
        body = json.loads(req["content"])
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("model") in UPSTREAM_MODELS


def envelope_problem(dialect: str, body: bytes) -> str | None:
    """Why `body` is not an error envelope of `dialect` (None when it is one)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return "not JSON"
    if dialect == "anthropic":
        ok = (isinstance(doc, dict) and doc.get("type") == "error" and isinstance(doc.get("error"), dict)
              and isinstance(doc["error"].get("type"), str) and isinstance(doc["error"].get("message"), str))
    else:
        ok = (isinstance(doc, dict) and isinstance(doc.get("error"), dict)
              and isinstance(doc["error"].get("message"), str) and "type" in doc["error"])
    return None if ok else f"not an {dialect} error envelope"


def test_garbage_barrage(gateway):
    rng = random.Random(20240611)
    failures: list[str] = []
    statuses: dict[int, int] = {}
    # A fresh connection per request: a refused body may close the connection, and that is fine.
    with httpx.Client(timeout=15, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        for i in range(500):
            req = garbage_request(rng)
            try:
                resp = client.request(req["method"], gateway.url + req["path"], content=req["content"],
                                      headers=req["headers"])
                body = resp.read()
            except httpx.TransportError as err:
                failures.append(f"#{i} {req['method']} {req['path'][:80]}: transport error {err!r}")
                continue
            status = resp.status_code
            statuses[status] = statuses.get(status, 0) + 1
            if status >= 500 and not (status in (502, 504) and upstream_related(req)):
                failures.append(
                    f"#{i} {req['method']} {req['path'][:80]} body={req['content'][:200]!r} -> {status} {body[:300]!r}"
                )
            route = req["path"].split("?")[0]
            if req["method"] == "POST" and route in ROUTES and status >= 400:
                problem = envelope_problem(ROUTES[route], body)
                if problem:
                    failures.append(f"#{i} POST {route} -> {status}: {problem}: {body[:300]!r}")
            if ADMIN_KEY.encode() in body:
                failures.append(f"#{i}: the admin key is echoed in the response")
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failures; statuses {statuses})"
    # Still alive and serving.
    assert http.get(f"{gateway.url}/health/live", timeout=5).status_code == 200
    r = http.post(f"{gateway.url}/v1/chat/completions", headers=gateway.headers(),
                   json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "still there?"}]},
                   timeout=10)
    assert r.status_code == 200, r.text
    assert "panicked" not in gateway.stderr
    assert gateway.proc.popen.poll() is None


@pytest.mark.parametrize("size", [20_000, 200_000, 1_000_000])
def test_huge_headers_do_not_reset(gateway, size):
    """Oversized headers get a response (431 or the route's answer), never a reset."""
    with httpx.Client(timeout=10) as client:
        resp = client.post(
            f"{gateway.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {ADMIN_KEY}", "X-Huge": "h" * size},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert resp.status_code in (200, 431), resp.status_code
    assert http.get(f"{gateway.url}/health/live", timeout=5).status_code == 200
