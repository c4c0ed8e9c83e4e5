"""Custom dashboards: a team describes its own board in a small YAML file.

    title: Data team spend            # required
    account: acme                     # required: the account whose folder gets it
    uid: acme-data-spend              # optional (default: from account and title)
    description: What the data team spends
    time: {from: now-7d, to: now}     # optional (default: the last 30 days)
    refresh: 5m                       # optional
    variables:                        # optional: what the drop-downs show first
      team: data
      project: [etl-core, search]
    rows:                             # one or more
      - title: Spend
        widgets:
          - panel: overview/credits-spent-this-month
            width: 12                 # optional, 1..24 (default: the panel's own)
            height: 5                 # optional, 2..40
            title: Credits this month # optional
            thresholds:               # optional: base color, then value -> color
              - {color: green}
              - {value: 5000, color: red}

Widgets come from a catalogue: every panel of the built-in dashboards, named
``<dashboard>/<panel title as a slug>`` (``meterhouse dashboards custom catalogue``). A
custom board carries the variables its panels need; the account variable is fixed to the
file's account. ``validate`` checks the file (each error names its line and key) and runs
every ClickHouse query on the store; ``render`` writes Grafana JSON (the built-in panels,
made with grafana-foundation-sdk, in an SDK-built dashboard); ``sync`` puts the board in
the account's Grafana folder (meterhouse/access/grafana_sync.py).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml

from meterhouse.dashboards import build_boards, checks
from meterhouse.dashboards.grafana import GRID_WIDTH, Board, Layout, render
from meterhouse.dashboards.macros import QueryContext, grafana_interval
from meterhouse.dashboards.spec import SqlQuery
from meterhouse.errors import MeterhouseError
from meterhouse.store.base import Store

PREFIX: Final = "meterhouse-"
MAX_BYTES: Final = 256 * 1024
MAX_WIDGETS: Final = 60
_UID: Final = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_RELATIVE: Final = re.compile(r"^now(?:-(\d+)([mhdw]))?$")
_UNITS: Final = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
_COLOR: Final = re.compile(r"^(?:[a-z-]+|#[0-9a-fA-F]{6})$")


class CustomError(MeterhouseError):
    """A custom dashboard file is invalid: every problem, each with its line and key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Widget:
    key: str
    title: str
    width: int | None
    height: int | None
    thresholds: tuple[tuple[float | None, str], ...] | None


@dataclass(frozen=True)
class Row:
    title: str
    widgets: tuple[Widget, ...]


@dataclass(frozen=True)
class CustomBoard:
    title: str
    account: str
    uid: str
    description: str
    time_from: str
    time_to: str
    refresh: str
    picks: dict[str, str | list[str]]
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class CatalogueEntry:
    """One built-in panel: its JSON, its query specs, and the dashboard it comes from."""

    key: str
    panel: dict[str, Any]
    specs: tuple[SqlQuery, ...]
    board_uid: str


@dataclass
class Catalogue:
    entries: dict[str, CatalogueEntry] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> model
    variable_specs: dict[str, SqlQuery] = field(default_factory=dict)
    variable_order: list[str] = field(default_factory=list)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@cache
def catalogue() -> Catalogue:
    """Every panel of the built-in dashboards, by ``<dashboard>/<title slug>``."""
    found = Catalogue()
    for board in build_boards():
        data = board.to_dict()
        short = board.spec.uid.removeprefix(PREFIX)
        for panel in data["panels"]:
            if panel.get("type") == "row":
                continue
            key = f"{short}/{slug(panel['title'])}"
            specs = tuple(q for q in board.spec.sql if q.panel == panel["title"])
            found.entries[key] = CatalogueEntry(key, panel, specs, board.spec.uid)
        for model in data.get("templating", {}).get("list", []):
            if model["name"] not in found.variables:
                found.variables[model["name"]] = model
                found.variable_order.append(model["name"])
        for query in board.spec.sql:
            if query.variable:
                found.variable_specs.setdefault(query.panel[1:], query)
    return found


# ------------------------------------------------------------------------------ parsing


