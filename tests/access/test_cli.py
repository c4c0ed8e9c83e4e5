"""`meterhouse users ...` and `meterhouse keys create --purpose read`, run in this process on
this module's database (the same chdb directory, so no second engine is needed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from meterhouse.access import keys, tenants
from meterhouse.access import users as u
from meterhouse.cli import cli
from meterhouse.store.base import Store
from tests.access.fake_grafana import fake_grafana

Run = Callable[..., Result]


@pytest.fixture
def run(clean_store: Store, chdb_data_dir: Path) -> Run:
    tenants.create_account(clean_store, "acme", actor="t")
    tenants.create_account(clean_store, "globex", actor="t")
    tenants.upsert_team(clean_store, "acme", "data", "", actor="t", create=True)
    env = {
        "MH_CLICKHOUSE_URL": f"chdb://{chdb_data_dir}",
        "MH_CLICKHOUSE_DATABASE": clean_store.database,
        "MH_LOG_LEVEL": "warning",
    }

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


def test_users_commands_round_trip(run: Run, clean_store: Store) -> None:
    added = run(
        "users",
        "add",
        "olga",
        "--account",
        "acme",
        "--email",
        "olga@acme.example",
        "--role",
        "owner",
    )
    assert added.exit_code == 0, added.output
    assert (
        run(
            "users",
            "add",
            "vic",
            "--account",
            "acme",
            "--email",
            "vic@acme.example",
            "--role",
            "viewer",
            "--team",
            "data",
            "--as",
            "olga",
        ).exit_code
        == 0
    )
    listed = run("users", "list", "--account", "acme", "--format", "json")
    assert {row["user_id"]: row["roles"] for row in json.loads(listed.output)} == {
        "olga": "owner on account",
        "vic": "viewer on team data",
    }
    again = run("users", "grant", "vic", "--account", "acme", "--role", "viewer", "--team", "data")
    assert "already had" in again.output
    made = run(
        "keys",
        "create",
        "--purpose",
        "read",
        "--user",
        "vic",
        "--account",
        "acme",
        "--expires-in",
        "30d",
    )
    assert made.exit_code == 0, made.output
    token = made.output.split("token: ", 1)[1].split()[0]
    key_id = token.split("_")[1]
    assert keys.get_key(clean_store, key_id).user_id == "vic"  # type: ignore[union-attr]
    shown = run("users", "show", "vic", "--account", "acme", "--format", "json")
    body = json.loads(shown.output)[0]
    assert body["bindings"] == [
        {
            "account_id": "acme",
            "user_id": "vic",
            "role": "viewer",
            "scope": "team",
            "scope_id": "data",
        }
    ]
    assert [k["key_id"] for k in body["keys"]] == [key_id]
    assert token.split("_", 2)[2] not in shown.output  # never the secret
    revoked = run(
        "users", "revoke", "vic", "--account", "acme", "--role", "viewer", "--team", "data"
    )
    assert revoked.exit_code == 0 and "revoked viewer on team data" in revoked.output
    assert run("users", "remove", "vic", "--account", "acme").exit_code == 0
    audit = run("users", "audit", "--account", "acme", "--format", "json")
    actions = [row["action"] for row in json.loads(audit.output)]
    assert actions[:2] == ["user.remove", "api_key.revoke"]
    assert {"user.create", "role.grant", "role.revoke", "api_key.create"} <= set(actions)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("keys", "create", "--purpose", "read", "--user", "olga"), "give --user and --account"),
        (
            ("keys", "create", "--purpose", "read", "--user", "olga", "--account", "globex"),
            "no user olga in account globex",
        ),
        (
            ("users", "grant", "olga", "--account", "acme", "--role", "owner", "--team", "data"),
            "account-wide role",
        ),
        (
            ("users", "add", "x", "--account", "acme", "--email", "x@a.example", "--team", "data"),
            "--team and --project need --role",
        ),
        (
            (
                "users",
                "add",
                "x",
                "--account",
                "acme",
                "--email",
                "x@a.example",
                "--role",
                "viewer",
                "--team",
                "nope",
            ),
            "no team nope",
        ),
        (
            ("users", "grant", "olga", "--account", "acme", "--role", "viewer", "--as", "ghost"),
            "no user ghost",
        ),
        (("users", "list", "--account", "acme", "--format", "yaml"), "Invalid value"),
    ],
)
def test_bad_cli_input_is_a_clear_error(
    run: Run, clean_store: Store, args: tuple[str, ...], error: str
) -> None:
    assert (
        run("users", "add", "olga", "--account", "acme", "--email", "o@acme.example").exit_code == 0
    )
    result = run(*args)
    assert result.exit_code != 0 and error in result.output, result.output
    assert "Traceback" not in result.output
    assert u.get_user(clean_store, "acme", "x") is None  # a refused add writes nothing


def test_sync_commands(run: Run, tmp_path: Path) -> None:
    run(
        "users",
        "add",
        "olga",
        "--account",
        "acme",
        "--email",
        "olga@acme.example",
        "--role",
        "owner",
    )
    dry = run("users", "sync-clickhouse", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "CREATE USER IF NOT EXISTS `mh/acme/olga`" in dry.output
    assert "<sha256 of the generated password>" in dry.output
    assert "would run" in dry.output and "no grant (no account_id column)" in dry.output
    applied = run("users", "sync-clickhouse")
    assert applied.exit_code == 1 and "no user management" in applied.output
    token_file = tmp_path / "grafana.token"
    token_file.write_text("glsa_cli_token\n")
    with fake_grafana("glsa_cli_token") as (url, state):
        state.add_user("olga@acme.example")
        synced = run("users", "sync-grafana", "--url", url, "--token-file", str(token_file))
        assert synced.exit_code == 0, synced.output
        assert "POST /api/folders mh-acme" in synced.output and state.problems == []
        nothing = run(
            "users", "sync-grafana", "--url", url, "--token-file", str(token_file), "--dry-run"
        )
        assert nothing.exit_code == 0 and "0 changes planned" in nothing.output


def test_help_teaches_with_examples(run: Run) -> None:
    for command in (
        "add",
        "remove",
        "list",
        "show",
        "grant",
        "revoke",
        "audit",
        "sync-clickhouse",
        "sync-grafana",
    ):
        helped = run("users", command, "--help")
        assert helped.exit_code == 0 and "Example" in helped.output, command
    top = run("users", "--help").output
    assert all(role in top for role in ("owner", "admin", "billing", "member", "viewer"))
    assert "--purpose read --user" in run("keys", "--help").output
