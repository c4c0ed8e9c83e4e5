"""The parts that plug into `meterhouse run`, in the order they are installed."""

from __future__ import annotations

from meterhouse.service.runner import ServiceHook


def default_hooks() -> list[ServiceHook]:
    return []
