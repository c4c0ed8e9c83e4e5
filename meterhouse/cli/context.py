"""What every command shares: settings (flags win over MH_* variables) and the store."""

from __future__ import annotations

import getpass
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from meterhouse.errors import MeterhouseError, StoreLockedError
from meterhouse.logs import configure_logging
from meterhouse.settings import Settings, mask_passwords, masked_url
from meterhouse.store import Store, open_store
from meterhouse.store.chdb_backend import chdb_path, read_owner

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliContext:
    settings: Settings
    # The embedded store's directory and whether it existed before this command: a
    # mistyped MH_CLICKHOUSE_URL makes chdb create an empty one, which we then remove.
    store_dir: Path | None = field(default=None)
    store_existed: bool = True

    @classmethod
    def from_options(cls, options: dict[str, object]) -> CliContext:
        given = {key: value for key, value in options.items() if value is not None}
        try:
            settings = Settings(**given)  # type: ignore[arg-type]
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise click.UsageError(f"bad setting: {mask_passwords(problems)}") from exc
        configure_logging(settings)
        store_dir = (
            chdb_path(settings.clickhouse_url)
            if settings.clickhouse_url.startswith("chdb://")
            else None
        )
        existed = store_dir is None or store_dir.exists()
        return cls(settings=settings, store_dir=store_dir, store_existed=existed)

    @property
    def shown_store_url(self) -> str:
        return masked_url(self.settings.clickhouse_url)

    def store_was_missing(self) -> bool:
        return not self.store_existed

    def no_store_message(self) -> str:
        """For a read of a store that is not there: undo chdb's mkdir, say what to do."""
        if self.store_dir is not None and not self.store_existed:
            shutil.rmtree(self.store_dir, ignore_errors=True)
        return (
            f"there is no meterhouse store at {self.store_dir} (MH_CLICKHOUSE_URL="
            f"{self.shown_store_url}): create it with `meterhouse migrate` (or `meterhouse "
            "demo` for sample data), or fix MH_CLICKHOUSE_URL / --clickhouse-url if it is a "
            "typo."
        )

    def account_ids(self) -> list[str]:
        """Every account's id, for suggestions after a mistyped one."""
        with self.open_store() as store:
            rows = store.query("SELECT account_id FROM accounts FINAL ORDER BY 1").rows
        return [str(row[0]) for row in rows]

    def with_settings(self, **changes: object) -> Settings:
        given = {k: v for k, v in changes.items() if v is not None}
        merged = {**self.settings.model_dump(), **given}
        return Settings(**merged)

    def open_store(self) -> Store:
        """The store; while `meterhouse run` holds the embedded one, the same Store through
        that service (reads and writes alike), so every command works either way."""
        try:
            return open_store(self.settings)
        except StoreLockedError as locked:
            from meterhouse.store.service_backend import ServiceStore

            url, token = self.service_target(locked)
            return ServiceStore(url, token, batch_bytes=self.settings.ingest_max_body_bytes // 2)
        except MeterhouseError as exc:
            raise click.ClickException(str(exc)) from exc

    def service_target(self, locked: StoreLockedError | None = None) -> tuple[str, str]:
        """URL and admin token of the `meterhouse run` that holds the embedded store."""
        embedded = self.settings.clickhouse_url.startswith("chdb://")
        owner = read_owner(chdb_path(self.settings.clickhouse_url)) if embedded else {}
        url = (
            self.settings.service_url
            or (locked.service_url if locked else "")
            or str(owner.get("service_url", ""))
        )
        token = self.settings.admin_token.get_secret_value() or str(owner.get("admin_token", ""))
        if not url or not token:
            raise click.ClickException(
                str(locked)
                if locked
                else "no running `meterhouse run` found: set MH_SERVICE_URL and MH_ADMIN_TOKEN"
            )
        return url.rstrip("/"), token

    @property
    def actor(self) -> str:
        try:
            return f"cli:{getpass.getuser()}"
        except (KeyError, OSError):
            return "cli:unknown"


pass_cli = click.make_pass_decorator(CliContext)
