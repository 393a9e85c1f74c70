"""The write-ahead spool: durable, bounded, ordered, crash-tolerant, shareable."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from decimal import Decimal

import pytest

from genai_audit.exporter.spool import (
    Spool,
    SpoolFull,
    SpoolWriteFailed,
    decode_record,
    encode_record,
)
from genai_audit.processor.normalize import normalize
from genai_audit.processor.record import ContentState, Flag


def _records(make_span, n: int):
    out = []
    for _ in range(n):
        record = normalize(make_span())
        record.user_id = None
        record.user_key = "k" * 16
        record.total_cost = Decimal("0.000123")
        record.prompt_hash = b"\x01" * 32
        record.content_state = ContentState.ENCRYPTED
        record.flags.add(Flag.UNKNOWN_MODEL)
        out.append(record)
    return out


def test_codec_round_trips_every_stored_field_and_never_writes_content(make_span):
    [record] = _records(make_span, 1)
    data = encode_record(record)
    assert "content" not in data and "user_id" not in data
    back = decode_record(json.loads(json.dumps(data)))
    for name in ("id", "event_timestamp", "tenant_id", "user_key", "total_cost", "prompt_hash",
                 "content_state", "flags", "finish_reasons", "prompt_tokens"):
        assert getattr(back, name) == getattr(record, name), name
    assert back.content.is_empty()


def test_plaintext_user_is_never_spooled(make_span, tmp_path):
    record = normalize(make_span())
    with pytest.raises(ValueError, match="plaintext user id"):
        Spool(tmp_path, 10**6).append([record])


def test_append_then_drain_in_order_and_files_are_private(make_span, tmp_path):
    spool = Spool(tmp_path / "s", 10**6)
    batches = [_records(make_span, 2) for _ in range(3)]
    for batch in batches:
        spool.append(batch)
    assert spool.stats().batches == 3 and spool.stats().records == 6
    assert oct((tmp_path / "s").stat().st_mode & 0o777) == "0o700"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in spool.pending())
    seen: list[list[str]] = []
    assert spool.drain(lambda rs: seen.append([r.id for r in rs])) == 6
    assert seen == [[r.id for r in b] for b in batches]
    assert spool.stats().batches == 0


def test_a_failing_writer_leaves_the_batch_in_place(make_span, tmp_path):
    spool = Spool(tmp_path, 10**6)
    spool.append(_records(make_span, 1))
    spool.append(_records(make_span, 1))

    def boom(records):
        raise ConnectionError("store down")

    with pytest.raises(ConnectionError):
        spool.drain(boom)
    assert spool.stats().batches == 2 and len(spool.pending()) == 2


def test_bounded(make_span, tmp_path):
    spool = Spool(tmp_path, 3000)
    with pytest.raises(SpoolFull):
        for _ in range(10):
            spool.append(_records(make_span, 1))
    assert 0 < spool.stats().bytes <= 3000


def test_crash_leftovers_are_recovered(make_span, tmp_path):
    spool = Spool(tmp_path, 10**6)
    spool.append(_records(make_span, 1))
    [path] = spool.pending()
    # a drain claim by a process that died (pid 2**22+1 is not running) and a torn append
    os.rename(path, path.with_name(path.name + ".claim-4194305"))
    (tmp_path / "000-torn.tmp").write_bytes(b'{"format":1,')
    reopened = Spool(tmp_path, 10**6)
    assert [p.name for p in reopened.pending()] == [path.name]
    assert not list(tmp_path.glob("*.tmp"))


def test_corrupt_file_is_quarantined_not_deleted(make_span, tmp_path):
    spool = Spool(tmp_path, 10**6)
    spool.append(_records(make_span, 1))
    spool.pending()[0].write_text("garbage")
    assert spool.drain(lambda rs: None) == 0
    assert len(list((tmp_path / "quarantine").iterdir())) == 1


def test_two_spools_on_one_directory_never_write_a_batch_twice(make_span, tmp_path):
    first, second = Spool(tmp_path, 10**6), Spool(tmp_path, 10**6)
    first.append(_records(make_span, 1))
    first.append(_records(make_span, 1))
    written: list[str] = []

    def write_while_the_other_drains(records):
        written.extend(r.id for r in records)
        if len(written) == 1:  # while this batch is claimed, the other spool drains too
            assert second.drain(lambda rs: written.extend(r.id for r in rs)) == 1

    assert first.drain(write_while_the_other_drains) == 1
    assert len(written) == 2 and len(set(written)) == 2
    assert first.pending() == [] and second._scan().batches == 0


class _Disk:
    """The file-writing seam: short writes of at most ``chunk`` bytes, then ENOSPC once
    ``room`` bytes were written (a nearly full disk)."""

    def __init__(self, chunk: int, room: int | None = None) -> None:
        self.chunk, self.room, self.written = chunk, room, 0

    def __call__(self, fd: int, data) -> int:
        if self.room is not None and self.written >= self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        part = bytes(data[:self.chunk])
        if self.room is not None:
            part = part[:self.room - self.written]
        self.written += len(part)
        return os.write(fd, part)


def test_short_writes_are_continued_so_the_whole_batch_lands(make_span, tmp_path):
    spool = Spool(tmp_path, 10**6, write=_Disk(chunk=97))
    batch = _records(make_span, 3)
    spool.append(batch)
    seen: list[str] = []
    assert spool.drain(lambda rs: seen.extend(r.id for r in rs)) == 3
    assert seen == [r.id for r in batch] and not (tmp_path / "quarantine").exists()


def test_a_disk_that_fills_mid_batch_refuses_it_and_keeps_nothing(make_span, tmp_path):
    disk = _Disk(chunk=500, room=1200)
    spool = Spool(tmp_path, 10**6, write=disk)
    with pytest.raises(SpoolFull, match="ENOSPC") as caught:
        spool.append(_records(make_span, 3))
    assert isinstance(caught.value, SpoolWriteFailed) and disk.written == 1200
    assert list(tmp_path.iterdir()) == [] and spool.refused
    assert spool.stats().batches == 0
    disk.room = None  # space freed: the next batch lands and the spool accepts again
    spool.append(_records(make_span, 1))
    assert not spool.refused and spool.stats().records == 1


def _mount_tmpfs(path, size: str) -> bool:
    """A real small tmpfs when this test may mount (root, a mount namespace allowing it)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(path)], capture_output=True)
    return done.returncode == 0


def test_a_real_full_tmpfs_never_holds_a_cut_batch(make_span, tmp_path):
    disk = tmp_path / "tmpfs"
    if not _mount_tmpfs(disk, "64k"):
        pytest.skip("mounting a tmpfs is not permitted here (needs root)")
    try:
        spool = Spool(disk / "spool", 10**9)  # the bound is far away: the disk fills first
        acked = 0
        with pytest.raises(SpoolWriteFailed):
            for _ in range(1000):
                spool.append(_records(make_span, 5))
                acked += 5
        assert acked > 0 and spool.refused
        assert not list((disk / "spool").glob("*.tmp"))
        landed: list[str] = []
        assert spool.drain(lambda rs: landed.extend(r.id for r in rs)) == acked
        assert len(landed) == acked and not (disk / "spool" / "quarantine").exists()
    finally:
        subprocess.run(["umount", str(disk)], check=True)
