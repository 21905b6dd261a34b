"""LiteLLM's key management API on the real binary: LiteLLM's documented curl examples replayed
with plain httpx (docs/my-website/docs/proxy/virtual_keys.md and the docstrings of
litellm/proxy/management_endpoints/key_management_endpoints.py), durability across a restart,
and the `keygate key ...` command line against the running server.

Some documented bodies carry a trailing comma (`"max_budget": 10,}`); that is not JSON, and
LiteLLM's FastAPI answers it 422 `json_invalid`. They are replayed both as printed (expecting
that 422) and with the comma removed.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from conftest import ADMIN_KEY, KEYGATE_BIN, base_config, base_env, http, start_keygate

JSON = {"Content-Type": "application/json"}


def admin(**extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}", **extra}


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def assert_litellm_error(resp, status: int) -> dict:
    """LiteLLM's ProxyException envelope, `code` being the status as a string."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert err["code"] == str(status), err
    assert isinstance(err["message"], str) and err["message"], err
    return err


@pytest.fixture(scope="module")
def kg(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("key-api")
    server = start_keygate(workdir, base_config([]), name="key-api")
    yield server
    server.proc.stop()


def post(kg, path: str, body, headers=None):
    data = body if isinstance(body, str) else json.dumps(body)
    return http.post(f"{kg.url}{path}", content=data, headers=headers or admin(**JSON))


def get(kg, path: str, headers=None):
    return http.get(f"{kg.url}{path}", headers=headers or admin())


def generate(kg, body) -> dict:
    r = post(kg, "/key/generate", body)
    assert r.status_code == 200, r.text
    return r.json()


# ---------------------------------------------------------------------------------------------
# LiteLLM's documented examples


def test_doc_generate_step_3(kg):
    # keygate keeps times in whole milliseconds: a key made within the same millisecond as
    # `before` expires up to a millisecond before `before` + 20m read to the microsecond.
    before = datetime.now(timezone.utc)
    before = before.replace(microsecond=before.microsecond // 1000 * 1000)
    out = generate(
        kg,
        '{"models": ["gpt-3.5-turbo", "gpt-4", "claude-2"], "duration": "20m",'
        '"metadata": {"user": "ishaan@berri.ai"}}',
    )
    assert out["key"].startswith("sk-")
    assert out["key_name"] == f"sk-...{out['key'][-4:]}"
    assert out["models"] == ["gpt-3.5-turbo", "gpt-4", "claude-2"]
    assert out["metadata"] == {"user": "ishaan@berri.ai"}
    expires = parse_time(out["expires"])
    assert before + timedelta(minutes=20) <= expires <= datetime.now(timezone.utc) + timedelta(minutes=20)
    assert len(out["token_id"]) == 64 and out["token"] == out["token_id"]


def test_doc_generate_with_team_and_budget(kg):
    printed = """{
  "models": ["gpt-3.5-turbo", "gpt-4", "claude-2"],
  "duration": "20m",
  "metadata": {"user": "ishaan@berri.ai"},
  "team_id": "core-infra",
  "max_budget": 10,
}"""
    r = post(kg, "/key/generate", printed)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["type"] == "json_invalid"
    out = generate(kg, printed.replace("10,\n}", "10\n}"))
    assert out["team_id"] == "core-infra"
    assert out["max_budget"] == 10.0


def test_doc_key_info_update_delete(kg):
    key = generate(kg, {"models": ["azure-gpt-3.5"], "user_id": "ishaan2@berri.ai"})["key"]

    r = http.get(f"{kg.url}/key/info?key={key}", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["key"] == key
    info = body["info"]
    assert info["spend"] == 0.0
    assert info["expires"] is None
    assert info["models"] == ["azure-gpt-3.5"]
    assert info["aliases"] == {} and info["config"] == {}
    assert info["user_id"] == "ishaan2@berri.ai"
    assert info["max_parallel_requests"] is None and info["metadata"] == {}

    r = post(kg, "/key/update", f"""{{
  "key": "{key}",
  "models": ["gpt-3.5-turbo", "gpt-4", "claude-2"],
  "metadata": {{"user": "ishaan@berri.ai"}},
  "team_id": "core-infra"
}}""")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["key"] == key
    assert out["models"] == ["gpt-3.5-turbo", "gpt-4", "claude-2"]
    assert out["metadata"] == {"user": "ishaan@berri.ai"}
    assert get(kg, f"/key/info?key={key}").json()["info"]["team_id"] == "core-infra"

    r = post(kg, "/key/delete", f'{{\n  "keys": ["{key}"]\n}}')
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted_keys": [key]}
    err = assert_litellm_error(post(kg, "/key/delete", {"keys": [key]}), 404)
    assert err["message"] == "{'error': 'No keys found'}"
    assert_litellm_error(get(kg, f"/key/info?key={key}"), 404)


def test_docstring_update_example(kg):
    own = f"sk-{uuid.uuid4().hex}"
    generate(kg, {"key": own})
    alias = unique("my-key")
    printed = f"""{{
        "key": "{own}",
        "key_alias": "{alias}",
        "user_id": "user-1234",
        "team_id": "team-1234",
        "max_budget": 100,
        "metadata": {{"any_key": "any-val"}},
    }}"""
    assert post(kg, "/key/update", printed).status_code == 422
    r = post(kg, "/key/update", printed.replace('"any-val"},', '"any-val"}'))
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["key_alias"], out["user_id"], out["max_budget"]) == (alias, "user-1234", 100.0)


def test_docstring_regenerate_example(kg):
    key = generate(kg, {"key_alias": unique("regen")})["key"]
    r = http.post(
        f"{kg.url}/key/{key}/regenerate",
        headers=admin(**JSON),
        content="""{
        "max_budget": 100,
        "metadata": {"team": "core-infra"},
        "models": ["gpt-4", "gpt-3.5-turbo"]
    }""",
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["key"] != key and out["key"].startswith("sk-")
    assert (out["max_budget"], out["models"]) == (100.0, ["gpt-4", "gpt-3.5-turbo"])
    assert_litellm_error(get(kg, f"/key/info?key={key}"), 404)
    assert get(kg, f"/key/info?key={out['key']}").status_code == 200


def test_doc_dynamo_example_null_duration(kg):
    out = generate(
        kg, '{"models": ["azure-models"], "aliases": {"mistral-7b": "gpt-3.5-turbo"}, "duration": null}'
    )
    assert out["expires"] is None


def test_doc_30min_is_refused_by_the_strict_grammar(kg):
    # LiteLLM's unanchored regex reads "30min" as 30m; keygate's grammar (DESIGN.md) is strict.
    err = assert_litellm_error(
        post(kg, "/key/generate", {"models": ["my-free-tier"], "duration": "30min"}), 400
    )
    assert "30min" in err["message"]
    err = assert_litellm_error(post(kg, "/key/generate", {"duration": "30"}), 400)
    assert err["message"].startswith("Unsupported duration unit, passed duration: 30")


def test_list_and_errors(kg):
    team = unique("team")
    ids = [generate(kg, {"team_id": team})["token_id"] for _ in range(3)]
    r = get(kg, f"/key/list?team_id={team}&size=2&page=1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["total_count"], body["current_page"], body["total_pages"]) == (3, 1, 2)
    assert set(body["keys"]) <= set(ids) and len(body["keys"]) == 2
    full = get(kg, f"/key/list?team_id={team}&return_full_object=true").json()["keys"]
    assert sorted(k["token"] for k in full) == sorted(ids)

    r = get(kg, "/key/list?size=101")
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "size"]

    r = http.get(f"{kg.url}/key/list")
    err = assert_litellm_error(r, 401)
    assert err == {"message": "Authentication Error, No api key passed in.", "type": "auth_error",
                   "param": "None", "code": "401"}
    assert_litellm_error(get(kg, "/key/list", headers={"Authorization": "Bearer sk-nope"}), 401)
    err = assert_litellm_error(post(kg, "/key/update", {"key": "sk-missing", "max_budget": 1}), 404)
    assert err["type"] == "auth_error"
    alias = unique("dup")
    generate(kg, {"key_alias": alias})
    err = assert_litellm_error(post(kg, "/key/generate", {"key_alias": alias}), 400)
    assert err["message"] == (
        f"Key with alias '{alias}' already exists. Unique key aliases across all keys are required."
    )


def test_generated_key_survives_a_restart(tmp_path):
    server = start_keygate(tmp_path, base_config([]), name="restart-a")
    try:
        out = generate(server, {"key_alias": unique("durable"), "max_budget": 3})
    finally:
        assert server.proc.stop() == 0
    again = start_keygate(tmp_path, base_config([]), name="restart-b")
    try:
        r = get(again, f"/key/info?key={out['key']}")
        assert r.status_code == 200, r.text
        assert r.json()["info"]["max_budget"] == 3.0
    finally:
        again.proc.stop()


# ---------------------------------------------------------------------------------------------
# the command line


def cli(kg, *args: str, admin_key: str | None = ADMIN_KEY) -> subprocess.CompletedProcess:
    env = base_env(KEYGATE_ADDR=kg.url)
    if admin_key is not None:
        env["KEYGATE_ADMIN_KEY"] = admin_key
    return subprocess.run(
        [KEYGATE_BIN, "key", *args], env=env, capture_output=True, text=True, timeout=30
    )


def test_cli_manages_keys(kg):
    alias = unique("cli")
    done = cli(kg, "generate", "--models", "gpt-4o,claude", "--alias", alias, "--duration", "30d",
               "--max-budget", "5", "--rpm", "10", "--tpm", "1000", "--metadata", '{"team":"a"}')
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    key, token_id = out["key"], out["token_id"]
    assert out["models"] == ["gpt-4o", "claude"] and out["key_alias"] == alias
    assert (out["max_budget"], out["rpm_limit"], out["tpm_limit"]) == (5.0, 10, 1000)
    assert out["metadata"] == {"team": "a"}
    assert parse_time(out["expires"]) > datetime.now(timezone.utc) + timedelta(days=29)

    done = cli(kg, "list", "--alias", alias)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["keys"] == [token_id]

    done = cli(kg, "info", key)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["info"]["spend"] == 0.0

    done = cli(kg, "update", token_id, "--max-budget", "7", "--duration", "-1", "--blocked", "true")
    assert done.returncode == 0, done.stderr
    updated = json.loads(done.stdout)
    assert (updated["max_budget"], updated["expires"], updated["blocked"]) == (7.0, None, True)

    done = cli(kg, "generate", "--alias", alias)
    assert done.returncode == 1
    assert "already exists" in done.stderr and done.stdout == ""
    done = cli(kg, "generate", "--duration", "30")
    assert done.returncode == 1 and "Unsupported duration unit" in done.stderr

    done = cli(kg, "delete", "--alias", alias)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"deleted_keys": [alias]}
    done = cli(kg, "delete", "--alias", alias)
    assert done.returncode == 1 and "No keys found" in done.stderr
    done = cli(kg, "info", key)
    assert done.returncode == 1 and "Key not found" in done.stderr

    done = cli(kg, "list", "--size", "101")
    assert done.returncode == 1 and "size" in done.stderr
    done = cli(kg, "list", admin_key="sk-wrong")
    assert done.returncode == 1 and "Authentication Error" in done.stderr
    done = cli(kg, "list", admin_key=None)
    assert done.returncode != 0 and "KEYGATE_ADMIN_KEY" in done.stderr
    for text in (done.stdout, done.stderr):
        assert ADMIN_KEY not in text
