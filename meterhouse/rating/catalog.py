"""The LLM price catalog: the snapshot bundled in the installed ``genai-prices`` package.

Why genai-prices: it is maintained upstream and carries what makes LLM prices hard to keep
by hand: the many names a model is called by (match rules), prices that change on a date,
tiered prices above a context size, and time-of-day prices. Why the *bundled* snapshot: it
is read offline and never changes under a running process (genai-prices' ``UpdatePrices``
would swap in a downloaded one), so a price only changes when the package does, and
:attr:`Catalog.version` says which prices rated an event.

Model names are resolved with the catalog's own provider and model match rules, and
amounts come from its own price functions (``calc_unit_price``), so they agree with
``genai_prices.calc_price`` to the last digit; every quote carries calc_price's total too,
and rating refuses (``catalog_mismatch``) a quote whose lines do not add up to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any, Final

import genai_prices
from genai_prices import Usage
from genai_prices.data_snapshot import DataSnapshot, find_provider_by_id
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices, calc_unit_price

from meterhouse.rating.catalog_rows import model_price_rows

# Our usage types, and the catalog price keys that price them, most specific first: a
# cached token costs the cache price where the model has one, else the input price; a
# reasoning token costs the reasoning price where there is one, else the output price.
# That is the catalog's own hierarchy (genai_prices.data_units: cache_read_tokens and
# cache_write_tokens are kinds of input_tokens, output_reasoning_tokens of output_tokens).
PRICE_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "input": ("input_mtok",),
    "cache_read": ("cache_read_mtok", "input_mtok"),
    "cache_write": ("cache_write_mtok", "input_mtok"),
    "output": ("output_mtok",),
    "reasoning": ("output_reasoning_mtok", "output_mtok"),
    "call": ("requests_kcount",),
}
MAX_CACHED_NAMES: Final = 10_000
TOKEN_TYPES: Final = ("input", "cache_read", "cache_write", "output", "reasoning")
TOKENS_PER_MTOK: Final = 1_000_000
PER: Final = {"requests_kcount": 1_000}  # other price keys are per million tokens


@dataclass(frozen=True)
class QuotedLine:
    """The catalog's price of one usage type: exact USD, not yet rounded."""

    usage_type: str
    quantity: int
    usd_per_unit: Decimal | None  # None: the catalog has no price for this usage type
    usd: Decimal


@dataclass(frozen=True)
class Quote:
    """Lines that partition the usage, and ``calc_price``'s total for the same usage."""

    lines: tuple[QuotedLine, ...]
    catalog_total_usd: Decimal


@dataclass(frozen=True)
class CatalogModel:
    """One model as one provider sells it; wraps the genai-prices records it came from."""

    provider: str
    provider_name: str
    model_id: str
    name: str
    context_window: int | None
    deprecated: bool
    info: ModelInfo = field(repr=False, compare=False)
    provider_info: Provider = field(repr=False, compare=False)

    def price_summary(self, at: datetime) -> str:
        """The prices in force at ``at``, as the catalog prints them (for ``models list``)."""
        return str(self.info.get_prices(at))

    def quote(self, tokens: Mapping[str, int], *, at: datetime) -> Quote:
        """Price ``tokens`` (from :func:`split_tokens`) at request time ``at``, which picks
        dated and time-of-day prices; tiers are picked by the request's total input."""
        counts = {key: tokens.get(key, 0) for key in TOKEN_TYPES}
        total_input = counts["input"] + counts["cache_read"] + counts["cache_write"]
        prices = self.info.get_prices(at)
        quantities = dict(tokens)
        if getattr(prices, "requests_kcount", None) is not None:
            quantities["call"] = 1  # the catalog charges a fee per request
        lines = tuple(
            _quote_line(prices, usage_type, quantity, total_input)
            for usage_type, quantity in quantities.items()
        )
        usage = Usage(
            input_tokens=total_input,
            cache_read_tokens=counts["cache_read"],
            cache_write_tokens=counts["cache_write"],
            output_tokens=counts["output"] + counts["reasoning"],
            output_reasoning_tokens=counts["reasoning"],
        )
        total = self.info.calc_price(usage, self.provider_info, genai_request_timestamp=at)
        return Quote(lines=lines, catalog_total_usd=total.total_price)


def split_tokens(
    *, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int, reasoning: int
) -> dict[str, int]:
    """Reported token counts as disjoint quantities per usage type, in statement order.

    Reports follow the OpenTelemetry GenAI convention, which is also the catalog's:
    ``input_tokens`` includes cache reads and writes, ``output_tokens`` includes reasoning.
    So ``input`` is the uncached remainder and ``output`` the non-reasoning remainder, and
    the quantities add up to the tokens used, each counted once. A part larger than its
    whole (bad data) is trusted and the remainder is 0: nothing is billed twice, and the
    cache and reasoning counts providers report in detail keep their own price. Zero
    quantities are left out, except ``input`` and ``output`` (a call always has those).
    Counts must be non-negative.
    """
    quantities = {
        "input": max(0, input_tokens - cache_read - cache_write),
        "cache_read": cache_read,
        "cache_write": cache_write,
        "output": max(0, output_tokens - reasoning),
        "reasoning": reasoning,
    }
    return {k: v for k, v in quantities.items() if v or k in ("input", "output")}


