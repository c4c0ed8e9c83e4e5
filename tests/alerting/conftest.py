"""The alerting tests share one real stack (see stack.py) for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.alerting.stack import Stack, alerting_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with alerting_stack(tmp_path_factory.mktemp("alerting")) as running:
        yield running
