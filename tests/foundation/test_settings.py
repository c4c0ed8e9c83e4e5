"""One typed settings class: environment, constructor arguments winning, README in step."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from pydantic import ValidationError

from meterhouse.settings import Settings, settings_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_environment_is_read_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MH_PORT", "9999")
    monkeypatch.setenv("MH_CLICKHOUSE_URL", "http://u:p@db:8123/x")
    assert Settings().port == 9999
    assert Settings().clickhouse_url == "http://u:p@db:8123/x"
    assert Settings(port=1234).port == 1234


def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MH_CLICKHOUSE_URL", "postgres://x")
    with pytest.raises(ValidationError, match="MH_CLICKHOUSE_URL must start with"):
        Settings()


def test_default_store_is_embedded() -> None:
    assert Settings().clickhouse_url.startswith("chdb://")


def test_readme_lists_every_setting() -> None:
    spec = importlib.util.spec_from_file_location(
        "update_readme", ROOT / "scripts/update-readme.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text()
    assert module.render(readme) == readme, "run: python scripts/update-readme.py"
    assert settings_markdown() in readme
