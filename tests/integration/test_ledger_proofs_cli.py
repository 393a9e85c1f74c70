"""Inclusion proofs offline, and the ledger's CLI commands (CliRunner, real embedded store)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from ledger_helpers import populate

from genai_audit.cli.main import cli
from genai_audit.clickhouse.ledger import proof as proofs
from genai_audit.clickhouse.store import Store
from genai_audit.keystore import LocalKeyStore

pytestmark = pytest.mark.integration
SYNC = {"mutations_sync": 2}


def test_every_record_proves_offline_and_tampered_ones_do_not(store: Store,
                                                                keystore: LocalKeyStore) -> None:
    ids = populate(store, keystore, n=37, tenants=("acme", "globex"))
    public = keystore.signing_key().public_key()
    docs = [json.loads(proofs.dumps(proofs.build_proof(store, i, public))) for i in ids]
    assert all(proofs.check_proof(d, public) == [] for d in docs)
    assert {d["tree_size"] for d in docs} == {18, 19}  # both tenants' logs, fully signed
    doc = docs[7]
    edited = json.loads(json.dumps(doc))
    cost = next(i for i in edited["leaf_items"] if i["name"] == "total_cost")
    cost["value"] = "0.000000001"
    assert "the record's fields do not hash to the proof's leaf hash" in proofs.check_proof(
        edited, public)
    swapped = json.loads(json.dumps(doc))  # leaf v2: the content carried must fit its digest
    prompt = next(i for i in swapped["content_items"] if i["name"] == "full_prompt_text")
    prompt["value"] = "a different prompt"
    assert proofs.check_proof(swapped, public) == [
        "the record's content does not hash to the digest its leaf covers"]
    moved = dict(doc, leaf_index=doc["leaf_index"] + 1)
    assert proofs.check_proof(moved, public)
    other = LocalKeyStore(keystore.directory.parent / "other").signing_key().public_key()
    assert proofs.check_proof(doc, other)[0].startswith("checkpoint: no signature")
    # a record changed in the store no longer proves
    store.command("ALTER TABLE interactions UPDATE full_response_text = 'edited' "
                  "WHERE id = {id:UUID}", {"id": ids[7]}, settings=SYNC)
    with pytest.raises(proofs.ProofError, match="no longer matches"):
        proofs.build_proof(store, ids[7], public)
    # ...and a proof for an untouched neighbour in the same (now damaged) log is refused too
    with pytest.raises(proofs.ProofError, match="no longer matches its signed checkpoint"):
        proofs.build_proof(store, ids[9], public)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_verify_prove_verify_proof_and_checkpoints(store: Store, store_dsn: str,
                                                        tmp_path) -> None:
    db = ["--dsn", store_dsn, "--database", store.database]
    code, out, _ = invoke("init", *db)
    assert code == 0 and "ledger signing key" in out and "genai-audit/ledger+" in out
    keys = LocalKeyStore(store_dsn.removeprefix("chdb://") + "-keys")
    ids = populate(store, keys, n=25)

    code, out, _ = invoke("verify", *db)
    assert code == 0 and out.startswith("INTACT: 25 records in 1 logs")

    pub, anchors, proof = tmp_path / "k.pub", tmp_path / "a.json", tmp_path / "p.json"
    assert invoke("checkpoint", "pubkey", *db, "-o", str(pub))[0] == 0
    assert invoke("checkpoint", "export", *db, "-o", str(anchors))[0] == 0
    assert json.loads(anchors.read_text())["checkpoints"][0]["tree_size"] == 25
    code, out, _ = invoke("checkpoint", "pubkey", *db, "--format", "note")
    assert out.startswith("genai-audit/ledger+")

    assert invoke("prove", *db, "--id", ids[3], "-o", str(proof))[0] == 0
    code, out, _ = invoke("verify-proof", str(proof), "--pubkey", str(pub))
    assert code == 0 and out.startswith("PROOF HOLDS")

    store.command("ALTER TABLE interactions DELETE WHERE id = {id:UUID}", {"id": ids[3]},
                  settings=SYNC)
    code, out, _ = invoke("verify", *db, "--checkpoint", str(anchors), "--pubkey", str(pub))
    assert code == 1 and out.startswith("TAMPERED")
    assert "DELETED" in out and f"position 3  record {ids[3]}" in out
    code, out, _ = invoke("verify", *db, "--format", "json")
    assert code == 1 and json.loads(out)["findings"][0]["kind"] == "deleted"
    code, _, err = invoke("prove", *db, "--id", ids[4])
    assert code == 1 and "cannot prove" in err

    doc = json.loads(proof.read_text())
    doc["leaf_items"][5]["value"] = "globex"
    proof.write_text(json.dumps(doc))
    code, out, _ = invoke("verify-proof", str(proof), "--pubkey", str(pub))
    assert code == 1 and "PROOF FAILS" in out


def test_cli_errors_exit_2(store: Store, store_dsn: str, tmp_path) -> None:
    db = ["--dsn", store_dsn, "--database", store.database]
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    from genai_audit.cli.main import main
    assert main(["verify", *db, "--checkpoint", str(bad)]) == 2
    assert main(["verify", *db, "--pubkey", str(bad)]) == 2
    assert main(["prove", *db, "--id", "not-a-uuid"]) == 2
    assert main(["verify-proof", str(bad), "--pubkey", str(bad)]) == 2
    help_text = CliRunner().invoke(cli, ["verify", "--help"]).output
    assert "Examples:" in help_text and "modified, deleted, inserted" in help_text


def test_read_commands_never_mint_a_signing_key(tmp_path) -> None:
    from genai_audit.cli.main import main
    dsn = ["--dsn", str(tmp_path / "nowhere"), "--database", "x"]
    assert main(["checkpoint", "pubkey", *dsn]) == 2
    assert not (tmp_path / "nowhere-keys").exists()


def test_auditor_report_runs_verify(store: Store, store_dsn: str) -> None:
    db = ["--dsn", store_dsn, "--database", store.database]
    assert invoke("init", *db)[0] == 0
    ids = populate(store, LocalKeyStore(store_dsn.removeprefix("chdb://") + "-keys"), n=12)

    def integrity() -> dict:
        _code, out, _ = invoke("report", *db, "--format", "json")
        return next(s for s in json.loads(out)["sections"] if s["key"] == "integrity")

    clean = integrity()
    assert clean["summary"].startswith("12 records in 1 logs verified") and "intact" in (
        clean["summary"])
    store.command("ALTER TABLE interactions UPDATE total_cost = 0 WHERE id = {id:UUID}",
                  {"id": ids[2]}, settings=SYNC)
    bad = integrity()
    assert bad["status"] == "attention"
    rows = bad["tables"][0]["rows"]
    assert rows[0][:2] == [ids[2], "2"] and rows[0][2].startswith("modified")