def _quote_line(prices: ModelPrice, usage_type: str, quantity: int, total_input: int) -> QuotedLine:
    for price_key in PRICE_KEYS[usage_type]:
        price: Decimal | TieredPrices | None = getattr(prices, price_key, None)
        if price is None:
            continue
        per = PER.get(price_key, TOKENS_PER_MTOK)
        # calc_unit_price picks the tier by the request's total input tokens, as calc_price does.
        per_unit = calc_unit_price(price, per, total_input, per) / per
        usd = calc_unit_price(price, quantity, total_input, per)
        return QuotedLine(usage_type, quantity, per_unit, usd)
    return QuotedLine(usage_type, quantity, None, Decimal(0))


class Catalog:
    """Model lookup and prices from one catalog snapshot."""

    def __init__(self, providers: Sequence[Provider], version: str) -> None:
        self.version = version
        self._providers = list(providers)
        # Our own snapshot object, so a snapshot installed globally by genai-prices'
        # auto-updater (set_custom_snapshot) can never leak into rating.
        self._snapshot = DataSnapshot(providers=self._providers, from_auto_update=False)
        self._resolved: dict[tuple[str, str], CatalogModel | None] = {}

    @classmethod
    def load(cls) -> Catalog:
        """The snapshot bundled with the installed genai-prices, read without network."""
        from genai_prices.data import providers  # 1.5 MB module: load on use

        return cls(providers, bundled_version())

    def resolve(self, model: str, provider: str = "") -> CatalogModel | None:
        """The catalog model a platform means by ``model`` (and ``provider``), or None.

        Accepts names as platforms send them: ``gpt-4o-2024-08-06``, ``openai/gpt-4o``,
        ``anthropic/claude-sonnet-4``, with a provider (``openai``, ``gcp.vertex_ai``,
        ``aws.bedrock``...; the catalog's provider match rules map these) or without.
        A known provider is trusted: a model it does not sell is unknown, not priced at
        another provider's rate. A provider the catalog does not know is ignored.
        """
        key = (model.strip(), provider.strip())
        if key not in self._resolved:
            if len(self._resolved) >= MAX_CACHED_NAMES:
                # Names come from the wire: bound our memo, and genai-prices' lookup caches
                # (which also remember every miss) by starting a fresh snapshot object.
                self._resolved.clear()
                self._snapshot = DataSnapshot(providers=self._providers, from_auto_update=False)
            self._resolved[key] = self._resolve(*key)
        return self._resolved[key]

    def _resolve(self, model: str, provider: str) -> CatalogModel | None:
        if not model:
            return None
        prefix, _, bare = model.rpartition("/")
        known = find_provider_by_id(self._providers, provider) if provider else None
        attempts: list[tuple[str, str | None]]
        if known is not None:
            # "openai/gpt-4o" from provider "openai": the prefix repeats the provider.
            attempts = [(model, provider), (bare, provider)] if prefix else [(model, provider)]
        else:
            # "litellm" is genai-prices' own rule for "<provider>/<model>" references.
            attempts = [(model, None), (model, "litellm")] if prefix else [(model, None)]
        for ref, provider_id in attempts:
            try:
                found = self._snapshot.find_provider_model(ref, None, provider_id, None)
            except LookupError:
                continue
            return _catalog_model(*found)
        # Last, the catalog's own id (what `models list` shows), which some match rules
        # leave out; without a provider only when one provider has a model of that id.
        same_id = [
            (p, m)
            for p in ([known] if known is not None else self._providers)
            for m in p.models
            if m.id.lower() == model.lower()
        ]
        return _catalog_model(*same_id[0]) if len(same_id) == 1 else None

    def models(self, provider: str | None = None, search: str | None = None) -> list[CatalogModel]:
        """Models sorted by provider and id; ``search`` matches id, name or match rules."""
        chosen = self._providers
        if provider:
            found = find_provider_by_id(self._providers, provider)
            chosen = [found] if found is not None else []
        needle = (search or "").strip().lower()
        return sorted(
            (
                _catalog_model(p, m)
                for p in chosen
                for m in p.models
                if not needle
                or needle in m.id.lower()
                or needle in (m.name or "").lower()
                or m.is_match(needle)
            ),
            key=lambda m: (m.provider, m.model_id),
        )

    def price_rows(self, synced_at: datetime) -> dict[str, list[Any]]:
        """Rows for the ``model_prices`` table, column-wise: one per model and price period."""
        return model_price_rows(self._providers, self.version, synced_at)


def _catalog_model(provider: Provider, info: ModelInfo) -> CatalogModel:
    return CatalogModel(
        provider=provider.id,
        provider_name=provider.name,
        model_id=info.id,
        name=info.name or info.id,
        context_window=info.context_window,
        deprecated=bool(info.deprecated),
        info=info,
        provider_info=provider,
    )


def bundled_version() -> str:
    """``genai-prices-<version>-<hash>``: the hash is of the bundled price and unit data,
    so two installs with the same string price identically."""
    digest = hashlib.sha256()
    package = resources.files("genai_prices")
    for name in ("data.py", "data_units.py"):
        digest.update(package.joinpath(name).read_bytes())
    return f"genai-prices-{genai_prices.__version__}-{digest.hexdigest()[:12]}"
