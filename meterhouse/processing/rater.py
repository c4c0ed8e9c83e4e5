"""The rater the service and the demo use: the catalog and the price book, loaded once."""

from __future__ import annotations

from meterhouse import records as r
from meterhouse.processing.pipeline import Rater
from meterhouse.rating import Catalog, PriceBook, rate
from meterhouse.store.base import Store


class CatalogRater:
    """Prices events with the bundled LLM catalog and the platform's price book."""

    def __init__(self, catalog: Catalog, book: PriceBook) -> None:
        self.catalog = catalog
        self.book = book

    def __call__(self, event: r.Event, plan: str, account_id: str) -> r.Rating | None:
        return rate(event, plan=plan, catalog=self.catalog, book=self.book)


def default_rater(store: Store) -> Rater:
    """The rater for a store; the store is where a later price book version would live."""
    del store
    return CatalogRater(Catalog.load(), PriceBook.load())
