"""What Grafana and the ClickHouse plugin do to a panel's SQL before ClickHouse sees it.

Three steps, in the browser's order (see the shared reference
clickhouse-datasource/macros.md and the plugin's ``CHDatasource.applyTemplateVariables``):

1. ``$__conditionalAll(condition, $var)``: the plugin's frontend macro, expanded right to
   left BEFORE template variables, on the raw text of its arguments.
2. Template variables: Grafana's interpolation (``$var``, ``${var}``, ``${var:format}``,
   ``[[var]]``) with the plugin's default format for multi-values (``'a','b'``), plus the
   global variables the browser fills in (``$__from``, ``$__to``, ``$__interval``...).
3. The plugin's backend (Go) macros: ``$__timeFilter(col)``, ``$__fromTime``,
   ``$__timeInterval(col)``, ``$__interval_s``, ``$__dateFilter(col)``... with the exact
   format strings of macros.md, skipping comments, quoted strings and backtick names.

Only what a meterhouse dashboard could use is implemented; anything else raises, so a new
macro in a dashboard fails its check instead of being silently passed through. Used by
the dashboard checks (meterhouse/dashboards/checks.py: `meterhouse dashboards custom
validate`, tests/dashboards, benchmarks/dashboards.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

ALL = "$__all"


class MacroError(ValueError):
    """A macro call that Grafana or the plugin would reject."""


@dataclass
class Variable:
    """A dashboard variable's current state, as Grafana's template service holds it."""

    name: str
    value: str | list[str]
    text: str | list[str] | None = None
    options: list[str] = field(default_factory=list)  # option values, for "All"
    all_value: str | None = None  # the variable's custom "All" value, if set

    @property
    def is_all(self) -> bool:
        return self.value == ALL or (isinstance(self.value, list) and self.value[:1] == [ALL])


@dataclass
class QueryContext:
    """One panel request: the dashboard time range, the query interval, the variables."""

    time_from: datetime
    time_to: datetime
    interval: timedelta
    variables: Mapping[str, Variable] = field(default_factory=dict)


def expand(sql: str, ctx: QueryContext) -> str:
    """The SQL ClickHouse receives for ``sql`` in a panel under ``ctx``."""
    text = apply_conditional_all(sql, ctx.variables)
    text = interpolate(text, ctx)
    return expand_backend_macros(text, ctx)


# --------------------------------------------------------------------------- step 1


def apply_conditional_all(raw: str, variables: Mapping[str, Variable]) -> str:
    """``CHDatasource.applyConditionalAll``: the last call first, until none is left."""
    macro = "$__conditionalAll("
    index = raw.rfind(macro)
    while index != -1:
        params = _macro_args_frontend(raw, index + len(macro) - 1)
        if len(params) != 2:
            return raw
        var_param = params[1].strip()
        found = re.search(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+", var_param, re.ASCII)
        phrase = params[0]
        if found:
            variable = variables.get(found.group(0))
            if variable is not None:
                value = _js_to_string(variable.value)
                if value in ("", ALL):
                    phrase = "1=1"
        raw = _js_replace_first(raw, f"{macro}{params[0]},{params[1]})", phrase)
        index = raw.rfind(macro)
    return raw


def _macro_args_frontend(query: str, args_index: int) -> list[str]:
    """``getMacroArgs``: split on commas at depth 1; quotes are NOT respected."""
    args: list[str] = []
    depth = 0
    last_end = 1
    sub = query[args_index:]
    for match in re.finditer(r"[(),]", sub):
        char = match.group(0)
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 1:
            args.append(sub[last_end : match.end() - 1])
            last_end = match.end()
        if depth == 0:
            args.append(sub[last_end : match.end() - 1])
            return args
    return []


def _js_to_string(value: str | list[str]) -> str:
    """JavaScript's ``value.toString()``: arrays join with commas."""
    return ",".join(value) if isinstance(value, list) else value


def _js_replace_first(haystack: str, needle: str, replacement: str) -> str:
    """``String.prototype.replace`` with a string pattern, including ``$&``-style patterns."""
    at = haystack.find(needle)
    if at == -1:
        return haystack

    def substitute(match: re.Match[str]) -> str:
        code = match.group(1)
        if code == "$":
            return "$"
        if code == "&":
            return needle
        if code == "`":
            return haystack[:at]
        return haystack[at + len(needle) :]  # "'"

    expanded = re.sub(r"\$([$&`'])", substitute, replacement)
    return haystack[:at] + expanded + haystack[at + len(needle) :]


# --------------------------------------------------------------------------- step 2

# Grafana's variable syntax (public/app/features/variables/utils.ts, scenes' VARIABLE_REGEX).
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}", re.ASCII
)


