"""Drill-down links: each resolves, under a Grafana sub-path, to a dashboard that exists,
keeps the time range, and only sets variables (and a panel) the target dashboard has."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

Dashboard = dict[str, Any]
SUB_PATH = "https://grafana.example/observability"
# Pairs a person follows: (from, to). Each must have at least one link.
EXPECTED = {
    ("meterhouse-overview", "meterhouse-usage-statement"),
    ("meterhouse-overview", "meterhouse-jobs"),
    ("meterhouse-overview", "meterhouse-models"),
    ("meterhouse-jobs", "meterhouse-events"),
    ("meterhouse-events", "meterhouse-jobs"),
    ("meterhouse-billing", "meterhouse-overview"),
    ("meterhouse-models", "meterhouse-usage-statement"),
    ("meterhouse-usage-statement", "meterhouse-overview"),
}


def links(board: Dashboard) -> Iterator[tuple[str, str]]:
    """(panel title, url) of every panel link and data link of a dashboard."""
    for panel in board["panels"]:
        for item in panel.get("links", []):
            yield panel["title"], item["url"]
        for override in panel.get("fieldConfig", {}).get("overrides", []):
            for prop in override["properties"]:
                if prop["id"] == "links":
                    yield from ((panel["title"], item["url"]) for item in prop["value"])


def test_links_resolve_to_existing_dashboards_and_variables(
    committed: dict[str, Dashboard],
) -> None:
    found: set[tuple[str, str]] = set()
    for uid, board in committed.items():
        slug = re.sub(r"[^a-z0-9]+", "-", board["title"].lower()).strip("-")
        here = f"{SUB_PATH}/d/{uid}/{slug}"
        for title, url in links(board):
            where = f"{uid} / {title}: {url}"
            assert not url.startswith(("/", "http")), f"{where}: not relative"
            target = urlsplit(urljoin(here, url))
            match = re.fullmatch(r"/observability/d/([\w-]+)", target.path)
            assert match, f"{where}: resolves to {target.path}, not a dashboard"
            other = committed.get(match.group(1))
            assert other is not None, f"{where}: no dashboard {match.group(1)}"
            assert "${__url_time_range}" in target.query, f"{where}: the time range is lost"
            names = {v["name"] for v in other["templating"].get("list", [])}
            panel_ids = {p["id"] for p in other["panels"]}
            for part in target.query.split("&"):
                kept = re.fullmatch(r"\$\{(\w+):queryparam\}", part)
                if kept:
                    assert kept.group(1) in names, f"{where}: target has no ${kept.group(1)}"
                    own = {v["name"] for v in board["templating"].get("list", [])}
                    assert kept.group(1) in own, f"{where}: this dashboard has no {part}"
                    continue
                if part == "${__url_time_range}":
                    continue
                (key, value), *_ = parse_qsl(part, keep_blank_values=True) or [(part, "")]
                if key == "viewPanel":
                    assert int(value) in panel_ids, f"{where}: target has no panel {value}"
                else:
                    assert key.startswith("var-") and key[4:] in names, f"{where}: {key}"
            found.add((uid, match.group(1)))
    assert not EXPECTED - found, f"missing drill-downs: {sorted(EXPECTED - found)}"
