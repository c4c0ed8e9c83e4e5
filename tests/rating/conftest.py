from __future__ import annotations

import pytest

from meterhouse.rating import Catalog, PriceBook
from tests.rating.helpers import TEST_BOOK


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="session")
def book() -> PriceBook:
    return PriceBook.parse(TEST_BOOK, source="test_book.toml")


@pytest.fixture(scope="session")
def shipped_book() -> PriceBook:
    return PriceBook.load()
