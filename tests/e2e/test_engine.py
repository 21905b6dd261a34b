"""The secrets engine's roles through the real `bao` CLI and hvac (BAO_ADDR/VAULT_ADDR pointing
at keygate, the admin key as the token). Creds and leases come next."""

from __future__ import annotations

import json
import os
import subprocess

import hvac
import pytest

from conftest import ADMIN_KEY
from secret_backends import bao_binary


def bao(kg, *args: str, token: str = ADMIN_KEY) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env.update(BAO_ADDR=kg.url, VAULT_ADDR=kg.url, BAO_TOKEN=token, VAULT_TOKEN=token)
    return subprocess.run([bao_binary(), *args], env=env, capture_output=True, text=True, timeout=30)


@pytest.fixture
def kg(keygate_factory):
    return keygate_factory(None)


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
