"""Inclusion proofs: one record, its audit path and the signed checkpoint, checkable offline.

A proof file (JSON, ``genai-audit/inclusion-proof/v1``) carries every framed item of the
record's leaf (schema tag, log id, position, then each covered column's value bytes), the
RFC 9162 audit path and the signed checkpoint note. ``check_proof`` needs only the file and
the public key: it rebuilds the leaf from the items, walks the path to a root and checks the
root against the checkpoint's signature. docs/ledger.md describes the same steps for an
auditor who wants to re-implement them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from genai_audit.clickhouse.ledger import checkpoint as notes
from genai_audit.clickhouse.ledger import merkle
from genai_audit.clickhouse.ledger.leaf import (
    INTERACTIONS,
    SCHEMAS,
    LeafSchema,
    compose,
    content_digest,
    ns,
    sql_leaf_hash,
    sql_value,
)
from genai_audit.clickhouse.ledger.log import origin_for
from genai_audit.clickhouse.store import Store

PROOF_FORMAT = "genai-audit/inclusion-proof/v1"


class ProofError(Exception):
    """A proof cannot be built (record unknown, log damaged, not yet checkpointed)."""


def build_proof(store: Store, record_id: str, public_key: Ed25519PublicKey,
                schema: LeafSchema = INTERACTIONS) -> dict[str, Any]:
    found = store.rows(compose("SELECT log_id, log_index, leaf_version FROM <table> "
                               "WHERE <id> = {id:UUID}", table=schema.table,
                               id=f"`{schema.id_column}`"), {"id": record_id})
    if not found:
        raise ProofError(f"no record {record_id} in {schema.table}")
    if len(found) > 1:
        raise ProofError(f"record {record_id} appears {len(found)} times; run genai-audit verify")
    log_id, index, version = str(found[0][0]), int(found[0][1]), int(found[0][2])
    if not log_id or version not in schema.versions:
        raise ProofError(f"record {record_id} is not in the ledger")
    cp = _checkpoint_covering(store, log_id, index, public_key)
    digest = schema.digests.get(version)
    content_columns = digest.covers if digest else ()
    values = store.rows(compose(
        "SELECT <columns> FROM <table> WHERE <id> = {id:UUID}", table=schema.table,
        id=f"`{schema.id_column}`",
        columns=", ".join([f"hex({sql_value(f)})" for f in schema.fields(version)]
                          + [f"hex(`{c}`)" for c in content_columns])),
        {"id": record_id})[0]
    items = [("schema", schema.tag(version)), ("log_id", log_id.encode()),
             ("log_index", b"%d" % index)]
    n = len(schema.fields(version))
    items += [(f.column, bytes.fromhex(v)) for f, v in zip(schema.fields(version), values[:n],
                                                         strict=True)]
    content = [(c, bytes.fromhex(v)) for c, v in zip(content_columns, values[n:], strict=True)]
    leaf = merkle.leaf_hash(b"".join(ns(value) for _, value in items))
    leaves = _log_leaves(store, schema, log_id, cp.size)
    if leaves[index] != leaf:
        raise ProofError(f"record {record_id} no longer matches its leaf; run genai-audit verify")
    tree = merkle.LeafList(leaves)
    if tree.mth(0, cp.size) != cp.root:
        raise ProofError(f"log {log_id} no longer matches its signed checkpoint at size "
                         f"{cp.size}; run genai-audit verify")
    path = merkle.inclusion_proof(tree.mth, index, cp.size)
    note = str(store.scalar("SELECT note FROM ledger_checkpoints WHERE log_id = {l:String} "
                            "AND tree_size = {s:UInt64} LIMIT 1", {"l": log_id, "s": cp.size}))
    return {
        "format": PROOF_FORMAT, "database": store.database, "table": schema.table,
        "record_id": record_id, "log_id": log_id, "leaf_index": index, "leaf_version": version,
        "leaf_items": [_item(name, value) for name, value in items],
        "content_items": [_item(name, value) for name, value in content],
        "leaf_hash": leaf.hex(), "tree_size": cp.size, "root_hash": cp.root.hex(),
        "inclusion_path": [h.hex() for h in path], "checkpoint": note,
        "key": notes.verifier_key(public_key),
    }


def _item(name: str, value: bytes) -> dict[str, str]:
    try:
        return {"name": name, "value": value.decode("utf-8")}
    except UnicodeDecodeError:
        return {"name": name, "value_hex": value.hex()}


def _checkpoint_covering(store: Store, log_id: str, index: int,
                         public_key: Ed25519PublicKey) -> notes.Checkpoint:
    """The newest checkpoint of the log whose signature verifies and that covers ``index``."""
    for (note,) in store.rows("SELECT note FROM ledger_checkpoints "
                              "WHERE log_id = {l:String} AND tree_size > {i:UInt64} "
                              "ORDER BY tree_size DESC", {"l": log_id, "i": index}):
        try:
            cp = notes.open_note(str(note), public_key)
        except notes.NoteError:
            continue
        if cp.origin == origin_for(store.database, log_id) and cp.size > index:
            return cp
    raise ProofError(f"position {index} of {log_id} is not covered by a signed checkpoint yet")


def _log_leaves(store: Store, schema: LeafSchema, log_id: str, size: int) -> list[bytes]:
    blob_hex, n = store.rows(compose(
        "SELECT arrayStringConcat(arraySort((h, i) -> i, groupArray(hex(r)), "
        "groupArray(log_index))), count() FROM ("
        "SELECT log_index, <leaf> AS r FROM <table> "
        "WHERE log_id = {l:String} AND log_index < {s:UInt64})", leaf=sql_leaf_hash(schema),
        table=schema.table), {"l": log_id, "s": size})[0]
    blob = bytes.fromhex(blob_hex)
    if int(n) != size or len(blob) != 32 * size:
        raise ProofError(f"log {log_id} has {n} of the {size} records its checkpoint signed; "
                         "run genai-audit verify")
    return [blob[i:i + 32] for i in range(0, len(blob), 32)]


def check_proof(doc: Any, public_key: Ed25519PublicKey,
                key_name: str = notes.KEY_NAME) -> list[str]:
    """Every reason the proof fails (empty when it holds). Needs no store."""
    try:
        if doc.get("format") != PROOF_FORMAT:
            return [f"not a {PROOF_FORMAT} document"]
        items = [(str(i["name"]), i["value"].encode() if "value" in i
                  else bytes.fromhex(i["value_hex"])) for i in doc["leaf_items"]]
        index, size = int(doc["leaf_index"]), int(doc["tree_size"])
        log_id, database = str(doc["log_id"]), str(doc["database"])
        path = [bytes.fromhex(h) for h in doc["inclusion_path"]]
        claimed_leaf, root = bytes.fromhex(doc["leaf_hash"]), bytes.fromhex(doc["root_hash"])
        note = str(doc["checkpoint"])
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        return [f"malformed proof: {type(exc).__name__}: {exc}"]
    problems = []
    try:
        cp = notes.open_note(note, public_key, key_name)
    except notes.NoteError as exc:
        return [f"checkpoint: {exc}"]
    if (cp.size, cp.root) != (size, root):
        problems.append("tree size / root hash differ from the signed checkpoint")
    if cp.origin != origin_for(database, log_id):
        problems.append(f"the checkpoint is for {cp.origin}, not this log")
    heads = [value for _, value in items[:3]]
    if len(items) < 3 or heads[1] != log_id.encode() or heads[2] != b"%d" % index:
        problems.append("the leaf items do not name this log and position")
    leaf = hashlib.sha256(b"\x00" + b"".join(ns(value) for _, value in items)).digest()
    if leaf != claimed_leaf:
        problems.append("the record's fields do not hash to the proof's leaf hash")
    if not merkle.verify_inclusion(leaf, index, size, path, cp.root):
        problems.append("the audit path does not lead from this leaf to the signed root")
    return problems + _content_problems(doc, dict(items))


def _content_problems(doc: Any, items: dict[str, bytes]) -> list[str]:
    """Leaf v2 covers the content through a digest: the content the proof carries must hash
    to it, unless the content retention blanked it (then only the digest is proven)."""
    schema = SCHEMAS.get(str(doc.get("table")))
    digest = schema.digests.get(int(doc.get("leaf_version", 0))) if schema else None
    if digest is None:
        return []
    try:
        content = {str(i["name"]): i["value"].encode() if "value" in i
                   else bytes.fromhex(i["value_hex"]) for i in doc.get("content_items", [])}
        values = [content[c] for c in digest.covers]
    except (AttributeError, KeyError, TypeError, ValueError):
        return ["the proof lacks the record's content items"]
    if content_digest(values) == items.get(digest.column):
        return []
    if values == [v.encode() for v in digest.expired_values]:
        return []  # expired on schedule: the leaf still proves the metadata and the digest
    return ["the record's content does not hash to the digest its leaf covers"]


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False)
