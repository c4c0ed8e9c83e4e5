"""A real `meterhouse run` polling a platform, and the jobs commands on the demo's store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.jobs.fake_platform import FakePlatform, fill, serving
from tests.support.cli import meterhouse, running_service
from tests.support.inprocess import Demo, InProcess

JOB_METRICS = (
    "meterhouse_job_runs",
    "meterhouse_job_run_duration_seconds",
    "meterhouse_jobs_active",
    "meterhouse_job_runs_running",
    "meterhouse_job_runs_stuck",
    "meterhouse_job_log_errors",
)


def _metrics(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    text = requests.get(f"{url}/metrics", timeout=10).text
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            found.setdefault(family.name, {})[labels] = sample.value
    return found


@pytest.mark.slow  # `meterhouse run` in a subprocess (CONTRIBUTING.md)
def test_service_polls_the_platform_and_serves_jobs_metrics(tmp_path: Path) -> None:
    with serving(FakePlatform()) as platform:
        fill(platform)
        platform.fail_next("500", "drop")  # the service's first requests fail
        env = {
            "MH_POLLER_URL": platform.url,
            "MH_POLLER_INTERVAL_SECONDS": "1",
            "MH_ADMIN_TOKEN": "test-admin-token",
        }
        with running_service(tmp_path / "store", **env) as service:
            deadline = time.monotonic() + 40
            while True:
                metrics = _metrics(service.url)
                polls = metrics.get("meterhouse_jobs_poller_polls", {})
                if polls.get((("outcome", "ok"),), 0) >= 1:
                    break
                assert time.monotonic() < deadline, f"no successful poll: {metrics.keys()}"
                time.sleep(0.3)
            assert metrics["meterhouse_jobs_poller_retries"][()] >= 2
            for name in JOB_METRICS:
                kinds = {dict(labels).get("kind") for labels in metrics[name]}
                assert {"scheduler", "asset", "webhook", "notification"} <= kinds, name
            answer = requests.post(
                f"{service.url}/api/v1/sql",
                json={"sql": "SELECT count(), uniqExact(run_id) FROM job_runs_current"},
                headers={"Authorization": "Bearer test-admin-token"},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["rows"] == [[10, 10]]

            # The CLI cannot open the store the service owns: it asks the service instead.
            active = _json(service.data_dir, "jobs", "active")
            assert sorted(row["job"] for row in active) == [f"job-{n}" for n in range(5)]
            story = _json(service.data_dir, "events", "--run", "run-1")
            assert [row["error_type"] for row in story] == ["HTTPError"]
        assert service.process.returncode is not None
    log = (tmp_path / f"service-{service.url.rsplit(':', 1)[1]}.log").read_text()
    assert "Traceback" not in log, log


def _json(cli: InProcess | Path, *args: str) -> list[dict[str, object]]:
    started = time.monotonic()
    done = (
        cli(*args, "--format", "json")
        if callable(cli)
        else meterhouse(cli, *args, "--format", "json")
    )
    assert done.returncode == 0, done.stderr
    # The whole command (engine and query; with a subprocess, Python's start too):
    # generous, CI is shared.
    assert time.monotonic() - started < 20
    rows: list[dict[str, object]] = json.loads(done.stdout)
    return rows


def test_jobs_commands_on_the_demo(demo: Demo) -> None:
    cli = demo.cli
    active = _json(cli, "jobs", "active")
    assert {row["kind"] for row in active} == {"scheduler", "asset", "webhook", "notification"}
    assert len({(row["account"], row["job"]) for row in active}) == len(active)
    stuck_job = next(row for row in active if row["job"] == "acme-sales_by_region")
    assert stuck_job["running"] >= 1
    assert any(row["last_error"] for row in active)

    stuck = _json(cli, "jobs", "stuck")
    stuck_run = next(row for row in stuck if row["job"] == "acme-sales_by_region")
    assert "3x the" in str(stuck_run["reason"])  # median of recent runs, or the declaration

    story = cli("events", "--run", str(stuck_run["run"]), "--verbose")
    assert story.returncode == 0, story.stderr
    assert "waiting for lock on warehouse table sales_by_region" in story.stdout

    errors = _json(cli, "events", "--level", "error", "--since", "2d", "--limit", "500")
    assert errors and {row["level"] for row in errors} == {"error"}
    assert all(row["error_type"] and row["run"] and row["account"] for row in errors)

    runs = cli("jobs", "runs", "--job", "globex-order-events", "--limit", "3",
                      "--format", "csv")  # fmt: skip
    assert runs.returncode == 0, runs.stderr
    header, *lines = runs.stdout.splitlines()
    assert header.startswith("account,run,status") and len(lines) == 3

    vague = cli("events")
    assert vague.returncode == 2 and "say which logs" in vague.stderr
