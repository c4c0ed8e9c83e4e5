"""Putting a kept record (quarantine/ or dead-letter/) back into the spool, after the
operator fixed its cause: the drain then writes it like any other record, skipping
events already stored. Used by `meterhouse spool replay`, directly on a spool no service
owns, or through the owning service's POST /api/v1/spool/replay/{name}."""

from __future__ import annotations

from pathlib import Path

from exporters.spool import codec
from exporters.spool.log import HEADER, SegmentLog
from exporters.spool.quarantine import DEAD_LETTER, QUARANTINE, Kept, KeptFolder
from meterhouse.errors import MeterhouseError


class ReplayError(MeterhouseError):
    """The kept record cannot be replayed (unknown name, or it does not decode)."""


def folders(directory: Path) -> list[KeptFolder]:
    return [KeptFolder(directory, QUARANTINE), KeptFolder(directory, DEAD_LETTER)]


def find(directory: Path, name: str) -> Kept:
    for folder in folders(directory):
        found = folder.find(name)
        if found is not None:
            return found
    raise ReplayError(f"no kept record {name!r} in {directory}; see `meterhouse spool list`")


def payload_of(entry: Kept) -> bytes:
    """The record's payload: dead letters and records that did not decode are kept as the
    payload; damaged records (checksum, torn end) as the bytes found, header first."""
    data = entry.path.read_bytes()
    if entry.kind == QUARANTINE and not entry.reason.startswith("cannot be decoded"):
        length = HEADER.unpack_from(data)[0] if len(data) >= HEADER.size else 0
        if 0 < length <= len(data) - HEADER.size:
            return data[HEADER.size : HEADER.size + length]
        return data[HEADER.size :]
    return data


def replay(log: SegmentLog, name: str) -> Kept:
    """Append the kept record ``name`` to ``log`` (fsynced), then forget it."""
    entry = find(log.directory, name)
    payload = payload_of(entry)
    try:
        codec.decode(payload)
    except Exception as exc:  # damaged beyond use: keep it, say why
        raise ReplayError(
            f"{name} does not decode ({type(exc).__name__}: {exc}); it stays where it is"
        ) from exc
    written = log.write(payload)
    log.sync(written.end, generation=written.generation)
    KeptFolder(log.directory, entry.kind).remove(entry)
    return entry
