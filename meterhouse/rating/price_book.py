"""The platform's own price book: what usage costs in credits, per plan and per contract.

Why a versioned file in the repository: prices are reviewed like code, every change is in
history, and the ``version`` string is stamped on each rated event. The book is small and
read once at start, so it is checked strictly here: a typo in a key or a price that is not
an exact decimal stops the load with the file, the key and the problem, instead of quietly
billing at a wrong rate. Amounts never pass through float: strings, integers and TOML
floats (read by ``tomllib`` with ``parse_float=Decimal``) all become exact Decimals.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from meterhouse.errors import ConfigError
from meterhouse.records import JOB_KINDS

DEFAULT_PATH: Final = Path(__file__).with_name("price_book.toml")
PLANS: Final = ("free", "starter", "pro", "enterprise")
HUNDRED: Final = Decimal(100)
# Usage types an account override may name, by kind; "*" matches any.
OVERRIDE_USAGE_TYPES: Final = {
    "model": ("input", "cache_read", "cache_write", "output", "reasoning", "call", "*"),
    "job": ("compute_seconds", "*"),
    "api": ("call", "*"),
}

OverrideKey = tuple[str, str, str]  # (kind, item, usage_type)


class PriceBookError(ConfigError):
    """The price book is missing or malformed; the message names file, key and problem."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        where = f"{source}: {key}" if key else source
        super().__init__(f"price book {where}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class AccountTerms:
    """A negotiated contract: a discount on list prices, and explicit per-unit prices."""

    discount_percent: Decimal = Decimal(0)
    overrides: Mapping[OverrideKey, Decimal] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def discount_factor(self) -> Decimal:
        """What remains of a list price after the discount, e.g. 0.875 for 12.5 %."""
        return (HUNDRED - self.discount_percent) / HUNDRED

    def override(self, kind: str, item: str, usage_type: str) -> Decimal | None:
        """Credits per unit set by contract, most specific entry first, or None."""
        for key in ((item, usage_type), (item, "*"), ("*", usage_type), ("*", "*")):
            price = self.overrides.get((kind, *key))
            if price is not None:
                return price
        return None


NO_TERMS: Final = AccountTerms()


@dataclass(frozen=True)
class MeterPrice:
    """What one unit of a meter costs: its list price in USD (credits = USD x the plan's
    credits_per_usd, less the account's discount), unless the plan sets credits outright."""

    usd_per_unit: Decimal
    plan_credits_per_unit: Mapping[str, Decimal] = field(
        default_factory=lambda: MappingProxyType({})
    )


@dataclass(frozen=True)
class PriceBook:
    """The parsed price book; see price_book.toml for the meaning of each entry."""

    version: str
    source: str
    plan_credits_per_usd: Mapping[str, Decimal]
    job_credits_per_second: Mapping[str, Decimal]
    api_credits_per_call: Decimal
    accounts: Mapping[str, AccountTerms]
    meters: Mapping[str, MeterPrice] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceBook:
        """Read and check the book at ``path`` (default: the one shipped with meterhouse)."""
        book_path = Path(path) if path is not None else DEFAULT_PATH
        try:
            text = book_path.read_text(encoding="utf-8")
        except OSError as error:
            raise PriceBookError(str(book_path), "", f"cannot be read: {error}") from error
        return cls.parse(text, source=str(book_path))

    @classmethod
    def parse(cls, text: str, *, source: str = "<string>") -> PriceBook:
        try:
            data = tomllib.loads(text, parse_float=Decimal)
        except tomllib.TOMLDecodeError as error:
            raise PriceBookError(source, "", f"is not valid TOML: {error}") from error
        return _Reader(source).book(data)

    def credits_per_usd(self, plan: str) -> Decimal | None:
        """Credits per USD of catalog price on ``plan``; None for a plan the book lacks."""
        return self.plan_credits_per_usd.get(plan)

    def job_rate(self, kind: str) -> Decimal | None:
        """List credits per compute-second of a job kind; None for a kind the book lacks."""
        return self.job_credits_per_second.get(kind)

    def meter_price(self, slug: str) -> MeterPrice | None:
        """The price of meter ``slug``; None: the meter is not priced (flagged, not free)."""
        return self.meters.get(slug)

    def terms(self, account_id: str) -> AccountTerms:
        """The account's contract; accounts without one pay list prices."""
        return self.accounts.get(account_id, NO_TERMS)


class _Reader:
    """Checks the decoded TOML; every error names the dotted key it is about."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> PriceBookError:
        return PriceBookError(self.source, key, problem)

    def book(self, data: dict[str, Any]) -> PriceBook:
        self.keys(
            data, "", required=("version", "plans", "jobs", "api"), optional=("accounts", "meters")
        )
        version = data["version"]
        if not isinstance(version, str) or not version.strip():
            raise self.fail("version", f"must be a non-empty string, got {version!r}")
        return PriceBook(
            version=version.strip(),
            source=self.source,
            plan_credits_per_usd=MappingProxyType(self.plans(data["plans"])),
            job_credits_per_second=MappingProxyType(self.jobs(data["jobs"])),
            api_credits_per_call=self.api(data["api"]),
            accounts=MappingProxyType(self.accounts(data.get("accounts", {}))),
            meters=MappingProxyType(self.meters(data.get("meters", {}))),
        )

    def meters(self, meters: object) -> dict[str, MeterPrice]:
        prices: dict[str, MeterPrice] = {}
        for slug, entry in self.table(meters, "meters").items():
            key = f"meters.{slug}"
            table = self.table(entry, key)
            self.keys(table, key, required=("usd_per_unit",), optional=("plans", "note"))
            plans: dict[str, Decimal] = {}
            for plan, plan_entry in self.table(table.get("plans", {}), f"{key}.plans").items():
                at = f"{key}.plans.{plan}"
                if plan not in PLANS:
                    raise self.fail(at, f"is not a plan (expected one of {', '.join(PLANS)})")
                plan_table = self.table(plan_entry, at)
                self.keys(plan_table, at, required=("credits_per_unit",))
                plans[plan] = self.amount(plan_table["credits_per_unit"], f"{at}.credits_per_unit")
            usd = self.amount(table["usd_per_unit"], f"{key}.usd_per_unit")
            prices[slug] = MeterPrice(usd, MappingProxyType(plans))
        return prices

    def plans(self, plans: object) -> dict[str, Decimal]:
        table = self.table(plans, "plans")
        missing = [plan for plan in PLANS if plan not in table]
        if missing:
            raise self.fail("plans", f"missing plan(s) {', '.join(missing)}")
        rates: dict[str, Decimal] = {}
        for plan, entry in table.items():
            key = f"plans.{plan}"
            plan_table = self.table(entry, key)
            self.keys(plan_table, key, required=("credits_per_usd",))
            rates[plan] = self.amount(
                plan_table["credits_per_usd"], f"{key}.credits_per_usd", zero=False
            )
        return rates

    def jobs(self, jobs: object) -> dict[str, Decimal]:
        table = self.table(jobs, "jobs")
        self.keys(table, "jobs", required=("credits_per_second",))
        key = "jobs.credits_per_second"
        rates = self.table(table["credits_per_second"], key)
        self.keys(rates, key, required=JOB_KINDS)
        return {kind: self.amount(rates[kind], f"{key}.{kind}") for kind in JOB_KINDS}

    def api(self, api: object) -> Decimal:
        table = self.table(api, "api")
        self.keys(table, "api", required=("credits_per_call",))
        return self.amount(table["credits_per_call"], "api.credits_per_call")

    def accounts(self, accounts: object) -> dict[str, AccountTerms]:
        terms: dict[str, AccountTerms] = {}
        for account_id, entry in self.table(accounts, "accounts").items():
            key = f'accounts."{account_id}"'
            if not account_id.strip():
                raise self.fail(key, "account id must not be empty")
            table = self.table(entry, key)
            self.keys(table, key, optional=("discount_percent", "overrides", "note"))
            discount = Decimal(0)
            if "discount_percent" in table:
                discount = self.amount(table["discount_percent"], f"{key}.discount_percent")
                if discount > HUNDRED:
                    raise self.fail(
                        f"{key}.discount_percent", f"must be at most 100, got {discount}"
                    )
            overrides = self.overrides(table.get("overrides", []), f"{key}.overrides")
            terms[account_id] = AccountTerms(discount, MappingProxyType(overrides))
        return terms

    def overrides(self, entries: object, key: str) -> dict[OverrideKey, Decimal]:
        if not isinstance(entries, list):
            raise self.fail(key, "must be an array of tables ([[...overrides]])")
        overrides: dict[OverrideKey, Decimal] = {}
        for number, entry in enumerate(entries, start=1):
            at = f"{key} #{number}"
            table = self.table(entry, at)
            self.keys(table, at, required=("kind", "item", "usage_type", "credits_per_unit"))
            kind, item, usage_type = (
                self.text(table[name], f"{at}.{name}") for name in ("kind", "item", "usage_type")
            )
            if kind not in OVERRIDE_USAGE_TYPES:
                raise self.fail(f"{at}.kind", f"must be one of model, job, api; got {kind!r}")
            if usage_type not in OVERRIDE_USAGE_TYPES[kind]:
                allowed = ", ".join(OVERRIDE_USAGE_TYPES[kind])
                raise self.fail(f"{at}.usage_type", f"for kind {kind!r} must be one of {allowed}")
            if kind == "job" and item not in (*JOB_KINDS, "*"):
                raise self.fail(f"{at}.item", f"must be a job kind or '*', got {item!r}")
            if (kind, item, usage_type) in overrides:
                raise self.fail(at, f"repeats the override for {kind} {item!r} {usage_type!r}")
            price = self.amount(table["credits_per_unit"], f"{at}.credits_per_unit")
            overrides[kind, item, usage_type] = price
        return overrides

    def table(self, value: object, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, got {type(value).__name__} {value!r}")
        return value

    def keys(
        self,
        table: dict[str, Any],
        key: str,
        *,
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
    ) -> None:
        prefix = f"{key}." if key else ""
        for name in required:
            if name not in table:
                raise self.fail(f"{prefix}{name}", "is missing")
        for name in table:
            if name not in required and name not in optional:
                allowed = ", ".join((*required, *optional))
                raise self.fail(f"{prefix}{name}", f"is not a known key (expected {allowed})")

    def text(self, value: object, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"must be a non-empty string, got {value!r}")
        return value.strip()

    def amount(self, value: object, key: str, *, zero: bool = True) -> Decimal:
        """An exact, finite, non-negative Decimal (positive when ``zero`` is False)."""
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            raise self.fail(key, f'must be a decimal string like "0.05", got {value!r}')
        try:
            amount = Decimal(value.strip() if isinstance(value, str) else value)
        except InvalidOperation:
            raise self.fail(key, f"is not a decimal number: {value!r}") from None
        if not amount.is_finite():
            raise self.fail(key, f"must be a finite number, got {value!r}")
        if amount < 0 or (amount == 0 and not zero):
            raise self.fail(key, f"must be {'at least 0' if zero else 'above 0'}, got {value!r}")
        return amount
