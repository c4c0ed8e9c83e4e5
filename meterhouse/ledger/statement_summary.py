"""What a finance reader wants before the lines: totals by category and by model or job kind,
the dollar value of credits at the account's rate, and the compact one-line-per-day-and-item
view of the usage.

The dollar value of credits is credits / the plan's credits_per_usd in the price book (110
credits = $1 on pro): what the credits are worth to the customer. The provider's cost
(``usage_events.usd``, what the LLM provider charges the platform) is another figure and
keeps its own name. Everything here is derived from the statement's exact lines; nothing
is read from the store again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from meterhouse.ledger.amounts import LEDGER_CONTEXT, SCALE, ZERO, add, exact_sum

if TYPE_CHECKING:
    from meterhouse.ledger.statement import Statement, StatementLine

USAGE_TYPES: Final = ("usage", "adjustment")
CATEGORY_LABELS: Final = {"model": "Model calls", "job": "Job runs", "api": "API calls"}
CATEGORY_ORDER: Final = {name: index for index, name in enumerate(CATEGORY_LABELS)}
TOKENS_PER_PRICE: Final = Decimal(1_000_000)  # token prices read per 1M tokens, as OpenAI's


@dataclass(frozen=True)
class Rate:
    """How many credits make one US dollar for this account (its plan in the price book)."""

    plan: str
    credits_per_usd: Decimal
    price_book_version: str

    def usd(self, credits: Decimal) -> Decimal:
        """The dollar value of ``credits``, to the ledger's 12 places (half-even)."""
        return LEDGER_CONTEXT.divide(credits, self.credits_per_usd).quantize(
            SCALE, context=LEDGER_CONTEXT
        )


def account_rate(plan: str) -> Rate | None:
    """The rate of ``plan`` in the shipped price book; None for a plan it does not price."""
    from meterhouse.rating.price_book import PriceBook

    book = PriceBook.load()
    per_usd = book.credits_per_usd(plan)
    return Rate(plan, per_usd, book.version) if per_usd is not None else None


@dataclass(frozen=True)
class UsageTotal:
    """Usage of one category (model, job, api), or of one item of it."""

    kind: str
    item: str  # "" for a category total
    events: int
    credits: Decimal
    provider_cost_usd: Decimal | None  # kept for model calls only
    tokens: Decimal | None = None  # an item's tokens of every usage type

    @property
    def label(self) -> str:
        return CATEGORY_LABELS.get(self.kind, self.kind)


def _usage(statement: Statement) -> list[StatementLine]:
    return [line for line in statement.lines if line.type in USAGE_TYPES]


def _cost(kind: str, lines: Iterable[StatementLine]) -> Decimal | None:
    # Jobs and API calls have no provider cost: their usd column holds zeros, not a price.
    return exact_sum(line.usd or ZERO for line in lines) if kind == "model" else None


def by_item(statement: Statement) -> list[UsageTotal]:
    """One total per model or job kind: model calls first, then largest first."""
    groups: dict[tuple[str, str], list[StatementLine]] = {}
    for line in _usage(statement):
        groups.setdefault((line.kind, line.item), []).append(line)
    events: dict[tuple[str, str], int] = {}
    for (_, kind, item), count in statement.item_events:
        events[(kind, item)] = events.get((kind, item), 0) + count
    totals = []
    for (kind, item), group in groups.items():
        tokens = [line.quantity for line in group if line.unit == "token" and line.quantity]
        totals.append(
            UsageTotal(
                kind=kind,
                item=item,
                events=events.get((kind, item), 0),
                credits=exact_sum(line.debit for line in group),
                provider_cost_usd=_cost(kind, group),
                tokens=exact_sum(tokens) if tokens else None,
            )
        )
    return sorted(totals, key=lambda t: (CATEGORY_ORDER.get(t.kind, 99), -t.credits, t.item))


def by_category(statement: Statement) -> list[UsageTotal]:
    """One total per category, model calls first."""
    items = by_item(statement)
    out = []
    for kind in dict.fromkeys(item.kind for item in items):
        mine = [item for item in items if item.kind == kind]
        out.append(
            UsageTotal(
                kind=kind,
                item="",
                events=sum(item.events for item in mine),
                credits=exact_sum(item.credits for item in mine),
                provider_cost_usd=(
                    exact_sum(item.provider_cost_usd or ZERO for item in mine)
                    if kind == "model"
                    else None
                ),
            )
        )
    return out


def compact_lines(statement: Statement) -> list[StatementLine]:
    """One line per local day and item (its usage types and adjustment folded together);
    grants, expiries and other usage as they are. The running balance after each folded
    line is the detailed one after the item's last line, so both views agree."""
    events = {key: count for key, count in statement.item_events}
    out: list[StatementLine] = []
    for line in statement.lines:
        if line.type not in USAGE_TYPES:
            out.append(line)
            continue
        last = out[-1] if out else None
        same = (
            last is not None
            and last.type == "usage"
            and (last.local_date, last.kind, last.item) == (line.local_date, line.kind, line.item)
        )
        if last is not None and same:
            units = {last.unit, line.unit} - {""}
            out[-1] = replace(
                last,
                quantity=add(last.quantity or ZERO, line.quantity or ZERO)
                if len(units) == 1
                else None,
                unit=units.pop() if len(units) == 1 else "",
                debit=add(last.debit, line.debit),
                usd=add(last.usd or ZERO, line.usd or ZERO),
                balance=line.balance,
            )
            continue
        out.append(
            replace(
                line,
                type="usage",
                description=f"{CATEGORY_LABELS.get(line.kind, line.kind)} · {line.item}",
                usage_type="",
                unit_price_credits=None,
                unit_price_varies=False,
                events=events.get((line.local_date, line.kind, line.item), line.events),
            )
        )
    return out


def per_million(unit: str, price: Decimal | None) -> tuple[Decimal | None, str]:
    """A unit price as people compare it: per 1M tokens where the unit is a token."""
    if price is None:
        return None, unit
    if unit == "token":
        return LEDGER_CONTEXT.multiply(price, TOKENS_PER_PRICE), "1M tokens"
    return price, unit
