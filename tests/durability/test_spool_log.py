"""The segment log on its own: torn tails, checksums, group commit, trimming, limits."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from exporters.spool.log import HEADER, Position, SegmentLog, SpoolError, SpoolFullError


def open_log(directory: Path, **limits: int) -> SegmentLog:
    return SegmentLog(
        directory,
        max_bytes=limits.get("max_bytes", 1 << 20),
        segment_bytes=limits.get("segment_bytes", 1 << 16),
    )


def payloads(log: SegmentLog, start: Position | None = None) -> list[bytes]:
    return [r.payload for r in log.read(start or log.checkpoint, 1 << 30)]


def test_records_come_back_in_order_across_segments(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=1000)
    written = [os.urandom(100 + n) for n in range(40)]
    for payload in written:
        log.sync(log.append(payload))
    assert log.segments() > 3
    assert payloads(log) == written
    log.close()
    reopened = open_log(tmp_path, segment_bytes=1000)
    assert payloads(reopened) == written
    reopened.close()


def test_a_torn_tail_is_cut_off_and_appends_continue(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.sync(log.append(b"kept-1"))
    log.sync(log.append(b"kept-2"))
    segment = tmp_path / "00000000000000000001.seg"
    log.close()
    # A kill -9 during a write: the header and part of the payload reached the file.
    with open(segment, "ab") as handle:
        handle.write(HEADER.pack(1000, 12345) + b"partial")
    size_torn = segment.stat().st_size
    reopened = open_log(tmp_path)
    assert segment.stat().st_size < size_torn
    assert payloads(reopened) == [b"kept-1", b"kept-2"]
    reopened.sync(reopened.append(b"after"))
    assert payloads(reopened) == [b"kept-1", b"kept-2", b"after"]
    reopened.close()


def test_a_record_whose_checksum_fails_ends_the_log(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.sync(log.append(b"good"))
    end = log.append(b"flipped")
    log.sync(end)
    log.close()
    segment = tmp_path / "00000000000000000001.seg"
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF  # a bit flip in the last payload: the CRC no longer matches
    segment.write_bytes(bytes(data))
    reopened = open_log(tmp_path)
    assert payloads(reopened) == [b"good"]
    reopened.close()


def test_group_commit_releases_every_waiting_writer(tmp_path: Path) -> None:
    log = open_log(tmp_path, max_bytes=1 << 24)
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            for item in range(50):
                log.sync(log.append(f"{number}:{item}".encode()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert log.durable == log.written
    assert sorted(payloads(log)) == sorted(f"{n}:{i}".encode() for n in range(8) for i in range(50))
    log.close()


def test_checkpoint_deletes_drained_segments_and_survives_reopening(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_bytes=500)
    ends = [log.append(bytes([n]) * 200) for n in range(10)]
    log.sync(ends[-1])
    before = log.segments()
    log.save_checkpoint(ends[6])
    assert log.segments() < before
    assert log.pending_bytes() == sum(200 + HEADER.size for _ in range(3))
    log.close()
    reopened = open_log(tmp_path, segment_bytes=500)
    assert payloads(reopened) == [bytes([n]) * 200 for n in range(7, 10)]
    reopened.close()


def test_a_full_spool_refuses_appends_until_drained(tmp_path: Path) -> None:
    log = open_log(tmp_path, max_bytes=1000)
    end = log.append(b"x" * 600)
    with pytest.raises(SpoolFullError, match="MH_SPOOL_MAX_BYTES"):
        log.append(b"y" * 600)
    log.sync(end)
    log.save_checkpoint(end)
    log.sync(log.append(b"y" * 600))
    log.close()


def test_one_process_owns_a_spool(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    with pytest.raises(SpoolError, match="in use by another process"):
        open_log(tmp_path)
    log.close()
    open_log(tmp_path).close()
