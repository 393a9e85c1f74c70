"""The archive against a real S3-compatible server (moto, on 127.0.0.1) and a directory.

Archive, list, query archived rows, verify, resume after an interrupted run, late records,
and tampering (an object replaced, the manifest edited) detected. All I/O goes through the
embedded ClickHouse engine's s3()/file() table functions, as in production.
"""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import UTC, datetime, timedelta

import audit_records
import pytest
from audit_records import KEY_ID, SECRET

from genai_audit.clickhouse.archive import archive, load_manifest
from genai_audit.clickhouse.archive_location import ArchiveAccessError, ArchiveLocation
from genai_audit.clickhouse.archive_manifest import ManifestError
from genai_audit.clickhouse.archive_verify import attach_archive, verify_archive
from genai_audit.clickhouse.retention import retention_summary

pytestmark = pytest.mark.integration

# as the exporter writes: through the ledger (verify checks archived rows against it)
write_records = functools.partial(audit_records.write_records, ledger=True)

@pytest.fixture
def s3(s3_endpoint, s3_bucket):
    client, bucket = s3_bucket
    location = ArchiveLocation.parse(f"s3://{bucket}/prod", endpoint_url=s3_endpoint,
                                     access_key_id=KEY_ID, secret_access_key=SECRET)
    return client, bucket, location


def _populate(store, keystore, make_span) -> dict[str, list[str]]:
    now = datetime.now(UTC)
    old, older = now - timedelta(days=100), now - timedelta(days=135)
    return {
        "acme-old": write_records(store, keystore, make_span, old, count=3),
        "acme-older": write_records(store, keystore, make_span, older, count=2),
        "globex-old": write_records(store, keystore, make_span, old, count=2,
                                    **{"tenant.id": "globex", "enduser.id": "gina"}),
        "hot": write_records(store, keystore, make_span, now - timedelta(days=5), count=2),
    }


def _cutoff() -> datetime:
    return datetime.now(UTC) - timedelta(days=60)


def test_archive_list_query_verify(store, keystore, make_span, s3):
    client, bucket, location = s3
    ids = _populate(store, keystore, make_span)
    run = archive(store, keystore, location, before=_cutoff(), settle_seconds=0)
    archived = set(ids["acme-old"] + ids["acme-older"] + ids["globex-old"])
    assert run.rows == len(archived) and run.skipped == 0
    keys = sorted(o.key for o in run.written)
    assert len(keys) == 3 and all(k.startswith("tenant=") and "/month=" in k for k in keys)
    stored = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert stored == {f"prod/{k}" for k in keys} | {"prod/manifest.json"}
    # the manifest is signed, lists each object with its SHA-256 and row count
    manifest = load_manifest(store, location, keystore)
    assert manifest is not None and sorted(o.key for o in manifest.objects) == keys
    body = client.get_object(Bucket=bucket, Key=f"prod/{keys[0]}")["Body"].read()
    first = next(o for o in manifest.objects if o.key == keys[0])
    assert hashlib.sha256(body).hexdigest() == first.sha256 and len(body) == first.bytes
    assert body[:4] == b"PAR1"
    # the manifest names the signed head of every log of the archived tenants (4 writers)
    named = manifest.ledger_checkpoint["logs"]
    assert len(named) == 4 and all(n["note"].startswith("genai-audit/") for n in named)
    # the archived rows are queryable, read-only, exactly as stored
    attach_archive(store, location, keystore.signing_key().public_key())
    rows = store.rows("SELECT toString(id), tenant_id, prompt_hash, full_prompt_text "
                      "FROM archived_interactions", settings={"readonly": 1})
    assert {r[0] for r in rows} == archived
    hot = {r[0]: r[1:] for r in store.rows(
        "SELECT toString(id), tenant_id, prompt_hash, full_prompt_text FROM interactions")}
    assert all(hot[r[0]] == r[1:] for r in rows)
    result = verify_archive(store, location, keystore.signing_key().public_key())
    assert result.ok and result.rows == len(archived) and not result.warnings
    assert result.leaves == len(archived) and result.logs == 3  # each row against its log
    summary = retention_summary(store)
    assert summary.last_archive is not None and summary.last_archive.ok
    assert summary.last_archive.objects_written == 3
    assert summary.last_verification is not None and summary.last_verification.ok
    # idempotent: nothing new to write
    again = archive(store, keystore, location, before=_cutoff(), settle_seconds=0)
    assert again.written == [] and again.skipped == 3
    # the auditor report's retention section shows the run and its verification
    from genai_audit.clickhouse.reports import build_report
    from genai_audit.clickhouse.retention import report_facts

    report = build_report(store, tenant=None, start=datetime.now(UTC) - timedelta(days=365),
                          end=datetime.now(UTC), retention=report_facts)
    figures = {f.label: f.value for f in report.section("retention").figures}
    assert figures["Active legal holds"] == "0"
    assert location.url in figures["Last archive run"]
    assert "0 objects" in figures["Last archive run"]  # the latest run: the idempotent one
    assert ("manifest signature, object hashes and 7 records OK, each matched against the "
            "ledger's signed leaves") in figures["Archive verification"]


