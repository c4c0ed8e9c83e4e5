"""Errors that say what to do: the CLI's one place that turns low-level failures into advice.

Commands raise ``click.ClickException`` from a ``MeterhouseError`` (or let one through);
the top-level group hands every failure to ``explain`` before click prints it, so a
missing schema, an unreachable server, a syntax error or a mistyped account name reads
the same whichever command met it. Exit codes stay: 1 for failures, 2 for usage errors.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable

import click

from meterhouse.errors import (
    MeterhouseError,
    ServiceUnavailableError,
    StoreError,
    StoreUnavailableError,
)

_UNKNOWN_SCHEMA = {"UNKNOWN_TABLE", "UNKNOWN_DATABASE"}
_MISSING_TABLE = re.compile(r"(?:identifier|[Tt]able) '?`?([\w.]+)`?'?")
_SCOPE = re.compile(r"\.?\s*In scope .*$", re.S)
_POSITION = re.compile(r"failed at position (\d+)(?: \(([^)]*)\))?")
_EXPECTED = re.compile(r"Expected one of: ([^:]*?)(?::|\.\s|$)", re.S)
_NO_ACCOUNT = re.compile(r"\bno account (\S+?)[;:,]")


def root_error(exc: BaseException) -> MeterhouseError | None:
    """The MeterhouseError a failure was raised from (``raise ... from``), if any.

    Only explicit causes count: an error raised while handling another (e.g. the service's
    refusal after the store was found locked) is about itself, not about that other one.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, MeterhouseError):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


def explain(
    exc: BaseException,
    *,
    store_url: str,
    account_ids: Callable[[], list[str]] | None = None,
    query: str = "",
) -> str | None:
    """A message that says what went wrong and what to do, or None to keep the original."""
    cause = root_error(exc)
    if isinstance(cause, ServiceUnavailableError):
        return None  # it names the service that holds the store, not a ClickHouse server
    if isinstance(cause, StoreUnavailableError):
        return (
            f"cannot reach the ClickHouse server at {store_url}: it refused or did not answer "
            "the connection. Start it (docker compose up clickhouse), or check the host, "
            "port and credentials in MH_CLICKHOUSE_URL (or --clickhouse-url)."
        )
    if isinstance(cause, StoreError) and cause.name in _UNKNOWN_SCHEMA:
        missing = _MISSING_TABLE.search(str(cause))
        what = (
            f" (no table {missing.group(1)})" if missing and cause.name == "UNKNOWN_TABLE" else ""
        )
        return (
            f"the store at {store_url} has no meterhouse schema yet{what}: run "
            "`meterhouse migrate` to create it (or `meterhouse demo` for sample data), or "
            "check that MH_CLICKHOUSE_URL names the store you meant."
        )
    # Through `meterhouse run` the engine's text arrives inside the service's refusal.
    message = str(cause) if cause is not None else _text(exc)
    if (isinstance(cause, StoreError) and cause.name == "SYNTAX_ERROR") or (
        query and "(SYNTAX_ERROR)" in message
    ):
        return syntax_error(message, query)
    if _SCOPE.search(message) and query:
        # The engine names the query it ran, which for `sql` is meterhouse's wrapper of the
        # user's own; the user's text is what they can fix.
        return f"{_SCOPE.sub('', message)}. In your query: {query.strip()}"
    found = _NO_ACCOUNT.search(message)
    if found and account_ids is not None:
        return message + _suggestion(found.group(1), account_ids)
    return None


def _text(exc: BaseException) -> str:
    return exc.format_message() if isinstance(exc, click.ClickException) else str(exc)


def syntax_error(message: str, query: str) -> str:
    """ClickHouse's syntax error, pointed at the user's own text with a caret."""
    position = _POSITION.search(message)
    expected = _EXPECTED.search(message)
    lines = ["syntax error in the SQL"]
    if position:
        lines[0] += f" at character {position.group(1)}"
        if position.group(2):
            lines[0] += f" (near {position.group(2)!r})"
    text = query.strip()
    if text and position and "\n" not in text:
        at = max(int(position.group(1)) - 1, 0)
        lines += [f"  {text}", f"  {' ' * at}^"]
    if expected:
        choices = [c.strip() for c in expected.group(1).split(",") if c.strip()]
        shown = ", ".join(choices[:8]) + (", …" if len(choices) > 8 else "")
        lines.append(f"ClickHouse expected one of: {shown}")
    lines.append(
        "Check the spelling of keywords and names there; `meterhouse sql --help` has examples "
        'and `meterhouse sql "SHOW TABLES"` lists the tables.'
    )
    return "\n".join(lines)


def _suggestion(name: str, account_ids: Callable[[], list[str]]) -> str:
    try:
        known = account_ids()
    except (MeterhouseError, click.ClickException, OSError):
        return ""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if close:
        return f". Did you mean {' or '.join(close)}?"
    return ""
