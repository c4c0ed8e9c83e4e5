"""Fixtures of the dashboards' tests: the committed JSON and the dashboards' specs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from meterhouse.dashboards import build_boards, default_directory
from meterhouse.dashboards.grafana import Board

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "grafana" / "dashboards"


@pytest.fixture(scope="session")
def boards() -> list[Board]:
    return build_boards()


@pytest.fixture(scope="session")
def committed(boards: list[Board]) -> dict[str, dict[str, Any]]:
    """uid -> the committed JSON of each dashboard the code generates."""
    assert default_directory() == DASHBOARD_DIR
    found: dict[str, dict[str, Any]] = {}
    for board in boards:
        path = DASHBOARD_DIR / board.spec.file_name
        assert path.is_file(), f"{path} is missing: run `meterhouse dashboards build`"
        found[board.spec.uid] = json.loads(path.read_text(encoding="utf-8"))
    return found


def shared_reference() -> Path:
    """shared/reference beside the clone, else $MH_SHARED_DIR/reference (as CI sets it)."""
    candidates = [REPO.parent / "shared"]
    if os.environ.get("MH_SHARED_DIR"):
        candidates.append(Path(os.environ["MH_SHARED_DIR"]))
    for candidate in candidates:
        if (candidate / "reference").is_dir():
            return candidate / "reference"
    pytest.fail(f"shared reference folder not found in {', '.join(map(str, candidates))}")
