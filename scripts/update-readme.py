"""Rewrite README.md's settings table from meterhouse.settings (run after adding a setting)."""

from __future__ import annotations

import re
from pathlib import Path

from meterhouse.settings import settings_markdown

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def render(text: str) -> str:
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    return pattern.sub(f"{START}\n{settings_markdown()}\n{END}", text)


if __name__ == "__main__":
    README.write_text(render(README.read_text()))
