"""The spool's segment log: append-only files of checksummed records, group-committed.

Layout of the spool directory::

    LOCK                    held (flock) by the one process that owns the spool
    checkpoint              everything before it is in the store (two slots, see below)
    00000000000000000001.seg, ...   segments, in order
    quarantine/             damaged records, kept (exporters/spool/quarantine.py)

A record is ``<u32 length><u32 crc32(payload)><payload>`` (little-endian).

Group commit: ``write`` appends a record and returns its end position; ``sync(position)``
returns once that position is on disk. The first thread that needs an fsync does it for
everything written so far, and every thread waiting meanwhile is released by it: one fsync
per burst of requests, not one per request.

Disk faults. Acknowledged means on disk, so a fault must never leave bytes that later
records are appended after, nor make an acknowledged record unreadable:

* A failed or partial ``write`` (a full disk) is cut off again before anything else is
  appended; if even that fails the log is fenced: every append is refused until the cut
  succeeds. The request gets a SpoolError (503) and was not acknowledged.
* A failed fsync leaves what it covered in doubt: everything after the last successful
  fsync is cut off and every request waiting for it gets a SpoolError (503).
* A damaged record (a checksum that fails, a length that cannot be) costs that record
  alone: the reader resynchronises on the next valid record, and the damaged bytes are
  moved to ``quarantine/`` with their position, logged at error and counted. A damaged
  tail found at start (a write torn by a crash, or damage to the last record) is kept
  in the quarantine too before it is cut off: nothing is dropped unseen.
* The checkpoint is rewritten in place (two checksummed slots, alternately), so it can
  be saved on a full disk, and drained segments can always be deleted; on a full disk a
  drained active segment is retired early so that its space comes back.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, NamedTuple

from exporters.spool.quarantine import QUARANTINE, Kept, KeptFolder, fsync_dir
from meterhouse.errors import MeterhouseError
from meterhouse.logs import get_logger

log = get_logger(__name__)

HEADER: Final = struct.Struct("<II")
MAX_RECORD_BYTES: Final = 1 << 30
SUFFIX: Final = ".seg"
CHECKPOINT: Final = "checkpoint"
LOCK: Final = "LOCK"
# A checkpoint slot: magic, sequence, segment, offset, crc32 of the fields before it.
SLOT: Final = struct.Struct("<IQQQI")
SLOT_MAGIC: Final = 0x4D48434B  # "MHCK"
DISK_HEADROOM: Final = 64 * 1024  # free bytes, past the refused record, that clear a disk fault


class Position(NamedTuple):
    """A place in the log: segment number and byte offset in it."""

    segment: int
    offset: int


class Written(NamedTuple):
    """Where an appended record ends, and the log's rollback generation when it was written
    (``sync`` needs it to tell a record cut off by a failed fsync from a later one)."""

    end: Position
    generation: int


class SpoolError(MeterhouseError):
    """The spool cannot be used (locked by another process, unreadable, closed, disk fault)."""


class SpoolFullError(SpoolError):
    """Appending would pass the spool's byte limit: answer 503 and let the client retry."""


@dataclass(frozen=True)
class Record:
    payload: bytes
    start: Position
    end: Position


def segment_name(number: int) -> str:
    return f"{number:020d}{SUFFIX}"


HeadCheck = Callable[[bytes], bool]
"""Whether a record's first payload bytes can start a record (cheap resync filter)."""


