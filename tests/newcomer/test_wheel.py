"""The package installs anywhere: a wheel built from this tree carries the SQL migrations.

Builds the wheel the way a release would, installs it (with its dependencies, from the
package index or pip's cache) into a fresh virtual environment, and runs `migrate` and
`demo` from a directory that is not the source tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "clickhouse" / "schema"


def _run(
    args: list[str], cwd: Path, timeout: float, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MH_", "PYTHON", "VIRTUAL"))}
    return subprocess.run(
        args,
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_wheel_installs_into_a_fresh_venv_and_migrates_from_elsewhere(tmp_path: Path) -> None:
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        cwd=tmp_path,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("meterhouse-*.whl")
    shipped = {
        Path(name).name
        for name in zipfile.ZipFile(wheel).namelist()
        if name.startswith("meterhouse/store/schema/")
    }
    assert shipped >= {path.name for path in SCHEMA.glob("*.sql")}

    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, timeout=120)
    assert made.returncode == 0, made.stderr
    installed = _run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        cwd=tmp_path,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store = {"MH_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}", "MH_LOG_LEVEL": "warning"}
    meterhouse = str(venv / "bin" / "meterhouse")
    version = _run([meterhouse, "--version"], cwd=elsewhere, timeout=60)
    assert version.returncode == 0 and "0.1.0" in version.stdout, version.stderr
    migrated = _run([meterhouse, "migrate"], cwd=elsewhere, timeout=300, **store)
    assert migrated.returncode == 0, migrated.stderr
    assert f"applied {len(list(SCHEMA.glob('*.sql')))} migration(s)" in migrated.stdout
    demo = _run([meterhouse, "demo", "--days", "2"], cwd=elsewhere, timeout=600, **store)
    assert demo.returncode == 0, demo.stderr
    assert "Stored" in demo.stdout and "acme" in demo.stdout
    counted = _run(
        [meterhouse, "sql", "SELECT count() AS n FROM usage_events", "--format", "csv"],
        cwd=elsewhere,
        timeout=120,
        **store,
    )
    assert counted.returncode == 0, counted.stderr
    assert int(counted.stdout.splitlines()[1]) > 0
