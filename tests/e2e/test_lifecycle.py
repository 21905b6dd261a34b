"""The process's life: --dev mode, graceful shutdown on SIGTERM, SIGHUP reload, client
disconnects mid-stream, and configuration errors at start."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time

import httpx
import pytest

from conftest import (
    run_to_exit,
    http,
    ADMIN_KEY,
    UPSTREAM_KEY,
    KEYGATE_BIN,
    Proc,
    assert_openai_error,
    base_config,
    base_env,
    chat_body,
    marker,
    messages_body,
    sse_data,
)

SLOW_MODEL = "gpt-4o-mini:chunks=30,delay_ms=100"  # ~3 s of stream


def slow_models(mock_url: str, **extra) -> list[dict]:
    v1 = f"{mock_url}/v1"
    models = [
        {"name": "gpt-4o-mini", "provider": "openai_compatible", "api_base": v1,
         "api_key": "env:MOCK_UPSTREAM_KEY", "timeout": "10s"},
        {"name": "gpt-slow", "provider": "openai_compatible", "api_base": v1,
         "api_key": "env:MOCK_UPSTREAM_KEY", "model": SLOW_MODEL, "timeout": "10s"},
    ]
    return models


class StreamReader(threading.Thread):
    """Reads an SSE response in the background, recording every data payload."""

    def __init__(self, url: str, body: dict, headers: dict) -> None:
        super().__init__(daemon=True)
        self.url, self.body, self.headers = url, body, headers
        self.first = threading.Event()
        self.data: list[str] = []
        self.status: int | None = None
        self.error: BaseException | None = None
        self.raw = ""

    def run(self) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(20, connect=5)) as client:
                with client.stream("POST", self.url, json=self.body, headers=self.headers) as resp:
                    self.status = resp.status_code
                    buf = ""
                    for text in resp.iter_text():
                        buf += text
                        self.raw += text
                        *lines, buf = buf.split("\n")
                        for line in lines:
                            if line.startswith("data:"):
                                self.data.append(line[5:].strip())
                                self.first.set()
                    if buf.startswith("data:"):
                        self.data.append(buf[5:].strip())
        except BaseException as err:  # noqa: BLE001 - reported by the test
            self.error = err
        finally:
            self.first.set()


def connection_refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# ----------------------------------------------------------------------------- (a) --dev


def test_dev_mode(tmp_path):
    """`keygate serve --dev` in an empty directory: an admin key is printed, the built-in mock
    serves `mock` and `mock-claude`, and the default store ./keygate.db is created."""
    env = base_env(KEYGATE_LOG="info")
    env.pop("MOCK_UPSTREAM_KEY", None)
    proc = Proc("dev", [KEYGATE_BIN, "serve", "--dev", "--listen", "127.0.0.1:0"], tmp_path / "logs",
                env=env, cwd=tmp_path)
    try:
        key = proc.wait_stdout(re.compile(r"admin key \(shown once\): (sk-keygate-admin-\S+)")).group(1)
        url = proc.wait_stdout(re.compile(r"keygate listening on (http://\S+)")).group(1)
        mock_url = proc.wait_stdout(re.compile(r"mock provider on (http://[0-9.:]+)")).group(1)
        h = {"Authorization": f"Bearer {key}"}
        r = http.post(f"{url}/v1/chat/completions", headers=h, json=chat_body("mock"), timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"]
        r = http.post(f"{url}/v1/chat/completions", headers=h, json=chat_body("mock-claude"), timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"]
        r = http.post(f"{url}/v1/messages", headers={"x-api-key": key},
                       json=messages_body("mock-claude"), timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["content"][0]["text"]
        r = http.post(f"{url}/v1/chat/completions", headers={"Authorization": "Bearer nope"},
                       json=chat_body("mock"), timeout=10)
        assert_openai_error(r, 401)
        ids = [m["id"] for m in http.get(f"{url}/v1/models", headers=h, timeout=10).json()["data"]]
        assert "mock" in ids and "mock-claude" in ids
        assert (tmp_path / "keygate.db").exists(), os.listdir(tmp_path)
        ready = http.get(f"{url}/health/ready", timeout=10)
        assert ready.status_code == 200 and ready.json()["store"]["kind"] == "sqlite", ready.text

        # The dev mock's upstream key (seen by the mock) is printed nowhere; the admin key only
        # in the stdout banner.
        records = http.get(f"{mock_url}/mock/requests", timeout=10).json()
        upstream_keys = {rec["credential"] for rec in records if rec.get("credential")}
        assert upstream_keys, records
        assert key not in proc.stderr
        assert sum(line.count(key) for line in proc.stdout_lines) == 1, proc.stdout
        for upstream_key in upstream_keys:
            assert upstream_key not in proc.stdout and upstream_key not in proc.stderr
    finally:
        code = proc.stop()
    assert code == 0, proc.stderr[-3000:]
    assert "panicked" not in proc.stderr


def test_dev_mode_with_configured_admin_key(tmp_path):
    """--dev with KEYGATE_ADMIN_KEY set: no key is generated or printed, the configured one
    works; SIGHUP without a config file is harmless."""
    env = base_env(KEYGATE_LOG="info", KEYGATE_ADMIN_KEY=ADMIN_KEY)
    proc = Proc("dev2", [KEYGATE_BIN, "serve", "--dev", "--listen", "127.0.0.1:0"], tmp_path / "logs",
                env=env, cwd=tmp_path)
    try:
        url = proc.wait_stdout(re.compile(r"keygate listening on (http://\S+)")).group(1)
        h = {"Authorization": f"Bearer {ADMIN_KEY}"}
        r = http.post(f"{url}/v1/chat/completions", headers=h, json=chat_body("mock"), timeout=10)
        assert r.status_code == 200, r.text
        proc.signal(signal.SIGHUP)
        time.sleep(0.3)
        r = http.post(f"{url}/v1/messages", headers=h, json=messages_body("mock-claude"), timeout=10)
        assert r.status_code == 200, r.text
        assert proc.popen.poll() is None
        assert "shown once" not in proc.stdout
        assert ADMIN_KEY not in proc.stdout and ADMIN_KEY not in proc.stderr
    finally:
        code = proc.stop()
    assert code == 0


# ----------------------------------------------------------------------------- (b) SIGTERM


def test_sigterm_drains_streams_then_exits_0(keygate_factory, mock):
    kg = keygate_factory(base_config(slow_models(mock.url)))
    # A first request proves the server (and its signal handlers) are up.
    r = http.post(f"{kg.url}/v1/chat/completions", headers=kg.headers(), json=chat_body("gpt-4o-mini"), timeout=10)
    assert r.status_code == 200
    reader = StreamReader(f"{kg.url}/v1/chat/completions", chat_body("gpt-slow", stream=True), kg.headers())
    reader.start()
    assert reader.first.wait(10), "the slow stream never started"
    assert reader.error is None, reader.error
    assert len(reader.data) < 25, "the stream finished before SIGTERM could be sent"
    kg.proc.signal(signal.SIGTERM)

    # New connections are refused while the stream is still draining.
    assert wait_until(lambda: connection_refused(kg.host, kg.port), timeout=5), "still accepting after SIGTERM"
    draining = reader.is_alive()

    reader.join(20)
    assert not reader.is_alive()
    assert reader.error is None, f"in-flight stream broken by SIGTERM: {reader.error!r}"
    assert reader.status == 200
    assert reader.data[-1] == "[DONE]", reader.raw[-500:]
    content_chunks = [d for d in reader.data if d != "[DONE]"]
    assert len(content_chunks) >= 30, len(content_chunks)
    assert draining, "the listener should close while the stream is still in flight"
    code = kg.proc.wait(15)
    assert code == 0, kg.stderr[-3000:]
    assert "panicked" not in kg.stderr


def test_sigterm_when_idle_exits_promptly(keygate_factory, mock):
    """Idle keep-alive connections (as load balancers hold them) do not delay the exit."""
    kg = keygate_factory(base_config(slow_models(mock.url)))
    with httpx.Client(timeout=10) as client:  # keeps its connection open and idle
        r = client.get(f"{kg.url}/v1/models", headers=kg.headers())
        assert r.status_code == 200
        started = time.monotonic()
        kg.proc.signal(signal.SIGTERM)
        assert kg.proc.wait(15) == 0
        elapsed = time.monotonic() - started
    assert elapsed < 5, f"an idle server took {elapsed:.1f}s to stop (grace is 10s)"


def test_sigint_also_drains(keygate_factory, mock):
    kg = keygate_factory(base_config(slow_models(mock.url)))
    assert http.get(f"{kg.url}/health/live", timeout=5).status_code == 200
    reader = StreamReader(f"{kg.url}/v1/chat/completions", chat_body("gpt-slow", stream=True), kg.headers())
    reader.start()
    assert reader.first.wait(10)
    kg.proc.signal(signal.SIGINT)
    reader.join(20)
    assert reader.error is None, reader.error
    assert reader.data and reader.data[-1] == "[DONE]"
    assert kg.proc.wait(15) == 0


def test_shutdown_grace_cuts_endless_streams(keygate_factory, mock):
    """A stream longer than shutdown_grace is cut when the grace period ends; exit is still 0."""
    models = [{"name": "endless", "provider": "openai_compatible", "api_base": f"{mock.url}/v1",
               "api_key": "env:MOCK_UPSTREAM_KEY", "model": "gpt-4o-mini:chunks=200,delay_ms=100",
               "timeout": "10s"}]
    kg = keygate_factory(base_config(models, shutdown_grace="1s"))
    reader = StreamReader(f"{kg.url}/v1/chat/completions", chat_body("endless", stream=True), kg.headers())
    reader.start()
    assert reader.first.wait(10)
    started = time.monotonic()
    kg.proc.signal(signal.SIGTERM)
    code = kg.proc.wait(15)
    elapsed = time.monotonic() - started
    reader.join(10)
    assert code == 0, kg.stderr[-2000:]
    assert elapsed < 8, f"shutdown took {elapsed:.1f}s with a 1s grace"
    assert "[DONE]" not in reader.data


# ----------------------------------------------------------------------------- (c) SIGHUP


def test_sighup_reload(keygate_factory, mock):
    models = slow_models(mock.url)
    kg = keygate_factory(base_config(models))
    h = kg.headers()
    r = http.post(f"{kg.url}/v1/chat/completions", headers=h, json=chat_body("gpt-new"), timeout=10)
    assert_openai_error(r, 404, "model_not_found")

    reader = StreamReader(f"{kg.url}/v1/chat/completions", chat_body("gpt-slow", stream=True), h)
    reader.start()
    assert reader.first.wait(10)

    new_model = {"name": "gpt-new", "provider": "anthropic", "api_base": mock.url,
                 "api_key": "env:MOCK_UPSTREAM_KEY"}
    kg.write_config(base_config(models + [new_model]))
    kg.proc.signal(signal.SIGHUP)

    def new_model_works() -> bool:
        resp = http.post(f"{kg.url}/v1/chat/completions", headers=h, json=chat_body("gpt-new"), timeout=10)
        return resp.status_code == 200

    assert wait_until(new_model_works, timeout=10), kg.stderr[-2000:]
    r = http.post(f"{kg.url}/v1/messages", headers=h, json=messages_body("gpt-new"), timeout=10)
    assert r.status_code == 200, r.text
    ids = [m["id"] for m in http.get(f"{kg.url}/v1/models", headers=h, timeout=10).json()["data"]]
    assert "gpt-new" in ids

    reader.join(20)
    assert reader.error is None, f"in-flight stream broken by the reload: {reader.error!r}"
    assert reader.data[-1] == "[DONE]"
    assert len([d for d in reader.data if d != "[DONE]"]) >= 30

    # A broken file keeps the running configuration, and says so.
    kg.write_config(base_config(models, bogus_setting=True))
    kg.proc.signal(signal.SIGHUP)
    assert kg.proc.wait_stderr(re.compile(r"ERROR.*reload failed.*bogus_setting|ERROR.*bogus_setting.*reload failed",
                                          re.S), timeout=10), kg.stderr[-2000:]
    for model in ["gpt-new", "gpt-4o-mini"]:
        r = http.post(f"{kg.url}/v1/chat/completions", headers=h, json=chat_body(model), timeout=10)
        assert r.status_code == 200, (model, r.text)

    # Semantically broken (unknown provider): also kept.
    kg.write_config(base_config(models + [{"name": "x", "provider": "nonesuch", "api_base": "http://127.0.0.1:1"}]))
    kg.proc.signal(signal.SIGHUP)
    assert kg.proc.wait_stderr("nonesuch", timeout=10), kg.stderr[-2000:]
    r = http.post(f"{kg.url}/v1/chat/completions", headers=h, json=chat_body("gpt-new"), timeout=10)
    assert r.status_code == 200, r.text

    # Removing a model by reload makes it unknown.
    kg.write_config(base_config(models))
    kg.proc.signal(signal.SIGHUP)

    def gone() -> bool:
        resp = http.post(f"{kg.url}/v1/chat/completions", headers=h, json=chat_body("gpt-new"), timeout=10)
        return resp.status_code == 404

    assert wait_until(gone, timeout=10)
    assert kg.proc.popen.poll() is None
    assert "panicked" not in kg.stderr


def test_sighup_can_rotate_the_admin_key(keygate_factory, mock):
    """admin_key comes from the file on reload too (no KEYGATE_ADMIN_KEY override here)."""
    models = slow_models(mock.url)
    config = base_config(models)
    config["admin_key"] = "${FILE_ADMIN_KEY}"
    kg = keygate_factory(config, admin_key=None, env={"FILE_ADMIN_KEY": "sk-e2e-first"})
    h1 = {"Authorization": "Bearer sk-e2e-first"}
    assert http.get(f"{kg.url}/v1/models", headers=h1, timeout=10).status_code == 200
    config["admin_key"] = "sk-e2e-second-literal"
    kg.write_config(config)
    kg.proc.signal(signal.SIGHUP)
    h2 = {"Authorization": "Bearer sk-e2e-second-literal"}
    assert wait_until(lambda: http.get(f"{kg.url}/v1/models", headers=h2, timeout=10).status_code == 200, 10)
    assert http.get(f"{kg.url}/v1/models", headers=h1, timeout=10).status_code == 401


def test_sighup_rereads_file_credentials(keygate_factory, mock, tmp_path):
    """A `file:` upstream key is read again on reload (key rotation without restart); the
    trailing newline of `echo KEY > file` is not part of the key."""
    key_file = tmp_path / "upstream.key"
    key_file.write_text(UPSTREAM_KEY + "\n")
    models = [{"name": "filekey", "provider": "openai_compatible", "api_base": f"{mock.url}/v1",
               "api_key": f"file:{key_file}"}]
    kg = keygate_factory(base_config(models))
    mark = marker("file1")
    r = http.post(f"{kg.url}/v1/chat/completions", headers=kg.headers(), json=chat_body("filekey", mark), timeout=10)
    assert r.status_code == 200, r.text
    assert mock.one(mark)["credential"] == UPSTREAM_KEY

    key_file.write_text("sk-e2e-rotated-key\n")
    kg.proc.signal(signal.SIGHUP)
    seen = []

    def rotated() -> bool:
        mark = marker("file2")
        http.post(f"{kg.url}/v1/chat/completions", headers=kg.headers(), json=chat_body("filekey", mark), timeout=10)
        seen.extend(rec["credential"] for rec in mock.find(mark))
        return bool(seen) and seen[-1] == "sk-e2e-rotated-key"

    assert wait_until(rotated, timeout=10), seen[-3:]
    assert "sk-e2e-rotated-key" not in kg.stderr


# ----------------------------------------------------------------------------- (d) disconnects


@pytest.mark.parametrize("route,model", [
    ("/v1/chat/completions", "gpt-slow"),
    ("/v1/chat/completions", "claude-slow"),
    ("/v1/messages", "claude-slow"),
    ("/v1/messages", "gpt-slow"),
])
def test_client_disconnect_mid_stream(gateway, mock, route, model):
    mark = marker("disc")
    body = (chat_body if route == "/v1/chat/completions" else messages_body)(model, mark, stream=True)
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", f"{gateway.url}{route}", json=body, headers=gateway.headers()) as resp:
            assert resp.status_code == 200
            got = 0
            for _ in resp.iter_raw():
                got += 1
                if got >= 2:
                    break
    # keygate stays healthy and keeps serving, and the upstream did see the call.
    assert http.get(f"{gateway.url}/health/live", timeout=5).status_code == 200
    r = http.post(f"{gateway.url}/v1/chat/completions", headers=gateway.headers(),
                   json=chat_body("gpt-4o-mini"), timeout=10)
    assert r.status_code == 200
    assert mock.one(mark)["stream"]
    assert gateway.proc.popen.poll() is None


def test_many_disconnects_do_not_leak(gateway):
    """Twenty aborted streams in a row; the gateway answers the next request quickly."""
    for _ in range(20):
        with httpx.Client(timeout=10) as client:
            with client.stream("POST", f"{gateway.url}/v1/chat/completions", headers=gateway.headers(),
                               json=chat_body("gpt-slow", stream=True)) as resp:
                assert resp.status_code == 200
                next(resp.iter_raw())
    started = time.monotonic()
    r = http.post(f"{gateway.url}/v1/chat/completions", headers=gateway.headers(),
                   json=chat_body("gpt-4o-mini"), timeout=10)
    assert r.status_code == 200
    assert time.monotonic() - started < 5


# ----------------------------------------------------------------------------- (e) config errors


MODEL_OK = """
  - name: m
    provider: openai_compatible
    api_base: http://127.0.0.1:9/v1
    api_key: env:MOCK_UPSTREAM_KEY