def interpolate(text: str, ctx: QueryContext) -> str:
    """Grafana's ``templateSrv.replace(text, scopedVars, clickhouseFormat)``."""
    builtins = _builtin_variables(ctx)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        field_path = match.group(5)
        fmt = match.group(6) or match.group(3)
        if name in builtins:
            return _format_builtin(name, builtins[name], fmt)
        variable = ctx.variables.get(name)
        if variable is None:
            return match.group(0)  # unknown names stay as written (macros, typos)
        if field_path:
            raise MacroError(f"${{{name}.{field_path}}}: field paths are not supported here")
        return format_value(variable, fmt)

    return _VARIABLE.sub(replace, text)


def _builtin_variables(ctx: QueryContext) -> dict[str, str]:
    from_ms = _epoch_ms(ctx.time_from)
    to_ms = _epoch_ms(ctx.time_to)
    interval_ms = int(ctx.interval.total_seconds() * 1000)
    range_ms = to_ms - from_ms
    return {
        "__from": str(from_ms),
        "__to": str(to_ms),
        "__interval": seconds_to_hms(interval_ms / 1000),
        "__interval_ms": str(interval_ms),
        "__range": f"{round(range_ms / 1000)}s",
        "__range_s": str(round(range_ms / 1000)),
        "__range_ms": str(range_ms),
        "__timezone": "browser",
    }


def _format_builtin(name: str, value: str, fmt: str | None) -> str:
    if fmt is None or fmt == "raw":
        return value
    if name in ("__from", "__to"):
        if fmt == "date:seconds":
            return str(round(int(value) / 1000))
        if fmt in ("date", "date:iso"):
            moment = datetime.fromtimestamp(int(value) / 1000, UTC)
            return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    raise MacroError(f"${{{name}:{fmt}}}: format not supported here")


def format_value(variable: Variable, fmt: str | None) -> str:
    """scenes' ``formatValue`` for a multi-value variable (query, custom, textbox...)."""
    if variable.is_all:
        if variable.all_value is not None:
            # CustomAllValue: the custom "All" value is inserted raw, whatever the format.
            return variable.all_value
        value: str | list[str] = list(variable.options)
    else:
        value = variable.value
    if fmt is None:
        # The ClickHouse plugin's own format function (CHDatasource.format).
        return "'" + "','".join(value) + "'" if isinstance(value, list) else value
    return _FORMATS.get(fmt, _unsupported(fmt))(value)


def _unsupported(fmt: str) -> Callable[[str | list[str]], str]:
    def fail(_: str | list[str]) -> str:
        raise MacroError(f"variable format {fmt!r} is not implemented in this expander")

    return fail


def _each(value: str | list[str], one: Callable[[str], str], sep: str = ",") -> str:
    return sep.join(one(v) for v in value) if isinstance(value, list) else one(value)


_FORMATS: dict[str, Callable[[str | list[str]], str]] = {
    "raw": lambda v: v if isinstance(v, str) else ",".join(v),
    "csv": lambda v: ",".join(v) if isinstance(v, list) else v,
    "singlequote": lambda v: _each(v, lambda s: "'" + s.replace("'", "\\'") + "'"),
    "doublequote": lambda v: _each(v, lambda s: '"' + s.replace('"', '\\"') + '"'),
    "sqlstring": lambda v: _each(v, lambda s: "'" + s.replace("'", "''") + "'"),
    "pipe": lambda v: v if isinstance(v, str) else "|".join(v),
    "json": lambda v: json.dumps(v, separators=(",", ":")),
    "glob": lambda v: "{" + ",".join(v) + "}" if isinstance(v, list) and len(v) > 1 else _first(v),
}


