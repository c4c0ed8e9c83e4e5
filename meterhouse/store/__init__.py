"""The store seam: ``open_store`` picks the backend from the URL."""

from __future__ import annotations

from meterhouse.settings import Settings
from meterhouse.store.base import QueryResult, Store


def open_store(settings: Settings) -> Store:
    """Open the store named by ``settings.clickhouse_url``."""
    url = settings.clickhouse_url
    if url.startswith("chdb://"):
        from meterhouse.store.chdb_backend import ChdbStore

        return ChdbStore(url, settings.clickhouse_database)
    from meterhouse.store.server_backend import ServerStore

    return ServerStore(url, settings.clickhouse_database)


__all__ = ["QueryResult", "Store", "open_store"]