"""


def test_config_unknown_model_field(tmp_path):
    code, out, err = run_to_exit(tmp_path, "models:" + MODEL_OK + "    bogus_field: 1\n")
    assert code == 2, (code, err)
    assert "models[0]" in err, err
    assert "bogus_field" in err, err
    assert "keygate listening" not in out


def test_config_unknown_top_level_field(tmp_path):
    code, out, err = run_to_exit(tmp_path, "listn: 127.0.0.1:4000\nmodels:" + MODEL_OK)
    assert code == 2, (code, err)
    assert "listn" in err, err


def test_config_unknown_nested_field(tmp_path):
    code, out, err = run_to_exit(tmp_path, "limits: { max_body_byte: 10 }\nmodels:" + MODEL_OK)
    assert code == 2, (code, err)
    assert "limits" in err and "max_body_byte" in err, err


def test_config_wrong_type_names_the_path(tmp_path):
    code, out, err = run_to_exit(tmp_path, "models:" + MODEL_OK + "    timeout: soon\n")
    assert code == 2, (code, err)
    assert "models[0].timeout" in err, err


def test_config_unknown_provider(tmp_path):
    code, out, err = run_to_exit(tmp_path, "models:" + MODEL_OK.replace("openai_compatible", "openia"))
    assert code == 2, (code, err)
    assert "openia" in err and "provider" in err, err
    assert "unknown provider" in err.lower(), err


def test_config_missing_variable(tmp_path):
    code, out, err = run_to_exit(tmp_path, "admin_key: ${KEYGATE_E2E_NOT_SET_ANYWHERE}\nmodels:" + MODEL_OK)
    assert code == 2, (code, err)
    assert "KEYGATE_E2E_NOT_SET_ANYWHERE" in err, err


def test_config_default_variable_is_used(keygate_factory, mock):
    config = base_config(slow_models(mock.url))
    config["admin_key"] = "${KEYGATE_E2E_NOT_SET_ANYWHERE:-sk-e2e-from-default}"
    kg = keygate_factory(config, admin_key=None)
    r = http.get(f"{kg.url}/v1/models", headers={"Authorization": "Bearer sk-e2e-from-default"}, timeout=10)
    assert r.status_code == 200, r.text


def test_unopenable_store_exits_2(tmp_path):
    env = base_env(KEYGATE_ADMIN_KEY=ADMIN_KEY, KEYGATE_DATABASE_URL="sqlite:///nonexistent-dir-e2e/x.db")
    proc = Proc("nostore", [KEYGATE_BIN, "serve", "--listen", "127.0.0.1:0"], tmp_path / "logs",
                env=env, cwd=tmp_path)
    try:
        code = proc.wait(20)
    finally:
        proc.stop()
    assert code == 2
    assert "nonexistent-dir-e2e" in proc.stderr


def test_config_missing_file(tmp_path):
    env = base_env(KEYGATE_DATABASE_URL=f"sqlite://{tmp_path}/keygate.db")
    proc = Proc("nofile", [KEYGATE_BIN, "serve", "--config", str(tmp_path / "absent.yaml"),
                           "--listen", "127.0.0.1:0"], tmp_path / "logs", env=env, cwd=tmp_path)
    try:
        code = proc.wait(20)
    finally:
        proc.stop()
    assert code == 2
    assert "absent.yaml" in proc.stderr


def test_config_errors_do_not_print_secrets(tmp_path):
    """A bad config next to a secret-bearing field: the error names the field, not the secret."""
    code, out, err = run_to_exit(tmp_path, "admin_key: ${KEYGATE_ADMIN_KEY}\nmodels:" + MODEL_OK + "    nope: 1\n")
    assert code == 2
    assert "nope" in err
    assert ADMIN_KEY not in err and ADMIN_KEY not in out