class SegmentLog:
    """Append, group-commit, read back and trim. Thread-safe."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        segment_bytes: int,
        head_check: HeadCheck | None = None,
        on_quarantine: Callable[[Kept], None] | None = None,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.head_check = head_check
        self.on_quarantine = on_quarantine
        self.quarantine = KeptFolder(directory, QUARANTINE)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_file = _lock(directory)
        self._append_lock = threading.Lock()
        self._checkpoint_lock = threading.Lock()
        self._durable_changed = threading.Condition()
        self._syncing = False
        self._closed = False
        self._fence: int | None = None  # size the active segment must be cut back to
        self._disk_error: str | None = None
        self._disk_needed = 0
        self._retire_when_drained = False
        self._generation = 0
        self._rollbacks: list[tuple[int, Position]] = []
        self._quarantined: set[Position] = set()
        self._checkpoint, self._checkpoint_seq = self._read_checkpoint()
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

    def health(self) -> str | None:
        """None while appends can succeed; else why they are refused (for /readyz).

        A disk fault clears itself here once the fence is cut and the disk has room for
        the record that was refused, so a service taken out of rotation comes back.
        """
        with self._append_lock:
            if self._closed:
                return "ingest spool closed (the service is stopping)"
            if self._fence is not None and not self._cut_fence():
                return f"ingest spool disk fault: {self._disk_error}; appends are fenced"
            if self._disk_error is None:
                return None
            try:
                stat = os.statvfs(self.directory)
            except OSError as exc:
                return f"ingest spool disk fault: {exc}"
            free = stat.f_bavail * stat.f_frsize
            if free >= self._disk_needed + DISK_HEADROOM:
                self._disk_error = None
                return None
            return (
                f"ingest spool disk fault: {self._disk_error}; {free} bytes free in "
                f"{self.directory}, a batch needs {self._disk_needed}"
            )

    # -- writing ---------------------------------------------------------------------

    def append(self, payload: bytes) -> Position:
        """Write one record (not yet durable: see ``sync``); return its end position."""
        return self.write(payload).end

    def write(self, payload: bytes) -> Written:
        """Write one record (not yet durable: pass the answer to ``sync``)."""
        if not payload or len(payload) > MAX_RECORD_BYTES:
            raise SpoolError(f"a spool record must be 1 byte to 1 GiB, not {len(payload)}")
        frame = HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        retire = False
        try:
            with self._append_lock:
                if self._closed:
                    raise SpoolError("the spool is closed (the service is stopping)")
                if self._fence is not None and not self._cut_fence():
                    raise SpoolError(
                        f"the spool disk failed ({self._disk_error}) and the partial write "
                        "could not be cut off yet; nothing is appended until it is"
                    )
                if self._pending_bytes() + len(frame) > self.max_bytes:
                    raise SpoolFullError(
                        f"the spool holds {self._pending_bytes()} bytes not yet in ClickHouse; "
                        f"its limit is {self.max_bytes} (MH_SPOOL_MAX_BYTES)"
                    )
                try:
                    if self._sizes[self._active] >= self.segment_bytes:
                        self._rotate()
                    self._append_frame(frame)
                except OSError as exc:
                    retire = exc.errno in (errno.ENOSPC, errno.EDQUOT)
                    self._disk_error = f"{type(exc).__name__}: {exc}"
                    self._disk_needed = len(frame)
                    raise SpoolError(
                        f"the spool could not write the batch ({exc}); nothing was kept, "
                        "send it again later"
                    ) from exc
                self._disk_error = None
                self._written = Position(self._active, self._sizes[self._active])
                return Written(self._written, self._generation)
        finally:
            if retire:
                self._retire_drained()

    def _append_frame(self, frame: bytes) -> None:
        """Append ``frame`` whole, or leave the segment as it was (or fenced)."""
        before = self._sizes[self._active]
        try:
            _write_all(self._fd, frame)
        except OSError:
            self._fence = before
            self._cut_fence()
            raise
        self._sizes[self._active] = before + len(frame)

    def _cut_fence(self) -> bool:
        """Cut the active segment back to the fence; True when done (or none was set)."""
        if self._fence is None:
            return True
        try:
            os.ftruncate(self._fd, self._fence)
        except OSError as exc:
            log.error(
                "spool: cannot cut off a failed write; appends stay refused",
                segment=self._active,
                offset=self._fence,
                error=str(exc),
            )
            return False
        self._sizes[self._active] = self._fence
        self._fence = None
        return True

    def _rotate(self) -> None:
        """Start the next segment; the finished one is made durable first. On an error
        nothing changes (the new file is removed again)."""
        following = self._active + 1
        self._create(following)
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            self._path(following).unlink(missing_ok=True)
            self._roll_back_locked(exc)
            raise
        fd = os.open(self._path(following), os.O_WRONLY | os.O_APPEND)
        os.close(self._fd)
        self._fd = fd
        finished_end = Position(self._active, self._sizes[self._active])
        self._active = following
        self._sizes[following] = 0
        self._written = Position(following, 0)
        with self._durable_changed:
            self._durable = max(self._durable, finished_end)
            self._durable_changed.notify_all()

    def _retire_drained(self) -> None:
        """On a full disk: when everything written is drained, start a new segment so the
        drained one is deleted by the next checkpoint (now, if there is nothing to wait
        for). Otherwise the next checkpoint that catches up does it."""
        with self._append_lock:
            self._retire_when_drained = True
            if self._normalized_locked(self._checkpoint) != self._written:
                return
            if self._sizes[self._active] == 0:
                self._retire_when_drained = False
                return
            try:
                self._rotate()
            except OSError:
                return
            self._retire_when_drained = False
            target = self._written
        self.save_checkpoint(target)

    def sync(self, position: Position, timeout: float = 60.0, generation: int = 0) -> None:
        """Return once ``position`` is on disk (group commit: see the module docstring).

        Raises SpoolError when a failed fsync cut the record off: it was not kept.
        """
        with self._durable_changed:
            while True:
                self._raise_if_cut(position, generation)
                if self._durable >= position:
                    return
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
                        synced = goal
                    except OSError as exc:
                        self._roll_back(exc)
                    finally:
                        os.close(fd)
                finally:
                    self._durable_changed.acquire()
                    self._syncing = False
                    if synced is not None:
                        self._durable = max(self._durable, synced)
                    self._durable_changed.notify_all()

    def _raise_if_cut(self, position: Position, generation: int) -> None:
        for rolled, kept_to in self._rollbacks:
            if rolled > generation and position > kept_to:
                raise SpoolError(
                    "the spool's fsync failed before this batch was on disk; nothing was "
                    "kept, send it again"
                )

    def _roll_back(self, exc: OSError) -> None:
        with self._append_lock:
            self._roll_back_locked(exc)

    def _roll_back_locked(self, exc: OSError) -> None:
        """A failed fsync: what it covered may never reach the disk (the kernel forgets the
        error once reported), so everything after the last good fsync is cut off."""
        kept_to = self._durable
        offset = kept_to.offset if kept_to.segment == self._active else 0
        log.error(
            "spool: fsync failed; cutting off the batches it covered (not acknowledged)",
            segment=self._active,
            offset=offset,
            bytes=self._sizes[self._active] - offset,
            error=str(exc),
        )
        self._disk_error = f"{type(exc).__name__}: {exc}"
        self._fence = offset
        self._cut_fence()
        self._generation += 1
        self._rollbacks.append((self._generation, kept_to))
        self._written = Position(self._active, offset)

    def wait_durable_beyond(self, position: Position, timeout: float) -> bool:
        """Block until something past ``position`` is durable, or the timeout passes."""
        with self._durable_changed:
            if self._durable > position:
                return True
            self._durable_changed.wait(timeout)
            return self._durable > position

    # -- reading and trimming --------------------------------------------------------

    def read(self, start: Position, max_bytes: int) -> Iterator[Record]:
        """Durable records from ``start``, about ``max_bytes`` of them at most. Damaged
        records are moved to the quarantine and skipped (raises SpoolError when the
        quarantine cannot be written: the drain then stops there and retries)."""
        position = self._normalized(start)
        read = 0
        yielded = False
        while read < max_bytes:
            durable = self._durable
            if position >= durable:
                return
            with self._append_lock:
                size = self._sizes.get(position.segment, 0)
            limit = durable.offset if position.segment == durable.segment else size
            with open(self._path(position.segment), "rb") as handle:
                while read < max_bytes and position.offset < limit:
                    handle.seek(position.offset)
                    record = _read_record(handle, position, limit)
                    if record is None:
                        try:
                            position = self._skip_damage(handle, position, limit)
                        except SpoolError:
                            if yielded:
                                return  # drain what came before; the next read raises
                            raise
                        continue
                    read += len(record.payload)
                    position = record.end
                    yielded = True
                    yield record
            if read >= max_bytes:
                return
            next_position = self._normalized(position)
            if next_position == position:
                return
            position = next_position

    def _skip_damage(self, handle: BinaryIO, start: Position, limit: int) -> Position:
        """Quarantine the damaged bytes from ``start`` to the next valid record (or
        ``limit``) and return where reading goes on."""
        handle.seek(start.offset)
        data = handle.read(limit - start.offset)
        resume = _next_valid(data, 1, self.head_check)
        end = start.offset + (resume if resume is not None else len(data))
        self.keep_damaged(start, data[: end - start.offset], "checksum or length mismatch")
        return Position(start.segment, end)

    def keep_damaged(self, start: Position, data: bytes, reason: str) -> None:
        """Move a damaged record's bytes to the quarantine (once), log and count it."""
        if start in self._quarantined:
            return
        try:
            kept = self.quarantine.keep(start.segment, start.offset, data, reason)
        except OSError as exc:
            raise SpoolError(
                f"a damaged spool record at segment {start.segment} offset {start.offset} "
                f"cannot be quarantined ({exc}); the drain waits here until it can"
            ) from exc
        self._quarantined.add(start)
        log.error(
            "spool: damaged record moved to the quarantine; the records around it drain on",
            segment=start.segment,
            offset=start.offset,
            bytes=len(data),
            reason=reason,
            file=str(kept.path),
        )
        if self.on_quarantine is not None:
            self.on_quarantine(kept)

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
            return self._normalized_locked(position)

    def _normalized_locked(self, position: Position) -> Position:
        while position.segment < self._active and position.offset >= self._sizes.get(
            position.segment, 0
        ):
            position = Position(position.segment + 1, 0)
        return position

    def save_checkpoint(self, position: Position) -> None:
        """Record that everything before ``position`` is in the store; drop drained files.

        The checkpoint is rewritten in place (no new blocks), so this works on a full disk.
        """
        if self._retire_when_drained and self._normalized(position) == self._written:
            with self._append_lock, contextlib.suppress(OSError):
                if self._sizes[self._active] > 0:
                    self._rotate()
                    self._retire_when_drained = False
        position = self._normalized(position)
        with self._checkpoint_lock:
            position = max(position, self._checkpoint)
            seq = self._checkpoint_seq + 1
            _write_slot(self.directory / CHECKPOINT, seq, position)
            self._checkpoint_seq = seq
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
        fsync_dir(self.directory)

    def _read_checkpoint(self) -> tuple[Position, int]:
        """The saved checkpoint and its sequence number; an old JSON checkpoint (or none)
        is converted to the two-slot file here, while the disk has room for it."""
        path = self.directory / CHECKPOINT
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            existing = sorted(int(p.stem) for p in self.directory.glob(f"*{SUFFIX}"))
            position, seq = Position(existing[0] if existing else 1, 0), 0
        except OSError as exc:
            raise SpoolError(f"spool checkpoint {path} is unreadable: {exc}") from exc
        else:
            if data.startswith(b"{"):
                try:
                    saved = json.loads(data)
                    position, seq = Position(int(saved["segment"]), int(saved["offset"])), 0
                except (ValueError, KeyError, TypeError) as exc:
                    raise SpoolError(f"spool checkpoint {path} is unreadable: {exc}") from exc
            else:
                slots = [_parse_slot(data[n * SLOT.size : (n + 1) * SLOT.size]) for n in (0, 1)]
                valid = [slot for slot in slots if slot is not None]
                if not valid:
                    raise SpoolError(
                        f"spool checkpoint {path} is damaged (both slots fail their "
                        "checksum); see docs/durability.md, 'Disk faults and damaged records'"
                    )
                seq, position = max(valid)
                return position, seq
        try:
            _create_checkpoint(path, position)
        except OSError as exc:
            raise SpoolError(f"cannot write the spool checkpoint {path}: {exc}") from exc
        return position, 1

    def _repair_tail(self) -> None:
        """Keep a torn or damaged tail of the active segment in the quarantine, then cut it
        off. Damage followed by valid records is left for ``read`` (it quarantines it and
        drains the rest)."""
        path = self._path(self._active)
        start = self._checkpoint.offset if self._active == self._checkpoint.segment else 0
        data = path.read_bytes()[start:]
        offset = 0
        while offset < len(data):
            if _valid_at(data, offset, None):
                offset += HEADER.size + HEADER.unpack_from(data, offset)[0]
                continue
            resume = _next_valid(data, offset + 1, self.head_check)
            if resume is None:
                break
            offset = resume
        if offset >= len(data):
            return
        cut = start + offset
        tail = data[offset:]
        log.warning(
            "spool: a torn or damaged record ends the log (a write cut by a crash is never "
            "acknowledged; damage to the last record may be): its bytes go to the quarantine",
            segment=self._active,
            offset=cut,
            bytes=len(tail),
        )
        try:
            self.keep_damaged(Position(self._active, cut), tail, "torn or damaged end of the log")
        except SpoolError as exc:
            # No room to keep it (a full disk): leave it where it is and append to a new
            # segment; the drain quarantines it once it can (read() does).
            log.error("spool: the damaged end stays in its segment for now", error=str(exc))
            self._active += 1
            self._sizes[self._active] = 0
            self._create(self._active)
            return
        with open(path, "r+b") as handle:
            handle.truncate(cut)
            handle.flush()
            os.fsync(handle.fileno())
        self._sizes[self._active] = cut