class _Checker:
    """Walks the YAML nodes, collecting problems as ``<file>:<line>: <key>: <what>``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def fail(self, node: yaml.Node, key: str, what: str) -> None:
        self.problems.append(f"{self.source}:{node.start_mark.line + 1}: {key}: {what}")

    def mapping(
        self, node: yaml.Node, key: str, required: set[str], optional: set[str]
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, key, "must be a mapping (key: value lines)")
            return {}
        found: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            name = str(key_node.value)
            where = f"{key}.{name}" if key else name
            if name in found:
                self.fail(key_node, where, "given twice")
            elif name not in required | optional:
                known = ", ".join(sorted(required | optional))
                self.fail(key_node, where, f"unknown key (known: {known})")
            else:
                found[name] = (key_node, value_node)
        for name in sorted(required - found.keys()):
            self.fail(node, f"{key}.{name}" if key else name, "missing (required)")
        return found

    def text(self, node: yaml.Node, key: str, *, pattern: re.Pattern[str] | None = None) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            self.fail(node, key, "must be text")
            return ""
        value = str(node.value)
        if not value.strip() or len(value) > 200:
            self.fail(node, key, "must be 1 to 200 characters")
        elif pattern is not None and not pattern.match(value):
            self.fail(node, key, f"{value!r} does not match {pattern.pattern}")
        return value

    def integer(self, node: yaml.Node, key: str, low: int, high: int) -> int | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:int":
            self.fail(node, key, f"must be a whole number from {low} to {high}")
            return None
        value = int(node.value)
        if not low <= value <= high:
            self.fail(node, key, f"must be from {low} to {high}, got {value}")
            return None
        return value

    def number(self, node: yaml.Node, key: str) -> float | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
        ):
            self.fail(node, key, "must be a number")
            return None
        return float(node.value)

    def sequence(self, node: yaml.Node, key: str, low: int, high: int) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, key, "must be a list (lines starting with '- ')")
            return []
        if not low <= len(node.value) <= high:
            self.fail(node, key, f"must have {low} to {high} entries, got {len(node.value)}")
        return list(node.value)[:high]


def parse(text: str, source: str = "<custom dashboard>") -> CustomBoard:
    """The board a file describes; CustomError lists every problem with line and key."""
    if len(text.encode()) > MAX_BYTES:
        raise CustomError([f"{source}: larger than {MAX_BYTES // 1024} KiB"])
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise CustomError([f"{source}{line}: not YAML: {getattr(exc, 'problem', exc)}"]) from None
    if root is None:
        raise CustomError([f"{source}: empty file"])
    check = _Checker(source)
    top = check.mapping(
        root,
        "",
        {"title", "account", "rows"},
        {"uid", "description", "time", "refresh", "variables"},
    )
    title = check.text(top["title"][1], "title") if "title" in top else ""
    account = check.text(top["account"][1], "account") if "account" in top else ""
    uid = (
        check.text(top["uid"][1], "uid", pattern=_UID)
        if "uid" in top
        else f"mh-{slug(account)}-{slug(title)}"[:40].rstrip("-")
    )
    description = check.text(top["description"][1], "description") if "description" in top else ""
    time_from, time_to = "now-30d", "now"
    if "time" in top:
        span = check.mapping(top["time"][1], "time", {"from"}, {"to"})
        if "from" in span:
            time_from = check.text(span["from"][1], "time.from", pattern=_RELATIVE)
        if "to" in span:
            time_to = check.text(span["to"][1], "time.to", pattern=_RELATIVE)
    refresh = (
        check.text(top["refresh"][1], "refresh", pattern=re.compile(r"^\d{1,4}[smhd]$"))
        if "refresh" in top
        else ""
    )
    picks = _picks(check, top["variables"][1]) if "variables" in top else {}
    rows = tuple(
        _row(check, node, f"rows[{index}]")
        for index, node in enumerate(
            check.sequence(top["rows"][1], "rows", 1, 20) if "rows" in top else []
        )
    )
    if sum(len(row.widgets) for row in rows) > MAX_WIDGETS:
        check.fail(root, "rows", f"at most {MAX_WIDGETS} widgets in all")
    board = CustomBoard(title, account, uid, description, time_from, time_to, refresh, picks, rows)
    if not check.problems:
        _check_variables(check, root, board)
    if check.problems:
        raise CustomError(check.problems)
    return board


def _picks(check: _Checker, node: yaml.Node) -> dict[str, str | list[str]]:
    names = set(catalogue().variables) - {"account", "tz"}
    found = check.mapping(node, "variables", set(), names)
    picks: dict[str, str | list[str]] = {}
    for name, (_, value) in found.items():
        if isinstance(value, yaml.SequenceNode):
            picks[name] = [
                check.text(item, f"variables.{name}[{i}]")
                for i, item in enumerate(check.sequence(value, f"variables.{name}", 1, 50))
            ]
        else:
            picks[name] = check.text(value, f"variables.{name}")
    return picks


def _row(check: _Checker, node: yaml.Node, key: str) -> Row:
    found = check.mapping(node, key, {"widgets"}, {"title"})
    title = check.text(found["title"][1], f"{key}.title") if "title" in found else ""
    widgets = [
        _widget(check, item, f"{key}.widgets[{index}]")
        for index, item in enumerate(
            check.sequence(found["widgets"][1], f"{key}.widgets", 1, MAX_WIDGETS)
            if "widgets" in found
            else []
        )
    ]
    return Row(title, tuple(w for w in widgets if w is not None))


def _widget(check: _Checker, node: yaml.Node, key: str) -> Widget | None:
    found = check.mapping(node, key, {"panel"}, {"width", "height", "title", "thresholds"})
    if "panel" not in found:
        return None
    panel_node = found["panel"][1]
    name = check.text(panel_node, f"{key}.panel")
    entries = catalogue().entries
    if name and name not in entries:
        close = [k for k in entries if k.split("/")[-1] == name.split("/")[-1]]
        hint = (
            f"; did you mean {close[0]}?"
            if close
            else "; `meterhouse dashboards custom catalogue` lists them"
        )
        check.fail(panel_node, f"{key}.panel", f"no panel {name!r} in the catalogue{hint}")
        return None
    width = (
        check.integer(found["width"][1], f"{key}.width", 1, GRID_WIDTH)
        if "width" in found
        else None
    )
    height = (
        check.integer(found["height"][1], f"{key}.height", 2, 40) if "height" in found else None
    )
    title = check.text(found["title"][1], f"{key}.title") if "title" in found else ""
    thresholds = (
        _thresholds(check, found["thresholds"][1], f"{key}.thresholds", entries.get(name))
        if "thresholds" in found
        else None
    )
    return Widget(name, title, width, height, thresholds)


def _thresholds(
    check: _Checker, node: yaml.Node, key: str, entry: CatalogueEntry | None
) -> tuple[tuple[float | None, str], ...] | None:
    if entry is not None and entry.panel.get("type") not in ("stat", "timeseries", "gauge"):
        check.fail(
            node,
            key,
            f"only stat and time series panels take thresholds, not {entry.panel.get('type')}",
        )
        return None
    steps: list[tuple[float | None, str]] = []
    for index, item in enumerate(check.sequence(node, key, 1, 10)):
        where = f"{key}[{index}]"
        found = check.mapping(item, where, {"color"}, {"value"})
        color = (
            check.text(found["color"][1], f"{where}.color", pattern=_COLOR)
            if "color" in found
            else ""
        )
        value = check.number(found["value"][1], f"{where}.value") if "value" in found else None
        if index == 0 and "value" in found:
            check.fail(item, f"{where}.value", "the first step is the base color: no value")
        if index > 0 and "value" not in found:
            check.fail(item, f"{where}.value", "missing: every step after the first has one")
        if index > 1 and value is not None and steps[-1][0] is not None and value <= steps[-1][0]:
            check.fail(item, f"{where}.value", "values must increase")
        steps.append((value, color))
    return tuple(steps)


def _check_variables(check: _Checker, root: yaml.Node, board: CustomBoard) -> None:
    needed = _variables_needed(board)
    for name in board.picks:
        if name not in needed:
            check.fail(root, f"variables.{name}", "none of this board's widgets uses it")


# ------------------------------------------------------------------------------ building


def _variables_needed(board: CustomBoard) -> list[str]:
    """The variables the widgets' dashboards have, in the catalogue's order."""
    found = catalogue()
    wanted: set[str] = set()
    boards = {found.entries[w.key].board_uid for row in board.rows for w in row.widgets}
    for built in build_boards():
        if built.spec.uid in boards:
            wanted |= {m["name"] for m in built.to_dict()["templating"].get("list", [])}
    return [name for name in found.variable_order if name in wanted]


@dataclass
class Rendered:
    """A custom board as Grafana JSON, and what validate needs to check its queries."""

    dashboard: dict[str, Any]
    specs: list[SqlQuery]
    picks: dict[str, str | list[str]]


def build(board: CustomBoard) -> Rendered:
    found = catalogue()
    envelope = Board(
        board.uid,
        board.title,
        board.description or f"Custom dashboard of {board.account}.",
        file_name=f"{board.uid}.json",
        time_from=board.time_from,
        refresh=board.refresh,
    ).to_dict()
    envelope["time"]["to"] = board.time_to
    envelope["tags"] = ["meterhouse", "custom"]
    specs: list[SqlQuery] = []
    templating: list[dict[str, Any]] = []
    for name in _variables_needed(board):
        if name == "account":
            templating.append(_fixed_account(board.account))
            continue
        model = copy.deepcopy(found.variables[name])
        pick = board.picks.get(name)
        if pick is not None:
            values = pick if isinstance(pick, list) else [pick]
            model["current"] = {"text": values, "value": values}
        templating.append(model)
        if name in found.variable_specs:
            specs.append(found.variable_specs[name])
    envelope["templating"] = {"list": templating}
    panels: list[dict[str, Any]] = []
    layout = Layout()
    next_id = 1
    for row in board.rows:
        if row.title:
            layout.newline()
            pos = layout.place(GRID_WIDTH, 1)
            panels.append(
                {
                    "type": "row",
                    "id": next_id,
                    "title": row.title,
                    "collapsed": False,
                    "gridPos": {"h": pos.h, "w": pos.w, "x": pos.x, "y": pos.y},
                    "panels": [],
                }
            )
            next_id += 1
            layout.newline()
        for widget in row.widgets:
            entry = found.entries[widget.key]
            panel = copy.deepcopy(entry.panel)
            source = panel["gridPos"]
            pos = layout.place(widget.width or source["w"], widget.height or source["h"])
            panel["gridPos"] = {"h": pos.h, "w": pos.w, "x": pos.x, "y": pos.y}
            panel["id"] = next_id
            next_id += 1
            if widget.title:
                panel["title"] = widget.title
            if widget.thresholds is not None:
                panel.setdefault("fieldConfig", {}).setdefault("defaults", {})["thresholds"] = {
                    "mode": "absolute",
                    "steps": [{"value": v, "color": c} for v, c in widget.thresholds],
                }
                if panel.get("type") == "timeseries":
                    custom = panel["fieldConfig"]["defaults"].setdefault("custom", {})
                    custom["thresholdsStyle"] = {"mode": "line"}
            specs += [replace(spec, panel=panel["title"]) for spec in entry.specs]
            panels.append(panel)
    envelope["panels"] = panels
    return Rendered(envelope, specs, dict(board.picks))


def _fixed_account(account: str) -> dict[str, Any]:
    """The account, fixed: a custom board belongs to one account's folder."""
    return {
        "type": "custom",
        "name": "account",
        "label": "Account",
        "query": account,
        "hide": 2,
        "multi": False,
        "includeAll": False,
        "current": {"text": account, "value": account},
        "options": [{"text": account, "value": account, "selected": True}],
    }


