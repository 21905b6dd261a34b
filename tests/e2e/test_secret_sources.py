"""Upstream credentials from every secret source, end to end.

The real `keygate serve` resolves each model's `api_key` reference from a real OpenBao dev
server (token and AppRole auth, KV v2 and v1), a real moto server (AWS Secrets Manager), a FAKE
Azure Key Vault (`secret_backends.FakeAzureKeyVault`: no emulator exists), exec helpers (shell
scripts), the environment, `.env` files and secret files. keygate-mock records the credential
each upstream call carried, so every test proves which key reached the provider. Also: rotation
after the cache TTL, stale-if-error during an OpenBao outage, fallback along the chain, 503s that
name each source tried and never a secret, `keygate secrets check`, and no secret in any log.
"""

from __future__ import annotations

import json
import secrets as _secrets
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import httpx
import pytest

from conftest import (
    ADMIN_KEY,
    KEYGATE_BIN,
    UPSTREAM_KEY,
    Keygate,
    Mock,
    assert_anthropic_error,
    assert_openai_error,
    base_config,
    base_env,
    chat_body,
    http,
    marker,
    messages_body,
    start_mock,
    write_config,
)
from secret_backends import (
    AWS_SECRET_ACCESS_KEY,
    FakeAzureKeyVault,
    Moto,
    OpenBao,
    start_moto,
    start_openbao,
)


def key(label: str) -> str:
    """A fresh upstream key; every one of them must never appear in keygate's output."""
    return f"sk-e2e-{label}-{_secrets.token_hex(10)}"


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("secret-sources")


@pytest.fixture(scope="module")
def open_mock(module_dir) -> Iterable[Mock]:
    """A mock upstream that takes any key and records it."""
    m = start_mock(module_dir / "open-mock", name="open-mock")
    yield m
    m.proc.stop()


@pytest.fixture(scope="module")
def bao(module_dir) -> Iterable[OpenBao]:
    b = start_openbao(module_dir / "openbao")
    # What keygate may read: KV v2 `secret/`, KV v1 `kv1/`.
    b.policy("keygate-read", 'path "secret/data/*" { capabilities = ["read"] }\n'
                             'path "kv1/*" { capabilities = ["read"] }\n')
    b.enable_kv1("kv1")
    yield b
    b.stop()


@pytest.fixture(scope="module")
def moto(module_dir) -> Iterable[Moto]:
    m = start_moto(module_dir / "moto")
    yield m
    m.stop()


@pytest.fixture(scope="module")
def azure() -> Iterable[FakeAzureKeyVault]:
    fake = FakeAzureKeyVault()
    yield fake
    fake.close()


class Gateways:
    """Starts keygates for one test and remembers the secrets none of them may ever print.

    At the end of the test every keygate is stopped (SIGTERM, by PID) and its stdout and stderr
    (debug level) are searched for each remembered secret and for the last 12 characters of it.
    """

    def __init__(self, factory: Callable[..., Keygate]) -> None:
        self.factory = factory
        self.started: list[Keygate] = []
        self.secrets: set[str] = {ADMIN_KEY, UPSTREAM_KEY, AWS_SECRET_ACCESS_KEY}
        self.bodies: list[str] = []

    def start(self, config: dict[str, Any], env: dict[str, str] | None = None, log: str = "debug") -> Keygate:
        kg = self.factory(config, env=env, log=log)
        self.started.append(kg)
        return kg

    def secret(self, *values: str) -> None:
        self.secrets.update(v for v in values if v)

    def check_logs(self) -> None:
        for kg in self.started:
            kg.proc.stop()
            assert "panicked" not in kg.stderr, kg.stderr[-3000:]
            out = kg.stdout + "\n" + kg.stderr
            for s in sorted(self.secrets):
                leaked = [line for line in out.splitlines() if s in line or s[-12:] in line]
                assert not leaked, f"{s[:14]}... printed by {kg.proc.name}:\n" + "\n".join(leaked)[:3000]
                for body in self.bodies:
                    assert s not in body, f"{s[:14]}... in a response: {body[:500]}"


@pytest.fixture
def gw(keygate_factory) -> Iterable[Gateways]:
    g = Gateways(keygate_factory)
    yield g
    g.check_logs()


# ---------------------------------------------------------------------------------------------
# helpers


def gpt(name: str, mock: Mock, api_key: Any, **kw: Any) -> dict[str, Any]:
    return {"name": name, "provider": "openai_compatible", "api_base": f"{mock.url}/v1",
            "api_key": api_key, "model": "gpt-4o-mini", "timeout": "10s", **kw}


def claude(name: str, mock: Mock, api_key: Any, **kw: Any) -> dict[str, Any]:
    return {"name": name, "provider": "anthropic", "api_base": mock.url, "api_key": api_key,
            "model": "claude-3-5-haiku-latest", "timeout": "10s", **kw}


def config(models: list[dict[str, Any]], sources: list[dict[str, Any]],
           cache: dict[str, str] | None = None) -> dict[str, Any]:
    secrets: dict[str, Any] = {"sources": sources}
    if cache:
        secrets["cache"] = cache
    return base_config(models, secrets=secrets)


