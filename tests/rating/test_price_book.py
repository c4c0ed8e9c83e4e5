"""The price book file: the shipped one loads, a malformed one says what is wrong."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from meterhouse.errors import ConfigError
from meterhouse.rating import PriceBook, PriceBookError
from meterhouse.rating.price_book import PLANS
from meterhouse.records import JOB_KINDS
from tests.rating.helpers import TEST_BOOK


def test_shipped_book_loads(shipped_book: PriceBook) -> None:
    assert shipped_book.version
    assert set(PLANS) <= set(shipped_book.plan_credits_per_usd)
    assert set(shipped_book.job_credits_per_second) == set(JOB_KINDS)
    assert shipped_book.source.endswith("price_book.toml")
    for value in (
        *shipped_book.plan_credits_per_usd.values(),
        *shipped_book.job_credits_per_second.values(),
        shipped_book.api_credits_per_call,
    ):
        assert isinstance(value, Decimal)


def test_lookups(book: PriceBook) -> None:
    assert book.credits_per_usd("pro") == Decimal(110)
    assert book.credits_per_usd("gold") is None
    assert book.job_rate("asset") == Decimal("0.05")
    acme = book.terms("acme")
    assert acme.discount_factor == Decimal("0.8")
    assert acme.override("model", "gpt-4o", "input") == Decimal("0.0002")
    assert acme.override("model", "gpt-4o", "output") is None
    assert acme.override("api", "/v1/export", "call") == Decimal("0.5")
    assert book.terms("nobody").override("model", "gpt-4o", "input") is None
    assert book.terms("nobody").discount_factor == 1


def test_bare_numbers_are_read_exactly_not_as_floats() -> None:
    text = TEST_BOOK.replace('credits_per_call = "0.001"', "credits_per_call = 0.1")
    text = text.replace('credits_per_usd = "110"', "credits_per_usd = 110")
    book = PriceBook.parse(text)
    assert book.api_credits_per_call == Decimal("0.1")  # not 0.1000000000000000055511151231257827
    assert book.credits_per_usd("pro") == Decimal(110)


def test_load_from_path(tmp_path: Path) -> None:
    path = tmp_path / "book.toml"
    path.write_text(TEST_BOOK)
    assert PriceBook.load(path).source == str(path)
    assert PriceBook.load(str(path)).version == "test-1"


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        (
            'credits_per_usd = "110"',
            'credits_per_usd = "1l0"',
            "plans.pro.credits_per_usd",
            "not a decimal",
        ),
        (
            'credits_per_usd = "110"',
            'credits_per_usd = "0"',
            "plans.pro.credits_per_usd",
            "above 0",
        ),
        (
            'credits_per_usd = "110"',
            "credits_per_usd = true",
            "plans.pro.credits_per_usd",
            "decimal string",
        ),
        (
            'credits_per_usd = "110"',
            'credits_per_usd = "NaN"',
            "plans.pro.credits_per_usd",
            "finite",
        ),
        (
            'credits_per_usd = "110"',
            'credit_per_usd = "110"',
            "plans.pro.credits_per_usd",
            "missing",
        ),
        ("[plans.pro]", "[plans.prof]", "plans", "missing plan(s) pro"),
        ('asset = "0.05"', 'asset = "-0.05"', "jobs.credits_per_second.asset", "at least 0"),
        (
            'asset = "0.05"',
            'asset = "0.05"\ncron = "1"',
            "jobs.credits_per_second.cron",
            "not a known key",
        ),
        ('version = "test-1"', 'version = ""', "version", "non-empty string"),
        ('version = "test-1"', 'versoin = "test-1"', "version", "missing"),
        (
            'discount_percent = "20"',
            'discount_percent = "120"',
            'accounts."acme".discount_percent',
            "at most 100",
        ),
        ('kind = "job"', 'kind = "jobs"', 'accounts."acme".overrides #2.kind', "model, job, api"),
        ('item = "asset"', 'item = "cron"', 'accounts."acme".overrides #2.item', "job kind"),
        (
            'usage_type = "input"',
            'usage_type = "tokens"',
            'accounts."acme".overrides #1.usage_type',
            "one of",
        ),
        (
            'credits_per_unit = "0.5"',
            'credits_per_unit = "½"',
            'accounts."acme".overrides #3.credits_per_unit',
            "not a decimal",
        ),
        (
            'credits_per_unit = "0.03"\n',
            "",
            'accounts."acme".overrides #2.credits_per_unit',
            "missing",
        ),
        (
            'credits_per_call = "0.001"',
            'credits_per_call = "0.001"\ncredit_per_call = "1"',
            "api.credit_per_call",
            "not a known key",
        ),
        (
            '[plans.free]\ncredits_per_usd = "125"',
            '[plans]\nfree = "125"',
            "plans.free",
            "must be a table",
        ),
        ("[plans.free]", "plans = 3\n[plans.free]", "", "not valid TOML"),
    ],
)
def test_malformed_book_names_file_key_and_problem(
    tmp_path: Path, old: str, new: str, key: str, problem: str
) -> None:
    assert old in TEST_BOOK
    path = tmp_path / "price_book.toml"
    path.write_text(TEST_BOOK.replace(old, new, 1))
    with pytest.raises(PriceBookError) as raised:
        PriceBook.load(path)
    message = str(raised.value)
    assert message.startswith(f"price book {path}")
    assert key in message
    assert problem in message
    assert isinstance(raised.value, ConfigError)


def test_duplicate_override() -> None:
    text = TEST_BOOK + (
        '\n[[accounts.wild.overrides]]\nkind = "model"\nitem = "*"\nusage_type = "*"\n'
        'credits_per_unit = "1"\n'
    )
    with pytest.raises(PriceBookError, match=r'accounts."wild".overrides #2: repeats'):
        PriceBook.parse(text, source="dup.toml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PriceBookError, match=r"nope\.toml: cannot be read"):
        PriceBook.load(tmp_path / "nope.toml")
