"""Glue between meterhouse's dashboards and Grafana's foundation SDK.

The SDK builds the dashboard model; this module adds what it lacks: a ClickHouse query
type (the SDK has none), a grid layout that wraps at Grafana's 24 columns, and panel
helpers that set every option the panel schemas of Grafana 12 require. A ``Board`` also
records, per query, the columns its panel reads (``spec.BoardSpec``) for the tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Final, Generic, TypeVar

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus as prometheus_builders
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prometheus_model
from grafana_foundation_sdk.models import stat as stat_model

from meterhouse.dashboards.spec import BoardSpec, Column, PromQuery, SqlQuery

CLICKHOUSE: Final = model.DataSourceRef(type_val="grafana-clickhouse-datasource", uid="clickhouse")
PROMETHEUS: Final = model.DataSourceRef(type_val="prometheus", uid="prometheus")
# Targets saved without a v4 pluginVersion are migrated by the plugin as v3 queries.
CLICKHOUSE_PLUGIN_VERSION: Final = "4.20.0"
SCHEMA_VERSION: Final = 42
GRID_WIDTH: Final = 24
TAG: Final = "meterhouse"

CREDITS: Final = "suffix: cr"
USD: Final = "currencyUSD"

T = TypeVar("T")
PanelT = TypeVar("PanelT", stat.Panel, timeseries.Panel, table.Panel)


class ClickHouseTarget(cogvariants.Dataquery):
    """A raw-SQL target of the grafana-clickhouse-datasource plugin (editor type "sql").

    ``format`` follows the plugin's sqlutil codes: 0 time series (long frames become wide,
    one series per string column value), 1 table.
    """

    def __init__(self, ref_id: str, sql: str, *, time_series: bool) -> None:
        self.ref_id = ref_id
        self.sql = sql
        self.time_series = time_series

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": CLICKHOUSE,
            "pluginVersion": CLICKHOUSE_PLUGIN_VERSION,
            "editorType": "sql",
            "format": 0 if self.time_series else 1,
            "queryType": "timeseries" if self.time_series else "table",
            "rawSql": self.sql,
        }


class Built(cogbuilder.Builder[T], Generic[T]):
    """A ready model (or a builder plus a last touch) where the SDK expects a builder."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make

    def build(self) -> T:
        return self._make()


def finished(
    builder: cogbuilder.Builder[model.Panel], finish: Callable[[model.Panel], None]
) -> Built[model.Panel]:
    def make() -> model.Panel:
        panel = builder.build()
        finish(panel)
        return panel

    return Built(make)


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping to a new line."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.line_height = 0

    def place(self, w: int, h: int) -> model.GridPos:
        if not 0 < w <= GRID_WIDTH:
            raise ValueError(f"panel width must be 1..{GRID_WIDTH}, got {w}")
        if self.x + w > GRID_WIDTH:
            self.newline()
        pos = model.GridPos(h=h, w=w, x=self.x, y=self.y)
        self.x += w
        self.line_height = max(self.line_height, h)
        return pos

    def newline(self) -> None:
        self.y += self.line_height
        self.x = 0
        self.line_height = 0


def override(
    column: str, **properties: object
) -> dashboard_builders.DashboardFieldConfigSourceOverrides:
    """Field config for one column: ``override("USD", unit=USD)``."""
    values = [
        model.DynamicConfigValue(id_val=key, value=value) for key, value in properties.items()
    ]
    return (
        dashboard_builders.DashboardFieldConfigSourceOverrides()
        .matcher(model.MatcherConfig(id_val="byName", options=column))
        .properties(values)
    )


def link(title: str, url: str) -> dashboard_builders.DashboardLink:
    """A data link (on a table cell or a panel) to another meterhouse dashboard."""
    return (
        dashboard_builders.DashboardLink(title)
        .type(model.DashboardLinkType.LINK)
        .url(url)
        .icon("dashboard")
        .tooltip(title)
        .tags([])
        .as_dropdown(False)
        .target_blank(False)
        .include_vars(False)
        .keep_time(True)
    )


def _thresholds(*steps: tuple[float | None, str]) -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