def ask(kg: Keygate, model: str, *, dialect: str = "openai", stream: bool = False,
        gw: Gateways | None = None, timeout: float = 30) -> tuple[httpx.Response, str]:
    """One request with a fresh marker (the last message's text): (response, marker)."""
    mark = marker(model)
    if dialect == "openai":
        r = http.post(f"{kg.url}/v1/chat/completions", headers=kg.headers(), timeout=timeout,
                      json=chat_body(model, mark, stream=stream))
    else:
        r = http.post(f"{kg.url}/v1/messages", timeout=timeout,
                      headers={"x-api-key": ADMIN_KEY, "anthropic-version": "2023-06-01"},
                      json=messages_body(model, mark, stream=stream))
    if gw is not None:
        gw.bodies.append(r.text)
    return r, mark


def credential_of(mock: Mock, mark: str) -> str | None:
    return mock.one(mark).get("credential")


def expect_key(kg: Keygate, mock: Mock, model: str, want: str, *, gw: Gateways | None = None,
               dialect: str = "openai", stream: bool = False) -> None:
    """A request to `model` succeeds and its upstream call carried exactly `want`."""
    r, mark = ask(kg, model, dialect=dialect, stream=stream, gw=gw)
    assert r.status_code == 200, f"{model}: {r.status_code} {r.text[:1000]}"
    got = credential_of(mock, mark)
    assert got == want, f"{model}: upstream got {_show(got)}, expected {_show(want)}"


def used_key(kg: Keygate, mock: Mock, model: str, gw: Gateways | None = None) -> tuple[int, str | None]:
    r, mark = ask(kg, model, gw=gw)
    if r.status_code != 200:
        return r.status_code, None
    return 200, credential_of(mock, mark)


def _show(value: str | None) -> str:
    """A key for an assertion message: only its label, never its random part."""
    if value is None:
        return "None"
    return value[: value.rfind("-") + 1] + "..." if value.startswith("sk-e2e-") else "<other>"