def test_the_ledger_hook_fills_the_signed_checkpoint(store, keystore, make_span, s3):
    _, _, location = s3
    write_records(store, keystore, make_span, datetime.now(UTC) - timedelta(days=90), count=2)
    seen = []

    def checkpoint(st, objects):
        seen.append([o.key for o in objects])
        return {"origin": "genai-audit/acme", "size": sum(o.rows for o in objects)}

    archive(store, keystore, location, before=_cutoff(), settle_seconds=0,
            ledger_checkpoint=checkpoint)
    manifest = load_manifest(store, location, keystore)  # signature checked
    assert manifest.ledger_checkpoint == {"origin": "genai-audit/acme", "size": 2}
    assert seen == [[o.key for o in manifest.objects]]


def test_a_prefix_belongs_to_one_database(store, store_dsn, keystore, make_span, s3):
    from genai_audit.clickhouse.archive import ArchiveError
    from genai_audit.clickhouse.migrate import migrate
    from genai_audit.clickhouse.store import Store

    _, _, location = s3
    write_records(store, keystore, make_span, datetime.now(UTC) - timedelta(days=90))
    archive(store, keystore, location, before=_cutoff(), settle_seconds=0)
    other = Store.open(store_dsn, store.database + "_other")
    try:
        migrate(other)
        with pytest.raises(ArchiveError, match="another prefix"):
            archive(other, keystore, location, before=_cutoff(), settle_seconds=0)
    finally:
        other.command(f"DROP DATABASE IF EXISTS `{other.database}`")


class Interrupted(Exception):
    pass


def test_resume_after_an_interrupted_run(store, keystore, make_span, s3):
    client, bucket, location = s3
    _populate(store, keystore, make_span)

    def crash(_obj):
        raise Interrupted

    with pytest.raises(Interrupted):
        archive(store, keystore, location, before=_cutoff(), settle_seconds=0, on_object=crash)
    manifest = load_manifest(store, location, keystore)
    assert manifest is not None and len(manifest.objects) == 1
    # a crash between writing an object and recording it leaves an unlisted object behind
    done = manifest.objects[0].key
    orphan_key = next(k for k in ("tenant=acme/month=" + m + "/part-00001.parquet"
                                  for m in _months()) if k != done)
    client.put_object(Bucket=bucket, Key=f"prod/{orphan_key}", Body=b"half-written")
    check = verify_archive(store, location, keystore.signing_key().public_key())
    assert check.ok and any(orphan_key in w for w in check.warnings)
    resumed = archive(store, keystore, location, before=_cutoff(), settle_seconds=0)
    assert len(resumed.written) == 2 and resumed.skipped == 1
    manifest = load_manifest(store, location, keystore)
    assert len({o.key for o in manifest.objects}) == len(manifest.objects) == 3
    final = verify_archive(store, location, keystore.signing_key().public_key())
    assert final.ok and final.rows == 7 and not final.warnings  # orphan overwritten


def _months() -> list[str]:
    now = datetime.now(UTC)
    return sorted({f"{d:%Y-%m}" for d in (now - timedelta(days=100), now - timedelta(days=135))})


