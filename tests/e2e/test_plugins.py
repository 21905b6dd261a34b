"""Backend plugins through a real binary: the out-of-tree example plugin (examples/plugin-echo,
linked into `keygate-echo`) serving the official SDKs, fail-open discovery, the missing-backend
start error, and secret-helper manifests."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from conftest import (
    ECHO_BIN,
    assert_openai_error,
    base_config,
    chat_body,
    run_to_exit,
)

http = httpx.Client(trust_env=False)


@pytest.fixture(scope="module", autouse=True)
def echo_binary():
    if not os.access(ECHO_BIN, os.X_OK):
        pytest.fail(
            f"{ECHO_BIN} is missing: build it with `CARGO_TARGET_DIR=target cargo build "
            "--manifest-path examples/plugin-echo/Cargo.toml` (scripts/test does)"
        )


def echo_models() -> list[dict]:
    return [
        {"name": "echo-model", "provider": "echo", "model": "echo-1",
         "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
        {"name": "echo-custom", "provider": "echo", "options": {"prefix": "you said: "}},
        {"name": "echo-reversed", "provider": "echo-reverse"},
        # options the factory refuses: fail-open, the model answers with the cause
        {"name": "echo-broken", "provider": "echo", "options": {"prefix": 5}},
    ]


def test_the_example_plugin_serves_both_sdks(keygate_factory):
    kg = keygate_factory(base_config(echo_models()), binary=ECHO_BIN)
    # The post-build hook ran, for the registered plugin, after the build.
    assert kg.proc.wait_stderr('post-build hook: backend echo serves ["echo-model", "echo-custom", "echo-broken"]'), kg.stderr

    client = kg.openai()
    done = client.chat.completions.create(
        model="echo-model", messages=[{"role": "user", "content": "hello plugin world"}])
    assert done.choices[0].message.content == "echo: hello plugin world"
    assert done.model == "echo-1"
    assert done.usage.completion_tokens == 4

    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="echo-custom", stream=True, messages=[{"role": "user", "content": "one two three"}])
        if c.choices]
    assert "".join(pieces) == "you said: one two three"
    assert len([p for p in pieces if p]) >= 4, pieces

    reversed_ = client.chat.completions.create(
        model="echo-reversed", messages=[{"role": "user", "content": "abc"}])
    assert reversed_.choices[0].message.content == "echo: cba"

    emb = client.embeddings.create(model="echo-model", input=["a", "bb"])
    assert [len(d.embedding) for d in emb.data] == [8, 8]

    # An Anthropic caller reaches the OpenAI-dialect plugin through keygate's translation.
    message = kg.anthropic().messages.create(
        model="echo-model", max_tokens=50, messages=[{"role": "user", "content": "from claude"}])
    assert message.content[0].text == "echo: from claude"
    with kg.anthropic().messages.stream(
            model="echo-model", max_tokens=50,
            messages=[{"role": "user", "content": "streamed claude"}]) as stream:
        assert "".join(stream.text_stream) == "echo: streamed claude"

    # The broken entry did not stop start-up; it names its plugin and the cause.
    assert "failed: options.prefix must be a string" in kg.stderr
    r = http.post(f"{kg.url}/v1/chat/completions", headers=kg.headers(), json=chat_body("echo-broken"))
    err = assert_openai_error(r, 502)
    assert "keygate-plugin-echo" in err["message"], err


def test_virtual_keys_meter_plugin_models(keygate_factory):
    kg = keygate_factory(base_config(echo_models()), binary=ECHO_BIN)
    r = http.post(f"{kg.url}/key/generate", headers=kg.headers(),
                  json={"models": ["echo-model"], "max_budget": 10})
    assert r.status_code == 200, r.text
    key = r.json()["key"]
    import openai

    client = openai.OpenAI(base_url=f"{kg.url}/v1", api_key=key, max_retries=0,
                           http_client=openai.DefaultHttpxClient(trust_env=False))
    for _ in range(3):
        client.chat.completions.create(model="echo-model", messages=[{"role": "user", "content": "a b c d"}])
    chunks = list(client.chat.completions.create(
        model="echo-model", stream=True, messages=[{"role": "user", "content": "x y"}]))
    assert all(c.usage is None for c in chunks), "usage chunk leaked to a caller that did not ask"
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="echo-custom", messages=[{"role": "user", "content": "no"}])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        info = http.get(f"{kg.url}/key/info", params={"key": key}, headers=kg.headers()).json()["info"]
        if info["spend"] > 0:
            break
        time.sleep(0.1)
    assert info["spend"] > 0, info


def test_a_backend_no_plugin_provides_fails_start_with_guidance(tmp_path):
    code, _, err = run_to_exit(tmp_path, "models:\n  - { name: e, provider: echo }\n")
    assert code == 2, err
    assert "unknown provider `echo`" in err, err
    assert "available: openai, openai_compatible, azure_openai, anthropic" in err, err
    assert "Gateway::builder().plugin" in err and "examples/plugin-echo" in err, err
    assert "panicked" not in err


def test_secret_helper_manifests_are_discovered_fail_open(keygate_factory, mock, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    helper = plugins / "helper.sh"
    helper.write_text('#!/bin/sh\nprintf \'{"api_key": "%s"}\' "$MOCK_UPSTREAM_KEY"\n')
    helper.chmod(0o755)
    (plugins / "a-team.toml").write_text(
        'name = "team-helper"\nkind = "secret_source"\ncommand = ["./helper.sh"]\n'
        '[compatibility]\ncore_min_version = "0.1.0"\n')
    (plugins / "b-future.toml").write_text(
        'name = "future"\nkind = "secret_source"\ncommand = ["./helper.sh"]\n'
        '[compatibility]\ncore_min_version = "42.0.0"\n')
    (plugins / "c-broken.toml").write_text("this is = not [valid")
    config = base_config(
        [{"name": "gpt", "provider": "openai_compatible", "api_base": f"{mock.url}/v1",
          "api_key": "secret:ANY_NAME_THE_HELPER_ANSWERS"}],
        plugin_dir=str(plugins),
        secrets={"sources": [{"type": "env", "prefix": "NOPE_"}]},
    )
    kg = keygate_factory(config)
    err = kg.stderr
    assert "future" in err and "42.0.0" in err, err
    assert "c-broken.toml" in err and "not a valid manifest" in err, err
    r = http.post(f"{kg.url}/v1/chat/completions", headers=kg.headers(), json=chat_body("gpt"))
    assert r.status_code == 200, r.text