def _valid_at(data: bytes | memoryview, offset: int, head_check: HeadCheck | None) -> bool:
    """Whether a whole, checksummed record starts at ``offset`` of ``data``."""
    if offset + HEADER.size > len(data):
        return False
    length, crc = HEADER.unpack_from(data, offset)
    body = offset + HEADER.size
    if length == 0 or length > MAX_RECORD_BYTES or body + length > len(data):
        return False
    if head_check is not None and not head_check(bytes(data[body : body + min(length, 16)])):
        return False
    return bool(zlib.crc32(data[body : body + length]) == crc)


def _next_valid(data: bytes, start: int, head_check: HeadCheck | None) -> int | None:
    """The first offset at or after ``start`` where a valid record begins, if any."""
    view = memoryview(data)
    end = len(data) - HEADER.size
    unpack = HEADER.unpack_from
    for offset in range(start, end):
        length = unpack(view, offset)[0]
        # Most offsets fail this cheap test; only plausible ones pay for a checksum.
        if 0 < length <= end - offset and _valid_at(view, offset, head_check):
            return offset
    return None


def _read_record(handle: BinaryIO, start: Position, limit: int) -> Record | None:
    """The record at the handle's position, or None at a damaged record (or one that
    would run past ``limit``)."""
    header = handle.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    length, crc = HEADER.unpack(header)
    if length == 0 or start.offset + HEADER.size + length > limit:
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


