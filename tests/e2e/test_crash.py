"""kill -9 under load: what a client was told succeeded is still there after a restart.

A concurrent load mixes key generation (`POST /key/generate`), lease issue (Vault
`GET`/`PUT /v1/keygate/creds/ROLE`) and inference with budgeted virtual keys; keygate is killed
with SIGKILL (by PID) in the middle of it and started again on the same database (SQLite file,
or a PostgreSQL database created for the test). Then:

- every key whose generation answered 200 exists (`/key/info`) and authenticates;
- every lease whose issue answered 200 can be looked up and renewed, and its key authenticates;
- spend: the cost of the inference responses acknowledged before the kill, against the spend
  stored after the restart. Spend is written in batches (`keys/spend.rs`, every 250 ms), so a
  crash may lose what settled in the last flush interval, and may keep the cost of requests whose
  answer never reached the client; both are bounded here by the number of such requests times
  the largest cost of one request. The measured figures are printed (`pytest -s`).
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from conftest import ADMIN_KEY, Keygate, base_config, chat_body, start_keygate
from faults import assert_no_secrets, fresh_postgres_database

# $1 per 1,000 input tokens and $2 per 1,000 output tokens: whole micro-dollars per request.
PRICE = {"input_per_mtok": 1000, "output_per_mtok": 2000}
LOAD_SECONDS = 3.0  # of load before the kill
# The spend writer waits FLUSH_EVERY (250 ms) after the first settled entry, then writes; an
# entry settled during a write waits for that write, the next 250 ms and its own write. So an
# entry is stored at most 250 ms + two writes after it settled; with writes of a debug build on
# a loaded 2-core machine (up to ~350 ms each) that is this window. Acknowledged requests older
# than it must be stored; younger ones may be lost.
FLUSH_WINDOW = 1.0
INFERENCE_KEYS = 4
WORKERS = {"keygen": 2, "lease": 2, "chat": 4}


def config(mock_url: str) -> dict:
    models = [{"name": "gpt-4o-mini", "provider": "openai_compatible", "api_base": f"{mock_url}/v1",
               "api_key": "env:MOCK_UPSTREAM_KEY", "timeout": "10s", "price": PRICE}]
    cfg = base_config(models)
    cfg["engine"] = {"mount": "keygate", "default_lease_ttl": "1h", "max_lease_ttl": "24h"}
    return cfg


ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
VAULT = {"X-Vault-Token": ADMIN_KEY}


@dataclass
class Outcome:
    """What the clients saw, per operation."""

    keys: list[str] = field(default_factory=list)  # generated, acknowledged
    leases: list[tuple[str, str]] = field(default_factory=list)  # (lease_id, key), acknowledged
    chats: list[tuple[float, str, float]] = field(default_factory=list)  # (acked at, token, cost)
    chat_failed: int = 0  # inference started but not acknowledged (in flight at the kill)
    other_failed: int = 0
    errors: list[str] = field(default_factory=list)  # non-200 answers before the kill
    lock: threading.Lock = field(default_factory=threading.Lock)


def cost_of(body: dict) -> float:
    usage = body["usage"]
    return (usage["prompt_tokens"] * PRICE["input_per_mtok"]
            + usage["completion_tokens"] * PRICE["output_per_mtok"]) / 1e6


def worker(kind: str, n: int, url: str, stop: threading.Event, out: Outcome,
           chat_keys: list[tuple[str, str]]) -> None:
    with httpx.Client(timeout=10, trust_env=False) as client:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                if kind == "keygen":
                    r = client.post(f"{url}/key/generate", headers=ADMIN, json={
                        "models": ["gpt-4o-mini"], "max_budget": 5,
                        "key_alias": f"crash-{n}-{i}-{uuid.uuid4().hex[:6]}"})
                    if r.status_code == 200:
                        with out.lock:
                            out.keys.append(r.json()["key"])
                elif kind == "lease":
                    # Both verbs Vault accepts for creds.
                    if i % 2:
                        r = client.get(f"{url}/v1/keygate/creds/crash", headers=VAULT)
                    else:
                        r = client.put(f"{url}/v1/keygate/creds/crash", headers=VAULT, json={})
                    if r.status_code == 200:
                        body = r.json()
                        with out.lock:
                            out.leases.append((body["lease_id"], body["data"]["key"]))
                else:
                    token, key = chat_keys[(n + i) % len(chat_keys)]
                    r = client.post(f"{url}/v1/chat/completions",
                                    headers={"Authorization": f"Bearer {key}"},
                                    json=chat_body("gpt-4o-mini", f"crash load {n} {i}", max_tokens=16))
                    if r.status_code == 200:
                        c = cost_of(r.json())
                        with out.lock:
                            out.chats.append((time.monotonic(), token, c))
                if r.status_code != 200:
                    with out.lock:
                        out.errors.append(f"{kind} {r.status_code} {r.text[:200]}")
            except httpx.HTTPError:
                # The kill: the request was in flight and got no answer.
                with out.lock:
                    if kind == "chat":
                        out.chat_failed += 1
                    else:
                        out.other_failed += 1
                if stop.is_set():
                    return
                time.sleep(0.01)


def key_info(client: httpx.Client, url: str, key: str) -> httpx.Response:
    return client.get(f"{url}/key/info", params={"key": key}, headers=ADMIN)


def crash_and_check(workdir: Path, mock_url: str, env: dict[str, str], label: str) -> None:
    started: list[Keygate] = []
    try:
        kg = start_keygate(workdir, config(mock_url), name=f"{label}-before", env=env)
        started.append(kg)
        with httpx.Client(timeout=10, trust_env=False) as c:
            r = c.put(f"{kg.url}/v1/keygate/roles/crash", headers=VAULT,
                      json={"models": ["gpt-4o-mini"], "ttl": "1h", "max_ttl": "24h", "max_budget": 5})
            assert r.status_code in (200, 204), r.text
            chat_keys = []
            for i in range(INFERENCE_KEYS):
                r = c.post(f"{kg.url}/key/generate", headers=ADMIN,
                           json={"models": ["gpt-4o-mini"], "max_budget": 1000, "key_alias": f"spender-{i}"})
                assert r.status_code == 200, r.text
                chat_keys.append((r.json()["token_id"], r.json()["key"]))

        out = Outcome()
        stop = threading.Event()
        threads = [threading.Thread(target=worker, args=(kind, n, kg.url, stop, out, chat_keys), daemon=True)
                   for kind, count in WORKERS.items() for n in range(count)]
        for t in threads:
            t.start()
        time.sleep(LOAD_SECONDS)
        with out.lock:
            assert out.keys and out.leases and out.chats, "the load did not get going before the kill"
        killed_at = time.monotonic()
        kg.proc.signal(signal.SIGKILL)
        code = kg.proc.wait(10)
        stop.set()
        for t in threads:
            t.join(15)
        assert code == -signal.SIGKILL, code
        assert not out.errors, out.errors[:10]
        before_log = kg.stdout + kg.stderr

        again = start_keygate(workdir, config(mock_url), name=f"{label}-after", env=env)
        started.append(again)
        url = again.url
        missing_keys, missing_leases, not_renewed = [], [], []
        with httpx.Client(timeout=10, trust_env=False) as c:
            for key in out.keys:
                info = key_info(c, url, key)
                auth = c.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
                if info.status_code != 200 or auth.status_code != 200:
                    missing_keys.append((key[-6:], info.status_code, auth.status_code))
            for lease_id, key in out.leases:
                look = c.put(f"{url}/v1/sys/leases/lookup", headers=VAULT, json={"lease_id": lease_id})
                auth = c.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
                if look.status_code != 200 or auth.status_code != 200:
                    missing_leases.append((lease_id, look.status_code, auth.status_code))
                    continue
                assert look.json()["data"]["id"] == lease_id
                renew = c.put(f"{url}/v1/sys/leases/renew", headers=VAULT,
                              json={"lease_id": lease_id, "increment": 600})
                if renew.status_code != 200 or renew.json()["lease_id"] != lease_id:
                    not_renewed.append((lease_id, renew.status_code, renew.text[:200]))
            stored = {}
            for token, key in chat_keys:
                r = key_info(c, url, key)
                assert r.status_code == 200, r.text
                stored[token] = float(r.json()["info"]["spend"])

        acked = sum(cost for _, _, cost in out.chats)
        stored_total = sum(stored.values())
        max_cost = max(cost for _, _, cost in out.chats)
        recent = sum(1 for at, _, _ in out.chats if at > killed_at - FLUSH_WINDOW)
        rate = sum(1 for at, _, _ in out.chats if at > killed_at - 1.0)  # per second, at the kill
        lost = acked - stored_total
        report = {
            "store": label,
            "keys": {"acknowledged": len(out.keys), "found": len(out.keys) - len(missing_keys)},
            "leases": {"acknowledged": len(out.leases), "found": len(out.leases) - len(missing_leases),
                       "renewed": len(out.leases) - len(missing_leases) - len(not_renewed)},
            "inference": {"acknowledged": len(out.chats), "in_flight_at_kill": out.chat_failed,
                          "acked_in_last_flush_window": recent, "per_second_at_kill": rate},
            "other_requests_cut_by_the_kill": out.other_failed,
            "spend": {"acknowledged_usd": round(acked, 6), "stored_usd": round(stored_total, 6),
                      "lost_usd": round(lost, 6), "max_cost_per_request_usd": max_cost,
                      "lost_requests_equivalent": round(lost / max_cost, 2),
                      "lost_seconds_of_traffic": round(lost / max_cost / max(rate, 1), 3)},
        }
        print(f"\nCRASH REPORT {json.dumps(report)}")
        assert not missing_keys, f"acknowledged keys missing after kill -9: {missing_keys[:10]} {report}"
        assert not missing_leases, f"acknowledged leases missing after kill -9: {missing_leases[:10]} {report}"
        assert not not_renewed, not_renewed[:10]
        eps = 1e-6
        # Lost: at most what settled within the last flush window before the kill.
        assert lost <= recent * max_cost + eps, report
        # Stored beyond what was acknowledged: at most the requests whose answer was cut.
        assert -lost <= out.chat_failed * max_cost + eps, report

        for proc_log in (before_log, again.stdout + again.stderr):
            assert "panicked" not in proc_log, proc_log[-3000:]
            assert_no_secrets(proc_log, *out.keys[:50], *(k for _, k in out.leases[:50]),
                              *(k for _, k in chat_keys))
    finally:
        for kg in started:
            kg.proc.stop()


def test_kill_9_under_load_sqlite(tmp_path, mock):
    crash_and_check(tmp_path / "sqlite", mock.url, {}, "sqlite")


def test_kill_9_under_load_postgres(tmp_path, mock):
    with fresh_postgres_database("crash") as url:
        crash_and_check(tmp_path / "postgres", mock.url, {"KEYGATE_DATABASE_URL": url}, "postgres")
