"""Name resolution, model listing and the model_prices rows of the catalog."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest

from meterhouse.rating import Catalog

SCHEMA = Path(__file__).resolve().parents[2] / "clickhouse" / "schema" / "0003_credits.sql"


@pytest.mark.parametrize(
    ("model", "provider", "expected"),
    [
        ("gpt-4o", "", ("openai", "gpt-4o")),
        ("gpt-4o-2024-08-06", "", ("openai", "gpt-4o")),
        ("GPT-4o-2024-08-06", "openai", ("openai", "gpt-4o")),
        ("openai/gpt-4o", "", ("openai", "gpt-4o")),
        ("openai/gpt-4o", "openai", ("openai", "gpt-4o")),
        ("gpt-4o-mini", "", ("openai", "gpt-4o-mini")),
        ("anthropic/claude-sonnet-4", "", ("anthropic", "claude-sonnet-4-0")),
        ("claude-sonnet-4-20250514", "", ("anthropic", "claude-sonnet-4-0")),
        ("claude-sonnet-4", "anthropic", ("anthropic", "claude-sonnet-4-0")),
        ("google/gemini-2.5-flash", "", ("google", "gemini-2.5-flash")),
        # OpenTelemetry gen_ai.system values, mapped by the catalog's provider match rules.
        ("gemini-2.5-flash", "gcp.vertex_ai", ("google", "gemini-2.5-flash")),
        ("gemini-2.5-flash", "gcp.gemini", ("google", "gemini-2.5-flash")),
        ("anthropic.claude-sonnet-4-20250514-v1:0", "aws.bedrock", ("aws", None)),
        # A provider the catalog does not know is ignored; a reseller keeps its own prices.
        ("gpt-4o", "az.ai.inference", ("openai", "gpt-4o")),
        ("openai/gpt-4o", "openrouter", ("openrouter", "openai/gpt-4o")),
        # The catalog's own id, which its match rules leave out.
        ("codestral", "mistral", ("mistral", "codestral")),
    ],
)
def test_resolves_names_as_platforms_send_them(
    catalog: Catalog, model: str, provider: str, expected: tuple[str, str | None]
) -> None:
    found = catalog.resolve(model, provider)
    assert found is not None
    assert found.provider == expected[0]
    if expected[1] is not None:
        assert found.model_id == expected[1]


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("acme-finetune-7b", ""),
        ("", ""),
        ("meta-llama/no-such-model", ""),
        # A known provider is trusted: not priced at another provider's rate.
        ("gpt-4o", "anthropic"),
    ],
)
def test_unknown_names(catalog: Catalog, model: str, provider: str) -> None:
    assert catalog.resolve(model, provider) is None


def test_every_listed_model_resolves_to_itself(catalog: Catalog) -> None:
    for model in catalog.models():
        found = catalog.resolve(model.model_id, model.provider)
        assert found is not None
        assert (found.provider, found.model_id) == (model.provider, model.model_id)


def test_models_filters(catalog: Catalog) -> None:
    everything = catalog.models()
    assert len(everything) > 1_000
    openai = catalog.models("openai")
    assert openai and {m.provider for m in openai} == {"openai"}
    assert catalog.models("gcp.vertex_ai") == catalog.models("google")
    assert catalog.models("no-such-provider") == []
    found = catalog.models("openai", "gpt-4o-2024-08-06")  # matches by the catalog's rules
    assert [m.model_id for m in found] == ["gpt-4o"]
    assert "$2.5/input MTok" in found[0].price_summary(datetime(2026, 11, 5, tzinfo=UTC))
    assert all(
        "sonnet" in m.model_id or "sonnet" in m.name.lower()
        for m in catalog.models(search="Sonnet")
    )


def test_version_names_package_and_data(catalog: Catalog) -> None:
    assert re.fullmatch(
        rf"genai-prices-{re.escape(genai_prices.__version__)}-[0-9a-f]{{12}}", catalog.version
    )
    assert Catalog.load().version == catalog.version


def schema_columns() -> list[str]:
    table = SCHEMA.read_text().split("CREATE TABLE IF NOT EXISTS model_prices", 1)[1]
    body = table.split("(", 1)[1].split("\n)\n", 1)[0]
    return [line.split()[0] for line in body.strip().splitlines() if line.strip()]


def test_price_rows_fit_the_table(catalog: Catalog) -> None:
    synced = datetime(2026, 11, 26, tzinfo=UTC)
    rows = catalog.price_rows(synced)
    assert list(rows) == schema_columns()
    count = len(rows["model_id"])
    assert count >= len(catalog.models())
    assert all(len(column) == count for column in rows.values())
    keys = list(zip(rows["provider"], rows["model_id"], rows["effective_from"], strict=True))
    assert len(set(keys)) == count  # the table's ORDER BY key is unique
    for index in range(count):
        start, end = rows["effective_from"][index], rows["effective_to"][index]
        assert start.tzinfo is not None
        assert end is None or end > start
        for column in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok"):
            value = rows[column][index]
            assert value is None or (
                isinstance(value, Decimal) and value.as_tuple().exponent == -12
            )
    assert set(rows["catalog_version"]) == {catalog.version}
    assert set(rows["synced_at"]) == {synced}


def rows_for(catalog: Catalog, provider: str, model_id: str) -> list[dict[str, object]]:
    rows = catalog.price_rows(datetime(2026, 11, 26, tzinfo=UTC))
    return [
        {name: column[i] for name, column in rows.items()}
        for i in range(len(rows["model_id"]))
        if (rows["provider"][i], rows["model_id"][i]) == (provider, model_id)
    ]


def test_price_history_becomes_periods(catalog: Catalog) -> None:
    # o3's price was cut on 2025-06-10.
    before, after = rows_for(catalog, "openai", "o3")
    assert before["effective_from"] == datetime(1970, 1, 1, tzinfo=UTC)
    assert before["effective_to"] == after["effective_from"] == datetime(2025, 6, 10, tzinfo=UTC)
    assert after["effective_to"] is None
    assert (before["input_mtok"], after["input_mtok"]) == (Decimal(10), Decimal(2))


def test_tiers_and_time_of_day_go_to_json(catalog: Catalog) -> None:
    (sonnet,) = rows_for(catalog, "anthropic", "claude-sonnet-4-5")
    assert sonnet["input_mtok"] == Decimal(3)
    tiers = json.loads(str(sonnet["tiers"]))
    assert tiers["tiered"]["input_mtok"] == {
        "base": "3",
        "tiers": [{"above_input_tokens": 200000, "price": "6"}],
    }
    (deepseek,) = rows_for(catalog, "deepseek", "deepseek-chat")
    windows = json.loads(str(deepseek["tiers"]))["time_of_day"]
    assert windows[0]["start_time"] == "00:30:00+00:00"
    assert windows[0]["prices"]["input_mtok"] == "0.27"
    (plain,) = rows_for(catalog, "mistral", "mistral-large")
    assert plain["tiers"] == ""
