"""RFC 9162 Merkle hashing and proofs, against a naive transcription of the RFC's
definitions and the RFC 6962 reference vectors (the 8-leaf tree of the CT test suite)."""

from __future__ import annotations

import hashlib

import pytest

from genai_audit.clickhouse.ledger import merkle

DATA = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
        bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
# Roots of the first n leaves of DATA (RFC 6962 test vectors, as in the CT reference tests).
ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}


def sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def mth(d: list[bytes]) -> bytes:  # RFC 9162 2.1.1, literally
    n = len(d)
    if n == 0:
        return sha(b"")
    if n == 1:
        return sha(b"\x00" + d[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return sha(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:  # RFC 9162 2.1.3.1
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:  # RFC 9162 2.1.4.1
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def data(n: int) -> list[bytes]:
    return [f"leaf-{i}".encode() for i in range(n)]


@pytest.mark.parametrize("n", sorted(ROOTS))
def test_rfc6962_reference_roots(n: int) -> None:
    leaves = [merkle.leaf_hash(x) for x in DATA[:n]]
    assert merkle.root_of(leaves).hex() == ROOTS[n] == mth(DATA[:n]).hex()


def test_empty_tree_and_hash_domain_separation() -> None:
    assert merkle.root_of([]) == sha(b"") == merkle.EMPTY_ROOT
    assert merkle.leaf_hash(b"ab") != sha(b"ab")
    assert merkle.node_hash(b"a" * 32, b"b" * 32) == sha(b"\x01" + b"a" * 32 + b"b" * 32)


@pytest.mark.parametrize("n", range(1, 40))
def test_root_and_compact_range_match_definition(n: int) -> None:
    d = data(n)
    leaves = [merkle.leaf_hash(x) for x in d]
    assert merkle.root_of(leaves) == mth(d)
    tree = merkle.LeafList(leaves)
    nodes = [tree.mth(a, b) for a, b in merkle.range_nodes(n)]
    assert merkle.root_from_range(nodes) == mth(d)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 16, 17, 31])
def test_inclusion_proofs(n: int) -> None:
    d = data(n)
    leaves = [merkle.leaf_hash(x) for x in d]
    tree, root = merkle.LeafList(leaves), mth(d)
    for m in range(n):
        proof = merkle.inclusion_proof(tree.mth, m, n)
        assert proof == path(m, d)
        assert merkle.verify_inclusion(leaves[m], m, n, proof, root)
        assert not merkle.verify_inclusion(merkle.leaf_hash(b"forged"), m, n, proof, root)
        if n > 1:
            assert not merkle.verify_inclusion(leaves[m], (m + 1) % n, n, proof, root)
            assert not merkle.verify_inclusion(leaves[m], m, n, proof[:-1], root)
            assert not merkle.verify_inclusion(leaves[m], m, n, [*proof, root], root)
    assert not merkle.verify_inclusion(leaves[0], n, n, [], root)


def test_consistency_proofs_all_pairs() -> None:
    for n in range(1, 21):
        d = data(n)
        leaves = [merkle.leaf_hash(x) for x in d]
        tree = merkle.LeafList(leaves)
        for m in range(0, n + 1):
            proof = merkle.consistency_proof(tree.mth, m, n)
            if 0 < m < n:
                assert proof == subproof(m, d, True)
            old, new = mth(d[:m]), mth(d)
            assert merkle.verify_consistency(m, n, old, new, proof)
            if 0 < m < n:
                assert not merkle.verify_consistency(m, n, mth(data(m + 1)[1:]), new, proof)
                assert not merkle.verify_consistency(m, n, old, mth(data(n + 1)), proof)
                assert not merkle.verify_consistency(m, n, old, new, proof[:-1])
                bad = [bytes(32), *proof[1:]]
                assert not merkle.verify_consistency(m, n, old, new, bad)


@pytest.mark.parametrize(("old", "new"), [(1, 2), (3, 8), (5, 8), (6, 13), (8, 9), (13, 64),
                                           (4, 4), (0, 7), (127, 300)])
def test_extension_knows_only_old_compact_range(old: int, new: int) -> None:
    d = data(new)
    leaves = [merkle.leaf_hash(x) for x in d]
    full = merkle.LeafList(leaves)
    old_range = [full.mth(a, b) for a, b in merkle.range_nodes(old)]
    ext = merkle.Extension(old, old_range, leaves[old:])
    assert ext.mth(0, new) == mth(d)
    assert merkle.consistency_proof(ext.mth, old, new) == merkle.consistency_proof(
        full.mth, old, new)
    assert merkle.root_from_range(ext.compact_range()) == mth(d)
    with pytest.raises(ValueError):
        merkle.Extension(old, [*old_range, bytes(32)], [])
