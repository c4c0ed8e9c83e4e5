"""Run the real `meterhouse` console script in a subprocess, and a service beside it."""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

METERHOUSE = shutil.which("meterhouse") or str(Path(sys.executable).parent / "meterhouse")


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MH_")}
    env.update({"MH_CLICKHOUSE_URL": f"chdb://{data_dir}", "MH_LOG_LEVEL": "warning"})
    env.update(extra)
    return env


def meterhouse(
    data_dir: Path, *args: str, timeout: float = 120, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [METERHOUSE, *args],
        env=cli_env(data_dir, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        check=False,
    )


@functools.cache
def _migrated_template() -> Path:
    """A chdb data directory `meterhouse migrate` filled, made once per pytest process."""
    root = Path(tempfile.mkdtemp(prefix="meterhouse-template-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MH_")}
    env.update(MH_CLICKHOUSE_URL=f"chdb://{root / 'data'}", MH_LOG_LEVEL="warning")
    done = subprocess.run(
        [METERHOUSE, "migrate"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"meterhouse migrate failed: {done.stderr}")
    return root / "data"


def copy_migrated_data_dir(target: Path) -> None:
    """Make ``target`` a migrated data directory: a copy of the template (its symlinks are
    relative), so that `meterhouse run` finds nothing to migrate and starts seconds sooner.
    `run` still checks the migrations on start; a new file would still be applied."""
    shutil.copytree(_migrated_template(), target, symlinks=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningService:
    url: str
    process: subprocess.Popen[str]
    data_dir: Path

    @property
    def admin_token(self) -> str:
        owner = json.loads((self.data_dir / "meterhouse-owner.json").read_text())
        token: str = owner["admin_token"]
        return token


@contextmanager
def running_service(
    data_dir: Path,
    *,
    timeout: float = 60,
    log_path: Path | None = None,
    host: str = "127.0.0.1",
    **env: str,
) -> Iterator[RunningService]:
    """`meterhouse run` on a free port (of the loopback address unless ``host`` says
    otherwise, e.g. 0.0.0.0); reached at 127.0.0.1; stopped (killed if need be) on exit.
    A ``data_dir`` that does not exist yet starts as a copy of a migrated one."""
    if not data_dir.exists() and "MH_CLICKHOUSE_URL" not in env:
        copy_migrated_data_dir(data_dir)
    port = free_port()
    log = open(log_path or data_dir.parent / f"service-{port}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [METERHOUSE, "run", "--host", host, "--port", str(port)],
        env=cli_env(data_dir, **env),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"meterhouse run exited with {process.returncode}; see {log.name}"
                )
            try:
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"meterhouse run not ready after {timeout}s; see {log.name}")
            time.sleep(0.2)
        yield RunningService(url, process, data_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
