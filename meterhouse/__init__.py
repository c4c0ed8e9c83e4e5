"""meterhouse: account administration for data and AI platforms on ClickHouse."""

__version__ = "0.1.0"
