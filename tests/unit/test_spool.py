"""The write-ahead spool: durable, bounded, ordered, crash-tolerant, shareable."""

from __future__ import annotations

import json
import os
from decimal import Decimal

import pytest

from genai_audit.exporter.spool import Spool, SpoolFull, decode_record, encode_record
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
