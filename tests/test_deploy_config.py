"""Checks of the deployment files: docker-compose.yml, Dockerfile, Prometheus,
Alertmanager and Grafana provisioning.

No Docker engine runs here, so the compose file is checked against the Compose
specification's JSON schema (from the shared reference folder) and by reading it. The
Prometheus and Alertmanager configs are checked by their own tools, ``promtool`` and
``amtool``, from the Debian packages ``prometheus`` and ``prometheus-alertmanager``; CI
installs them, so their absence is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO / "alertmanager" / "alertmanager.yml"
GRAFANA_PROVISIONING = REPO / "grafana" / "provisioning"
DATASOURCES_FILE = GRAFANA_PROVISIONING / "datasources" / "datasources.yaml"
DASHBOARD_PROVIDER_FILE = GRAFANA_PROVISIONING / "dashboards" / "meterhouse.yaml"
CONTACT_POINTS_FILE = GRAFANA_PROVISIONING / "alerting" / "contact-points.yaml"
POLICIES_FILE = GRAFANA_PROVISIONING / "alerting" / "policies.yaml"

WEBHOOK_URL = "http://meterhouse:8080/api/v1/alerts/webhook"
# What `meterhouse compose-env` writes to .env (compose has no default passwords).
SECRETS = {
    "CLICKHOUSE_PASSWORD": "pw-clickhouse",
    "GRAFANA_CLICKHOUSE_PASSWORD": "pw-grafana-reader",
    "GRAFANA_ADMIN_PASSWORD": "pw-grafana-admin",
    "MH_ADMIN_TOKEN": "admin-token",
    "MH_METRICS_TOKEN": "metrics-token",
}
EXPECTED_SERVICES = {
    "clickhouse": "clickhouse/clickhouse-server",
    "prometheus": "prom/prometheus",
    "alertmanager": "prom/alertmanager",
    "grafana": "grafana/grafana",
}

_INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?(?P<op>[-?])(?P<default>[^}]*))?\}"
)


# --------------------------------------------------------------------------- helpers


def shared_dir() -> Path:
    """The shared reference folder: beside the repository clone, else $MH_SHARED_DIR."""
    candidates = [Path(__file__).resolve().parents[2] / "shared"]
    if os.environ.get("MH_SHARED_DIR"):
        candidates.append(Path(os.environ["MH_SHARED_DIR"]))
    for candidate in candidates:
        if (candidate / "reference").is_dir():
            return candidate
    pytest.fail(
        "shared reference folder not found; looked in "
        + ", ".join(str(c) for c in candidates)
        + " (put a copy of shared/ beside the clone or set MH_SHARED_DIR)"
    )


def load_yaml(path: Path) -> Any:
    assert path.is_file(), f"{path.relative_to(REPO)} is missing"
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Expand ``${VAR}`` / ``${VAR:-default}`` / ``${VAR:?error}`` the way compose does with
    ``env`` (a required variable missing from it fails the test with compose's message)."""
    given = env or {}

    def expand(m: re.Match[str]) -> str:
        if m.group("name") in given:
            return given[m.group("name")]
        if m.group("op") == "?":
            pytest.fail(f"compose needs {m.group('name')}: {m.group('default')}")
        return m.group("default") or ""

    return _INTERPOLATION.sub(expand, value)


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not on PATH. It comes from the Debian package `{package}`: "
            "apt-get update && apt-get install -y prometheus prometheus-alertmanager "
            "prometheus-pushgateway"
        )
    return path