def saved_checkpoint(directory: Path) -> Position | None:
    """The checkpoint saved in a spool directory, read without taking the spool's lock or
    changing anything (for tools and tests); None when none was saved yet."""
    try:
        data = (directory / CHECKPOINT).read_bytes()
    except FileNotFoundError:
        return None
    if data.startswith(b"{"):
        saved = json.loads(data)
        return Position(int(saved["segment"]), int(saved["offset"]))
    slots = [_parse_slot(data[n * SLOT.size : (n + 1) * SLOT.size]) for n in (0, 1)]
    valid = [slot for slot in slots if slot is not None]
    return max(valid)[1] if valid else None


def _slot(seq: int, position: Position) -> bytes:
    fields = struct.pack("<IQQQ", SLOT_MAGIC, seq, position.segment, position.offset)
    return fields + struct.pack("<I", zlib.crc32(fields))


def _parse_slot(data: bytes) -> tuple[int, Position] | None:
    if len(data) < SLOT.size:
        return None
    magic, seq, segment, offset, crc = SLOT.unpack(data)
    if magic != SLOT_MAGIC or zlib.crc32(data[: SLOT.size - 4]) != crc:
        return None
    return seq, Position(segment, offset)


def _write_slot(path: Path, seq: int, position: Position) -> None:
    """Overwrite one of the two slots in place (the older one) and fsync: a torn write
    spoils that slot only, and the other still holds the previous checkpoint."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, _slot(seq, position), (seq % 2) * SLOT.size)
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _create_checkpoint(path: Path, position: Position) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        # Slot 1 holds sequence 1; slot 0 an invalid placeholder, overwritten next.
        _write_all(fd, bytes(SLOT.size) + _slot(1, position))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


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
