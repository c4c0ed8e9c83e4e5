"""The spool's segment log: append-only files of checksummed records, group-committed.

Layout of the spool directory::

    LOCK                    held (flock) by the one process that owns the spool
    checkpoint              {"segment": N, "offset": B}: everything before is in the store
    00000000000000000001.seg, ...   segments, in order

A record is ``<u32 length><u32 crc32(payload)><payload>`` (little-endian). After a crash
the tail of the last segment may hold a record whose write had begun but whose fsync had
not returned: its length runs past the end of the file, or its CRC does not match. Such a
record was never acknowledged (acknowledgement waits for the fsync), so opening the log
cuts it off.

Group commit: ``append`` writes a record and returns its end position; ``sync(position)``
returns once that position is on disk. The first thread that needs an fsync does it for
everything written so far, and every thread waiting meanwhile is released by it: one fsync
per burst of requests, not one per request.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, NamedTuple

from meterhouse.errors import MeterhouseError
from meterhouse.logs import get_logger

log = get_logger(__name__)

HEADER: Final = struct.Struct("<II")
MAX_RECORD_BYTES: Final = 1 << 30
SUFFIX: Final = ".seg"
CHECKPOINT: Final = "checkpoint"
LOCK: Final = "LOCK"


class Position(NamedTuple):
    """A place in the log: segment number and byte offset in it."""

    segment: int
    offset: int


class SpoolError(MeterhouseError):
    """The spool cannot be used (locked by another process, unreadable, closed)."""


class SpoolFullError(SpoolError):
    """Appending would pass the spool's byte limit: answer 503 and let the client retry."""


@dataclass(frozen=True)
class Record:
    payload: bytes
    start: Position
    end: Position


def segment_name(number: int) -> str:
    return f"{number:020d}{SUFFIX}"


