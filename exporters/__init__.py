"""Exporters: write processed rows durably into ClickHouse and expose Prometheus metrics."""
