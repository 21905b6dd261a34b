"""Fixtures for keygate's end-to-end tests.

Every test drives the real binaries: `keygate-mock` (a fake OpenAI/Anthropic/Azure upstream) and
`keygate serve`. Processes are started with Popen, tracked, and stopped by PID in finalizers
(SIGTERM, then SIGKILL); nothing is ever killed by name.

Binaries come from $KEYGATE_BIN / $KEYGATE_MOCK_BIN (default: target/debug of this checkout).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KEYGATE_BIN = os.environ.get("KEYGATE_BIN") or str(ROOT / "target" / "debug" / "keygate")
MOCK_BIN = os.environ.get("KEYGATE_MOCK_BIN") or str(ROOT / "target" / "debug" / "keygate-mock")
# keygate built with the example plugin of examples/plugin-echo (scripts/test builds it).
ECHO_BIN = os.environ.get("KEYGATE_ECHO_BIN") or str(ROOT / "target" / "debug" / "keygate-echo")

# Secrets of this test session. Both must never show up in keygate's output or responses.
ADMIN_KEY = "sk-e2e-admin-" + secrets.token_hex(12)
UPSTREAM_KEY = "sk-e2e-upstream-" + secrets.token_hex(12)

STARTUP_TIMEOUT = 30.0  # debug binaries on a loaded 2-core machine
STOP_TIMEOUT = 15.0

KEYGATE_LISTEN_RE = re.compile(r"keygate listening on (http://\S+)")
MOCK_LISTEN_RE = re.compile(r"keygate-mock listening on (http://\S+)")

# One plain HTTP client for the whole session: no TLS setup per call (which costs ~20 ms), no
# proxies from the environment, and a fresh connection per request (a refused request may leave
# its connection closed, and no test should depend on keep-alive reuse by accident).
http = httpx.Client(timeout=10, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))

# Every process started by this session, so a crash of a fixture still cleans up.
_ALL_PROCS: list["Proc"] = []


# `setpriv --pdeathsig KILL` (util-linux) makes a child die with pytest even when pytest itself is
# killed; it execs the real program, so the PID stays the one we track. Without it, fixtures
# and the atexit hook still stop every child.
_SETPRIV = shutil.which("setpriv")


def _with_pdeathsig(argv: list[str]) -> list[str]:
    if _SETPRIV and os.uname().sysname == "Linux":
        return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]
    return argv


def marker(prefix: str = "m") -> str:
    """A unique string; sent as the last message's text it identifies the request at the mock."""
    return f"{prefix}-{uuid.uuid4().hex}"


