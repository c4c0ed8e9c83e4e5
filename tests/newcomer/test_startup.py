"""`meterhouse --help` and `--version` start fast: no heavy module is loaded for them.

Like globus-cli's test_lazy_sdk_import: a fresh interpreter runs the help, then reports
which modules got imported. The subprocess is the point (a fresh sys.modules).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import click
import pytest
from click.testing import CliRunner

from meterhouse.cli import LAZY, cli
from tests.support.cli import METERHOUSE

HEAVY = ("chdb", "pyarrow", "stripe", "pydantic", "clickhouse_connect", "genai_prices")

PROBE = """
import json, sys
from meterhouse.cli import cli
try:
    cli(sys.argv[1:], prog_name="meterhouse")
except SystemExit:
    pass
print(json.dumps(sorted(m.split(".")[0] for m in sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], []])
def test_help_and_version_import_no_heavy_module(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False
    )
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert "meterhouse" in done.stdout + done.stderr


def test_help_takes_under_half_a_second() -> None:
    # The best of a few runs: the machine is shared, one slow start is not the program's.
    timings = []
    for _ in range(5):
        began = time.perf_counter()
        done = subprocess.run([METERHOUSE, "--help"], capture_output=True, text=True, check=True)
        timings.append(time.perf_counter() - began)
        assert "Start here" in done.stdout
    assert min(timings) < 0.5, timings


def test_version_names_the_installed_package() -> None:
    from importlib.metadata import version

    shown = CliRunner().invoke(cli, ["--version"])
    assert shown.exit_code == 0 and version("meterhouse") in shown.output


def test_every_indexed_command_loads_and_every_command_is_indexed() -> None:
    ctx = click.Context(cli)
    for name in LAZY:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command), name
        assert command.name == name or name == "settings", name
    assert set(cli.list_commands(ctx)) == set(LAZY)


def test_a_mistyped_command_gets_a_suggestion() -> None:
    done = CliRunner().invoke(cli, ["acounts", "list"])
    assert done.exit_code == 2
    assert "Did you mean accounts" in done.output