class SegmentLog:
    """Append, group-commit, read back and trim. Thread-safe."""

    def __init__(self, directory: Path, *, max_bytes: int, segment_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock(directory)
        self._append_lock = threading.Lock()
        self._durable_changed = threading.Condition()
        self._syncing = False
        self._closed = False
        self._checkpoint = self._read_checkpoint()
        self._sizes: dict[int, int] = {}
        for path in sorted(directory.glob(f"*{SUFFIX}")):
            number = int(path.stem)
            if number < self._checkpoint.segment:
                path.unlink()  # drained before the last stop, deleted here if it was not then
            else:
                self._sizes[number] = path.stat().st_size
        if not self._sizes:
            self._sizes[self._checkpoint.segment] = 0
            self._create(self._checkpoint.segment)
        self._active = max(self._sizes)
        self._repair_tail()
        self._fd = os.open(self._path(self._active), os.O_WRONLY | os.O_APPEND)
        self._written = Position(self._active, self._sizes[self._active])
        self._durable = self._written
        self.opened_end = self._written  # what a crash may have left past the checkpoint

    # -- state -----------------------------------------------------------------------

    @property
    def checkpoint(self) -> Position:
        return self._checkpoint

    @property
    def durable(self) -> Position:
        return self._durable

    @property
    def written(self) -> Position:
        return self._written

    def pending_bytes(self) -> int:
        """Bytes written after the checkpoint (not yet in the store)."""
        with self._append_lock:
            return self._pending_bytes()

    def _pending_bytes(self) -> int:
        total = sum(size for number, size in self._sizes.items() if number >= self._checkpoint[0])
        return total - self._checkpoint.offset

    def segments(self) -> int:
        return len(self._sizes)

    def is_full(self, margin: int = 0) -> bool:
        return self.pending_bytes() + margin > self.max_bytes

    # -- writing ---------------------------------------------------------------------

    def append(self, payload: bytes) -> Position:
        """Write one record (not yet durable: see ``sync``); return its end position."""
        if not payload or len(payload) > MAX_RECORD_BYTES:
            raise SpoolError(f"a spool record must be 1 byte to 1 GiB, not {len(payload)}")
        frame = HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        with self._append_lock:
            if self._closed:
                raise SpoolError("the spool is closed (the service is stopping)")
            if self._pending_bytes() + len(frame) > self.max_bytes:
                raise SpoolFullError(
                    f"the spool holds {self._pending_bytes()} bytes not yet in ClickHouse; "
                    f"its limit is {self.max_bytes} (MH_SPOOL_MAX_BYTES)"
                )
            if self._sizes[self._active] >= self.segment_bytes:
                self._rotate()
            _write_all(self._fd, frame)
            self._sizes[self._active] += len(frame)
            self._written = Position(self._active, self._sizes[self._active])
            return self._written

    def _rotate(self) -> None:
        """Start the next segment; the finished one is made durable first."""
        os.fdatasync(self._fd)
        os.close(self._fd)
        finished_end = Position(self._active, self._sizes[self._active])
        self._active += 1
        self._sizes[self._active] = 0
        self._create(self._active)
        self._fd = os.open(self._path(self._active), os.O_WRONLY | os.O_APPEND)
        with self._durable_changed:
            self._durable = max(self._durable, finished_end)
            self._durable_changed.notify_all()

    def sync(self, position: Position, timeout: float = 60.0) -> None:
        """Return once ``position`` is on disk (group commit: see the module docstring)."""
        with self._durable_changed:
            while self._durable < position:
                if self._syncing:
                    if not self._durable_changed.wait(timeout):
                        raise SpoolError("the spool's fsync did not finish in time")
                    continue
                self._syncing = True
                synced: Position | None = None
                self._durable_changed.release()
                try:
                    with self._append_lock:
                        goal = self._written
                        # A copy of the descriptor: a rotation may close the original.
                        fd = os.dup(self._fd)
                    try:
                        os.fdatasync(fd)
                    finally:
                        os.close(fd)
                    synced = goal
                finally:
                    self._durable_changed.acquire()
                    self._syncing = False
                    if synced is not None:
                        self._durable = max(self._durable, synced)
                    self._durable_changed.notify_all()

    def wait_durable_beyond(self, position: Position, timeout: float) -> bool:
        """Block until something past ``position`` is durable, or the timeout passes."""
        with self._durable_changed:
            if self._durable > position:
                return True
            self._durable_changed.wait(timeout)
            return self._durable > position

    # -- reading and trimming --------------------------------------------------------

    def read(self, start: Position, max_bytes: int) -> Iterator[Record]:
        """Durable records from ``start``, about ``max_bytes`` of them at most."""
        position = self._normalized(start)
        read = 0
        while read < max_bytes:
            durable = self._durable
            if position >= durable:
                return
            path = self._path(position.segment)
            limit = durable.offset if position.segment == durable.segment else None
            with open(path, "rb") as handle:
                handle.seek(position.offset)
                while read < max_bytes:
                    if limit is not None and handle.tell() >= limit:
                        return
                    record = _read_record(handle, position)
                    if record is None:
                        break
                    read += len(record.payload)
                    position = record.end
                    yield record
            next_position = self._normalized(position)
            if next_position == position:
                if position.segment != durable.segment:
                    log.error(
                        "unreadable spool record; skipping the rest of the segment",
                        segment=position.segment,
                        offset=position.offset,
                    )
                    position = Position(position.segment + 1, 0)
                    continue
                return
            position = next_position

    def peek(self, position: Position, size: int) -> bytes | None:
        """The first ``size`` payload bytes of the record at ``position`` (durable or
        not), or None when there is none."""
        position = self._normalized(position)
        if position >= self._written:
            return None
        try:
            with open(self._path(position.segment), "rb") as handle:
                handle.seek(position.offset + HEADER.size)
                head = handle.read(size)
        except FileNotFoundError:
            return None
        return head if len(head) == size else None

    def _normalized(self, position: Position) -> Position:
        """A position at the end of a finished segment is the start of the next one."""
        with self._append_lock:
            while position.segment < self._active and position.offset >= self._sizes.get(
                position.segment, 0
            ):
                position = Position(position.segment + 1, 0)
        return position

    def save_checkpoint(self, position: Position) -> None:
        """Record that everything before ``position`` is in the store; drop drained files."""
        position = self._normalized(position)
        tmp = self.directory / f"{CHECKPOINT}.tmp"
        with open(tmp, "w") as handle:
            json.dump({"segment": position.segment, "offset": position.offset}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.directory / CHECKPOINT)
        _fsync_dir(self.directory)
        with self._append_lock:
            self._checkpoint = position
            drained = [number for number in self._sizes if number < position.segment]
            for number in drained:
                del self._sizes[number]
        for number in drained:
            self._path(number).unlink(missing_ok=True)

    def close(self) -> None:
        with self._append_lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(OSError):
                os.fdatasync(self._fd)
            os.close(self._fd)
        with self._durable_changed:
            self._durable = max(self._durable, self._written)
            self._durable_changed.notify_all()
        self._lock_file.close()

    # -- opening ---------------------------------------------------------------------

    def _path(self, number: int) -> Path:
        return self.directory / segment_name(number)

    def _create(self, number: int) -> None:
        fd = os.open(self._path(number), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        _fsync_dir(self.directory)

    def _read_checkpoint(self) -> Position:
        path = self.directory / CHECKPOINT
        try:
            saved = json.loads(path.read_text())
            return Position(int(saved["segment"]), int(saved["offset"]))
        except FileNotFoundError:
            existing = sorted(int(p.stem) for p in self.directory.glob(f"*{SUFFIX}"))
            return Position(existing[0] if existing else 1, 0)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SpoolError(f"spool checkpoint {path} is unreadable: {exc}") from exc

    def _repair_tail(self) -> None:
        """Cut a torn or corrupt record off the end of the active segment."""
        path = self._path(self._active)
        start = self._checkpoint.offset if self._active == self._checkpoint.segment else 0
        position = Position(self._active, start)
        with open(path, "rb") as handle:
            handle.seek(start)
            while (record := _read_record(handle, position)) is not None:
                position = record.end
        size = self._sizes[self._active]
        if position.offset < size:
            log.warning(
                "spool: dropping a torn record at the end of the log (never acknowledged)",
                segment=self._active,
                offset=position.offset,
                bytes=size - position.offset,
            )
            with open(path, "r+b") as handle:
                handle.truncate(position.offset)
                handle.flush()
                os.fsync(handle.fileno())
            self._sizes[self._active] = position.offset


def _read_record(handle: BinaryIO, start: Position) -> Record | None:
    """The record at the handle's position, or None at the end or at a damaged record."""
    header = handle.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    length, crc = HEADER.unpack(header)
    if length == 0 or length > MAX_RECORD_BYTES:
        return None
    payload = handle.read(length)
    if len(payload) < length or zlib.crc32(payload) != crc:
        return None
    end = Position(start.segment, start.offset + HEADER.size + length)
    return Record(payload, start, end)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _LockFile:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _lock(directory: Path) -> _LockFile:
    fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise SpoolError(
            f"the spool {directory} is in use by another process; one process owns a spool "
            "(set MH_SPOOL_DIR to give each service its own)"
        ) from exc
    return _LockFile(fd)
