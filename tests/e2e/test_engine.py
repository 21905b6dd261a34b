"""The secrets engine through the real `bao` CLI and hvac (BAO_ADDR/VAULT_ADDR pointing at keygate,
the admin key as the token): roles, creds, lease renew/lookup/revoke, and the leased key serving
inference until its lease ends."""

from __future__ import annotations

import json
import os
import subprocess

import time

import hvac
import openai
import pytest

from conftest import ADMIN_KEY, base_config, model_entries
from secret_backends import bao_binary


def bao(kg, *args: str, token: str = ADMIN_KEY) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env.update(BAO_ADDR=kg.url, VAULT_ADDR=kg.url, BAO_TOKEN=token, VAULT_TOKEN=token)
    return subprocess.run([bao_binary(), *args], env=env, capture_output=True, text=True, timeout=30)


@pytest.fixture
def kg(keygate_factory, mock):
    return keygate_factory(kg_config(mock))


def works(kg, key: str) -> bool:
    client = openai.OpenAI(base_url=f"{kg.url}/v1", api_key=key, max_retries=0, timeout=20,
                           http_client=openai.DefaultHttpxClient(trust_env=False))
    try:
        client.chat.completions.create(model="gpt-4o-mini", max_tokens=8,
                                       messages=[{"role": "user", "content": "hi"}])
        return True
    except openai.AuthenticationError:
        return False


def test_roles_with_the_bao_cli(kg):
    w = bao(kg, "write", "keygate/roles/dev", "models=gpt-4o-mini,claude-haiku", "ttl=60",
            "max_ttl=2h", "max_budget=5", "rpm_limit=60", "key_alias_prefix=team")
    assert w.returncode == 0, w.stderr
    r = bao(kg, "read", "-format=json", "keygate/roles/dev")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["data"] == {
        "models": ["gpt-4o-mini", "claude-haiku"], "max_budget": 5.0, "rpm_limit": 60,
        "tpm_limit": None, "max_parallel_requests": None, "metadata": {},
        "key_alias_prefix": "team", "ttl": 60, "max_ttl": 7200,
    }
    assert body["request_id"] and body["lease_id"] == "" and body["renewable"] is False
    # A later write changes only the fields it names.
    assert bao(kg, "write", "keygate/roles/dev", "ttl=30").returncode == 0
    data = json.loads(bao(kg, "read", "-format=json", "keygate/roles/dev").stdout)["data"]
    assert (data["ttl"], data["max_ttl"], data["max_budget"]) == (30, 7200, 5.0)
    assert bao(kg, "write", "keygate/roles/ops", "ttl=1h").returncode == 0
    listed = bao(kg, "list", "-format=json", "keygate/roles")
    assert json.loads(listed.stdout) == ["dev", "ops"]
    refused = bao(kg, "write", "keygate/roles/bad", "ttl=3h", "max_ttl=1h")
    assert refused.returncode != 0 and "max_ttl" in refused.stderr
    denied = bao(kg, "read", "keygate/roles/dev", token="not-the-admin-key")
    assert denied.returncode != 0 and "permission denied" in denied.stderr
    assert bao(kg, "delete", "keygate/roles/ops").returncode == 0
    gone = bao(kg, "read", "keygate/roles/ops")
    assert gone.returncode != 0 and "No value found" in (gone.stdout + gone.stderr)


def test_roles_with_hvac(kg):
    client = hvac.Client(url=kg.url, token=ADMIN_KEY)
    adapter = client.adapter
    adapter.post("/v1/keygate/roles/app", json={"models": ["gpt-4o-mini"], "ttl": "90", "max_ttl": 600})
    data = adapter.get("/v1/keygate/roles/app")["data"]
    assert (data["models"], data["ttl"], data["max_ttl"]) == (["gpt-4o-mini"], 90, 600)
    keys = adapter.list("/v1/keygate/roles")["data"]["keys"]
    assert keys == ["app"]
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=kg.url, token="wrong").adapter.get("/v1/keygate/roles/app")
    with pytest.raises(hvac.exceptions.InvalidPath):
        adapter.get("/v1/keygate/roles/missing")


