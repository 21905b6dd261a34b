"""Neither the admin key nor any upstream key appears in keygate's output (stdout, stderr at
debug level) or in any response body, whatever the outcome of the requests. The only allowed
appearance is the --dev banner on stdout (covered in test_lifecycle.test_dev_mode)."""

from __future__ import annotations

import signal

import httpx
import pytest

from conftest import (
    ADMIN_KEY,
    UPSTREAM_KEY,
    base_config,
    chat_body,
    marker,
    messages_body,
    model_entries,
)

# A literal key in the config file (allowed, with a warning): it must not be printed either.
LITERAL_UPSTREAM_KEY = "sk-e2e-literal-" + "5eC7e7" * 4
# A key the mock refuses: the 401 path must not print or return it.
REFUSED_UPSTREAM_KEY = "sk-e2e-refused-" + "0dd" * 8


@pytest.mark.parametrize("log", ["debug", "trace"])
def test_secrets_never_logged(keygate_factory, mock, closed_port, log):
    models = model_entries(mock.url, closed_port) + [
        {"name": "literal", "provider": "openai_compatible", "api_base": f"{mock.url}/v1",
         "api_key": LITERAL_UPSTREAM_KEY},
        {"name": "refused", "provider": "openai_compatible", "api_base": f"{mock.url}/v1",
         "api_key": "env:REFUSED_KEY"},
        {"name": "refused-claude", "provider": "anthropic", "api_base": mock.url,
         "api_key": "env:REFUSED_KEY"},
        {"name": "rotating", "provider": "openai_compatible", "api_base": f"{mock.url}/v1",
         "api_key": ["env:MOCK_UPSTREAM_KEY", "env:REFUSED_KEY"]},
    ]
    kg = keygate_factory(base_config(models), log=log, env={"REFUSED_KEY": REFUSED_UPSTREAM_KEY})
    secrets = [ADMIN_KEY, UPSTREAM_KEY, LITERAL_UPSTREAM_KEY, REFUSED_UPSTREAM_KEY]
    h = kg.headers()
    bodies: list[str] = []

    def record(resp: httpx.Response) -> httpx.Response:
        bodies.append(resp.text)
        bodies.append(str(dict(resp.headers)))
        return resp

    with httpx.Client(base_url=kg.url, timeout=15) as c:
        # successes, all dialects and upstreams, streams included
        for model in ["gpt-4o-mini", "claude-haiku", "azure-gpt", "openai-gpt", "rotating"]:
            assert record(c.post("/v1/chat/completions", headers=h, json=chat_body(model))).status_code == 200
            record(c.post("/v1/chat/completions", headers=h,
                          json=chat_body(model, stream=True, stream_options={"include_usage": True})))
            record(c.post("/v1/messages", headers={"x-api-key": ADMIN_KEY}, json=messages_body(model)))
            record(c.post("/v1/messages", headers={"x-api-key": ADMIN_KEY}, json=messages_body(model, stream=True)))
        record(c.post("/v1/embeddings", headers=h, json={"model": "gpt-4o-mini", "input": "x"}))
        record(c.post("/v1/embeddings", headers=h, json={"model": "azure-gpt", "input": "x"}))
        record(c.get("/v1/models", headers=h))
        record(c.get("/v1/models", headers={**h, "anthropic-version": "2023-06-01"}))
        # the literal key reaches the upstream, which refuses it (401 from the mock)
        record(c.post("/v1/chat/completions", headers=h, json=chat_body("literal")))
        # failures of every kind
        for model in ["refused", "refused-claude", "gpt-429", "claude-429", "gpt-500", "claude-500",
                      "gpt-timeout", "gpt-unreachable", "claude-unreachable", "no-such-model"]:
            record(c.post("/v1/chat/completions", headers=h, json=chat_body(model)))
            record(c.post("/v1/messages", headers=h, json=messages_body(model, stream=True)))
        # wrong caller keys that contain or resemble the admin key
        for bad in [ADMIN_KEY + "x", ADMIN_KEY[:-2], "Bearer " + ADMIN_KEY, UPSTREAM_KEY]:
            record(c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {bad}"},
                          json=chat_body("gpt-4o-mini")))
            record(c.post("/v1/messages", headers={"x-api-key": bad}, json=messages_body("claude-haiku")))
        # the caller's key in odd places: body fields, an unknown route
        record(c.post("/v1/chat/completions", headers=h,
                      json=chat_body("gpt-4o-mini", user=marker(), metadata={"k": "v"})))
        record(c.post(f"/v1/nope/{marker()}", headers=h, json={}))
        record(c.post("/v1/chat/completions", headers={**h, "Content-Type": "text/plain"}, content=b"x"))
        record(c.post("/v1/chat/completions", headers=h, content=b"{not json"))

    # The mock did receive the literal and refused keys, so they were really in use.
    creds = {r["credential"] for r in mock.records()}
    assert LITERAL_UPSTREAM_KEY in creds and REFUSED_UPSTREAM_KEY in creds

    kg.proc.signal(signal.SIGTERM)
    assert kg.proc.wait(15) == 0
    stdout, stderr = kg.stdout, kg.stderr
    assert "request" in stderr, "debug logging should have produced request lines"
    for secret in secrets:
        assert secret not in stderr, f"{secret[:16]}... found in stderr:\n" + "\n".join(
            line for line in stderr.splitlines() if secret in line)[:3000]
        assert secret not in stdout, f"{secret[:16]}... found in stdout"
        for body in bodies:
            assert secret not in body, f"{secret[:16]}... found in a response: {body[:500]}"
        # Not even the tail of a key (a partly masked key is still a leak for short keys).
        assert secret[-12:] not in stderr


def test_database_password_never_logged(tmp_path, closed_port):
    """A store that cannot be opened: exit 2 naming the store, without its password."""
    from conftest import KEYGATE_BIN, Proc, base_env

    password = "sk-e2e-dbpass-" + "9f" * 8
    env = base_env(KEYGATE_LOG="debug", KEYGATE_ADMIN_KEY=ADMIN_KEY,
                   KEYGATE_DATABASE_URL=f"postgres://keygate:{password}@127.0.0.1:{closed_port}/test")
    proc = Proc("pgdown", [KEYGATE_BIN, "serve", "--listen", "127.0.0.1:0"], tmp_path, env=env, cwd=tmp_path)
    try:
        code = proc.wait(30)
    finally:
        proc.stop()
    assert code == 2, proc.stderr[-2000:]
    assert "127.0.0.1" in proc.stderr and "postgres://" in proc.stderr, proc.stderr[-2000:]
    assert password not in proc.stderr and password not in proc.stdout
    assert ADMIN_KEY not in proc.stderr and ADMIN_KEY not in proc.stdout
