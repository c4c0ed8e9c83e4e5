"""The real service on the demo's data: read keys made and revoked through the CLI while
`meterhouse run` owns the store, scoped reads, and no secret in the log or on /metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.cli import meterhouse, running_service

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow


def admin_sql(url: str, token: str, sql: str) -> list[list[Any]]:
    answer = requests.post(
        f"{url}/api/v1/sql",
        json={"sql": sql},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    rows: list[list[Any]] = answer.json()["rows"]
    return rows


def test_read_keys_through_the_running_service(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    demo = meterhouse(data_dir, "demo", "--days", "1", "--scale", "0.01")
    assert demo.returncode == 0, demo.stderr[-2000:]
    log_path = tmp_path / "service.log"
    secrets: list[str] = []
    with running_service(data_dir, log_path=log_path, MH_LOG_LEVEL="info") as service:
        url, admin = service.url, service.admin_token
        secrets.append(admin)
        member, team = admin_sql(
            url,
            admin,
            "SELECT user_id, scope_id FROM role_bindings FINAL WHERE account_id = 'acme' "
            "AND role = 'member' AND scope = 'team'",
        )[0]
        team_jobs = {
            row[0]
            for row in admin_sql(
                url,
                admin,
                f"SELECT job_id FROM jobs_current WHERE account_id = 'acme' AND team_id = '{team}'",
            )
        }

        made = meterhouse(
            data_dir, "keys", "create", "--purpose", "read", "--user", member, "--account",
            "acme", "--expires-in", "30d",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        token = made.stdout.split("token: ", 1)[1].split()[0]
        key_id, secret = token.split("_", 2)[1:]
        secrets.append(secret)
        bearer = {"Authorization": f"Bearer {token}"}
        base = f"{url}/api/v1/accounts"

        jobs = requests.get(f"{base}/acme/jobs", headers=bearer, timeout=30)
        assert jobs.status_code == 200, jobs.text
        seen = {job["job"] for job in jobs.json()["jobs"]}
        assert seen and seen <= team_jobs
        statement = requests.get(f"{base}/acme/statement", headers=bearer, timeout=30)
        assert statement.status_code == 200, statement.text
        assert statement.json()["scope"]["team"] == team
        assert "closing_balance" not in statement.json()["summary"]
        for path in ("acme/balance", "acme/users"):
            assert requests.get(f"{base}/{path}", headers=bearer, timeout=30).status_code == 403
        assert requests.get(f"{base}/globex/jobs", headers=bearer, timeout=30).status_code == 404
        sql = requests.post(
            f"{url}/api/v1/sql", json={"sql": "SELECT 1"}, headers=bearer, timeout=30
        )
        assert sql.status_code == 403
        wrong = {"Authorization": f"Bearer mh_{key_id}_{'x' * 43}"}
        assert requests.get(f"{base}/acme/jobs", headers=wrong, timeout=30).status_code == 401

        revoked = meterhouse(data_dir, "keys", "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        after = requests.get(f"{base}/acme/jobs", headers=bearer, timeout=30)
        assert after.status_code == 401 and "revoked" in after.json()["detail"]

        metrics = requests.get(f"{url}/metrics", timeout=30).text
        assert 'meterhouse_read_auth_failures_total{reason="revoked"} 1.0' in metrics
        assert 'meterhouse_read_refused_total{endpoint="jobs",status="404"} 1.0' in metrics
        assert not [s for s in secrets if s in metrics]
    log = log_path.read_text()
    assert "read authentication failed" in log and "reason=revoked" in log.replace('"', "")
    assert not [s for s in secrets if s in log], "a secret was written to the service log"
