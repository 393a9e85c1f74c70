"""Reading decrypted content, with HIPAA 164.528 disclosure accounting.

``disclose`` is the only path from ciphertext to plaintext: ``genai-audit show``, the
report's content-including mode and (later) the gateway's API all call it. It refuses a
read without an actor and a purpose, decrypts in memory, appends one ``access_log`` row
per tenant touched (who, when, why, which records and pseudonyms, through which channel)
and only then returns the plaintext: if the disclosure cannot be logged, nothing is
disclosed. ``access_log`` is append-only; each row has a stable ``access_id`` and is
written through the tamper-evident ledger (signed before the plaintext is returned).
"""

from __future__ import annotations

import enum
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from genai_audit.clickhouse.erasure import ERASED_TEXT, is_erased, tool_version
from genai_audit.clickhouse.ledger.leaf import ACCESS_LOG
from genai_audit.clickhouse.ledger.log import Ledger
from genai_audit.clickhouse.ledger.session import append, current_user, ledger_session
from genai_audit.clickhouse.store import Store, period_conditions
from genai_audit.keystore import KeyStore
from genai_audit.processor.commitments import commit, commitment_key
from genai_audit.processor.encryption import DecryptionError, open_sealed

ACCESS_COLUMNS = ("access_id", "accessed_at", "tenant_id", "actor", "purpose", "channel",
                  "record_ids", "user_keys", "records_disclosed", "records_erased",
                  "tool_version", "db_user")
CHANNELS = ("show", "report", "api")
MAX_ACTOR, MAX_PURPOSE = 128, 500


class DisclosureRefused(ValueError):
    """A read that may not happen as asked (no actor, no purpose, bad channel)."""


class ReadState(enum.StrEnum):
    DISCLOSED = "disclosed"  # decrypted and checked against its commitments
    ERASED = "erased"  # the subject was erased (GDPR Art. 17): reads as ERASED_TEXT
    PLAINTEXT = "plaintext"  # stored without encryption (no encryption stage ran)
    NO_CONTENT = "no_content"  # withheld (fail closed) or never captured
    KEY_MISSING = "key_missing"  # no key and no erasure on record: keystore problem
    TAMPERED = "tampered"  # does not open: altered, or moved from another record/tenant


@dataclass(frozen=True)
class DisclosedRecord:
    id: str
    tenant_id: str
    user_key: str
    event_timestamp: datetime
    tool_name: str
    model: str
    content_state: str
    state: ReadState
    prompt_text: str | None = None
    response_text: str | None = None
    response_preview: str | None = None
    commitment_ok: bool | None = None  # None: nothing to check


_SELECT = (
    "SELECT toString(id), tenant_id, gdpr_pseudonymized_user_key, event_timestamp, tool_name,"
    " model, content_state, content_key_id, lower(hex(prompt_hash)),"
    " lower(hex(response_hash)), full_prompt_text,"
    " full_response_text, response_preview FROM interactions WHERE id IN {ids:Array(UUID)}"
    " ORDER BY event_timestamp, id LIMIT 1 BY id")


def validate_reader(actor: str | None, purpose: str | None, channel: str) -> tuple[str, str]:
    actor, purpose = (actor or "").strip(), (purpose or "").strip()
    if not actor:
        raise DisclosureRefused("reading content needs an actor (who reads)")
    if not purpose:
        raise DisclosureRefused("reading content needs a purpose (why it is read)")
    if len(actor) > MAX_ACTOR or len(purpose) > MAX_PURPOSE:
        raise DisclosureRefused(f"actor at most {MAX_ACTOR}, purpose at most {MAX_PURPOSE} "
                                "characters")
    if any(ord(c) < 32 for c in actor + purpose):
        raise DisclosureRefused("actor and purpose may not contain control characters")
    if channel not in CHANNELS:
        raise DisclosureRefused(f"unknown channel {channel!r}: one of {', '.join(CHANNELS)}")
    return actor, purpose


def disclose(store: Store, keys: KeyStore, record_ids: Iterable[str], *, actor: str | None,
             purpose: str | None, channel: str = "show",
             ledger: Ledger | None = None) -> list[DisclosedRecord]:
    """Decrypt the given records for ``actor`` and log the disclosure first.

    Ids that match no record are simply absent from the result. The disclosure is written
    through ``ledger`` (a long-lived process's session over ``access_log``, left open) or,
    by default, a session of its own, signed before this returns.
    """
    actor, purpose = validate_reader(actor, purpose, channel)
    ids = [str(uuid.UUID(str(i))) for i in dict.fromkeys(record_ids)]
    if not ids:
        return []
    records = [_read(store, keys, row) for row in store.rows(_SELECT, {"ids": ids})]
    with ledger_session(store, keys, ACCESS_LOG, ACCESS_COLUMNS, ledger) as lg:
        log_access(store, lg, records, actor=actor, purpose=purpose, channel=channel)
    return records


