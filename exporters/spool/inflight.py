"""The drain batch being written, noted durably before its first insert.

A replay after kill -9 must collect exactly the same records and write them under the same
token (docs/durability.md, "Exactly once"), so the batch's bounds in the log, when its
oldest record was accepted, and its claim round are saved before the writer is called.

The file is written in place, never by rename: a drain must be able to note its batch on
a full disk, since only the drain (checkpoint, then deleting drained segments) gives the
space back. It holds two checksummed slots; each save overwrites the older one and
fsyncs, so a torn write spoils that slot alone and the other still holds the previous
batch (whose end is at or before the checkpoint, so it is then no longer a replay).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from exporters.spool.log import Position, SpoolError
from exporters.spool.quarantine import fsync_dir

INFLIGHT: Final = "inflight"
_MAGIC: Final = 0x4D48_4946  # "MHIF"
_FIELDS: Final = struct.Struct("<IQQQQQqQ")  # magic, seq, start, end, oldest ms, round
_SLOT: Final = struct.Struct(f"<{_FIELDS.size}sI")


@dataclass(frozen=True)
class Inflight:
    """A drain batch: its bounds in the log, when its oldest record was accepted, and how
    many times it withdrew its claims (each round claims under a name of its own)."""

    start: Position
    end: Position
    oldest_ms: int
    claim_round: int = 0

    def token(self, spool_id: str) -> str:
        """The batch's name: the engine's deduplication token of its inserts."""
        return (
            f"{spool_id}:{self.start.segment}.{self.start.offset}"
            f"-{self.end.segment}.{self.end.offset}"
        )


class InflightFile:
    def __init__(self, directory: Path) -> None:
        self.path = directory / INFLIGHT
        self._seq = 0
        if not self.path.exists():
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, bytes(2 * _SLOT.size))
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_dir(directory)
        saved = _read(self.path)
        if saved is not None:
            self._seq = saved[0]

    def save(self, batch: Inflight) -> None:
        """Note ``batch`` durably (overwrites the older slot, then fdatasync)."""
        self._seq += 1
        fields = _FIELDS.pack(
            _MAGIC,
            self._seq,
            *batch.start,
            *batch.end,
            batch.oldest_ms,
            batch.claim_round,
        )
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, _SLOT.pack(fields, zlib.crc32(fields)), (self._seq % 2) * _SLOT.size)
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def load(self) -> Inflight | None:
        saved = _read(self.path)
        return saved[1] if saved is not None else None


def read_inflight(directory: Path) -> Inflight | None:
    """The last batch noted in a spool directory (for tools and tests; no lock taken)."""
    path = directory / INFLIGHT
    if not path.exists():
        return None
    saved = _read(path)
    return saved[1] if saved is not None else None


def _read(path: Path) -> tuple[int, Inflight] | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpoolError(f"cannot read {path}: {exc}") from exc
    slots = []
    for number in (0, 1):
        chunk = data[number * _SLOT.size : (number + 1) * _SLOT.size]
        if len(chunk) < _SLOT.size:
            continue
        fields, crc = _SLOT.unpack(chunk)
        if zlib.crc32(fields) != crc:
            continue
        magic, seq, s_seg, s_off, e_seg, e_off, oldest, claim_round = _FIELDS.unpack(fields)
        if magic == _MAGIC:
            batch = Inflight(Position(s_seg, s_off), Position(e_seg, e_off), oldest, claim_round)
            slots.append((seq, batch))
    return max(slots, key=lambda slot: slot[0]) if slots else None
