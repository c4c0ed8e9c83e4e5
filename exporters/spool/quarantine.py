"""Where the spool keeps bytes it cannot drain: damaged records, and batches the store
refuses for good. Nothing acknowledged is ever just deleted; an operator looks at these
with `meterhouse spool list|inspect|replay` (docs/durability.md, "Disk faults and
damaged records").

Each kept item is two files in a folder of the spool directory: ``<name>.bin`` holds the
bytes exactly as they were, ``<name>.json`` says where they came from and why they are
here. The JSON is written last, so an item without one is an interrupted save: it is
written again (the name is derived from the item's place in the log, so saving twice
keeps one copy).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

QUARANTINE: Final = "quarantine"  # damaged records (checksum or format)
DEAD_LETTER: Final = "dead-letter"  # whole records the store refused for good


@dataclass(frozen=True)
class Kept:
    """One kept item: its bytes' file and what is known about them."""

    name: str
    kind: str  # QUARANTINE or DEAD_LETTER
    segment: int
    offset: int
    bytes: int
    reason: str
    kept_at: float
    path: Path

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


class KeptFolder:
    """One folder of kept items (the quarantine, or the dead letters)."""

    def __init__(self, spool_dir: Path, kind: str) -> None:
        self.kind = kind
        self.directory = spool_dir / kind

    def keep(self, segment: int, offset: int, data: bytes, reason: str) -> Kept:
        """Save ``data`` durably (fsynced) and return its entry; saving again is a no-op."""
        name = f"{segment:020d}-{offset:012d}"
        meta_path = self.directory / f"{name}.json"
        if meta_path.exists():
            return self._entry(meta_path)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        data_path = self.directory / f"{name}.bin"
        _write_synced(data_path, data)
        meta = {
            "segment": segment,
            "offset": offset,
            "bytes": len(data),
            "reason": reason,
            "kept_at": time.time(),
        }
        _write_synced(meta_path, json.dumps(meta, indent=1).encode())
        fsync_dir(self.directory)
        return self._entry(meta_path)

    def entries(self) -> list[Kept]:
        if not self.directory.is_dir():
            return []
        return [self._entry(path) for path in sorted(self.directory.glob("*.json"))]

    def count(self) -> int:
        return len(self.entries())

    def find(self, name: str) -> Kept | None:
        path = self.directory / f"{name}.json"
        return self._entry(path) if path.exists() else None

    def remove(self, entry: Kept) -> None:
        """Forget an item (after a successful replay)."""
        (self.directory / f"{entry.name}.json").unlink(missing_ok=True)
        entry.path.unlink(missing_ok=True)
        fsync_dir(self.directory)

    def _entry(self, meta_path: Path) -> Kept:
        meta = json.loads(meta_path.read_text())
        return Kept(
            name=meta_path.stem,
            kind=self.kind,
            segment=int(meta["segment"]),
            offset=int(meta["offset"]),
            bytes=int(meta["bytes"]),
            reason=str(meta["reason"]),
            kept_at=float(meta["kept_at"]),
            path=meta_path.with_suffix(".bin"),
        )


def _write_synced(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
