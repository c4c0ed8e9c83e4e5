"""Every setting meterhouse reads, in one typed class.

Each field is read from the environment variable ``MH_<FIELD NAME IN CAPITALS>``;
arguments given to the constructor (the CLI passes its flags this way) win over the
environment. ``meterhouse settings`` prints the table below with the values in force, and
README.md lists the same table. Nothing else in the code base reads ``os.environ`` for
configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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
    service_url: str = Field(
        default="",
        description=(
            "URL of a running `meterhouse run` that CLI commands ask when the embedded "
            "store is held by it. Empty: read from the store's owner file."
        ),
    )
    admin_token: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "Bearer token for the service's admin endpoints (/api/v1/sql). Empty: a random "
            "token is made at start and written, readable by the owner only, into the "
            "embedded store's owner file, which local CLI calls read."
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
    job_log_ttl_days: int = Field(
        default=30, ge=1, description="Days job logs are kept before ClickHouse drops them."
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