def test_lease_lifecycle_with_the_bao_cli(kg):
    assert bao(kg, "write", "keygate/roles/dev", "models=gpt-4o-mini", "ttl=60", "max_ttl=120",
               "max_budget=5", "key_alias_prefix=team").returncode == 0
    out = bao(kg, "read", "-format=json", "keygate/creds/dev")
    assert out.returncode == 0, out.stderr
    creds = json.loads(out.stdout)
    lease_id = creds["lease_id"]
    assert lease_id.startswith("keygate/creds/dev/") and creds["renewable"] is True
    assert creds["lease_duration"] == 60
    data = creds["data"]
    assert data["key"].startswith("sk-") and data["role"] == "dev" and data["max_budget"] == 5.0
    assert data["key_alias"].startswith("team-dev-") and len(data["key_alias"]) == len("team-dev-") + 8
    assert data["models"] == ["gpt-4o-mini"]
    assert works(kg, data["key"])
    # Lookup.
    look = json.loads(bao(kg, "lease", "lookup", "-format=json", lease_id).stdout)["data"]
    assert look["id"] == lease_id and look["renewable"] is True and 0 < look["ttl"] <= 60
    # Renew by 90: capped at max_ttl (120 from issue), with Vault's warning.
    renewed = bao(kg, "lease", "renew", "-format=json", "-increment=90", lease_id)
    assert renewed.returncode == 0, renewed.stderr
    body = json.loads(renewed.stdout)
    assert body["lease_id"] == lease_id and 60 < body["lease_duration"] <= 90
    time.sleep(1.1)
    capped = json.loads(bao(kg, "lease", "renew", "-format=json", "-increment=600", lease_id).stdout)
    assert capped["lease_duration"] <= 120 and capped["warnings"] and "capped" in capped["warnings"][0]
    # Listing under the prefix, then revoke: the key stops at once.
    listed = bao(kg, "list", "-format=json", "sys/leases/lookup/keygate/creds/dev/")
    assert listed.returncode == 0, listed.stderr
    assert lease_id.rsplit("/", 1)[1] in json.loads(listed.stdout)
    assert bao(kg, "lease", "revoke", lease_id).returncode == 0
    assert not works(kg, data["key"])
    gone = bao(kg, "lease", "lookup", lease_id)
    assert gone.returncode != 0


def test_revoke_prefix_expiry_and_restart(kg, keygate_factory, mock):
    client = hvac.Client(url=kg.url, token=ADMIN_KEY)
    a = client.adapter
    a.post("/v1/keygate/roles/short", json={"models": ["gpt-4o-mini"], "ttl": 2, "max_ttl": 60})
    a.post("/v1/keygate/roles/long", json={"ttl": "1h"})
    short = a.get("/v1/keygate/creds/short")
    longs = [a.get("/v1/keygate/creds/long") for _ in range(3)]
    assert works(kg, short["data"]["key"])
    # Expiry: the key stops when its lease ends, and the reaper removes the lease.
    time.sleep(3.5)
    assert not works(kg, short["data"]["key"])
    with pytest.raises(hvac.exceptions.InvalidRequest):
        a.put("/v1/sys/leases/lookup", json={"lease_id": short["lease_id"]})
    # State survives a restart on the same database.
    kg.proc.stop()
    again = keygate_factory(kg_config(mock), env={"KEYGATE_DATABASE_URL": f"sqlite://{kg.workdir}/keygate.db"})
    b = hvac.Client(url=again.url, token=ADMIN_KEY).adapter
    assert b.put("/v1/sys/leases/lookup", json={"lease_id": longs[0]["lease_id"]})["data"]["ttl"] > 3000
    assert works(again, longs[0]["data"]["key"])
    # revoke-prefix kills all three.
    b.put("/v1/sys/leases/revoke-prefix/keygate/creds/long")
    for lease in longs:
        assert not works(again, lease["data"]["key"])


