"""The project's own exception types. Callers catch these, never a backend's."""

from __future__ import annotations


class MeterhouseError(Exception):
    """Base of every error meterhouse raises on purpose; its message says what to do."""


class ConfigError(MeterhouseError):
    """A setting is missing or wrong."""


class StoreError(MeterhouseError):
    """ClickHouse refused or failed a statement.

    ``code`` is ClickHouse's numeric error code (0 when the failure happened before the
    engine answered, e.g. a refused connection) and ``name`` its symbolic name.
    """

    def __init__(self, message: str, *, code: int = 0, name: str = "", sql: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.sql = sql


class StoreUnavailableError(StoreError):
    """The store cannot be reached (server down, connection refused, time-out)."""


class ServiceUnavailableError(StoreUnavailableError):
    """The `meterhouse run` that holds the embedded store did not answer."""


class ServiceRefusedError(MeterhouseError):
    """The running service answered a request with an error status.

    ``status`` is the HTTP status and ``body`` its problem+json answer (``detail``, and for
    a statement ClickHouse refused, ``code`` and ``name``).
    """

    def __init__(self, message: str, *, status: int, body: dict[str, object]) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class StoreLockedError(StoreError):
    """The embedded data directory is owned by another process."""

    def __init__(self, message: str, *, owner_pid: int | None, service_url: str) -> None:
        super().__init__(message, code=76, name="CANNOT_OPEN_FILE")
        self.owner_pid = owner_pid
        self.service_url = service_url


class MigrationError(MeterhouseError):
    """A migration file is changed, missing or failed to apply."""
