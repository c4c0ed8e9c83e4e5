"""Fixtures of the hostile suite: stores, and small filesystems the tests can fill."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.durability.service import Service


def create_account(service: Service, account_id: str, time_zone: str = "UTC") -> None:
    """An account, through the service's admin SQL (the service owns the store)."""
    service.admin(
        "POST",
        "/api/v1/sql",
        {
            "sql": "INSERT INTO accounts (account_id, name, time_zone, plan) "
            f"VALUES ('{account_id}', '{account_id}', '{time_zone}', 'pro')",
            "write": True,
        },
    )


@dataclass
class SmallDisk:
    """A tmpfs of a chosen size (we run as root in CI); ``grow`` resizes it in place."""

    path: Path

    def grow(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def free_bytes(self) -> int:
        import os

        stat = os.statvfs(self.path)
        return stat.f_bavail * stat.f_frsize


def mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk | None]:
    """A 1.2 MB tmpfs, or None where this process may not mount one (the tests then inject
    the same fault at the write call instead)."""
    path = tmp_path / "small-disk"
    if not mount_tmpfs(path, "1200k"):
        yield None
        return
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
