"""The store failing under a running keygate: PostgreSQL unreachable for a while (through a TCP
forwarder the test cuts and restores), and the SQLite file's filesystem full.

What must hold: inference with a key already in the cache keeps working; writes fail fast with a
clear 5xx in their dialect's envelope (LiteLLM's for /key/*, Vault's for the engine), never a
hang or a panic; /health/ready says not ready; and once the database is back, everything works
again without a restart. `pytest -s` prints what the client saw.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ADMIN_KEY, Keygate, base_config, chat_body, start_keygate
from faults import Forwarder, assert_no_secrets, fresh_postgres_database, host_port

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
VAULT = {"X-Vault-Token": ADMIN_KEY}
PRICE = {"input_per_mtok": 1000, "output_per_mtok": 1000}
# A write against a dead store must answer within this (the pool's acquire timeout is 5 s).
WRITE_BOUND = 8.0


def config(mock_url: str) -> dict[str, Any]:
    models = [{"name": "gpt-4o-mini", "provider": "openai_compatible", "api_base": f"{mock_url}/v1",
               "api_key": "env:MOCK_UPSTREAM_KEY", "timeout": "10s", "price": PRICE}]
    cfg = base_config(models)
    cfg["engine"] = {"mount": "keygate", "default_lease_ttl": "1h", "max_lease_ttl": "24h"}
    return cfg


def timed(fn, *args, **kw) -> tuple[httpx.Response | Exception, float]:
    started = time.monotonic()
    try:
        out: httpx.Response | Exception = fn(*args, **kw)
    except httpx.HTTPError as err:
        out = err
    return out, time.monotonic() - started


def show(r: httpx.Response | Exception) -> str:
    if isinstance(r, Exception):
        return f"<{type(r).__name__}: {r}>"
    return f"{r.status_code} {r.text[:300]}"


def assert_litellm_5xx(r: httpx.Response | Exception) -> dict:
    assert isinstance(r, httpx.Response), show(r)
    assert 500 <= r.status_code < 600, show(r)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert err["code"] == str(r.status_code) and err["message"], err
    return err


def cost_of(body: dict) -> float:
    u = body["usage"]
    return (u["prompt_tokens"] * PRICE["input_per_mtok"] + u["completion_tokens"] * PRICE["output_per_mtok"]) / 1e6


def chat(c: httpx.Client, kg: Keygate, key: str) -> httpx.Response:
    return c.post(f"{kg.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                  json=chat_body("gpt-4o-mini", max_tokens=8))


def generate(c: httpx.Client, kg: Keygate, **fields: Any) -> httpx.Response:
    return c.post(f"{kg.url}/key/generate", headers=ADMIN, json={"models": ["gpt-4o-mini"], **fields})


# ---------------------------------------------------------------------------------------------
# PostgreSQL unreachable


@pytest.fixture
def pg_forwarder():
    with fresh_postgres_database("outage") as url:
        fwd = Forwarder(host_port(url))
        try:
            head, _, tail = url.partition("://")
            rest = tail.split("/", 1)
            userinfo = rest[0].rsplit("@", 1)[0] + "@" if "@" in rest[0] else ""
            yield fwd, f"{head}://{userinfo}127.0.0.1:{fwd.port}/{rest[1]}"
        finally:
            fwd.close()


def test_postgres_unreachable_then_back(tmp_path, mock, pg_forwarder):
    fwd, url = pg_forwarder
    kg = start_keygate(tmp_path / "kg", config(mock.url), name="pg-outage", log="debug",
                       env={"KEYGATE_DATABASE_URL": url})
    seen: list[str] = []
    try:
        with httpx.Client(timeout=30, trust_env=False) as c:
            # Documented policy: with limits counted in PostgreSQL (the default there), a key
            # with no budget or rpm/tpm limit keeps working from the cache; a key with one is
            # refused with 503 limiter_unavailable rather than let past its limits.
            r = generate(c, kg, key_alias="outage-cached")
            assert r.status_code == 200, r.text
            cached = r.json()["key"]
            r = generate(c, kg, max_budget=10, key_alias="outage-budgeted")
            assert r.status_code == 200, r.text
            budgeted = r.json()["key"]
            r = generate(c, kg, max_budget=10, key_alias="outage-cold")
            assert r.status_code == 200, r.text
            cold = r.json()["key"]  # never used before the outage: not in the cache
            assert c.put(f"{kg.url}/v1/keygate/roles/out", headers=VAULT,
                         json={"models": ["gpt-4o-mini"], "ttl": "1h"}).status_code in (200, 204)
            acked: list[float] = []
            r = chat(c, kg, cached)
            assert r.status_code == 200, r.text
            acked.append(cost_of(r.json()))
            assert chat(c, kg, budgeted).status_code == 200
            assert c.get(f"{kg.url}/health/ready").status_code == 200

            fwd.cut()
            cut_at = time.monotonic()
            # Inference with the cached key, every 0.5 s for 8 s of outage (past the pool's
            # 5 s acquire timeout, when the key-change listener gives up its connection).
            statuses = []
            while time.monotonic() - cut_at < 8.0:
                r, took = timed(chat, c, kg, cached)
                statuses.append((round(time.monotonic() - cut_at, 1), show(r)[:3], round(took, 2)))
                assert isinstance(r, httpx.Response) and r.status_code == 200, \
                    f"a cached key stopped working {time.monotonic() - cut_at:.1f}s into the outage: {show(r)}"
                acked.append(cost_of(r.json()))
                time.sleep(0.5)
            seen.append(f"cached key during the outage (s, status, latency): {statuses}")

            r, took = timed(chat, c, kg, budgeted)
            seen.append(f"cached key with a budget during the outage: {took:.2f}s {show(r)}")
            assert isinstance(r, httpx.Response) and r.status_code == 503, seen[-1]
            assert r.json()["error"]["code"] == "limiter_unavailable", r.text
            assert took < 3, seen[-1]

            r, took = timed(generate, c, kg, key_alias="outage-new")
            seen.append(f"POST /key/generate during the outage: {took:.2f}s {show(r)}")
            assert took < WRITE_BOUND, seen[-1]
            err = assert_litellm_5xx(r)
            assert "database" in err["message"].lower() or "store" in err["message"].lower(), err

            r, took = timed(c.get, f"{kg.url}/v1/keygate/creds/out", headers=VAULT)
            seen.append(f"GET /v1/keygate/creds/out during the outage: {took:.2f}s {show(r)}")
            assert took < WRITE_BOUND, seen[-1]
            assert isinstance(r, httpx.Response) and 500 <= r.status_code < 600, seen[-1]
            assert r.json().get("errors"), r.text

            r, took = timed(chat, c, kg, cold)
            seen.append(f"inference with a key not in the cache during the outage: {took:.2f}s {show(r)}")
            assert took < WRITE_BOUND, seen[-1]
            assert isinstance(r, httpx.Response) and r.status_code == 503, seen[-1]
            assert r.json()["error"]["message"], r.text

            r, took = timed(c.get, f"{kg.url}/health/ready")
            seen.append(f"GET /health/ready during the outage: {took:.2f}s {show(r)}")
            assert isinstance(r, httpx.Response) and r.status_code == 503, seen[-1]
            assert r.json()["status"] == "unavailable", r.text
            assert took < 4, seen[-1]
            assert c.get(f"{kg.url}/health/live").status_code == 200

            fwd.restore()
            restored_at = time.monotonic()
            deadline = restored_at + 15
            while time.monotonic() < deadline:
                r, _ = timed(c.get, f"{kg.url}/health/ready")
                if isinstance(r, httpx.Response) and r.status_code == 200:
                    break
                time.sleep(0.2)
            ready_after = time.monotonic() - restored_at
            seen.append(f"ready again {ready_after:.2f}s after the restore")
            assert ready_after < 15, seen[-1]
            r = generate(c, kg, key_alias="outage-after")
            assert r.status_code == 200, r.text
            after = r.json()["key"]
            for key in (cached, budgeted, cold, after):
                r = chat(c, kg, key)
                assert r.status_code == 200, r.text
                if key == cached:
                    acked.append(cost_of(r.json()))
            r = c.get(f"{kg.url}/v1/keygate/creds/out", headers=VAULT)
            assert r.status_code == 200, r.text
            time.sleep(0.6)
            info = c.get(f"{kg.url}/key/info", params={"key": cached}, headers=ADMIN).json()["info"]
            seen.append(f"cached key: {len(acked)} requests answered 200 costing ${sum(acked):.6f}; "
                        f"spend stored after the outage ${info['spend']:.6f} "
                        f"(lost ${sum(acked) - info['spend']:.6f})")
    finally:
        kg.proc.stop()
        print("\nSTORE OUTAGE\n  " + "\n  ".join(seen))
    log = kg.stdout + kg.stderr
    assert "panicked" not in log, log[-3000:]
    assert_no_secrets(log, cached, budgeted, cold)


# ---------------------------------------------------------------------------------------------
# SQLite on a full filesystem


@pytest.fixture
def tiny_fs(tmp_path):
    """A 2 MiB tmpfs, mounted for this test and unmounted at its end (root only)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root; the disk-full case cannot run here")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(path: Path) -> None:
    """Writes `path` until the filesystem refuses (unbuffered: every byte that fits is written)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_sqlite_disk_full_then_freed(tmp_path, mock, tiny_fs):
    db = tiny_fs / "keygate.db"
    kg = start_keygate(tmp_path / "kg", config(mock.url), name="disk-full", log="debug",
                       env={"KEYGATE_DATABASE_URL": f"sqlite://{db}"})
    seen: list[str] = []
    try:
        with httpx.Client(timeout=30, trust_env=False) as c:
            before = []
            for i in range(5):
                r = generate(c, kg, key_alias=f"full-before-{i}", max_budget=5)
                assert r.status_code == 200, r.text
                before.append(r.json()["key"])
            assert chat(c, kg, before[0]).status_code == 200

            fill(tiny_fs / "ballast")
            refused = 0
            for i in range(40):  # WAL pages may still fit a few rows; go until it is refused
                r, took = timed(generate, c, kg, key_alias=f"full-during-{i}", max_budget=5)
                assert took < WRITE_BOUND, f"{took:.1f}s {show(r)}"
                if isinstance(r, httpx.Response) and r.status_code == 200:
                    before.append(r.json()["key"])
                    continue
                refused += 1
                if refused == 1:
                    seen.append(f"POST /key/generate on a full disk (after {i} more accepted): "
                                f"{took:.2f}s {show(r)}")
                    err = assert_litellm_5xx(r)
                    assert "full" in err["message"].lower(), err
                if refused >= 3:
                    break
            assert refused, "the full filesystem never refused a key"
            # Keys already there still work, inference still answers (spend cannot be written).
            r = chat(c, kg, before[0])
            seen.append(f"inference with an existing key on a full disk: {show(r)[:80]}")
            assert r.status_code == 200, r.text
            r = c.get(f"{kg.url}/health/ready")
            seen.append(f"GET /health/ready on a full disk: {show(r)}")

            (tiny_fs / "ballast").unlink()
            r = generate(c, kg, key_alias="full-after", max_budget=5)
            seen.append(f"POST /key/generate after the space was freed: {r.status_code}")
            assert r.status_code == 200, r.text
            before.append(r.json()["key"])
            for key in before:
                assert c.get(f"{kg.url}/key/info", params={"key": key}, headers=ADMIN).status_code == 200
                assert chat(c, kg, key).status_code == 200
    finally:
        kg.proc.stop()
        print("\nDISK FULL\n  " + "\n  ".join(seen))
    log = kg.stdout + kg.stderr
    assert "panicked" not in log, log[-3000:]
    assert_no_secrets(log, *before)
    # The database is intact: a new process opens it and finds every key.
    again = start_keygate(tmp_path / "kg2", config(mock.url), name="disk-full-after",
                          env={"KEYGATE_DATABASE_URL": f"sqlite://{db}"})
    try:
        with httpx.Client(timeout=30, trust_env=False) as c:
            for key in before:
                assert c.get(f"{again.url}/key/info", params={"key": key}, headers=ADMIN).status_code == 200
    finally:
        again.proc.stop()
    check = subprocess.run(["python3", "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]);"
                            "print(c.execute('PRAGMA integrity_check').fetchone()[0])", str(db)],
                           capture_output=True, text=True)
    assert check.stdout.strip() == "ok", check.stdout + check.stderr
