"""Issue 13, item 15: the compose stack is private by default (read against the compose
spec; no Docker engine here): generated secrets, no default password, ports on
127.0.0.1, no anonymous Grafana, Grafana on a read-only ClickHouse user, one migration
step the rest waits for, the ClickHouse plugin pinned to the dashboards' version."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cli import meterhouse

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
REQUIRED = re.compile(r"\$\{([A-Z_][A-Z0-9_]*):\?[^}]*\}")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.mark.slow
def test_compose_env_generates_every_required_secret(tmp_path: Path) -> None:
    made = meterhouse(tmp_path / "store", "compose-env", "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    env_file, token_file = tmp_path / ".env", tmp_path / "secrets" / "metrics_token"
    for path in (env_file, token_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    required = set(REQUIRED.findall(COMPOSE.read_text()))
    assert required >= {"CLICKHOUSE_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "MH_METRICS_TOKEN"}
    assert required <= set(values)
    assert all(len(values[name]) >= 40 for name in required)
    assert token_file.read_text() == values["MH_METRICS_TOKEN"]
    again = meterhouse(tmp_path / "store", "compose-env", "--dir", str(tmp_path))
    assert again.returncode == 1 and "--force" in again.stderr


def test_no_password_has_a_default_and_ports_stay_local() -> None:
    text = COMPOSE.read_text()
    assert not re.search(r"(PASSWORD|TOKEN)[A-Z_]*:-", text), "a secret has a default value"
    assert "secret@" not in text
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("${MH_PUBLISH_ADDRESS:-127.0.0.1}:"), (name, port)


def test_grafana_is_private_pinned_and_reads_as_the_read_only_user() -> None:
    services = compose()["services"]
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in grafana
    assert grafana["CLICKHOUSE_USER"] == "grafana"
    assert "GRAFANA_CLICKHOUSE_PASSWORD" in grafana["CLICKHOUSE_PASSWORD"]
    pinned = re.search(
        r"grafana-clickhouse-datasource \$\{[^:]+:-([\d.]+)\}", grafana["GF_INSTALL_PLUGINS"]
    )
    assert pinned
    versions = set(
        re.findall(
            r'"pluginVersion": "([\d.]+)"',
            "".join(p.read_text() for p in (REPO / "grafana" / "dashboards").glob("*.json")),
        )
    )
    assert versions == {pinned.group(1)}
    script = (REPO / "clickhouse" / "initdb" / "10-grafana-reader.sh").read_text()
    for constraint in ("readonly = 1 CONST", "allow_ddl = 0 CONST", "MAX 60"):
        assert constraint in script
    assert "CREATE USER IF NOT EXISTS grafana" in script
    mounts = services["clickhouse"]["volumes"]
    assert "./clickhouse/initdb:/docker-entrypoint-initdb.d:ro" in mounts


def test_one_migration_step_that_the_others_wait_for() -> None:
    services = compose()["services"]
    assert services["meterhouse-migrate"]["command"] == ["meterhouse", "migrate"]
    for name in ("meterhouse", "meterhouse-demo"):
        wait = services[name]["depends_on"]["meterhouse-migrate"]["condition"]
        assert wait == "service_completed_successfully", name
        assert "migrate" not in " ".join(services[name]["command"]), name
    prometheus = services["prometheus"]
    assert prometheus["secrets"] == ["metrics_token"]
    assert compose()["secrets"]["metrics_token"]["file"] == "./secrets/metrics_token"