def test_late_records_go_to_a_new_part(store, keystore, make_span, s3):
    _, _, location = s3
    old = datetime.now(UTC) - timedelta(days=100)
    write_records(store, keystore, make_span, old, count=2)
    first = archive(store, keystore, location, before=_cutoff(), settle_seconds=0)
    late = write_records(store, keystore, make_span, old)  # replayed from a backlog
    second = archive(store, keystore, location, before=_cutoff(), settle_seconds=0)
    assert [o.seq for o in first.written] == [1] and [o.seq for o in second.written] == [2]
    assert second.written[0].rows == 1
    assert verify_archive(store, location, keystore.signing_key().public_key()).rows == 3
    attach_archive(store, location, keystore.signing_key().public_key())
    assert set(late) <= {r[0] for r in store.rows(
        "SELECT toString(id) FROM archived_interactions")}


def test_a_large_month_is_split_into_parts(store, keystore, make_span, s3):
    _, _, location = s3
    old = datetime.now(UTC) - timedelta(days=100)
    ids = write_records(store, keystore, make_span, old, count=20)
    run = archive(store, keystore, location, before=_cutoff(), settle_seconds=0,
                  max_rows_per_object=6)
    keys = sorted(o.key for o in run.written)
    assert {o.seq for o in run.written} == {1} and 2 <= len(keys) <= 4
    assert all(k.endswith("of004.parquet") for k in keys) and run.rows == 20
    late = write_records(store, keystore, make_span, old)
    again = archive(store, keystore, location, before=_cutoff(), settle_seconds=0,
                    max_rows_per_object=6)
    assert [(o.seq, o.rows) for o in again.written] == [(2, 1)]
    public = keystore.signing_key().public_key()
    result = verify_archive(store, location, public)
    assert result.ok and result.rows == 21
    attach_archive(store, location, public)
    assert {r[0] for r in store.rows("SELECT toString(id) FROM archived_interactions")} == set(
        ids + late)


def test_tampering_is_detected(store, keystore, make_span, s3):
    client, bucket, location = s3
    _populate(store, keystore, make_span)
    run = archive(store, keystore, location, before=_cutoff(), settle_seconds=0)
    public = keystore.signing_key().public_key()
    victim = run.written[0].key
    # replace one object with another valid Parquet file (rows of a different object)
    other = client.get_object(Bucket=bucket, Key=f"prod/{run.written[1].key}")["Body"].read()
    client.put_object(Bucket=bucket, Key=f"prod/{victim}", Body=other)
    result = verify_archive(store, location, public)
    assert not result.ok
    assert [(p.key, p.kind) for p in result.problems] == [(victim, "hash_mismatch")]
    # delete another one
    client.delete_object(Bucket=bucket, Key=f"prod/{run.written[2].key}")
    kinds = {p.key: p.kind for p in verify_archive(store, location, public).problems}
    assert kinds == {victim: "hash_mismatch", run.written[2].key: "missing"}
    # edit the manifest to match the swapped object: the signature no longer holds
    doc = json.loads(client.get_object(Bucket=bucket, Key="prod/manifest.json")["Body"].read())
    doc["manifest"]["objects"][0]["rows"] += 1
    client.put_object(Bucket=bucket, Key="prod/manifest.json", Body=json.dumps(doc).encode())
    result = verify_archive(store, location, public)
    assert [p.kind for p in result.problems] == ["manifest"]
    assert "signature is invalid" in result.problems[0].detail
    with pytest.raises(ManifestError):
        archive(store, keystore, location, before=_cutoff(), settle_seconds=0)
    summary = retention_summary(store)
    assert summary.last_verification is not None and not summary.last_verification.ok


