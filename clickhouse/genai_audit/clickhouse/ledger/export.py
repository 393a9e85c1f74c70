"""Checkpoint export for external anchoring, and reading such a file back.

The file (JSON, ``genai-audit/checkpoints/v1``) holds each log's latest signed checkpoint.
Kept outside the store (an auditor's copy, an object-lock bucket), it lets ``verify
--checkpoint FILE`` catch what the store alone cannot: a log removed together with its
checkpoints, or truncated behind its newest checkpoint.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from genai_audit.clickhouse.ledger import checkpoint as notes
from genai_audit.clickhouse.ledger.leaf import compose
from genai_audit.clickhouse.store import Store

EXPORT_FORMAT = "genai-audit/checkpoints/v1"


def export_checkpoints(store: Store, public_key: Ed25519PublicKey,
                       tenant: str | None = None) -> str:
    """The latest checkpoint of every log whose signature verifies, as JSON text.
    Raises ``NoteError`` if a latest checkpoint does not verify (nothing is anchored then)."""
    where, params = ("WHERE tenant_id = {t:String}", {"t": tenant}) if tenant else ("", {})
    rows = store.rows(compose("SELECT log_id, argMax(note, tree_size) FROM ledger_checkpoints "
                              "<where> GROUP BY log_id ORDER BY log_id", where=where), params)
    out = []
    for log_id, note in rows:
        try:
            cp = notes.open_note(str(note), public_key)
        except notes.NoteError as exc:
            raise notes.NoteError(f"latest checkpoint of {log_id} does not verify ({exc}); "
                                  "run genai-audit verify") from None
        out.append({"log_id": str(log_id), "tree_size": cp.size, "root_hash": cp.root.hex(),
                    "note": str(note)})
    return json.dumps({"format": EXPORT_FORMAT, "database": store.database,
                       "exported_at": datetime.now(UTC).isoformat(),
                       "key": notes.verifier_key(public_key), "checkpoints": out}, indent=2)


def read_anchors(text: str) -> list[tuple[str, str]]:
    """An exported checkpoint file -> [(log_id, signed note)]. Raises ``ValueError``."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
            raise ValueError(f"not a {EXPORT_FORMAT} file")
        return [(str(c["log_id"]), str(c["note"])) for c in data["checkpoints"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"unreadable checkpoint file: {exc}") from None
