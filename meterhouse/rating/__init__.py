"""The rating step: turns usage events into priced lines in credits and USD.

``catalog`` holds what LLM calls cost (genai-prices' bundled snapshot), ``price_book``
what the platform charges (price_book.toml), and ``rate`` combines the two for one event:
the price rules, each written once. ``rater.Rater`` is the form every writer of events
uses: ``rate``'s results with the prices worked out once and remembered.
"""

from meterhouse.rating.catalog import Catalog, CatalogModel
from meterhouse.rating.price_book import AccountTerms, PriceBook, PriceBookError
from meterhouse.rating.rate import rate

__all__ = ["AccountTerms", "Catalog", "CatalogModel", "PriceBook", "PriceBookError", "rate"]