def _first(value: str | list[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)


def seconds_to_hms(seconds: float) -> str:
    """Grafana's ``rangeutil.secondsToHms``: the largest whole unit only (``$__interval``)."""
    years = int(seconds // 31536000)
    if years:
        return f"{years}y"
    days = int((seconds % 31536000) // 86400)
    if days:
        return f"{days}d"
    hours = int((seconds % 86400) // 3600)
    if hours:
        return f"{hours}h"
    minutes = int((seconds % 3600) // 60)
    if minutes:
        return f"{minutes}m"
    whole = int(seconds % 60)
    if whole:
        return f"{whole}s"
    millis = int(seconds * 1000)
    if millis:
        return f"{millis}ms"
    return "less than a millisecond"


# Grafana's kbn.roundInterval: (upper bound in ms, interval it rounds to in ms).
_ROUND_INTERVALS: tuple[tuple[float, int], ...] = (
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1500, 1000),
    (3500, 2000),
    (7500, 5000),
    (12500, 10000),
    (17500, 15000),
    (25000, 20000),
    (45000, 30000),
    (90000, 60000),
    (210000, 120000),
    (450000, 300000),
    (750000, 600000),
    (1050000, 900000),
    (1500000, 1200000),
    (2700000, 1800000),
    (5400000, 3600000),
    (9000000, 7200000),
    (16200000, 10800000),
    (32400000, 21600000),
    (86400000, 43200000),
    (604800000, 86400000),
    (1814400000, 604800000),
    (3628800000, 2592000000),
)


def grafana_interval(
    time_from: datetime, time_to: datetime, max_data_points: int, min_interval: timedelta
) -> timedelta:
    """The interval Grafana gives a panel query (rangeutil.calculateInterval)."""
    raw_ms = (time_to - time_from).total_seconds() * 1000 / max_data_points
    rounded: float = 31536000000
    for bound, value in _ROUND_INTERVALS:
        if raw_ms < bound:
            rounded = value
            break
    return max(timedelta(milliseconds=rounded), min_interval)


# --------------------------------------------------------------------------- step 3


def _unix(moment: datetime) -> int:
    """Go's ``Time.Unix()``: whole seconds, rounded toward negative infinity."""
    return int(moment.timestamp() // 1)


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000 // 1)


def _interval_seconds(ctx: QueryContext) -> int:
    return int(max(ctx.interval.total_seconds(), 1))


def _interval_millis(ctx: QueryContext) -> int:
    return int(max(ctx.interval.total_seconds() * 1000, 1))


def _compact_interval(ctx: QueryContext) -> str:
    """macropro's ``$__interval``: the largest whole unit of the interval."""
    ms = int(ctx.interval.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    for unit, size in (("h", 3600000), ("m", 60000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


Expander = Callable[[QueryContext, Sequence[str]], str]


def _fixed(count: int, render: Callable[[QueryContext, Sequence[str]], str]) -> Expander:
    def expand_call(ctx: QueryContext, args: Sequence[str]) -> str:
        if len(args) != count:
            raise MacroError(f"expected {count} argument(s), received {len(args)}")
        return render(ctx, args)

    return expand_call


def _time_filter(ctx: QueryContext, a: Sequence[str]) -> str:
    f, t = _unix(ctx.time_from), _unix(ctx.time_to)
    return f"{a[0]} >= toDateTime({f}) AND {a[0]} <= toDateTime({t})"


def _time_filter_ms(ctx: QueryContext, a: Sequence[str]) -> str:
    f, t = _epoch_ms(ctx.time_from), _epoch_ms(ctx.time_to)
    return f"{a[0]} >= fromUnixTimestamp64Milli({f}) AND {a[0]} <= fromUnixTimestamp64Milli({t})"


def _date_filter(ctx: QueryContext, a: Sequence[str]) -> str:
    f, t = _date(ctx.time_from), _date(ctx.time_to)
    return f"{a[0]} >= toDate('{f}') AND {a[0]} <= toDate('{t}')"


def _date_time_filter(ctx: QueryContext, a: Sequence[str]) -> str:
    return f"({_date_filter(ctx, a[:1])}) AND ({_time_filter(ctx, a[1:])})"


def _time_group(ctx: QueryContext, a: Sequence[str]) -> str:
    period = a[1].strip().strip("'\"")
    seconds = round(_go_duration(period).total_seconds())
    if seconds <= 0:
        raise MacroError(f"$__timeGroup period must be positive, got {a[1]!r}")
    return f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {seconds} second)"


def _go_duration(text: str) -> timedelta:
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise MacroError(f"not a Go duration: {text!r}")
    return timedelta(seconds=sum(float(n) * units[u] for n, u in parts))


def _no_context(name: str) -> Expander:
    def fail(_: QueryContext, __: Sequence[str]) -> str:
        raise MacroError(f"$__{name} needs the query builder's table/column context")

    return fail


MACROS: dict[str, Expander] = {
    "timeFilter": _fixed(1, _time_filter),
    "timeFilter_ms": _fixed(1, _time_filter_ms),
    "dateFilter": _fixed(1, _date_filter),
    "dateTimeFilter": _fixed(2, _date_time_filter),
    "dt": _fixed(2, _date_time_filter),
    "fromTime": _fixed(0, lambda c, _: f"toDateTime({_unix(c.time_from)})"),
    "toTime": _fixed(0, lambda c, _: f"toDateTime({_unix(c.time_to)})"),
    "fromTime_ms": _fixed(0, lambda c, _: f"fromUnixTimestamp64Milli({_epoch_ms(c.time_from)})"),
    "toTime_ms": _fixed(0, lambda c, _: f"fromUnixTimestamp64Milli({_epoch_ms(c.time_to)})"),
    "timeInterval": _fixed(
        1,
        lambda c, a: (
            f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {_interval_seconds(c)} second)"
        ),
    ),
    "timeInterval_ms": _fixed(
        1,
        lambda c, a: (
            f"toStartOfInterval(toDateTime64({a[0]}, 3), "
            f"INTERVAL {_interval_millis(c)} millisecond)"
        ),
    ),
    "interval_s": _fixed(0, lambda c, _: str(_interval_seconds(c))),
    "timeFrom": _fixed(1, lambda c, a: f"{a[0]} >= toDateTime({_unix(c.time_from)})"),
    "timeTo": _fixed(1, lambda c, a: f"{a[0]} <= toDateTime({_unix(c.time_to)})"),
    "timeGroup": _fixed(2, _time_group),
    "interval": _fixed(0, lambda c, _: _compact_interval(c)),
    "interval_ms": _fixed(0, lambda c, _: str(int(c.interval.total_seconds() * 1000))),
    "table": _no_context("table"),
    "column": _no_context("column"),
}
_STATEMENT_MACROS = ("columns", "rateColumns", "perSecondColumns", "increaseColumns", "lttb")
_NAMES_LONGEST_FIRST = sorted(MACROS, key=lambda n: (-len(n), n))


def expand_backend_macros(sql: str, ctx: QueryContext) -> str:
    """The plugin backend's macro pass over already-interpolated SQL."""
    out: list[str] = []
    i = 0
    while i < len(sql):
        skip = _protected_end(sql, i)
        if skip > i:
            out.append(sql[i:skip])
            i = skip
            continue
        if sql.startswith("$__", i):
            name = _macro_name(sql, i + 3)
            if name is not None:
                end, args = _call_args(sql, i + 3 + len(name), name)
                expanded_args = [expand_backend_macros(arg, ctx) for arg in args]
                try:
                    out.append(MACROS[name](ctx, expanded_args))
                except MacroError as exc:
                    raise MacroError(f"$__{name}: {exc}") from None
                i = end
                continue
            word = re.match(r"\w*", sql[i + 3 :], re.ASCII)
            if word and word.group(0) in _STATEMENT_MACROS:
                raise MacroError(f"statement macro $__{word.group(0)} is not implemented here")
        out.append(sql[i])
        i += 1
    return "".join(out)


def _macro_name(sql: str, at: int) -> str | None:
    for name in _NAMES_LONGEST_FIRST:
        end = at + len(name)
        if sql.startswith(name, at) and not (end < len(sql) and _is_name_char(sql[end])):
            return name
    return None


def _is_name_char(char: str) -> bool:
    return char == "_" or (char.isascii() and char.isalnum())


def _call_args(sql: str, at: int, name: str) -> tuple[int, list[str]]:
    """(end index, arguments) of a macro call starting after its name."""
    takes_args = name not in {
        "fromTime", "toTime", "fromTime_ms", "toTime_ms", "interval_s", "interval",
        "interval_ms", "table", "column",
    }  # fmt: skip
    if not takes_args or at >= len(sql) or sql[at] != "(":
        return at, []
    depth = 0
    i = at
    while i < len(sql):
        char = sql[i]
        if char in "'\"":
            i = _scan_quoted(sql, i)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i + 1, _split_args(sql[at + 1 : i])
        i += 1
    raise MacroError(f"$__{name}: unbalanced parentheses")


def _split_args(raw: str) -> list[str]:
    raw = raw.strip()
    if not raw:
        return []
    args: list[str] = []
    depth = start = 0
    i = 0
    while i < len(raw):
        char = raw[i]
        if char in "'\"":
            i = _scan_quoted(raw, i)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            args.append(raw[start:i].strip())
            start = i + 1
        i += 1
    args.append(raw[start:].strip())
    return args


def _scan_quoted(text: str, at: int) -> int:
    """Index after the quoted literal starting at ``at`` (doubled and backslash escapes)."""
    quote = text[at]
    i = at + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return len(text)


def _protected_end(sql: str, i: int) -> int:
    """End of a region whose text is never expanded (comment, literal, name), else ``i``."""
    if sql.startswith("--", i):
        end = sql.find("\n", i)
        return len(sql) if end == -1 else end
    if sql.startswith("/*", i):
        end = sql.find("*/", i + 2)
        return len(sql) if end == -1 else end + 2
    if sql[i] == "'":
        return _scan_quoted(sql, i)
    if sql[i] == "`":
        end = sql.find("`", i + 1)
        return len(sql) if end == -1 else end + 1
    dollar = re.match(r"\$(\w*)\$", sql[i:], re.ASCII)
    if dollar and not sql.startswith("$__", i):
        tag = dollar.group(0)
        end = sql.find(tag, i + len(tag))
        if end != -1:
            return end + len(tag)
    return i
