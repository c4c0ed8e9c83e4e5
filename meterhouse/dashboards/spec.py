"""What each dashboard query promises, kept beside the JSON so tests can prove it.

Grafana only sees the generated JSON. The tests also need to know what every panel expects
from its query (which columns, of which kind, whether the demo fills it) and that is
recorded here, while the panels are built, instead of being guessed back from the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """The kind of value a panel needs in a column (ClickHouse types map onto these)."""

    TIME = "time"
    NUMBER = "number"
    STRING = "string"
    ANY = "any"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind


def columns(**kinds: Kind) -> tuple[Column, ...]:
    """``columns(time=Kind.TIME, credits=Kind.NUMBER)``: in the order the panel reads them."""
    return tuple(Column(name, kind) for name, kind in kinds.items())


@dataclass(frozen=True)
class SqlQuery:
    """One ClickHouse target of one panel (or one variable's query)."""

    panel: str
    ref_id: str
    sql: str
    columns: tuple[Column, ...]
    time_series: bool = False
    # False where the demo data set has nothing for the query to find (documented per
    # panel); the query must still run and return the right columns.
    expect_rows: bool = True
    variable: bool = False


@dataclass(frozen=True)
class PromQuery:
    """One PromQL target of one panel."""

    panel: str
    ref_id: str
    expr: str


@dataclass
class BoardSpec:
    """Everything the tests need to know about one generated dashboard."""

    uid: str
    title: str
    file_name: str
    sql: list[SqlQuery] = field(default_factory=list)
    promql: list[PromQuery] = field(default_factory=list)