def kg_config(mock):
    config = base_config(model_entries(mock.url))
    config["engine"] = {"mount": "keygate", "default_lease_ttl": "1h", "max_lease_ttl": "24h"}
    return config


def test_keygate_cli_for_roles_creds_and_leases(kg):
    from conftest import KEYGATE_BIN

    def cli(*args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
        env.update(KEYGATE_ADDR=kg.url, KEYGATE_ADMIN_KEY=ADMIN_KEY)
        return subprocess.run([KEYGATE_BIN, *args], env=env, capture_output=True, text=True, timeout=30)

    w = cli("role", "write", "cli", "models=gpt-4o-mini", "ttl=1h", "max_ttl=2h")
    assert w.returncode == 0, w.stderr
    assert json.loads(cli("role", "read", "cli").stdout)["data"]["ttl"] == 3600
    assert "cli" in json.loads(cli("role", "list").stdout)["data"]["keys"]
    issued = json.loads(cli("creds", "cli").stdout)
    lease_id, key = issued["lease_id"], issued["data"]["key"]
    assert works(kg, key)
    assert json.loads(cli("lease", "lookup", lease_id).stdout)["data"]["id"] == lease_id
    renewed = json.loads(cli("lease", "renew", lease_id, "--increment", "30m").stdout)
    assert renewed["lease_duration"] == 1800
    assert cli("lease", "revoke", lease_id).returncode == 0
    assert not works(kg, key)
    refused = cli("role", "write", "bad", "ttl=3h", "max_ttl=1h")
    assert refused.returncode == 1 and "max_ttl" in refused.stderr
    assert cli("role", "delete", "cli").returncode == 0
    missing = cli("role", "read", "cli")
    assert missing.returncode == 1


def test_audit_log_records_operations_with_keys_only_as_hmac(keygate_factory, mock, tmp_path):
    config = kg_config(mock)
    log = tmp_path / "audit.log"
    config["engine"]["audit_log"] = str(log)
    kg = keygate_factory(config)
    assert bao(kg, "write", "keygate/roles/aud", "ttl=60").returncode == 0
    issued = json.loads(bao(kg, "read", "-format=json", "keygate/creds/aud").stdout)
    lease_id, key = issued["lease_id"], issued["data"]["key"]
    assert bao(kg, "lease", "renew", lease_id).returncode == 0
    assert bao(kg, "lease", "revoke", lease_id).returncode == 0
    assert bao(kg, "delete", "keygate/roles/aud").returncode == 0
    text = log.read_text()
    entries = [json.loads(line) for line in text.splitlines()]
    paths = [e["request"]["path"] for e in entries]
    assert paths == ["keygate/roles/aud", "keygate/creds/aud", "sys/leases/renew",
                     "sys/leases/revoke", "keygate/roles/aud"]
    assert key not in text and key[-12:] not in text
    assert entries[1]["response"]["data"]["key"].startswith("hmac-sha256:")
    assert entries[1]["response"]["lease_id"] == lease_id
    assert (tmp_path / "audit.log.hmac-key").exists()


def test_renew_moves_the_keys_expiry_and_max_ttl_holds(kg):
    a = hvac.Client(url=kg.url, token=ADMIN_KEY).adapter
    a.post("/v1/keygate/roles/brief", json={"models": ["gpt-4o-mini"], "ttl": 2, "max_ttl": 6})
    issued = a.get("/v1/keygate/creds/brief")
    key, lease_id = issued["data"]["key"], issued["lease_id"]
    renewed = a.put("/v1/sys/leases/renew", json={"lease_id": lease_id, "increment": 4})
    assert renewed["lease_duration"] == 4
    time.sleep(2.5)
    assert works(kg, key), "the renewal did not move the key's expiry"
    # Past max_ttl (6 s from issue) no renewal helps.
    time.sleep(4.0)
    assert not works(kg, key)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        a.put("/v1/sys/leases/renew", json={"lease_id": lease_id, "increment": 60})
