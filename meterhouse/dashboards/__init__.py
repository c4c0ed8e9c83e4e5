"""Grafana dashboards as code: seven boards generated into grafana/dashboards/*.json.

``meterhouse dashboards build`` writes the JSON; ``--check`` only compares, so CI (and
tests/dashboards) fail when the committed files and the code disagree. Grafana provisions
the folder (grafana/provisioning/dashboards/meterhouse.yaml); docs/dashboards.md says what
each board shows and which Prometheus metrics it reads.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from meterhouse.dashboards import billing, events, jobs, models, overview, pipeline, usage
from meterhouse.dashboards.grafana import Board, render
from meterhouse.errors import MeterhouseError
from meterhouse.store.migrations import schema_dir

BUILDERS: tuple[Callable[[], Board], ...] = (
    overview.build,
    usage.build,
    jobs.build,
    events.build,
    models.build,
    billing.build,
    pipeline.build,
)


class DashboardsError(MeterhouseError):
    """The dashboards cannot be built or written where asked."""


def build_boards() -> list[Board]:
    boards = [build() for build in BUILDERS]
    for seen, board in enumerate(boards):
        for other in boards[:seen]:
            if board.spec.uid == other.spec.uid or board.spec.file_name == other.spec.file_name:
                raise DashboardsError(f"two dashboards share {board.spec.uid!r} or a file name")
    return boards


def rendered() -> dict[str, str]:
    """File name -> JSON text of every dashboard, exactly as committed."""
    return {board.spec.file_name: render(board.to_dict()) for board in build_boards()}


def default_directory() -> Path:
    """grafana/dashboards/ of the source tree (beside clickhouse/schema/)."""
    return schema_dir().parents[1] / "grafana" / "dashboards"


@dataclass(frozen=True)
class Difference:
    file_name: str
    problem: str  # "missing", "differs", "not generated"
    diff: str = ""


def compare(directory: Path) -> list[Difference]:
    """What differs between the generated dashboards and the JSON files in ``directory``."""
    wanted = rendered()
    found: list[Difference] = []
    for name, text in wanted.items():
        path = directory / name
        if not path.is_file():
            found.append(Difference(name, "missing"))
            continue
        current = path.read_text(encoding="utf-8")
        if current != text:
            diff = "".join(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    f"committed/{name}",
                    f"generated/{name}",
                    n=2,
                )
            )
            found.append(Difference(name, "differs", diff))
    for path in sorted(directory.glob("*.json")):
        if path.name not in wanted:
            found.append(Difference(path.name, "not generated"))
    return found


def write(directory: Path) -> list[Path]:
    """Write every dashboard into ``directory``; return the files that changed."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DashboardsError(f"cannot create {directory}: {exc}") from exc
    changed: list[Path] = []
    for name, text in rendered().items():
        path = directory / name
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise DashboardsError(f"cannot write {path}: {exc}") from exc
        changed.append(path)
    return changed
