"""Every setting meterhouse reads, in one typed class.

Each field is read from the environment variable ``MH_<FIELD NAME IN CAPITALS>``;
arguments given to the constructor (the CLI passes its flags this way) win over the
environment. ``meterhouse settings`` prints the table below with the values in force, and
README.md lists the same table. Nothing else in the code base reads ``os.environ`` for
configuration.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """Where the embedded store and the spool live unless told otherwise."""
    return Path(platformdirs.user_data_dir("meterhouse"))


def default_clickhouse_url() -> str:
    return f"chdb://{default_data_dir() / 'clickhouse'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MH_", extra="ignore", frozen=True)

    clickhouse_url: str = Field(
        default_factory=default_clickhouse_url,
        description=(
            "Which store to use. `chdb:///abs/dir` or `chdb://rel/dir` runs the embedded "
            "ClickHouse engine on that data directory (one process owns it at a time); "
            "`http(s)://user:pass@host:8123/database` talks to a ClickHouse server."
        ),
    )
    clickhouse_cluster: str = Field(
        default="",
        description=(
            "Cluster name for multi-node ClickHouse. When set, migrations create tables "
            "ON CLUSTER with Replicated engines (see clickhouse/schema/README.md)."
        ),
    )
    clickhouse_database: str = Field(
        default="meterhouse",
        description="Database that holds meterhouse's tables (embedded mode; in server mode "
        "the URL path wins when it names one).",
    )
    host: str = Field(default="127.0.0.1", description="Address `meterhouse run` listens on.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port of `meterhouse run`.")
    http_max_header_bytes: int = Field(
        default=64 * 1024,
        ge=4096,
        description="Most bytes of a request's line and headers; a larger head is answered "
        "400 and the connection closed, before anything else reads it.",
    )
    http_max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Most bytes of a request body on endpoints other than ingest (which "
        "use MH_INGEST_MAX_BODY_BYTES); counted while the body streams in, answered 413.",
    )
    http_header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a connection may take to send a request's headers (from "
        "connecting, or from the previous answer); then it is answered 408 and closed.",
    )
    http_body_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a request may take to send its whole body once its headers "
        "are in; then it is answered 408 (or closed) so slow clients hold no connection.",
    )
    http_max_connections: int = Field(
        default=2000,
        ge=1,
        description="Most open connections `meterhouse run` keeps (further ones are answered "
        "503 and closed at once); keep it well under the process's file descriptor limit.",
    )
    http_max_connections_per_client: int = Field(
        default=200,
        ge=1,
        description="Most open connections from one client address.",
    )
    service_url: str = Field(
        default="",
        description=(
            "URL of a running `meterhouse run` that CLI commands ask when the embedded "
            "store is held by it. Empty: read from the store's owner file."
        ),
    )
    meters_file: str = Field(
        default="",
        description=(
            'A YAML file of meters under version control (docs/events.md, "Meters"), '
            "read when `meterhouse run` starts; a mistake in it stops the start, naming the "
            "meter and field. Empty: only meters added through the API or `meterhouse "
            "meters add`."
        ),
    )
    admin_token: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "Bearer token for the service's admin endpoints (/api/v1/sql, key administration, "
            "and /api/v1/store, through which CLI commands use the store the service holds). "
            "Empty: a random token is made at start and written, readable by the owner only, "
            "into the embedded store's owner file, which local CLI calls read."
        ),
    )
    metrics_token: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "Bearer token a Prometheus scrape of /metrics sends to get the per-account series "
            "(balances, budgets; labels account, scope_id ...). Without it (or the admin "
            "token) /metrics serves the service-wide series only. Empty: only the admin "
            "token opens them."
        ),
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Least severe log level that is written."
    )
    log_format: Literal["json", "console"] = Field(
        default="console",
        description="`json` writes one JSON object per line (for log shippers); "
        "`console` writes readable key=value lines.",
    )
    sql_max_rows: int = Field(
        default=100_000, ge=1, description="Most rows `meterhouse sql` and /api/v1/sql return."
    )
    sql_max_seconds: int = Field(
        default=30, ge=1, description="Longest run time of one ad-hoc SQL query, in seconds."
    )
    sql_shared_max_seconds: int = Field(
        default=3,
        ge=1,
        description="Longest run time of an ad-hoc query sent to `meterhouse run` on the "
        "embedded engine, in seconds. That engine runs one statement at a time, so a longer "
        "query would hold every tenant request and the ingest drain; stop the service (or use "
        "a ClickHouse server) for longer analysis.",
    )
    job_log_ttl_days: int = Field(
        default=30, ge=1, description="Days job logs are kept before ClickHouse drops them."
    )
    ledger_metrics_refresh_seconds: int = Field(
        default=60,
        ge=1,
        description="How often `meterhouse run` recomputes the budget and balance gauges "
        "(meterhouse_budget_*, meterhouse_account_balance_credits) served on /metrics.",
    )
    stuck_run_multiple: float = Field(
        default=3.0,
        gt=1,
        description="A run still `running` after this many times its job's typical duration "
        "(median of its recent successful runs, else the job's typical_duration_ms) is stuck.",
    )
    stuck_run_max_seconds: int = Field(
        default=86_400,
        ge=0,
        description="A run still `running` after this many seconds is stuck whatever its "
        "job's typical duration; 0 turns the absolute limit off.",
    )
    stuck_run_history: int = Field(
        default=20,
        ge=1,
        description="How many of a job's latest successful runs give its typical duration.",
    )
    poller_url: str = Field(
        default="",
        description="Base URL of a job platform's REST API to pull jobs and runs from "
        "(docs/jobs.md); when set, `meterhouse run` polls it. Empty: no polling.",
    )
    poller_token: SecretStr = Field(
        default=SecretStr(""),
        description="Bearer token the poller sends to MH_POLLER_URL (empty: none).",
    )
    poller_interval_seconds: int = Field(
        default=60, ge=1, description="Seconds between two polls of MH_POLLER_URL."
    )
    ingest_max_body_bytes: int = Field(
        default=5 * 1024 * 1024,
        ge=1024,
        description="Largest request body the ingest endpoints accept (after gunzip), in "
        "bytes; larger ones get 413.",
    )
    ingest_max_batch_events: int = Field(
        default=10_000, ge=1, description="Most events (or spans) in one ingest request."
    )
    ingest_max_future_seconds: int = Field(
        default=86_400,
        ge=0,
        description="How far ahead of the server clock an event time may be, in seconds.",
    )
    ingest_max_age_days: int = Field(
        default=400, ge=1, description="How old an event time may be, in days (backfills)."
    )
    ingest_key_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long the service trusts a looked-up API key before reading it "
        "again; bounds how late a revocation made by another process takes effect.",
    )
    ingest_auth_failure_burst: int = Field(
        default=20,
        ge=1,
        description="Failed authentications one client IP may make in a burst before the "
        "ingest endpoints answer 429.",
    )
    ingest_auth_failure_per_second: float = Field(
        default=0.5,
        gt=0,
        description="Rate at which a client IP's failed-authentication allowance refills.",
    )
    ingest_durability: Literal["spool", "direct"] = Field(
        default="spool",
        description="`spool`: an accepted batch is fsynced to the local spool before the "
        "2xx and a drainer writes it to ClickHouse in large inserts (docs/durability.md); "
        "`direct`: each request writes to ClickHouse before it is answered (slower; for "
        "embedding the app in tests).",
    )
    spool_dir: str = Field(
        default="",
        description="Directory of the ingest spool. Empty: `meterhouse-spool` inside the "
        "embedded store's directory, or `spool/<host>-<port>-<database>` under the user "
        "data directory for a ClickHouse server. One process owns a spool at a time.",
    )
    spool_max_bytes: int = Field(
        default=1024**3,
        ge=64 * 1024,
        description="Most bytes of accepted events the spool holds while ClickHouse does not "
        "take them; past this, ingest answers 503 with Retry-After.",
    )
    spool_drain_batch_rows: int = Field(
        default=100_000,
        ge=1,
        description="Most rows the spool's drainer writes to ClickHouse in one insert.",
    )
    spool_pace_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=0,
        description="While ClickHouse takes writes, a request that finds more than this many "
        "bytes waiting in the spool first waits (up to 2 s) for the drain: acknowledged "
        "events become visible within about a second, at some cost in peak throughput. "
        "0: never wait (docs/durability.md).",
    )
    spool_drain_warning_seconds: float = Field(
        default=30.0,
        gt=0,
        description="After the spool's drain has failed this long, /readyz adds a warning "
        "(`spool drain failing for N s: <error>`); it stays 200 while the spool takes batches.",
    )

    stripe_api_key: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "Stripe secret or restricted key (sk_… / rk_…) the billing sync reads Stripe with. "
            "Empty: billing sync is off (the demo uses a local Stripe-shaped server)."
        ),
    )
    stripe_api_base: str = Field(
        default="https://api.stripe.com",
        pattern=r"^https?://[^\s/]+",
        description="Base URL of the Stripe API (a local Stripe-shaped server in tests).",
    )
    stripe_webhook_secret: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "Signing secret (whsec_…) of the Stripe webhook endpoint "
            "POST /api/v1/stripe/webhook. Empty: the endpoint answers 503."
        ),
    )
    stripe_webhook_tolerance_seconds: int = Field(
        default=300,
        ge=1,
        description="Oldest Stripe webhook signature timestamp accepted, in seconds (replays).",
    )
    stripe_max_network_retries: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Retries of one Stripe request on connection errors, 409, 429 and 5xx.",
    )
    billing_sync_interval_seconds: int = Field(
        default=300,
        ge=10,
        description="Seconds between incremental billing syncs (Stripe events) in `meterhouse "
        "run`.",
    )
    billing_full_sync_interval_seconds: int = Field(
        default=86_400,
        ge=60,
        description="Seconds between full billing reconciles (every Stripe object re-read).",
    )

    notify_secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="Key (16+ characters) that seals notification channel secrets (webhook "
        "signing secrets, Slack URLs) in the store. Needed to add or use such channels; "
        "keep it: a changed key cannot open the secrets sealed with the old one.",
    )
    alerts_webhook_token: SecretStr = Field(
        default=SecretStr(""),
        description="Bearer token Alertmanager sends to POST /api/v1/alerts/webhook (the "
        "rendered alertmanager.yml carries it). Empty: the endpoint answers 503.",
    )
    alerts_receiver_url: str = Field(
        default="http://meterhouse:8080/api/v1/alerts/webhook",
        pattern=r"^https?://[^\s/]+",
        description="Where Alertmanager reaches meterhouse's receiver; written into "
        "alertmanager.yml by `meterhouse notify alertmanager-config`.",
    )
    alertmanager_url: str = Field(
        default="",
        description="Base URL of Alertmanager (e.g. http://alertmanager:9093). When set, "
        "`meterhouse run` pushes the per-job alerts it evaluates on ClickHouse (failed and "
        "stuck runs, naming account and job) to its v2 API. Empty: not pushed.",
    )
    alerts_push_interval_seconds: int = Field(
        default=60,
        ge=1,
        description="Seconds between two evaluations of the per-job alerts pushed to Alertmanager.",
    )
    operator_email: str = Field(
        default="",
        description="E-mail address(es) of the platform's operators, comma-separated; "
        "alertmanager.yml e-mails operator alerts there directly (so `service down` still "
        "arrives when meterhouse is down).",
    )
    smtp_host: str = Field(
        default="", description="SMTP relay that e-mail notifications go through (host name)."
    )
    smtp_port: int = Field(default=587, ge=1, le=65535, description="Port of MH_SMTP_HOST.")
    smtp_from: str = Field(
        default="", description="Sender address of e-mail notifications, e.g. alerts@example.com."
    )
    smtp_username: str = Field(default="", description="SMTP login (empty: none).")
    smtp_password: SecretStr = Field(default=SecretStr(""), description="SMTP password.")
    smtp_starttls: bool = Field(
        default=True,
        description="Upgrade SMTP connections with STARTTLS (turn off only for a relay on "
        "a trusted local network).",
    )
    grafana_url: str = Field(
        default="http://localhost:3000",
        description="Base URL of Grafana; notifications link to its dashboards.",
    )
    docs_base_url: str = Field(
        default="",
        description="Base URL the repository's docs/ are published under (e.g. "
        "https://git.example.com/meterhouse/blob/main/); runbook links in notifications "
        "are made from it. Empty: links are repository paths (docs/alerts.md#…).",
    )
    notify_max_attempts: int = Field(
        default=6,
        ge=1,
        le=20,
        description="Attempts of one notification to one channel before the delivery is "
        "given up (dead) and the channel shown as dead.",
    )
    notify_retry_base_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Wait before the first retry of a failed delivery; doubled at each "
        "further attempt, at most one hour.",
    )

    @field_validator("clickhouse_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("chdb://", "http://", "https://")):
            raise ValueError(
                "MH_CLICKHOUSE_URL must start with chdb:// (embedded), http:// or https:// "
                f"(ClickHouse server); got {value!r}"
            )
        return value


def settings_table() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting, in field order."""
    rows: list[tuple[str, str, str]] = []
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = "(see description)"
        elif isinstance(field.default, SecretStr):
            default = '""'
        else:
            default = repr(field.default).replace("'", '"')
        rows.append((f"MH_{name.upper()}", default, field.description or ""))
    return rows


def settings_markdown() -> str:
    """The README's settings table (tests keep README.md equal to this)."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for variable, default, description in settings_table():
        lines.append(f"| `{variable}` | `{default}` | {description.replace('|', '/')} |")
    return "\n".join(lines)


_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.I)


def mask_passwords(text: str) -> str:
    """Every URL password in ``text`` replaced by ***."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def masked_url(url: str) -> str:
    """``url`` with any password replaced by ***: for output, errors and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def shown_values(settings: Settings) -> dict[str, Any]:
    """Every setting as it may be shown to people: secrets and URL passwords masked."""
    shown: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown[name] = "***" if value.get_secret_value() else ""
        elif isinstance(value, str) and "://" in value:
            shown[name] = masked_url(value)
        else:
            shown[name] = value
    return shown