def poll(fn: Callable[[], Any], until: Callable[[Any], bool], timeout: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if until(value) or time.monotonic() > deadline:
            return value
        time.sleep(every)


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def vault_source(bao: OpenBao, token: str, **extra: Any) -> dict[str, Any]:
    return {"type": "vault", "address": bao.address, "mount": "secret", "kv_version": 2,
            "auth": {"method": "token", "token": token}, **extra}


# ---------------------------------------------------------------------------------------------
# 1. each source supplies a model's key


def test_env_prefix_dotenv_file_and_os_environ(gw, open_mock, tmp_path):
    k_env, k_wrong, k_dot, k_quoted, k_file, k_litellm = (
        key("env"), key("unprefixed"), key("dotenv"), key("quoted"), key("file"), key("litellm"))
    gw.secret(k_env, k_wrong, k_dot, k_quoted, k_file, k_litellm)
    dotenv = tmp_path / "upstream.env"
    dotenv.write_text(f"# upstream keys\nDOT_KEY={k_dot}\nexport QUOTED_KEY=\"{k_quoted}\"\n"
                      f"ENV_KEY={k_wrong}\n")
    key_file = tmp_path / "run-secrets-openai"
    key_file.write_text(k_file + "\n")
    models = [
        gpt("m-env", open_mock, "secret:ENV_KEY"),
        claude("m-dotenv", open_mock, "secret:DOT_KEY"),
        gpt("m-quoted", open_mock, "secret:QUOTED_KEY"),
        gpt("m-file", open_mock, f"file:{key_file}"),
        claude("m-litellm", open_mock, "os.environ/LITELLM_STYLE_KEY"),
    ]
    sources = [{"type": "env", "prefix": "OPT_"}, {"type": "dotenv", "path": str(dotenv)}]
    kg = gw.start(config(models, sources),
                  env={"OPT_ENV_KEY": k_env, "ENV_KEY": k_wrong, "LITELLM_STYLE_KEY": k_litellm})
    # the prefixed variable, not the bare one, and the env source before the .env file
    expect_key(kg, open_mock, "m-env", k_env, gw=gw)
    expect_key(kg, open_mock, "m-env", k_env, gw=gw, dialect="anthropic", stream=True)
    expect_key(kg, open_mock, "m-dotenv", k_dot, gw=gw)
    expect_key(kg, open_mock, "m-dotenv", k_dot, gw=gw, dialect="anthropic")
    expect_key(kg, open_mock, "m-quoted", k_quoted, gw=gw, stream=True)
    expect_key(kg, open_mock, "m-file", k_file, gw=gw)  # trailing newline trimmed
    expect_key(kg, open_mock, "m-litellm", k_litellm, gw=gw, dialect="anthropic", stream=True)


def test_vault_token_kv2_secret_and_vault_refs(gw, open_mock, bao):
    token = bao.create_token(["keygate-read"])
    k_secret, k_field, k_default, k_other = key("vault-secret"), key("vault-field"), key("vault-default"), key("vault-other")
    gw.secret(token, k_secret, k_field, k_default, k_other)
    uid = _secrets.token_hex(4)
    bao.kv2_put(f"OPENAI_{uid}", {"api_key": k_secret, "other": k_other})
    bao.kv2_put(f"team-{uid}/anthropic", {"key": k_field, "api_key": k_other})
    bao.kv2_put(f"team-{uid}/openai", {"api_key": k_default})
    models = [
        gpt("v-secret", open_mock, f"secret:OPENAI_{uid}"),
        claude("v-field", open_mock, f"vault:team-{uid}/anthropic#key"),
        gpt("v-default-field", open_mock, f"vault:team-{uid}/openai"),
    ]
    kg = gw.start(config(models, [vault_source(bao, token)]))
    expect_key(kg, open_mock, "v-secret", k_secret, gw=gw)
    expect_key(kg, open_mock, "v-secret", k_secret, gw=gw, dialect="anthropic", stream=True)
    expect_key(kg, open_mock, "v-field", k_field, gw=gw, dialect="anthropic")
    expect_key(kg, open_mock, "v-field", k_field, gw=gw, stream=True)
    expect_key(kg, open_mock, "v-default-field", k_default, gw=gw)
    # keygate read KV v2 with the configured (non-root) token
    reads = bao.requests_to(f"secret/data/OPENAI_{uid}", operation="read")
    assert reads, "OpenBao's audit log shows no read of the secret"
    assert {(e.get("auth") or {}).get("client_token") for e in reads} == {token}, \
        "keygate did not read with the configured token"


def test_vault_kv1_path_prefix_and_vault_token_env(gw, open_mock, bao):
    token = bao.create_token(["keygate-read"])
    k1 = key("kv1")
    gw.secret(token, k1)
    uid = _secrets.token_hex(4)
    bao.kv1_put(f"llm-{uid}/prod/OPENAI", {"api_key": k1}, mount="kv1")
    source = {"type": "vault", "address": bao.address, "mount": "kv1", "kv_version": 1,
              "path_prefix": f"llm-{uid}/prod"}  # no auth block: the token comes from VAULT_TOKEN
    kg = gw.start(config([gpt("v1", open_mock, "secret:OPENAI")], [source]), env={"VAULT_TOKEN": token})
    expect_key(kg, open_mock, "v1", k1, gw=gw)
    expect_key(kg, open_mock, "v1", k1, gw=gw, dialect="anthropic", stream=True)


def test_vault_approle_login_and_relogin(gw, open_mock, bao):
    """AppRole with a 2 s token (max 4 s): keygate logs in, and keeps reading after the token
    it got first has expired (renewal cannot pass token_max_ttl, so it must log in again)."""
    try:
        bao.enable_approle()
    except AssertionError as err:
        assert "path is already in use" in str(err), err
    role_id, secret_id = bao.approle(f"keygate-{_secrets.token_hex(3)}", ["keygate-read"],
                                     token_ttl="2s", token_max_ttl="4s")
    k_a, k_b = key("approle-a"), key("approle-b")
    gw.secret(secret_id, k_a, k_b)
    uid = _secrets.token_hex(4)
    bao.kv2_put(f"approle-{uid}", {"api_key": k_a})
    source = {"type": "vault", "address": bao.address, "mount": "secret", "kv_version": 2,
              "auth": {"method": "approle", "role_id": role_id, "secret_id": secret_id}}
    kg = gw.start(config([gpt("v-approle", open_mock, f"secret:approle-{uid}")], [source],
                         cache={"ttl": "1s", "stale_if_error": "30s", "negative_ttl": "1s"}))
    t0 = time.monotonic()
    expect_key(kg, open_mock, "v-approle", k_a, gw=gw)
    # Past the first token's max TTL, with the cache refreshing every second.
    while time.monotonic() - t0 < 5.5:
        expect_key(kg, open_mock, "v-approle", k_a, gw=gw)
        time.sleep(0.25)
    # A new value now only arrives through a valid token: stale values would hide a failed login.
    bao.kv2_put(f"approle-{uid}", {"api_key": k_b})
    got = poll(lambda: used_key(kg, open_mock, "v-approle", gw), lambda v: v == (200, k_b), timeout=12)
    assert got == (200, k_b), f"after the AppRole token expired the new key never arrived: {got[0]} {_show(got[1])}"
    logins = bao.requests_to("auth/approle/login")
    assert len(logins) >= 2, f"expected a new AppRole login after token_max_ttl, saw {len(logins)}"
    gw.secret(*bao.issued_tokens())


def test_aws_secrets_manager_secret_and_json_field(gw, open_mock, moto):
    k_plain, k_json, k_org = key("aws-plain"), key("aws-json"), key("aws-org")
    gw.secret(k_plain, k_json, k_org)
    uid = _secrets.token_hex(4)
    moto.put(f"prod/openai-{uid}", k_plain)
    moto.put(f"prod/anthropic-{uid}", json.dumps({"api_key": k_json, "org": k_org}))
    models = [
        gpt("aws-plain", open_mock, f"secret:prod/openai-{uid}"),
        claude("aws-field", open_mock, f"aws-sm:prod/anthropic-{uid}#api_key"),
    ]
    sources = [{"type": "env"},
               {"type": "aws_secrets_manager", "region": "us-east-1", "endpoint": moto.endpoint}]
    kg = gw.start(config(models, sources), env=moto.keygate_env())
    expect_key(kg, open_mock, "aws-plain", k_plain, gw=gw)
    expect_key(kg, open_mock, "aws-plain", k_plain, gw=gw, dialect="anthropic", stream=True)
    expect_key(kg, open_mock, "aws-field", k_json, gw=gw, dialect="anthropic")
    expect_key(kg, open_mock, "aws-field", k_json, gw=gw, stream=True)


def test_azure_key_vault_fake(gw, open_mock, azure):
    """Against FakeAzureKeyVault (a fake of the REST API; no emulator exists)."""
    k_mapped, k_direct = key("azure-mapped"), key("azure-direct")
    gw.secret(k_mapped, k_direct, azure.client_secret)
    uid = _secrets.token_hex(3)
    azure.set(f"OPENAI-PROD-{uid}", k_mapped)
    azure.set(f"anthropic-key-{uid}", k_direct)
    models = [
        gpt("az-mapped", open_mock, f"secret:OPENAI_PROD_{uid}"),  # `_` -> `-`
        claude("az-direct", open_mock, f"azure-kv:anthropic-key-{uid}"),
    ]
    tokens_before = azure.token_requests
    kg = gw.start(config(models, [azure.source_config()],
                         cache={"ttl": "1s", "stale_if_error": "30s", "negative_ttl": "1s"}),
                  env=azure.keygate_env())
    t0 = time.monotonic()
    while True:  # over 3 s, so the 1 s cache fetches the secrets again
        expect_key(kg, open_mock, "az-mapped", k_mapped, gw=gw)
        expect_key(kg, open_mock, "az-direct", k_direct, gw=gw, dialect="anthropic")
        if time.monotonic() - t0 > 3.2:
            break
        time.sleep(0.3)
    expect_key(kg, open_mock, "az-mapped", k_mapped, gw=gw, dialect="anthropic", stream=True)
    assert not azure.failures, azure.failures
    mapped = azure.fetches(f"OPENAI-PROD-{uid}")
    assert mapped, f"no GET /secrets/OPENAI-PROD-{uid}: {azure.secret_requests}"
    assert {r["api_version"] for r in mapped} == {"7.4"}, mapped
    assert len(mapped) >= 2, f"the 1 s cache should have fetched again: {mapped}"
    # The access token (expires_in 3599) is reused, not requested for each secret read.
    tokens = azure.token_requests - tokens_before
    fetched = len(mapped) + len(azure.fetches(f"anthropic-key-{uid}"))
    assert 1 <= tokens < fetched, f"{tokens} token requests for {fetched} secret reads"
    gw.secret(*azure.tokens)


def test_exec_helper_with_expires_at(gw, open_mock, tmp_path):
    """The helper gets the name as its last argument; `expires_at` (3 s away) beats the 300 s
    TTL, so a new key is fetched soon after it."""
    state = tmp_path / "helper-state"
    state.mkdir()
    prefix = key("exec")
    helper = script(tmp_path / "cred-helper.sh", f"""
echo "$@" >> {state}/args
for last; do :; done
n=$(cat {state}/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > {state}/count
exp=$(date -u -d "+3 seconds" +%Y-%m-%dT%H:%M:%SZ)
printf '{{"api_key": "{prefix}-%s-%s", "expires_at": "%s"}}\\n' "$last" "$n" "$exp"
""")
    gw.secret(prefix)
    models = [gpt("x-exec", open_mock, "exec:openai"), claude("x-chain", open_mock, "secret:anthropic")]
    sources = [{"type": "exec", "command": [str(helper), "--profile", "e2e"], "timeout": "5s"}]
    kg = gw.start(config(models, sources, cache={"ttl": "300s", "stale_if_error": "1h", "negative_ttl": "10s"}))
    r, mark = ask(kg, "x-exec", gw=gw)
    assert r.status_code == 200, r.text
    first = credential_of(open_mock, mark)
    assert first and first.startswith(f"{prefix}-openai-"), _show(first)
    r, mark = ask(kg, "x-chain", dialect="anthropic", gw=gw)
    assert r.status_code == 200, r.text
    assert (credential_of(open_mock, mark) or "").startswith(f"{prefix}-anthropic-")
    args = (state / "args").read_text().splitlines()
    assert "--profile e2e openai" in args and "--profile e2e anthropic" in args, args
    # expires_at is 3 s away: a new key well before the 300 s TTL
    got = poll(lambda: used_key(kg, open_mock, "x-exec", gw),
               lambda v: v[0] != 200 or v[1] != first, timeout=15)
    assert got[0] == 200 and got[1] and got[1].startswith(f"{prefix}-openai-") and got[1] != first, \
        f"the helper's expires_at was not honoured: {got[0]} {_show(got[1])}"


# ---------------------------------------------------------------------------------------------
# 2. rotation


def test_vault_rotation_after_ttl(gw, open_mock, bao):
    token = bao.create_token(["keygate-read"])
    old, new = key("rot-old"), key("rot-new")
    gw.secret(token, old, new)
    name = f"ROTATE_{_secrets.token_hex(4)}"
    bao.kv2_put(name, {"api_key": old})
    ttl = 8.0
    started = time.monotonic()  # every fetch of the old value happens after this
    kg = gw.start(config([gpt("rot", open_mock, f"secret:{name}")], [vault_source(bao, token)],
                         cache={"ttl": "8s", "stale_if_error": "1h", "negative_ttl": "1s"}))
    expect_key(kg, open_mock, "rot", old, gw=gw)  # cached now
    bao.kv2_put(name, {"api_key": new})
    changed = time.monotonic()
    # Within the TTL (before its refresh-ahead point at 80%) the cached old key is used.
    safe_until = started + 0.8 * ttl - 0.5
    assert changed < safe_until, "the machine is too slow for this test's 8 s TTL"
    checked = 0
    while time.monotonic() < safe_until - 0.3 and checked < 6:
        expect_key(kg, open_mock, "rot", old, gw=gw, dialect="anthropic" if checked % 2 else "openai")
        checked += 1
        time.sleep(0.3)
    assert checked >= 1
    # After the TTL (+ margin) the new key is used, and only the new one from then on.
    got = poll(lambda: used_key(kg, open_mock, "rot", gw), lambda v: v == (200, new),
               timeout=(changed - started) + ttl + 6)
    switched = time.monotonic()
    assert got == (200, new), f"the new key was not used {switched - changed:.1f}s after the change"
    assert switched - started <= ttl + 6, f"switched {switched - started:.1f}s after start (TTL {ttl}s)"
    for dialect in ("openai", "anthropic"):
        expect_key(kg, open_mock, "rot", new, gw=gw, dialect=dialect)


# ---------------------------------------------------------------------------------------------
# 3. outage


def test_vault_outage_stale_then_503(gw, open_mock, tmp_path):
    own = start_openbao(tmp_path / "openbao-outage", name="openbao-outage")
    try:
        own.policy("keygate-read", 'path "secret/data/*" { capabilities = ["read"] }')
        token = own.create_token(["keygate-read"])
        k = key("outage")
        gw.secret(token, k)
        own.kv2_put("OUTAGE_KEY", {"api_key": k})
        models = [gpt("out-gpt", open_mock, "secret:OUTAGE_KEY"),
                  claude("out-claude", open_mock, "secret:OUTAGE_KEY")]
        kg = gw.start(config(models, [vault_source(own, token)],
                             cache={"ttl": "2s", "stale_if_error": "5s", "negative_ttl": "1s"}))
        # Keep the value fresh for a while (refresh-ahead at 80% of 2 s).
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5:
            expect_key(kg, open_mock, "out-gpt", k, gw=gw)
            time.sleep(0.2)
        stopped = time.monotonic()  # the outage starts during the stop
        assert own.stop() is not None
    finally:
        own.stop()
    # The last good fetch was at most ~1.6 s (refresh-ahead point) + one request interval before
    # the stop, so stale values are served until >= stopped + 2 - 1.9 + 5 = stopped + ~5.1 s.
    timeline: list[tuple[float, int]] = []
    first_503: httpx.Response | None = None
    first_503_at, first_503_dialect = 0.0, ""
    deadline = stopped + 2 + 5 + 10
    i = 0
    while time.monotonic() < deadline:
        dialect = "anthropic" if i % 2 else "openai"
        model = "out-claude" if i % 3 == 0 else "out-gpt"
        r, mark = ask(kg, model, dialect=dialect, gw=gw)
        t = time.monotonic() - stopped
        timeline.append((round(t, 2), r.status_code))
        if r.status_code == 200:
            assert credential_of(open_mock, mark) == k
            assert first_503 is None, f"200 after a 503 (flapping): {timeline}"
        else:
            assert r.status_code == 503, f"{r.status_code} {r.text}"
            if first_503 is None:
                first_503 = r
                first_503_at = t
                first_503_dialect = dialect
            elif t > first_503_at + 1.5:
                break
        i += 1
        time.sleep(0.2)
    early = [(t, s) for t, s in timeline if t < 4.0]
    assert early and all(s == 200 for _, s in early), f"stale-if-error not honoured: {timeline}"
    assert first_503 is not None, f"still served 10 s past stale_if_error: {timeline}"
    assert first_503_at >= 4.0, timeline
    if first_503_dialect == "openai":
        err = assert_openai_error(first_503, 503)
    else:
        err = assert_anthropic_error(first_503, 503)
    msg = err["message"]
    assert "127.0.0.1:%d" % own.port in msg, f"the 503 does not name the vault source: {msg}"
    assert k not in first_503.text and token not in first_503.text
    # both dialects answer 503 now
    r, _ = ask(kg, "out-gpt", dialect="openai", gw=gw)
    assert_openai_error(r, 503)
    r, _ = ask(kg, "out-gpt", dialect="anthropic", gw=gw)
    assert_anthropic_error(r, 503)


def test_vault_down_cold_key_fails_then_back_without_restart(gw, open_mock, tmp_path):
    """OpenBao stopped (by PID) while keygate runs: a key already cached keeps working (stale-if-
    error, past its TTL), a key never fetched fails at once with a 503 naming the source, in
    both dialects; OpenBao started again (same address; a dev server starts empty, so its
    secrets and keygate's token are written again): both keys work without restarting keygate,
    and the cached one moves to the new value."""
    logdir = tmp_path / "openbao-restart"
    own = start_openbao(logdir, name="openbao-1")
    token = "bao-e2e-token-" + _secrets.token_hex(12)
    warm_1, warm_2, cold_v = key("warm1"), key("warm2"), key("cold")
    gw.secret(token, warm_1, warm_2, cold_v)

    def provision(bao: OpenBao, warm: str) -> None:
        bao.policy("keygate-read", 'path "secret/data/*" { capabilities = ["read"] }')
        bao.call("POST", "auth/token/create", {"id": token, "policies": ["keygate-read"], "ttl": "1h"})
        bao.kv2_put("WARM_KEY", {"api_key": warm})
        bao.kv2_put("COLD_KEY", {"api_key": cold_v})

    seen: list[str] = []
    try:
        provision(own, warm_1)
        port = own.port
        # keygate resolves every model's key at start and on reload: a key is cold when its
        # model arrives by a reload during the outage.
        models = [gpt("warm", open_mock, "secret:WARM_KEY")]
        sources = [vault_source(own, token)]
        cache = {"ttl": "2s", "stale_if_error": "1h", "negative_ttl": "1s"}
        kg = gw.start(config(models, sources, cache=cache))
        expect_key(kg, open_mock, "warm", warm_1, gw=gw)
        assert own.stop() is not None
        stopped = time.monotonic()

        # Past the TTL: the cached key is served stale.
        while time.monotonic() - stopped < 4.0:
            expect_key(kg, open_mock, "warm", warm_1, gw=gw)
            time.sleep(0.3)
        seen.append("cached key: 200 for 4 s of outage (TTL 2 s), with the last value fetched")
        models += [gpt("cold", open_mock, "secret:COLD_KEY"), claude("cold-claude", open_mock, "secret:COLD_KEY")]
        kg.write_config(config(models, sources, cache=cache))
        kg.proc.signal(signal.SIGHUP)
        listed = poll(lambda: [m["id"] for m in http.get(f"{kg.url}/v1/models", headers=kg.headers(),
                                                          timeout=10).json()["data"]],
                      lambda ids: "cold" in ids, timeout=15)
        assert "cold" in listed, listed
        expect_key(kg, open_mock, "warm", warm_1, gw=gw)
        seen.append("after a reload during the outage, the cached key still answers 200")
        for dialect, model in (("openai", "cold"), ("anthropic", "cold-claude"), ("openai", "cold")):
            started = time.monotonic()
            r, _ = ask(kg, model, dialect=dialect, gw=gw)
            took = time.monotonic() - started
            seen.append(f"cold key via {dialect}: {took:.2f}s {r.status_code} {r.text[:260]}")
            assert took < 5, seen[-1]
            err = (assert_openai_error if dialect == "openai" else assert_anthropic_error)(r, 503)
            assert f"127.0.0.1:{port}" in err["message"] and "COLD_KEY" in err["message"], err

        own = start_openbao(logdir, name="openbao-2", port=port)
        provision(own, warm_2)
        back = time.monotonic()
        got = poll(lambda: used_key(kg, open_mock, "cold", gw), lambda v: v == (200, cold_v), timeout=10)
        assert got == (200, cold_v), f"cold key not served after OpenBao came back: {got[0]}"
        seen.append(f"cold key served {time.monotonic() - back:.2f}s after OpenBao came back")
        got = poll(lambda: used_key(kg, open_mock, "warm", gw), lambda v: v == (200, warm_2), timeout=10)
        assert got == (200, warm_2), f"cached key not refreshed after OpenBao came back: {got[0]}"
        seen.append(f"cached key moved to the new value {time.monotonic() - back:.2f}s after OpenBao came back")
        expect_key(kg, open_mock, "cold-claude", cold_v, gw=gw, dialect="anthropic")
    finally:
        own.stop()
        print("\nVAULT OUTAGE\n  " + "\n  ".join(seen))


# ---------------------------------------------------------------------------------------------
# 4. fallback along the chain


def test_fallback_chain_and_503_listing_each_source(gw, open_mock, closed_port, tmp_path):
    k = key("fallback")
    gw.secret(k)
    dotenv = tmp_path / "empty.env"
    dotenv.write_text("# nothing here\nOTHER=1\n")
    models = [gpt("fb-found", open_mock, "secret:FALLBACK_KEY"),
              gpt("fb-absent", open_mock, "secret:ABSENT_EVERYWHERE"),
              claude("fb-absent-claude", open_mock, "secret:ABSENT_EVERYWHERE")]
    dead_token = key("dead-vault-token")
    gw.secret(dead_token)
    dead_vault = {"type": "vault", "address": f"http://127.0.0.1:{closed_port}", "mount": "secret",
                  "auth": {"method": "token", "token": dead_token}}
    sources = [dead_vault, {"type": "dotenv", "path": str(dotenv)}, {"type": "env"}]
    kg = gw.start(config(models, sources), env={"FALLBACK_KEY": k})
    expect_key(kg, open_mock, "fb-found", k, gw=gw)
    expect_key(kg, open_mock, "fb-found", k, gw=gw, dialect="anthropic", stream=True)
    for model, dialect in [("fb-absent", "openai"), ("fb-absent-claude", "anthropic"),
                           ("fb-absent", "anthropic")]:
        r, mark = ask(kg, model, dialect=dialect, gw=gw)
        err = (assert_openai_error if dialect == "openai" else assert_anthropic_error)(r, 503)
        msg = err["message"]
        assert "ABSENT_EVERYWHERE" in msg, msg
        assert f"127.0.0.1:{closed_port}" in msg, f"vault source not named: {msg}"
        assert str(dotenv) in msg, f"dotenv source not named: {msg}"
        assert "env" in msg.replace("dotenv", ""), f"env source not named: {msg}"
        assert not open_mock.find(mark, timeout=0.3), "a request without a key reached the upstream"


# ---------------------------------------------------------------------------------------------
# 5. exec failures


def test_exec_failures_answer_503_without_the_secret(gw, open_mock, tmp_path):
    leaked = key("exec-leak")
    not_json = key("exec-notjson")
    gw.secret(leaked, not_json)
    failing = script(tmp_path / "failing-helper.sh",
                     f'echo "{{\\"api_key\\": \\"{leaked}\\"}}"\necho "error: {leaked}" >&2\nexit 1\n')
    garbage = script(tmp_path / "garbage-helper.sh", f'echo "{not_json}"\n')
    slow = script(tmp_path / "slow-helper.sh", "sleep 20\n")
    cases = [("ex-fail", failing), ("ex-garbage", garbage), ("ex-slow", slow)]
    for model, helper in cases:
        sources = [{"type": "exec", "command": [str(helper)], "timeout": "1s"}]
        kg = gw.start(config([gpt(model, open_mock, "exec:openai"),
                              claude(model + "-claude", open_mock, "secret:openai")], sources))
        for m, dialect in [(model, "openai"), (model + "-claude", "anthropic")]:
            t0 = time.monotonic()
            r, mark = ask(kg, m, dialect=dialect, gw=gw)
            assert time.monotonic() - t0 < 10, "the helper's timeout was not applied"
            err = (assert_openai_error if dialect == "openai" else assert_anthropic_error)(r, 503)
            assert helper.name in err["message"], f"{m}: the helper is not named: {err['message']}"
            assert leaked not in r.text and not_json not in r.text
            assert not open_mock.find(mark, timeout=0.3)


# ---------------------------------------------------------------------------------------------
# `keygate secrets check`


def test_secrets_check_command(open_mock, bao, tmp_path):
    token = bao.create_token(["keygate-read"])
    k_env, k_vault = key("check-env"), key("check-vault")
    bao.kv2_put("CHECK_KEY", {"api_key": k_vault})
    models = [gpt("chk-env", open_mock, "env:CHECK_ENV_KEY"),
              gpt("chk-vault", open_mock, "secret:CHECK_KEY"),
              gpt("chk-missing", open_mock, "secret:CHECK_NOWHERE"),
              gpt("chk-list", open_mock, ["env:CHECK_ENV_KEY", "env:CHECK_UNSET_KEY"])]
    good = [m for m in models if m["name"] in ("chk-env", "chk-vault")]
    sources = [{"type": "env"}, vault_source(bao, token)]
    env = base_env(CHECK_ENV_KEY=k_env, KEYGATE_ADMIN_KEY=ADMIN_KEY, KEYGATE_LOG="debug")

    def run(models: list[dict[str, Any]], name: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / f"{name}.yaml"
        write_config(path, config(models, sources))
        try:
            proc = subprocess.run([KEYGATE_BIN, "secrets", "check", "--config", str(path)],
                                  capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
        except subprocess.TimeoutExpired as err:
            pytest.fail(f"secrets check did not finish: {err}")
        out = proc.stdout + proc.stderr
        if "unrecognized subcommand" in out or "unexpected argument" in out:
            pytest.xfail("`keygate secrets check` does not exist in this build")
        for s in (k_env, k_vault, token, ADMIN_KEY):
            assert s not in out, f"secrets check printed a secret:\n{out}"
        return proc

    def status(out: str, model: str) -> str:
        lines = [line.split() for line in out.splitlines() if line.split()[:1] == [model]]
        assert lines, f"{model} missing from:\n{out}"
        words = {w.lower().strip(":,") for line in lines for w in line}
        if words & {"error", "failed", "missing", "unresolved"}:
            return "error"
        assert "ok" in words, f"{model}: no status in {lines}"
        return "ok"

    bad = run(models, "all")
    assert bad.returncode != 0, bad.stdout
    assert status(bad.stdout, "chk-env") == "ok", bad.stdout
    assert status(bad.stdout, "chk-vault") == "ok", bad.stdout
    assert status(bad.stdout, "chk-missing") == "error", bad.stdout
    assert status(bad.stdout, "chk-list") == "error", bad.stdout  # one of its two keys fails
    assert "CHECK_NOWHERE" in bad.stdout + bad.stderr

    ok = run(good, "good")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert status(ok.stdout, "chk-env") == "ok" and status(ok.stdout, "chk-vault") == "ok", ok.stdout


# ---------------------------------------------------------------------------------------------
# 9. no secret in the logs, at trace level, with every source in one chain


def test_no_source_secret_in_logs_at_trace(gw, open_mock, bao, moto, azure, tmp_path):
    """Every source in one chain, keygate at trace level: successes and failures of each, then
    no key, token, secret id or client secret in its stdout/stderr, responses or /metrics."""
    uid = _secrets.token_hex(4)
    # The token source may read only TRACE_V_*; `secret:` names it is refused fall through to
    # the AppRole source behind it (a source that errors passes to the next).
    bao.policy(f"trace-{uid}", f'path "secret/data/TRACE_V_{uid}" {{ capabilities = ["read"] }}')
    token = bao.create_token([f"trace-{uid}"])
    try:
        bao.enable_approle()
    except AssertionError as err:
        assert "path is already in use" in str(err), err
    role_id, secret_id = bao.approle(f"trace-{uid}", ["keygate-read"], token_ttl="1m")
    ks = {n: key(f"trace-{n}") for n in ["vault", "approle", "aws", "azure", "exec", "dotenv", "fake"]}
    gw.secret(token, secret_id, azure.client_secret, *ks.values())
    bao.kv2_put(f"TRACE_V_{uid}", {"api_key": ks["vault"]})
    bao.kv2_put(f"trace-approle-{uid}", {"api_key": ks["approle"]})
    moto.put(f"trace/aws-{uid}", json.dumps({"k": ks["aws"]}))
    azure.set(f"trace-azure-{uid}", ks["azure"])
    dotenv = tmp_path / "t.env"
    dotenv.write_text(f"TRACE_DOT={ks['dotenv']}\n")
    helper = script(tmp_path / "trace-helper.sh",
                    f'for last; do :; done\n'
                    f'if [ "$last" = good ]; then echo \'{{"api_key": "{ks["exec"]}"}}\'; exit 0; fi\n'
                    f'if [ "$last" = bad ]; then echo "{ks["fake"]}"; echo "{ks["fake"]}" >&2; exit 3; fi\n'
                    'exit 1\n')
    sources = [
        {"type": "env", "prefix": "NOPE_"},
        {"type": "dotenv", "path": str(dotenv)},
        vault_source(bao, token),
        {"type": "vault", "address": bao.address, "mount": "secret",
         "auth": {"method": "approle", "role_id": role_id, "secret_id": secret_id}},
        {"type": "aws_secrets_manager", "region": "us-east-1", "endpoint": moto.endpoint},
        azure.source_config(),
        {"type": "exec", "command": [str(helper)], "timeout": "3s"},
    ]
    models = [
        gpt("t-vault", open_mock, f"secret:TRACE_V_{uid}"),
        gpt("t-approle", open_mock, f"secret:trace-approle-{uid}"),
        claude("t-aws", open_mock, f"aws-sm:trace/aws-{uid}#k"),
        gpt("t-azure", open_mock, f"azure-kv:trace-azure-{uid}"),
        claude("t-exec", open_mock, "exec:good"),
        gpt("t-dotenv", open_mock, "secret:TRACE_DOT"),
        gpt("t-bad-exec", open_mock, "exec:bad"),
        gpt("t-absent", open_mock, f"secret:TRACE_ABSENT_{uid}"),
    ]
    kg = gw.start(config(models, sources), env={**moto.keygate_env(), **azure.keygate_env()}, log="trace")
    want = {"t-vault": ks["vault"], "t-approle": ks["approle"], "t-aws": ks["aws"],
            "t-azure": ks["azure"], "t-exec": ks["exec"], "t-dotenv": ks["dotenv"]}
    for model, k in want.items():
        for dialect in ("openai", "anthropic"):
            expect_key(kg, open_mock, model, k, gw=gw, dialect=dialect, stream=dialect == "anthropic")
    for model in ("t-bad-exec", "t-absent"):
        for dialect in ("openai", "anthropic"):
            r, _ = ask(kg, model, dialect=dialect, gw=gw)
            assert r.status_code == 503, r.text
    metrics = http.get(f"{kg.url}/metrics", headers=kg.headers(), timeout=10)
    gw.bodies.append(metrics.text)
    kg.proc.signal(signal.SIGTERM)
    assert kg.proc.wait(15) == 0
    assert "request" in kg.stderr, "trace logging should have produced request lines"
    gw.secret(*bao.issued_tokens(), *azure.tokens)
