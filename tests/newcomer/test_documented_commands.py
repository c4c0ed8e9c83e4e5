"""Item 3 of issue 15: every command README.md and docs/*.md show is one the CLI takes.

Parses each shown command line with the real command tree (no store needed): a required
option the docs leave out, a renamed flag or a removed command fails here. Running them
all against a store, with `meterhouse run` down and up: test_documented_commands_run.py.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from pathlib import Path

import click
import pytest

from meterhouse.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"```(?:bash|sh|console|shell)?\n(.*?)```", re.S)
_INLINE = re.compile(r"`((?:MH_\w+=\S+ )*meterhouse [^`]+)`")
_PLACEHOLDER = ("...", "…", "[", "|", "<")


def _command_lines(text: str) -> list[str]:
    found: list[str] = []
    for block in _FENCE.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for raw in joined.splitlines():
            words = raw.strip().removeprefix("$ ").split()
            while words and re.match(r"^MH_\w+=", words[0]):
                words.pop(0)
            shown = " ".join(words)
            if words[:1] == ["meterhouse"] and not any(m in shown for m in _PLACEHOLDER[:3]):
                found.append(shown)
    for span in _INLINE.findall(text):
        # Prose names a command (`meterhouse balance`); a span with options shows a use.
        if "--" in span and not any(mark in span for mark in _PLACEHOLDER):
            found.append(span)
    return found


def documented() -> list[tuple[str, str]]:
    shown = []
    for path in DOCS:
        for line in _command_lines(path.read_text()):
            shown.append((path.name, line))
    return shown


def _parse(args: list[str]) -> None:
    """Walk the command tree as click does when running, without invoking anything."""
    command: click.Command = cli
    ctx = cli.make_context("meterhouse", list(args), resilient_parsing=False)
    while isinstance(command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        ctx = sub.make_context(name, rest, parent=ctx)
        command = sub


def test_the_docs_show_many_commands() -> None:
    assert len(documented()) > 40


@pytest.mark.parametrize(("doc", "line"), documented())
def test_documented_command_parses(doc: str, line: str) -> None:
    words = shlex.split(line, comments=True)
    words = words[: words.index("|")] if "|" in words else words
    # --help, --version, or a group named on its own end parsing early: that parsed too.
    finished_early = (click.exceptions.Exit, click.exceptions.NoArgsIsHelpError)
    try:
        with contextlib.suppress(*finished_early):
            _parse(words[1:])
    except click.UsageError as exc:
        pytest.fail(f"{doc}: `{line}` -> {exc.format_message()}")