def load(path: Path) -> CustomBoard:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CustomError([f"{path}: cannot read: {exc}"]) from exc
    return parse(text, str(path))


def render_json(board: CustomBoard) -> str:
    return render(build(board).dashboard)


# ------------------------------------------------------------------------------ validating


def _span(text: str, now: datetime) -> datetime:
    match = _RELATIVE.match(text)
    assert match is not None  # parse() checked it
    if match.group(1) is None:
        return now
    return now - timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def validate(
    store: Store, board: CustomBoard, *, now: datetime | None = None, rows_expected: bool = False
) -> int:
    """Run every ClickHouse query of the board on ``store``; return how many ran.

    Variables resolve as Grafana does with the file's picks, over the board's time range.
    ``rows_expected``: a query that finds no rows is a problem too (for data known to
    cover every panel, such as the demo).
    """
    rendered = build(board)
    end = now or datetime.now(UTC)
    time_from, time_to = _span(board.time_from, end), _span(board.time_to, end)
    if time_from >= time_to:
        raise CustomError([f"time: from {board.time_from} is not before to {board.time_to}"])
    interval = grafana_interval(time_from, time_to, 1000, timedelta(seconds=15))
    try:
        variables = checks.resolve_variables(
            store,
            rendered.specs,
            rendered.dashboard,
            rendered.picks,
            (time_from, time_to, interval),
        )
    except checks.CheckError as exc:
        raise CustomError([f"variables: {exc}"]) from exc
    ctx = QueryContext(time_from, time_to, interval, variables)
    specs = {q.panel: q for q in rendered.specs if not q.variable}
    problems: list[str] = []
    ran = 0
    for title, target in checks.clickhouse_targets(rendered.dashboard):
        spec = specs.get(title)
        if spec is None:
            problems.append(f"{title}: no query spec (the catalogue is inconsistent)")
            continue
        problems += checks.check_query(
            store, spec, target["rawSql"], ctx, title, rows_expected=rows_expected
        )
        ran += 1
    if problems:
        raise CustomError(problems)
    return ran