class Board:
    """One dashboard being built: the SDK builder, its layout and its query spec."""

    def __init__(
        self,
        uid: str,
        title: str,
        description: str,
        *,
        file_name: str,
        time_from: str = "now-30d",
        refresh: str = "",
    ) -> None:
        self.spec = BoardSpec(uid=uid, title=title, file_name=file_name)
        self.layout = Layout()
        self._next_id = 1
        self.builder = (
            dashboard_builders.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags([TAG])
            .timezone("browser")
            .time(time_from, "now")
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            .editable()
            .link(
                dashboard_builders.DashboardLink("meterhouse")
                .type(model.DashboardLinkType.DASHBOARDS)
                .icon("external link")
                .tooltip("The other meterhouse dashboards, same time range and account")
                .tags([TAG])
                .as_dropdown(True)
                .target_blank(False)
                .include_vars(True)
                .keep_time(True)
            )
        )
        if refresh:
            self.builder.refresh(refresh)

    # ------------------------------------------------------------------ structure

    def variables(self, *variables: cogbuilder.Builder[model.VariableModel]) -> None:
        for variable in variables:
            self.builder.with_variable(variable)

    def variable_query(self, name: str, sql: str, columns: Sequence[Column]) -> None:
        """Record a ClickHouse query variable's SQL so the tests run it too."""
        self.spec.sql.append(
            SqlQuery(
                panel=f"${name}", ref_id="variable", sql=sql, columns=tuple(columns), variable=True
            )
        )

    def row(self, title: str) -> None:
        self.layout.newline()
        pos = self.layout.place(GRID_WIDTH, 1)
        self.layout.newline()
        self.builder.with_row(
            dashboard_builders.Row(title).id(self._take_id()).grid_pos(pos).collapsed(False)
        )

    def _take_id(self) -> int:
        panel_id = self._next_id
        self._next_id += 1
        return panel_id

    def _head(
        self, panel: PanelT, title: str, description: str, datasource: Any, w: int, h: int
    ) -> PanelT:
        """What every panel starts with: its id, title, description, source and place."""
        return (
            panel.id(self._take_id())
            .title(title)
            .description(description)
            .datasource(datasource)
            .grid_pos(self.layout.place(w, h))
        )

    def _sql_target(
        self,
        title: str,
        sql: str,
        cols: Sequence[Column],
        *,
        time_series: bool,
        expect_rows: bool,
        ref_id: str = "A",
    ) -> Built[cogvariants.Dataquery]:
        if any(query.panel == title for query in self.spec.sql if not query.variable):
            raise ValueError(f"{self.spec.uid}: two panels are titled {title!r}")
        self.spec.sql.append(
            SqlQuery(
                panel=title,
                ref_id=ref_id,
                sql=sql,
                columns=tuple(cols),
                time_series=time_series,
                expect_rows=expect_rows,
            )
        )
        target = ClickHouseTarget(ref_id, sql, time_series=time_series)
        return Built(lambda: target)

    # ------------------------------------------------------------------ ClickHouse panels

    def stat(
        self,
        title: str,
        sql: str,
        *,
        cols: Sequence[Column],
        description: str,
        w: int = 6,
        h: int = 5,
        unit: str = "none",
        units: dict[str, str] | None = None,
        decimals: int | None = None,
        expect_rows: bool = True,
        links: Sequence[dashboard_builders.DashboardLink] = (),
    ) -> None:
        """One big number per numeric column of the single row the query returns."""
        panel = (
            self._head(stat.Panel(), title, description, CLICKHOUSE, w, h)
            .with_target(
                self._sql_target(title, sql, cols, time_series=False, expect_rows=expect_rows)
            )
            .unit(unit)
            .graph_mode(common.BigValueGraphMode.NONE)
            .color_mode(common.BigValueColorMode.VALUE)
            .justify_mode(common.BigValueJustifyMode.AUTO)
            .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
            .orientation(common.VizOrientation.AUTO)
            .reduce_options(
                common_builders.ReduceDataOptions().values(False).calcs(["lastNotNull"]).fields("")
            )
            .thresholds(_thresholds((None, "blue")))
        )
        if decimals is not None:
            panel.decimals(decimals)
        if links:
            panel.links(list(links))
        for column, column_unit in (units or {}).items():
            panel.with_override(
                model.MatcherConfig(id_val="byName", options=column),
                [model.DynamicConfigValue(id_val="unit", value=column_unit)],
            )
        self.builder.with_panel(finished(panel, _stat_options))

    def timeseries(
        self,
        title: str,
        sql: str,
        *,
        cols: Sequence[Column],
        description: str,
        w: int = 12,
        h: int = 8,
        unit: str = "none",
        bars: bool = False,
        stacked: bool = False,
        series_label: str = "",
        expect_rows: bool = True,
        days: bool = False,
        links: Sequence[dashboard_builders.DashboardLink] = (),
    ) -> None:
        """A time series from a long frame: time, [one string column naming series], values.

        ``series_label`` names the string column whose values label the series (the plugin
        turns the long frame into one field per value, carrying it as a label).
        ``days``: the time column is the account's local date at 00:00 UTC and the axis is
        drawn in UTC, so a day's point sits on its own date for a viewer in any zone.
        """
        panel = (
            self._head(timeseries.Panel(), title, description, CLICKHOUSE, w, h)
            .with_target(
                self._sql_target(title, sql, cols, time_series=True, expect_rows=expect_rows)
            )
            .unit(unit)
            .legend(
                common_builders.VizLegendOptions()
                .display_mode(
                    common.LegendDisplayMode.TABLE if stacked else common.LegendDisplayMode.LIST
                )
                .placement(
                    common.LegendPlacement.RIGHT if stacked else common.LegendPlacement.BOTTOM
                )
                .show_legend(True)
                .calcs(["sum"] if stacked else [])
            )
            .tooltip(
                common_builders.VizTooltipOptions()
                .mode(common.TooltipDisplayMode.MULTI)
                .sort(common.SortOrder.DESCENDING)
            )
            .draw_style(common.GraphDrawStyle.BARS if bars else common.GraphDrawStyle.LINE)
            .fill_opacity(80 if bars else 10)
            .line_width(1)
            .show_points(common.VisibilityMode.NEVER)
            .span_nulls(False)
            .stacking(
                common_builders.StackingConfig().mode(
                    common.StackingMode.NORMAL if stacked else common.StackingMode.NONE
                )
            )
        )
        if series_label:
            panel.display_name(f"${{__field.labels.{series_label}}}")
        if days:
            panel.timezone(["utc"])
        if links:
            panel.links(list(links))
        self.builder.with_panel(panel)

    def table(
        self,
        title: str,
        sql: str,
        *,
        cols: Sequence[Column],
        description: str,
        w: int = 24,
        h: int = 10,
        units: dict[str, str] | None = None,
        cell_links: dict[str, dashboard_builders.DashboardLink] | None = None,
        widths: dict[str, int] | None = None,
        expect_rows: bool = True,
        links: Sequence[dashboard_builders.DashboardLink] = (),
        colors: dict[str, Sequence[tuple[float | None, str]]] | None = None,
    ) -> None:
        """A filterable table of the query's rows, in the query's order.

        ``colors``: column -> threshold steps; the cell's background takes the step's color.
        """
        panel = (
            self._head(table.Panel(), title, description, CLICKHOUSE, w, h)
            .with_target(
                self._sql_target(title, sql, cols, time_series=False, expect_rows=expect_rows)
            )
            .show_header(True)
            .frame_index(0)
            .cell_height(common.TableCellHeight.SM)
        )
        for column, column_unit in (units or {}).items():
            panel.with_override(
                model.MatcherConfig(id_val="byName", options=column),
                [model.DynamicConfigValue(id_val="unit", value=column_unit)],
            )
        for column, target in (cell_links or {}).items():
            panel.with_override(
                model.MatcherConfig(id_val="byName", options=column),
                [model.DynamicConfigValue(id_val="links", value=[target.build()])],
            )
        for column, width in (widths or {}).items():
            panel.with_override(
                model.MatcherConfig(id_val="byName", options=column),
                [model.DynamicConfigValue(id_val="custom.width", value=width)],
            )
        for column, steps in (colors or {}).items():
            panel.with_override(
                model.MatcherConfig(id_val="byName", options=column),
                [
                    model.DynamicConfigValue(
                        id_val="thresholds", value=_thresholds(*steps).build()
                    ),
                    model.DynamicConfigValue(
                        id_val="custom.cellOptions", value={"type": "color-background"}
                    ),
                ],
            )
        if links:
            panel.links(list(links))
        self.builder.with_panel(finished(panel, _filterable_columns))

    # ------------------------------------------------------------------ Prometheus panels

    def prom_timeseries(
        self,
        title: str,
        targets: Sequence[tuple[str, str]],
        *,
        description: str,
        w: int = 12,
        h: int = 8,
        unit: str = "none",
    ) -> None:
        """A time series of PromQL expressions, each ``(expr, legend format)``."""
        panel = (
            self._head(timeseries.Panel(), title, description, PROMETHEUS, w, h)
            .unit(unit)
            .legend(
                common_builders.VizLegendOptions()
                .display_mode(common.LegendDisplayMode.LIST)
                .placement(common.LegendPlacement.BOTTOM)
                .show_legend(True)
                .calcs([])
            )
            .tooltip(
                common_builders.VizTooltipOptions()
                .mode(common.TooltipDisplayMode.MULTI)
                .sort(common.SortOrder.DESCENDING)
            )
            .draw_style(common.GraphDrawStyle.LINE)
            .fill_opacity(10)
            .line_width(1)
            .show_points(common.VisibilityMode.NEVER)
            .span_nulls(False)
        )
        for index, (expr, legend) in enumerate(targets):
            panel.with_target(self._prom_target(title, expr, legend, chr(ord("A") + index)))
        self.builder.with_panel(panel)

    def prom_stat(
        self,
        title: str,
        expr: str,
        *,
        description: str,
        legend: str = "",
        w: int = 6,
        h: int = 5,
        unit: str = "none",
        thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),),
    ) -> None:
        """The latest value of a PromQL expression, one number per series."""
        panel = (
            self._head(stat.Panel(), title, description, PROMETHEUS, w, h)
            .with_target(self._prom_target(title, expr, legend, "A"))
            .unit(unit)
            .graph_mode(common.BigValueGraphMode.AREA)
            .color_mode(common.BigValueColorMode.VALUE)
            .justify_mode(common.BigValueJustifyMode.AUTO)
            .text_mode(common.BigValueTextMode.AUTO)
            .orientation(common.VizOrientation.AUTO)
            .reduce_options(
                common_builders.ReduceDataOptions().values(False).calcs(["lastNotNull"]).fields("")
            )
            .thresholds(_thresholds(*thresholds))
        )
        self.builder.with_panel(finished(panel, _stat_options))

    def _prom_target(
        self, title: str, expr: str, legend: str, ref_id: str
    ) -> prometheus_builders.Dataquery:
        self.spec.promql.append(PromQuery(panel=title, ref_id=ref_id, expr=expr))
        return (
            prometheus_builders.Dataquery()
            .expr(expr)
            .legend_format(legend or "__auto")
            .ref_id(ref_id)
            .range()
            .editor_mode(prometheus_model.QueryEditorMode.CODE)
            .datasource(PROMETHEUS)
        )

    # ------------------------------------------------------------------ output

    def to_dict(self) -> dict[str, Any]:
        board = self.builder.build()
        board.schema_version = SCHEMA_VERSION
        data: dict[str, Any] = json.loads(json.dumps(board, cls=JSONEncoder))
        return data


def _stat_options(panel: model.Panel) -> None:
    """Options Grafana 12's stat schema requires and the SDK's model does not know."""
    options = panel.options
    assert isinstance(options, stat_model.Options)
    panel.options = {
        **options.to_json(),
        "wideLayout": True,
        "showPercentChange": False,
        "percentChangeColorMode": "standard",
    }


def _filterable_columns(panel: model.Panel) -> None:
    """Every table column gets Grafana's column filter (the statement must be filterable)."""
    assert panel.field_config is not None
    panel.field_config.defaults.custom = common.TableFieldOptions(
        align=common.FieldTextAlignment.AUTO,
        inspect=True,
        filterable=True,
    )


def render(data: dict[str, Any]) -> str:
    """The committed form of a dashboard: stable key order, two-space indent, newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