def log_access(store: Store, ledger: Ledger, records: Sequence[DisclosedRecord], *,
               actor: str, purpose: str, channel: str) -> list[str]:
    """Append one ``access_log`` row per tenant through ``ledger``; return the access ids."""
    by_tenant: dict[str, list[DisclosedRecord]] = defaultdict(list)
    for record in records:
        by_tenant[record.tenant_id].append(record)
    now = datetime.now(UTC)
    db_user = current_user(store) if by_tenant else ""
    rows: list[list[Any]] = []
    for tenant, group in sorted(by_tenant.items()):
        rows.append([
            uuid.uuid4(), now, tenant, actor, purpose, channel,
            [uuid.UUID(r.id) for r in group], sorted({r.user_key for r in group}),
            sum(r.state is ReadState.DISCLOSED for r in group),
            sum(r.state is ReadState.ERASED for r in group), tool_version(), db_user])
    if rows:
        append(store, ledger, rows)
    return [str(r[0]) for r in rows]


def _read(store: Store, keys: KeyStore, row: tuple[Any, ...]) -> DisclosedRecord:
    (record_id, tenant, user_key, ts, tool, model, content_state, key_id, prompt_hash,
     response_hash, prompt, response, preview) = row
    base = {"id": record_id, "tenant_id": tenant, "user_key": user_key, "event_timestamp": ts,
            "tool_name": tool, "model": model, "content_state": content_state}
    if content_state == "plaintext":
        return DisclosedRecord(**base, state=ReadState.PLAINTEXT, prompt_text=prompt,
                               response_text=response, response_preview=preview)
    if content_state != "encrypted":
        return DisclosedRecord(**base, state=ReadState.NO_CONTENT)
    key = keys.key_for_pseudonym(tenant, user_key)
    if key is None or key.key_id != key_id:
        if is_erased(store, tenant, user_key):
            return DisclosedRecord(**base, state=ReadState.ERASED, prompt_text=ERASED_TEXT,
                                   response_text=ERASED_TEXT, response_preview=ERASED_TEXT)
        return DisclosedRecord(**base, state=ReadState.KEY_MISSING)
    try:
        plain = [open_sealed(key, record_id, column, _text(value)) for column, value in
                 (("full_prompt_text", prompt), ("full_response_text", response),
                  ("response_preview", preview))]
    except DecryptionError:
        return DisclosedRecord(**base, state=ReadState.TAMPERED, commitment_ok=False)
    secret = commitment_key(key)
    ok = (commit(secret, plain[0]).hex() == prompt_hash
          and commit(secret, plain[1]).hex() == response_hash)
    return DisclosedRecord(**base, state=ReadState.DISCLOSED, prompt_text=plain[0],
                           response_text=plain[1], response_preview=plain[2], commitment_ok=ok)


def _text(value: Any) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def subject_record_ids(store: Store, tenant_id: str, user_key: str, *,
                       since: datetime | None = None, until: datetime | None = None,
                       pii_only: bool = False, limit: int = 100) -> list[str]:
    """Ids of one subject's records (oldest first): what ``disclose`` reads for an Art. 15
    subject access request or an auditor's "all prompts of user X in Q3 with PII"."""
    where = ["tenant_id = {t:String}", "gdpr_pseudonymized_user_key = {u:String}"]
    period, params = period_conditions("event_timestamp", since, until)
    where += period
    params.update({"t": tenant_id, "u": user_key, "limit": limit})
    if pii_only:
        where.append("has_pii_detected")
    sql = ("SELECT toString(id) FROM interactions WHERE {where}"
           " ORDER BY event_timestamp, id LIMIT 1 BY id LIMIT {{limit:UInt32}}")
    # Only the fixed clauses above are joined in; every value is a bound parameter.
    return [str(r[0]) for r in store.rows(sql.format(where=" AND ".join(where)), params)]


def list_disclosures(store: Store, tenant_id: str, user_key: str | None = None,
                     since: datetime | None = None, until: datetime | None = None
                     ) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The accounting of disclosures for a tenant (optionally one pseudonym), oldest first."""
    period, params = period_conditions("accessed_at", since, until)
    where = ["tenant_id = {t:String}", *period]
    params["t"] = tenant_id
    if user_key is not None:
        where.append("has(user_keys, {u:String})")
        params["u"] = user_key
    sql = ("SELECT toString(access_id) AS access_id, accessed_at, actor, db_user, purpose, channel,"
           " records_disclosed, records_erased, arrayMap(x -> toString(x), record_ids)"
           " AS record_ids FROM access_log WHERE {where} ORDER BY accessed_at, access_id")
    # Only the fixed clauses above are joined in; every value is a bound parameter.
    result = store.query(sql.format(where=" AND ".join(where)), params)
    return list(result.column_names), [tuple(r) for r in result.result_rows]
