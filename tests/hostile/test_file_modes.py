"""Issue 13, item 14 (file modes): the store and the spool are the owner's alone, every
directory 0700 and every file 0600, as `meterhouse run` leaves them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.durability.service import Service, batch

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow


def test_store_and_spool_files_are_private(tmp_path: Path) -> None:
    service = Service(tmp_path)
    try:
        service.start()
        assert service.post(batch("modes", 20)).status_code == 204
        service.wait_drained()
    finally:
        service.stop()
    loose = []
    for root, dirs, files in os.walk(service.data_dir):
        for name in dirs + files:
            path = Path(root) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            if stat.S_IMODE(mode) & 0o077:
                loose.append(f"{oct(stat.S_IMODE(mode))} {path.relative_to(service.data_dir)}")
    assert stat.S_IMODE(service.data_dir.stat().st_mode) == 0o700
    assert not loose, loose[:20]