def run_tool(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


def env_dict(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host source, container target) of each bind mount of a service."""
    mounts: list[tuple[str, str]] = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":", 1)[0]
            if source.startswith((".", "/", "~")):
                mounts.append((source, target))
        elif volume.get("type") == "bind":
            mounts.append((volume["source"], volume["target"]))
    return mounts


def named_volumes(service: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, sep, _ = volume.partition(":")
            if sep and not source.startswith((".", "/", "~")):
                names.append(source)
        elif volume.get("type") == "volume" and volume.get("source"):
            names.append(volume["source"])
    return names


def mount_target(service: dict[str, Any], host_path: str) -> str:
    wanted = (REPO / host_path).resolve()
    for source, target in bind_mounts(service):
        if (REPO / source).resolve() == wanted:
            return target
    pytest.fail(f"{host_path} is not bind-mounted into the service")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


# --------------------------------------------------------------------------- compose


def test_compose_matches_compose_spec(compose: dict[str, Any]) -> None:
    schema_path = shared_dir() / "reference" / "compose" / "compose-spec.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
    )


def test_compose_bind_mounts_and_build_contexts_exist(
    services: dict[str, dict[str, Any]],
) -> None:
    checked = 0
    for name, service in services.items():
        for source, _target in bind_mounts(service):
            assert not source.startswith(("/", "~")), (
                f"{name}: bind mount {source} is outside the repository"
            )
            host = (REPO / source).resolve()
            assert host.is_relative_to(REPO), f"{name}: {source} points outside the repo"
            assert host.exists(), f"{name}: bind-mounted {source} does not exist in the repo"
            checked += 1
        build = service.get("build")
        if build is not None:
            context = REPO / (build if isinstance(build, str) else build.get("context", "."))
            assert context.is_dir(), f"{name}: build context {context} is missing"
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            assert (context / (dockerfile or "Dockerfile")).is_file(), f"{name}: Dockerfile missing"
    assert checked >= 5, "expected the prometheus, alertmanager and grafana bind mounts"


def test_compose_named_volumes_are_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in named_volumes(service):
            assert volume in declared, f"{name}: volume {volume} is not declared at top level"
    assert named_volumes(services["clickhouse"]), "clickhouse data must live on a volume"


def test_compose_services_and_images(services: dict[str, dict[str, Any]]) -> None:
    expected = {*EXPECTED_SERVICES, "meterhouse", "meterhouse-demo"}
    assert expected <= set(services), f"missing services: {expected - set(services)}"
    for name, image in EXPECTED_SERVICES.items():
        assert interpolate(services[name]["image"]).split(":")[0] == image


def test_compose_clickhouse(services: dict[str, dict[str, Any]]) -> None:
    clickhouse = services["clickhouse"]
    env = {k: interpolate(v, SECRETS) for k, v in env_dict(clickhouse).items()}
    assert env["CLICKHOUSE_DB"] == "meterhouse"
    assert env["CLICKHOUSE_USER"] == "meterhouse"
    assert env["CLICKHOUSE_PASSWORD"] == SECRETS["CLICKHOUSE_PASSWORD"]  # no default
    assert any(str(p).split(":")[-1] == "8123" for p in clickhouse["ports"])
    assert "healthcheck" in clickhouse


def test_compose_meterhouse_services(services: dict[str, dict[str, Any]]) -> None:
    url = f"http://meterhouse:{SECRETS['CLICKHOUSE_PASSWORD']}@clickhouse:8123/meterhouse"
    service, demo = services["meterhouse"], services["meterhouse-demo"]
    assert service["command"] == ["meterhouse", "run", "--host", "0.0.0.0", "--port", "8080"]
    assert "/healthz" in " ".join(service["healthcheck"]["test"])
    assert demo["command"] == ["meterhouse", "demo"]
    assert services["meterhouse-migrate"]["command"] == ["meterhouse", "migrate"]
    for svc in (service, demo):
        assert interpolate(env_dict(svc)["MH_CLICKHOUSE_URL"], SECRETS) == url
        assert svc["depends_on"]["clickhouse"]["condition"] == "service_healthy"
        migrated = svc["depends_on"]["meterhouse-migrate"]["condition"]
        assert migrated == "service_completed_successfully"
    assert demo.get("restart", "no") == "no"
    assert demo.get("image") == service.get("image"), "the demo must run the service image"


def test_compose_dependencies_point_at_services(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for dep in depends:
            assert dep in services, f"{name} depends on unknown service {dep}"
            if isinstance(depends, dict) and depends[dep]["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits on {dep}'s healthcheck"


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert re.search(r"^RUN pip install \.\s*$", text, re.MULTILINE)
    assert '"meterhouse", "run", "--host", "0.0.0.0", "--port", "8080"' in text
    assert "HEALTHCHECK" in text and "/healthz" in text


# --------------------------------------------------------------------------- prometheus


@pytest.mark.prometheus
def test_promtool_check_config(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    # The shipped config, with only the metrics token's secret file placed here (compose
    # mounts it at /run/secrets/metrics_token).
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_CONFIG.parent, copy)
    token = tmp_path / "metrics_token"
    token.write_text("test-token")
    config = copy / PROMETHEUS_CONFIG.name
    shipped = config.read_text()
    assert "/run/secrets/metrics_token" in shipped
    config.write_text(shipped.replace("/run/secrets/metrics_token", str(token)))
    result = run_tool([promtool, "check", "config", str(config)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def rendered_alertmanager_config(
    services: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """alertmanager.yml as the compose file's alertmanager-config step writes it, with
    the settings compose gives that step (its defaults, and the secrets `meterhouse
    compose-env` generates)."""
    from meterhouse.cli.compose import SECRETS

    generated = {name: f"generated-{name.lower()}" for name, _ in SECRETS}
    step = services["alertmanager-config"]
    env = {k: interpolate(v, generated) for k, v in env_dict(step).items()}
    out = tmp_path_factory.mktemp("alertmanager") / "alertmanager.yml"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MH_")}
    argv = [
        str(Path(sys.executable).parent / "meterhouse"),
        "notify",
        "alertmanager-config",
        f"--template={ALERTMANAGER_CONFIG}",
        f"--output={out}",
    ]
    result = subprocess.run(
        argv, env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.prometheus
def test_amtool_check_config(rendered_alertmanager_config: Path) -> None:
    amtool = require_tool("amtool", "prometheus-alertmanager")
    result = run_tool([amtool, "check-config", str(rendered_alertmanager_config)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_contents(services: dict[str, dict[str, Any]]) -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}

    def targets(job: dict[str, Any]) -> list[str]:
        return [t for sc in job.get("static_configs", []) for t in sc["targets"]]

    assert "meterhouse:8080" in targets(jobs["meterhouse"])
    assert jobs["meterhouse"].get("metrics_path", "/metrics") == "/metrics"
    # Nothing pushes (billing sync and the pollers run inside the service and are scraped
    # there), so no Pushgateway is started or scraped.
    assert "pushgateway" not in jobs
    managers = [t for am in config["alerting"]["alertmanagers"] for t in targets(am)]
    assert managers == ["alertmanager:9093"]

    # Rule files are resolved relative to the config file inside the container.
    assert config["rule_files"] == ["rules/*.yml"]
    prometheus = services["prometheus"]
    config_target = PurePosixPath(mount_target(prometheus, "prometheus/prometheus.yml"))
    rules_target = PurePosixPath(mount_target(prometheus, "prometheus/rules"))
    assert rules_target == config_target.parent / "rules"
    assert f"--config.file={config_target}" in prometheus.get("command", [])
    assert (REPO / "prometheus" / "rules").is_dir()


def test_alertmanager_routing(rendered_alertmanager_config: Path) -> None:
    config = load_yaml(rendered_alertmanager_config)
    route = config["route"]
    assert route["group_by"] == ["alertname", "account"]
    receivers = {r["name"]: r for r in config["receivers"]}
    assert route["receiver"] in receivers
    severities = set()
    for child in route["routes"]:
        assert child["receiver"] in receivers
        for matcher in child.get("matchers", []):
            m = re.fullmatch(r'\s*severity\s*=\s*"?(\w+)"?\s*', matcher)
            if m:
                severities.add(m.group(1))
    assert severities == {"critical", "warning", "info"}
    webhooks = [w["url"] for r in receivers.values() for w in r.get("webhook_configs", [])]
    assert webhooks and set(webhooks) == {WEBHOOK_URL}
    assert any(r.get("email_configs") for r in receivers.values())
    assert config["global"]["smtp_smarthost"]


def test_alertmanager_mount(services: dict[str, dict[str, Any]]) -> None:
    """The shipped file is filled by the alertmanager-config step, whose output volume
    Alertmanager reads its configuration from once that step has succeeded."""
    step, alertmanager = services["alertmanager-config"], services["alertmanager"]
    template = mount_target(step, "alertmanager/alertmanager.yml")
    assert f"--template={template}" in step["command"]
    output = next(a.split("=", 1)[1] for a in step["command"] if a.startswith("--output="))
    volume = next(v for v in step["volumes"] if v.endswith(":" + str(PurePosixPath(output).parent)))
    name = volume.split(":")[0]
    mounted = next(v for v in alertmanager["volumes"] if v.startswith(name + ":"))
    config_dir = mounted.split(":")[1]
    assert f"--config.file={config_dir}/{PurePosixPath(output).name}" in alertmanager["command"]
    condition = alertmanager["depends_on"]["alertmanager-config"]["condition"]
    assert condition == "service_completed_successfully"
    assert step.get("image") == services["meterhouse"].get("image")


# --------------------------------------------------------------------------- grafana


def test_grafana_provisioning_files_parse() -> None:
    files = sorted(GRAFANA_PROVISIONING.rglob("*.y*ml"))
    assert {DATASOURCES_FILE, DASHBOARD_PROVIDER_FILE, CONTACT_POINTS_FILE, POLICIES_FILE} <= set(
        files
    )
    for path in files:
        data = load_yaml(path)
        assert isinstance(data, dict), f"{path.relative_to(REPO)} is not a mapping"
        assert data.get("apiVersion") == 1, f"{path.relative_to(REPO)}: apiVersion must be 1"


def test_grafana_datasources(services: dict[str, dict[str, Any]]) -> None:
    datasources = {ds["uid"]: ds for ds in load_yaml(DATASOURCES_FILE)["datasources"]}
    assert set(datasources) == {"clickhouse", "prometheus"}

    clickhouse = datasources["clickhouse"]
    assert clickhouse["type"] == "grafana-clickhouse-datasource"
    jd = clickhouse["jsonData"]
    assert (jd["host"], int(jd["port"]), jd["protocol"]) == ("clickhouse", 8123, "http")
    assert jd["defaultDatabase"] == "meterhouse"

    prometheus = datasources["prometheus"]
    assert prometheus["type"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"
    assert sum(bool(ds.get("isDefault")) for ds in datasources.values()) <= 1

    # Environment variables the datasource file expands must be set on the container.
    text = DATASOURCES_FILE.read_text(encoding="utf-8")
    referenced = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", text))
    missing = referenced - set(env_dict(services["grafana"]))
    assert not missing, f"grafana container lacks env vars {missing}"


def test_grafana_dashboard_provider_matches_mount(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    assert mount_target(grafana, "grafana/provisioning") == "/etc/grafana/provisioning"
    dashboards_target = mount_target(grafana, "grafana/dashboards")
    assert dashboards_target == "/var/lib/grafana/dashboards"

    providers = load_yaml(DASHBOARD_PROVIDER_FILE)["providers"]
    assert len(providers) == 1
    provider = providers[0]
    assert provider.get("type", "file") == "file"
    assert provider["folder"] == "meterhouse"
    assert PurePosixPath(provider["options"]["path"]) == PurePosixPath(dashboards_target)
    assert (REPO / "grafana" / "dashboards").is_dir()


def test_grafana_compose_environment(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    env = env_dict(grafana)
    assert interpolate(env["GF_INSTALL_PLUGINS"]) == "grafana-clickhouse-datasource 4.20.0"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert any(str(p).split(":")[-1] == "3000" for p in grafana["ports"])


def test_grafana_alerting_contact_points_and_policy() -> None:
    contact_points = load_yaml(CONTACT_POINTS_FILE)["contactPoints"]
    by_name = {cp["name"]: cp for cp in contact_points}
    receivers = [r for cp in contact_points for r in cp["receivers"]]
    webhooks = [r for r in receivers if r["type"] == "webhook"]
    assert webhooks, "expected a webhook contact point"
    grafana_env = env_dict(load_yaml(COMPOSE_FILE)["services"]["grafana"])
    for receiver in webhooks:
        # Grafana expands ${VAR} in provisioning files from its environment.
        url = re.sub(r"\$\{(\w+)\}", lambda m: grafana_env[m.group(1)], receiver["settings"]["url"])
        assert receiver["uid"] and url == WEBHOOK_URL
        assert receiver["settings"]["authorization_scheme"] == "Bearer"
        token = receiver["settings"]["authorization_credentials"]
        assert token == "${MH_ALERTS_WEBHOOK_TOKEN}" and "MH_ALERTS_WEBHOOK_TOKEN" in grafana_env

    policies = load_yaml(POLICIES_FILE)["policies"]
    assert len(policies) == 1
    policy = policies[0]
    assert policy["receiver"] in by_name, "default policy must use a provisioned contact point"
    assert "alertname" in policy["group_by"]
