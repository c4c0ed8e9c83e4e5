"""Fixtures of the durability tests: services in subprocesses that can be killed."""

from __future__ import annotations

from tests.support.stores import migrated_any_store, migrated_store  # noqa: F401