class Proc:
    """A child process whose stdout is read line by line (and kept), stderr kept in a file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        logdir: Path,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        logdir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = logdir / f"{name}.stderr"
        self.stdout_lines: list[str] = []
        self._cond = threading.Condition()
        self._stdout_done = False
        self._stderr_file = open(self.stderr_path, "wb")
        self.popen = subprocess.Popen(
            _with_pdeathsig(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file,
            env=env,
            cwd=str(cwd) if cwd else None,
        )
        self.pid = self.popen.pid
        _ALL_PROCS.append(self)
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._cond:
                self.stdout_lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._stdout_done = True
            self._cond.notify_all()

    @property
    def stdout(self) -> str:
        with self._cond:
            return "\n".join(self.stdout_lines)

    @property
    def stderr(self) -> str:
        # The child writes to the file's descriptor directly; nothing is buffered on our side.
        return self.stderr_path.read_text("utf-8", "replace")

    def wait_stdout(self, pattern: re.Pattern[str], timeout: float = STARTUP_TIMEOUT) -> re.Match[str]:
        """Waits for a stdout line matching `pattern`; fails if the process exits first."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.stdout_lines[seen:]:
                    m = pattern.search(line)
                    if m:
                        return m
                seen = len(self.stdout_lines)
                if self._stdout_done:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.2))
        code = self.popen.poll()
        raise AssertionError(
            f"{self.name} did not print {pattern.pattern!r} within {timeout}s "
            f"(exit code {code}).\nstdout:\n{self.stdout}\nstderr:\n{self.stderr[-4000:]}"
        )

    def wait_stderr(self, needle: str | re.Pattern[str], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stderr
            if (needle.search(text) if isinstance(needle, re.Pattern) else needle in text):
                return True
            time.sleep(0.05)
        return False

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        code = self.popen.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after a while; always by PID. Returns the exit code."""
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGTERM)
                self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=STOP_TIMEOUT)
        self._reader.join(timeout=5)
        if self.popen.stdout:
            self.popen.stdout.close()
        if not self._stderr_file.closed:
            self._stderr_file.close()
        if self in _ALL_PROCS:
            _ALL_PROCS.remove(self)
        return self.popen.returncode


def _kill_leftovers() -> None:
    for proc in list(_ALL_PROCS):
        try:
            proc.stop()
        except Exception:  # noqa: BLE001 - best effort at teardown
            try:
                proc.popen.kill()
            except Exception:  # noqa: BLE001
                pass


atexit.register(_kill_leftovers)


@pytest.fixture(scope="session", autouse=True)
def _cleanup_all_processes():
    if not (os.access(KEYGATE_BIN, os.X_OK) and os.access(MOCK_BIN, os.X_OK)):
        pytest.exit(
            f"keygate binaries not found ({KEYGATE_BIN}, {MOCK_BIN}); "
            "run `cargo build --workspace --bins` or set KEYGATE_BIN/KEYGATE_MOCK_BIN",
            returncode=2,
        )
    yield
    _kill_leftovers()


def base_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: the parent's minus anything keygate reads."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KEYGATE_") and k not in ("RUST_LOG",)
    }
    env["MOCK_UPSTREAM_KEY"] = UPSTREAM_KEY
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------
# mock upstream


class Mock:
    """A running keygate-mock."""

    def __init__(self, proc: Proc, url: str) -> None:
        self.proc = proc
        self.url = url
        self.port = int(url.rsplit(":", 1)[1].split("/")[0])

    def records(self) -> list[dict[str, Any]]:
        r = http.get(f"{self.url}/mock/requests", timeout=10)
        r.raise_for_status()
        return r.json()

    def clear(self) -> None:
        http.delete(f"{self.url}/mock/requests", timeout=10).raise_for_status()

    def find(self, mark: str, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Records whose marker is `mark`, waiting a little for them to appear."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.records() if r.get("marker") == mark]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def one(self, mark: str) -> dict[str, Any]:
        found = self.find(mark)
        assert len(found) == 1, f"expected one upstream request marked {mark!r}, got {found!r}"
        return found[0]


def start_mock(logdir: Path, *args: str, name: str = "mock") -> Mock:
    argv = [MOCK_BIN, "--listen", "127.0.0.1:0", *args]
    proc = Proc(name, argv, logdir, env=base_env())
    try:
        url = proc.wait_stdout(MOCK_LISTEN_RE).group(1).rstrip("/")
    except BaseException:
        proc.stop()
        raise
    return Mock(proc, url)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("keygate-e2e")


@pytest.fixture(scope="session")
def mock(session_dir) -> Iterable[Mock]:
    """The shared upstream: it answers 401 unless it receives UPSTREAM_KEY."""
    m = start_mock(session_dir / "mock", "--require-key", UPSTREAM_KEY)
    yield m
    m.proc.stop()


@pytest.fixture(scope="session")
def closed_port() -> Iterable[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), never listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    yield port
    sock.close()


# ---------------------------------------------------------------------------------------------
# keygate


class Keygate:
    """A running `keygate serve`."""

    def __init__(self, proc: Proc, url: str, config_path: Path | None, workdir: Path) -> None:
        self.proc = proc
        self.url = url
        self.config_path = config_path
        self.workdir = workdir
        host_port = url.split("://", 1)[1]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self._clients: dict[str, Any] = {}

    @property
    def stderr(self) -> str:
        return self.proc.stderr

    @property
    def stdout(self) -> str:
        return self.proc.stdout

    def write_config(self, config: dict[str, Any] | str) -> None:
        assert self.config_path is not None
        write_config(self.config_path, config)

    def headers(self, **extra: str) -> dict[str, str]:
        h = {"Authorization": f"Bearer {ADMIN_KEY}"}
        h.update(extra)
        return h

    def openai(self, **kw):
        """A sync OpenAI client (cached per server when called without options)."""
        import openai

        if not kw and "openai" in self._clients:
            return self._clients["openai"]
        kw.setdefault("timeout", 20.0)
        kw.setdefault("http_client", openai.DefaultHttpxClient(trust_env=False))
        client = openai.OpenAI(base_url=f"{self.url}/v1", api_key=ADMIN_KEY, max_retries=0, **kw)
        self._clients.setdefault("openai", client)
        return client

    def async_openai(self, **kw):
        import openai

        kw.setdefault("timeout", 20.0)
        kw.setdefault("http_client", openai.DefaultAsyncHttpxClient(trust_env=False))
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=ADMIN_KEY, max_retries=0, **kw)

    def anthropic(self, **kw):
        """A sync Anthropic client (cached per server when called without options)."""
        import anthropic

        if not kw and "anthropic" in self._clients:
            return self._clients["anthropic"]
        kw.setdefault("timeout", 20.0)
        kw.setdefault("http_client", anthropic.DefaultHttpxClient(trust_env=False))
        client = anthropic.Anthropic(base_url=self.url, api_key=ADMIN_KEY, max_retries=0, **kw)
        self._clients.setdefault("anthropic", client)
        return client

    def async_anthropic(self, **kw):
        import anthropic

        kw.setdefault("timeout", 20.0)
        kw.setdefault("http_client", anthropic.DefaultAsyncHttpxClient(trust_env=False))
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=ADMIN_KEY, max_retries=0, **kw)


def write_config(path: Path, config: dict[str, Any] | str) -> None:
    text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # atomic: a reload never reads half a file


def model_entries(mock_url: str, closed_port: int | None = None) -> list[dict[str, Any]]:
    """The standard models, all routed to the mock (and two to a closed port)."""
    v1 = f"{mock_url}/v1"
    key = "env:MOCK_UPSTREAM_KEY"
    models: list[dict[str, Any]] = [
        {"name": "gpt-4o-mini", "provider": "openai_compatible", "api_base": v1, "api_key": key,
         "model": "gpt-4o-mini", "timeout": "10s"},
        {"name": "claude-haiku", "provider": "anthropic", "api_base": mock_url, "api_key": key,
         "model": "claude-3-5-haiku-latest", "timeout": "10s"},
        {"name": "azure-gpt", "provider": "azure_openai", "api_base": mock_url,
         "model": "my-deployment", "api_version": "2024-10-21", "api_key": key, "timeout": "10s"},
        {"name": "openai-gpt", "provider": "openai", "api_base": v1,
         "api_key": "os.environ/MOCK_UPSTREAM_KEY", "timeout": "10s"},
        # injected upstream failures
        {"name": "gpt-429", "provider": "openai_compatible", "api_base": v1, "api_key": key,
         "model": "gpt-4o-mini:error=429"},
        {"name": "claude-429", "provider": "anthropic", "api_base": mock_url, "api_key": key,
         "model": "claude-3-5-haiku-latest:error=429"},
        {"name": "gpt-500", "provider": "openai_compatible", "api_base": v1, "api_key": key,
         "model": "gpt-4o-mini:error=500"},
        {"name": "claude-500", "provider": "anthropic", "api_base": mock_url, "api_key": key,
         "model": "claude-3-5-haiku-latest:error=500"},
        {"name": "gpt-timeout", "provider": "openai_compatible", "api_base": v1, "api_key": key,
         "model": "x:timeout", "timeout": "1s"},
        {"name": "claude-timeout", "provider": "anthropic", "api_base": mock_url, "api_key": key,
         "model": "x:timeout", "timeout": "1s"},
        # broken upstream streams and bodies
        {"name": "gpt-cut", "provider": "openai_compatible", "api_base": v1, "api_key": key,
         "model": "gpt-4o-mini:cut_after=3,delay_ms=30", "timeout": "10s"},
        {"name": "claude-cut", "provider": "anthropic", "api_base": mock_url, "api_key": key,
         "model": "claude-3-5-haiku-latest:cut_after=3,delay_ms=30", "timeout": "10s"},
        {"name": "gpt-garbage", "provider": "openai_compatible", "api_base": v1, "api_key": key,
         "model": "gpt-4o-mini:garbage", "timeout": "10s"},
        {"name": "claude-garbage", "provider": "anthropic", "api_base": mock_url, "api_key": key,
         "model": "claude-3-5-haiku-latest:garbage", "timeout": "10s"},
        # slow streams, for disconnects
        {"name": "gpt-slow", "provider": "openai_compatible", "api_base": v1, "api_key": key,
         "model": "gpt-4o-mini:chunks=40,delay_ms=50", "timeout": "10s"},
        {"name": "claude-slow", "provider": "anthropic", "api_base": mock_url, "api_key": key,
         "model": "claude-3-5-haiku-latest:chunks=40,delay_ms=50", "timeout": "10s"},
    ]
    if closed_port is not None:
        models += [
            {"name": "gpt-unreachable", "provider": "openai_compatible",
             "api_base": f"http://127.0.0.1:{closed_port}/v1", "api_key": key, "timeout": "5s"},
            {"name": "claude-unreachable", "provider": "anthropic",
             "api_base": f"http://127.0.0.1:{closed_port}", "api_key": key, "timeout": "5s"},
        ]
    return models


def base_config(models: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "admin_key": "${KEYGATE_ADMIN_KEY}",
        "limits": {"max_body_bytes": 65536},
        "shutdown_grace": "10s",
        "models": models,
    }
    config.update(extra)
    return config


def start_keygate(
    workdir: Path,
    config: dict[str, Any] | str | None,
    *,
    name: str = "keygate",
    log: str = "info",
    dev: bool = False,
    env: dict[str, str] | None = None,
    admin_key: str | None = ADMIN_KEY,
    database: bool = True,
    wait: bool = True,
    binary: str | None = None,
) -> Keygate:
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [binary or KEYGATE_BIN, "serve", "--listen", "127.0.0.1:0"]
    config_path = None
    if config is not None:
        config_path = workdir / "keygate.yaml"
        write_config(config_path, config)
        argv += ["--config", str(config_path)]
    if dev:
        argv.append("--dev")
    child_env = base_env(KEYGATE_LOG=log)
    if admin_key is not None:
        child_env["KEYGATE_ADMIN_KEY"] = admin_key
    if database:
        child_env["KEYGATE_DATABASE_URL"] = f"sqlite://{workdir}/keygate.db"
    if env:
        child_env.update(env)
    proc = Proc(name, argv, workdir, env=child_env, cwd=workdir)
    if not wait:
        return Keygate(proc, "http://127.0.0.1:0", config_path, workdir)
    try:
        url = proc.wait_stdout(KEYGATE_LISTEN_RE).group(1).rstrip("/")
        kg = Keygate(proc, url, config_path, workdir)
        wait_healthy(kg)
    except BaseException:
        proc.stop()
        raise
    return kg


def wait_healthy(kg: Keygate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            r = http.get(f"{kg.url}/health/live", timeout=2)
            if r.status_code == 200:
                return
            last = r.status_code
        except httpx.HTTPError as err:
            last = err
        time.sleep(0.05)
    raise AssertionError(f"keygate not healthy after {timeout}s: {last!r}\n{kg.stderr[-3000:]}")


@pytest.fixture(scope="session")
def gateway(session_dir, mock, closed_port) -> Iterable[Keygate]:
    """The shared keygate with every standard model."""
    kg = start_keygate(
        session_dir / "gateway",
        base_config(model_entries(mock.url, closed_port)),
        name="gateway",
    )
    yield kg
    code = kg.proc.stop()
    assert "panicked" not in kg.stderr, kg.stderr[-4000:]
    assert code == 0, f"shared keygate exited with {code}\n{kg.stderr[-4000:]}"


@pytest.fixture
def workdir(tmp_path) -> Path:
    return tmp_path


@pytest.fixture
def keygate_factory(tmp_path) -> Iterable[Callable[..., Keygate]]:
    """Starts keygate instances private to a test; all are stopped (by PID) at its end."""
    started: list[Keygate] = []
    counter = iter(range(1000))

    def factory(config: dict[str, Any] | str | None, **kw: Any) -> Keygate:
        n = next(counter)
        kw.setdefault("name", f"keygate{n}")
        kg = start_keygate(tmp_path / f"kg{n}", config, **kw)
        started.append(kg)
        return kg

    yield factory
    for kg in started:
        kg.proc.stop()


@pytest.fixture
def mock_factory(tmp_path) -> Iterable[Callable[..., Mock]]:
    started: list[Mock] = []

    def factory(*args: str) -> Mock:
        m = start_mock(tmp_path / f"mock{len(started)}", *args, name=f"mock{len(started)}")
        started.append(m)
        return m

    yield factory
    for m in started:
        m.proc.stop()


def run_to_exit(tmp_path: Path, config_text: str, env_extra: dict | None = None,
                timeout: float = 20.0) -> tuple[int | None, str, str]:
    """Starts `serve` with `config_text`, expecting it to exit (a start-up refusal); returns
    (exit code, stdout, stderr)."""
    path = tmp_path / "bad.yaml"
    path.write_text(config_text)
    env = base_env(KEYGATE_LOG="info", KEYGATE_ADMIN_KEY=ADMIN_KEY,
                   KEYGATE_DATABASE_URL=f"sqlite://{tmp_path}/keygate.db", **(env_extra or {}))
    proc = Proc("badconfig", [KEYGATE_BIN, "serve", "--config", str(path), "--listen", "127.0.0.1:0"],
                tmp_path / "logs", env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + timeout
        while proc.popen.poll() is None and time.monotonic() < deadline:
            assert "keygate listening" not in proc.stdout, "keygate started with a bad config:\n" + proc.stderr
            time.sleep(0.05)
        code = proc.wait(1)
    finally:
        proc.stop()
    return code, proc.stdout, proc.stderr


# ---------------------------------------------------------------------------------------------
# assertions shared by several files


def assert_openai_error(resp: httpx.Response, status: int, code: str | None = None) -> dict:
    """The response is OpenAI's error envelope `{"error":{message,type,param,code}}`."""
    assert resp.status_code == status, f"{resp.status_code} {resp.text}"
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["type"], str) and err["type"], err
    assert err["param"] is None or isinstance(err["param"], str), err
    assert err["code"] is None or isinstance(err["code"], (str, int)), err
    if code is not None:
        assert err["code"] == code, err
    return err


ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def assert_anthropic_error(resp: httpx.Response, status: int) -> dict:
    """The response is Anthropic's error envelope `{"type":"error","error":{type,message}}`."""
    assert resp.status_code == status, f"{resp.status_code} {resp.text}"
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body, dict) and body.get("type") == "error", body
    assert set(body) <= {"type", "error", "request_id"}, body
    err = body["error"]
    assert set(err) == {"type", "message"}, err
    assert isinstance(err["message"], str) and err["message"], err
    if status in ANTHROPIC_ERROR_TYPES:
        assert err["type"] == ANTHROPIC_ERROR_TYPES[status], err
    return err


def chat_body(model: str, text: str | None = None, **extra: Any) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": text or marker()}]}
    body.update(extra)
    return body


def messages_body(model: str, text: str | None = None, **extra: Any) -> dict[str, Any]:
    body = {
        "model": model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text or marker()}],
    }
    body.update(extra)
    return body


def sse_data(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order."""
    return [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]


def secret_free(text: str | bytes, *secrets_: str) -> bool:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return not any(s and s in text for s in secrets_)


def json_dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))