def test_file_archive_and_other_key(store, keystore, make_span, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    write_records(store, keystore, make_span, datetime.now(UTC) - timedelta(days=90), count=2,
                  **{"tenant.id": "a/b c"})  # a tenant id that is not a safe object name
    location = ArchiveLocation.parse(f"file://{tmp_path}/arch")
    run = archive(store, keystore, location, before=_cutoff(), settle_seconds=0)
    [obj] = run.written
    assert obj.key.startswith("tenant=a_b_c-") and (tmp_path / "arch" / obj.key).is_file()
    assert verify_archive(store, location, keystore.signing_key().public_key()).ok
    stranger = Ed25519PrivateKey.generate().public_key()
    result = verify_archive(store, location, stranger)
    assert [p.kind for p in result.problems] == ["manifest"]
    assert "different key" in result.problems[0].detail


def test_credentials_never_appear_in_errors(store, s3_endpoint):
    location = ArchiveLocation.parse("s3://no-such-bucket-here/x", endpoint_url=s3_endpoint,
                                     access_key_id=KEY_ID, secret_access_key=SECRET)
    assert SECRET not in repr(location)
    with pytest.raises(ArchiveAccessError) as err:
        location.write_text(store, "probe.txt", "x")
    assert SECRET not in str(err.value) and KEY_ID not in str(err.value)
    with pytest.raises(Exception, match="credentials"):
        ArchiveLocation.parse(f"s3://{KEY_ID}:{SECRET}@bucket/x")


def test_the_manifest_names_the_ledgers_signed_checkpoints(store, keystore, make_span, s3):
    """By default the manifest carries the latest signed checkpoint of each archived
    tenant's logs: the tree heads an auditor checks the archived leaves against."""
    from genai_audit.clickhouse.ledger.checkpoint import open_note
    from genai_audit.config import Settings
    from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
    from genai_audit.processor.factory import default_pipeline

    _, _, location = s3
    settings = Settings.load({}, env={})
    records = default_pipeline(settings, keystore).build([make_span() for _ in range(3)])
    for record in records:
        record.event_timestamp = datetime.now(UTC) - timedelta(days=90)
    exporter = ClickHouseSpanExporter(settings, store=store, keys=keystore)
    exporter.write_records(records)
    exporter.shutdown()  # signs the final checkpoint
    archive(store, keystore, location, before=_cutoff(), settle_seconds=0)
    manifest = load_manifest(store, location, keystore)
    logs = manifest.ledger_checkpoint["logs"]
    assert len(logs) == 1 and logs[0]["tree_size"] == 3
    note = open_note(logs[0]["note"], keystore.signing_key().public_key())
    assert note.size == 3


def test_a_tampered_archive_fails_maintenance_status_and_report(store, keystore, make_span, s3,
                                                                s3_endpoint, store_dsn,
                                                                tmp_path, monkeypatch):
    """Issue 17: `maintain --archive-to` verified only after writing new objects, so an
    archive tampered with between runs passed the next run (exit 0); `retention status`
    exited 0 and the report's Retention section said OK beside a FAILED verification."""
    from genai_audit.cli.main import main
    from genai_audit.clickhouse.maintain import run_maintenance
    from genai_audit.clickhouse.reports import Status, build_report
    from genai_audit.clickhouse.retention import report_facts
    from genai_audit.config import Settings

    client, bucket, _ = s3
    _populate(store, keystore, make_span)
    settings = Settings.load({"s3_endpoint_url": s3_endpoint, "s3_access_key_id": KEY_ID,
                              "s3_secret_access_key": SECRET}, env={})
    url = f"s3://{bucket}/prod"
    first = run_maintenance(store, keystore, settings, archive_url=url, settle_seconds=0)
    assert first.ok and first.archive is not None and len(first.archive.written) == 3
    victim = first.archive.written[0].key
    client.put_object(Bucket=bucket, Key=f"prod/{victim}", Body=b"PAR1 not the archived rows")
    again = run_maintenance(store, keystore, settings, archive_url=url, settle_seconds=0)
    assert again.archive is not None and not again.archive.written  # nothing new to write
    assert again.verification is not None and not again.ok
    assert report_facts(store, _scope_all()).failed == ("archive verification",)
    report = build_report(store, tenant=None, start=datetime.now(UTC) - timedelta(days=200),
                          end=datetime.now(UTC), retention=report_facts)
    section = report.section("retention")
    assert section.status is Status.ATTENTION
    assert any("archive verification FAILED" in n for n in section.notes)
    monkeypatch.setenv("GENAI_AUDIT_KEYSTORE_DIR", str(tmp_path / "unused-keys"))
    assert main(["retention", "status", "--dsn", store_dsn, "--database", store.database]) == 1


def _scope_all():
    from genai_audit.clickhouse.reports.model import Period
    from genai_audit.clickhouse.reports.scope import Scope
    now = datetime.now(UTC)
    return Scope(None, Period(now - timedelta(days=365), now))
